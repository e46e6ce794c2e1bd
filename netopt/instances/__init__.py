"""Instance generators with known ground truth.

* :mod:`~netopt.instances.cnf` - CNF formulas: DIMACS, random / planted 3-SAT, SAT ground truth;
* :mod:`~netopt.instances.sat3` - the 3-SAT -> ReLU inversion reduction with its gap theorem;
* :mod:`~netopt.instances.expansive` - random expansive generators with a planted latent;
* :mod:`~netopt.instances.mlp` - random MLPs with realizable / outside / unreachable targets;
* :mod:`~netopt.instances.generator` - inversion of a trained digits generator (Surfing);
* :mod:`~netopt.instances.digits_generator` - training that generator, saving its checkpoints;
* :mod:`~netopt.instances.instance` - the :class:`Instance` type and its files
  (ONNX + JSON + VNN-LIB), :func:`load_instance`.
"""

from netopt.instances._onnx import mlp_onnx
from netopt.instances.cnf import (
    CNF,
    brute_force_sat,
    parse_dimacs,
    planted_3sat,
    random_3sat,
    random_formula,
    read_dimacs,
    sat_solve,
)
from netopt.instances.expansive import expansive_instance
from netopt.instances.generator import generator_instance
from netopt.instances.instance import Instance, load_instance
from netopt.instances.mlp import mlp_instance
from netopt.instances.sat3 import decode, sat3_instance

__all__ = [
    "mlp_onnx",
    "CNF",
    "read_dimacs",
    "parse_dimacs",
    "random_3sat",
    "planted_3sat",
    "random_formula",
    "sat_solve",
    "brute_force_sat",
    "sat3_instance",
    "decode",
    "expansive_instance",
    "generator_instance",
    "mlp_instance",
    "Instance",
    "load_instance",
]
