"""``python -m netopt.cli``: the ``netopt`` command."""

import sys

from netopt.cli.main import main

sys.exit(main())
