"""Imported once by the local executor's fork server, so that each task's process starts forked
with netopt, its solvers and torch already imported (milliseconds, not seconds, per task).

Tasks run side by side: one thread each keeps them from fighting over the cores, and the
thread counts must be set before the numerical libraries are imported.
"""

import importlib
import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

#: imported when present; a missing optional dependency is imported (or not) by the task itself
MODULES = (
    "numpy",
    "scipy.sparse",
    "onnx",
    "onnxruntime",
    "highspy",
    "torch",
    "netopt",
    "netopt.instances",
    "netopt.formulations",
    "netopt.solvers",
    "netopt.solve",
    "netopt.bench.child",
    "netopt.bench.suite",
)
for _m in MODULES:
    try:
        importlib.import_module(_m)
    except Exception:  # noqa: BLE001 - an optional module that fails to import is the task's business
        pass
