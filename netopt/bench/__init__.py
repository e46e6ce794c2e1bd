"""Benchmark harness: heuristics against MILP ground truth on suites of instances.

* :mod:`~netopt.bench.suite` - parse a suite file (TOML) and expand it into tasks with stable keys;
* :mod:`~netopt.bench.families` - the instance families (a registry) and
  :mod:`~netopt.bench.methods` - what a method may be and which options it takes;
* :mod:`~netopt.bench.store` - the SQLite store (versioned schema, resumable task states), and
  :mod:`~netopt.bench.rows` - the checks on its rows' values when they are read back;
* :mod:`~netopt.bench.runner` - :func:`~netopt.bench.runner.run_suite`: ground truth, then tasks;
* :mod:`~netopt.bench.executors` - where tasks run: a local pool or Dask, one process per task;
* :mod:`~netopt.bench.child` - one task in its own process;
* :mod:`~netopt.bench.report` - tables, CSV and figures (:mod:`~netopt.bench.tables`,
  :mod:`~netopt.bench.figures`, :mod:`~netopt.bench.render`) from a database.

``netopt bench SUITE`` and ``netopt report DB`` are the command-line entry points.
Importing this package imports nothing heavy; the submodules load netopt's solvers lazily.
"""

__all__ = ["suite", "families", "methods", "store", "rows", "runner", "executors", "child"]
__all__ += ["report"]
__all__ += ["tables", "figures", "render"]
