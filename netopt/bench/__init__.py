"""Benchmark harness: suites in TOML, a resumable runner and a SQLite results store.

* :mod:`~netopt.bench.suite` - parse a suite file and expand it into tasks with stable keys;
* :mod:`~netopt.bench.store` - the SQLite store (versioned schema, resumable task states);
* :mod:`~netopt.bench.runner` - :func:`~netopt.bench.runner.run_suite`, one child process a task.

Importing this package imports nothing heavy; the submodules load netopt's solvers lazily.
"""

__all__ = ["suite", "store", "runner"]
