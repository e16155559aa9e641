"""``python -m ams02.transfer sync SRC DST ...``: the sync command on its own."""

from .cli import main

raise SystemExit(main())
