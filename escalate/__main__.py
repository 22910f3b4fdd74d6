"""``python -m escalate``: the same as the ``escalate`` command."""

from escalate.cli import main

raise SystemExit(main())
