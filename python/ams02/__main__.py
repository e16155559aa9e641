"""``python -m ams02``: the command line."""

from .cli import main

raise SystemExit(main())
