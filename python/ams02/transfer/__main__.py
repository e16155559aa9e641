"""``python -m ams02.transfer sync SRC DST ...``: the sync command on its own."""

from .cli import main

if __name__ == "__main__":  # not when imported (e.g. by the docs' inspection)
    raise SystemExit(main())
