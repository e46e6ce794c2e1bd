"""``python -m netopt ...``: the ``netopt`` command (for a checkout or venv without the script)."""

from netopt.cli import main

raise SystemExit(main())
