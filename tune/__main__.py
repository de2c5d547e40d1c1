"""``python -m tune``: the same as the ``tune`` command."""

from tune.cli import main

raise SystemExit(main())
