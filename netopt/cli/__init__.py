"""The ``netopt`` command (console script ``netopt = netopt.cli:main``).

One module per command: ``info`` (and ``ops``), ``invert``, ``check``, ``verify``, ``bench`` (and
``report``), ``gen``; ``main`` assembles the parser and maps errors to exit statuses; ``args``
holds the argument types and file checks they share. Importing the package imports no solver,
torch, cvxpy or pyomo: each command imports what it needs when it runs.
"""

from __future__ import annotations

from netopt.cli.info import ops_table_markdown
from netopt.cli.main import build_parser, main

__all__ = ["build_parser", "main", "ops_table_markdown"]
