"""``python -m ams02``: the command line."""

from .cli import main

if __name__ == "__main__":  # not when imported (e.g. by the docs' inspection)
    raise SystemExit(main())
