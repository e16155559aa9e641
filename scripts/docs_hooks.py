"""MkDocs hooks: the schema and command-line pages are generated from the installed
package at build time (so they cannot drift from the code)."""

from __future__ import annotations

import argparse
import io
import re
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any


def _schema_markdown() -> str:
    import ams02
    from ams02 import _schema

    out = []
    for table, cols in ams02.schema().items():
        out.append(f"## `{table}`\n")
        out.append(_schema.doc(table).replace("`", "") + "\n")
        out.append("| column | dtype | unit | meaning |")
        out.append("| --- | --- | --- | --- |")
        for name, dtype, shape, unit, meaning, where in zip(
            cols["name"], cols["dtype"], cols["shape"], cols["unit"], cols["meaning"], cols["where"]
        ):
            meaning = str(meaning).replace("|", "\\|") + (f" (*{where} only*)" if where else "")
            out.append(f"| `{name}` | `{dtype}{shape}` | {unit} | {meaning} |")
        out.append("")
    return "\n".join(out)


def _help(parser: argparse.ArgumentParser) -> str:
    buf = io.StringIO()
    with redirect_stdout(buf):
        parser.print_help()
    return buf.getvalue()


def _cli_markdown() -> str:
    from ams02.cli import build_parser

    parser = build_parser()
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    out = ["```text", _help(parser).rstrip(), "```", ""]

    def walk(p: argparse.ArgumentParser, prefix: str) -> None:
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    out.extend([f"## `{prefix} {name}`", "", "```text", _help(sub).rstrip(), "```", ""])
                    walk(sub, f"{prefix} {name}")

    walk(parser, "ams02")
    return "\n".join(out)


#: The README, included whole as the tour (docs/index.md).
_README = '--8<-- "README.md"'


def _readme(config: Any) -> str:
    """The README for the site: its links into ``docs/`` (right on the repository's front
    page) made relative to the site's pages, which live in ``docs/``."""
    root = Path(config["config_file_path"]).parent
    text = (root / "README.md").read_text(encoding="utf-8")
    return re.sub(r"(\]\()docs/", r"\1", text)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if _README in markdown:
        markdown = markdown.replace(_README, _readme(config))
    if "<!-- ams02:schema -->" in markdown:
        markdown = markdown.replace("<!-- ams02:schema -->", _schema_markdown())
    if "<!-- ams02:cli -->" in markdown:
        markdown = markdown.replace("<!-- ams02:cli -->", _cli_markdown())
    return markdown
