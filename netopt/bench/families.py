"""Instance families of a suite: a registry (one entry per ``kind``), and the shipped five.

A family is a generator with named parameters and defaults (``None``: required) and a function
``make(params, index, name, workdir) -> Instance`` that gives instance ``index`` (its seed is the
family's ``seed + index``); ``workdir`` is the folder the instance is saved in (a family that
trains a network keeps it there, once). Add one with :func:`family`::

    from netopt.bench.families import family

    @family("my_nets", params={"width": 32, "count": 1, "seed": 0})
    def make(params, index, name, workdir):
        return my_instance(params["width"], params["seed"] + index, name=name)

and name its module in the suite's top-level ``imports = ["my_package.my_families"]``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from netopt.errors import InputError
from netopt.registry import Registry

__all__ = ["FAMILIES", "FamilySpec", "family", "folder_files"]

FAMILIES = Registry("instance family")


@dataclass(frozen=True)
class FamilySpec:
    """A registered family: its parameters with defaults, its maker, and which parameters hold
    a list as their value (for those a grid is a list of lists)."""

    name: str
    params: dict[str, Any]
    make: Callable[[dict[str, Any], int, str, Path], Any]
    list_params: tuple[str, ...] = ()
    #: how many instances a parameter set yields (default: its ``count``)
    count: Callable[[dict[str, Any]], int] | None = None

    def instance_count(self, params: dict[str, Any]) -> int:
        return self.count(params) if self.count is not None else int(params["count"])


def family(
    name: str,
    params: dict[str, Any],
    list_params: tuple[str, ...] = (),
    count: Callable[[dict[str, Any]], int] | None = None,
) -> Callable:
    """Decorator: register ``make(params, index, name, workdir) -> Instance`` as family
    ``name`` with ``params`` (name -> default, ``None`` for a required one)."""

    def deco(make: Callable) -> Callable:
        FAMILIES.register(name)(FamilySpec(name, dict(params), make, tuple(list_params), count))
        return make

    return deco


@family(
    "sat3",
    {
        "n": None,
        "ratio": 4.26,
        "kind": "any",  # sat | unsat | any
        "variant": "box",  # box | free | lei4
        "rescale": False,
        "permute": False,
        "identity_layers": 0,
        "count": 1,
        "seed": 0,
    },
)
def _sat3(p: dict[str, Any], index: int, name: str, workdir: Path):
    from netopt.instances import random_formula, sat3_instance

    sat = {"sat": True, "unsat": False, "any": None}.get(p["kind"], "?")
    if sat == "?":
        raise InputError(f"sat3 kind must be sat, unsat or any, got {p['kind']!r}")
    n, seed = int(p["n"]), int(p["seed"]) + index
    cnf, assignment = random_formula(n, round(p["ratio"] * n), sat, seed)
    return sat3_instance(
        cnf,
        p["variant"],
        rescale=bool(p["rescale"]),
        permute=bool(p["permute"]),
        identity_layers=int(p["identity_layers"]),
        seed=seed,
        name=name,
        assignment=assignment,
    )


@family(
    "expansive",
    {
        "widths": None,
        "noise": 0.0,
        "noise_kind": "uniform",
        "activation": "relu",
        "norm": 1,
        "dtype": "float32",
        "count": 1,
        "seed": 0,
    },
    list_params=("widths",),
)
def _expansive(p: dict[str, Any], index: int, name: str, workdir: Path):
    import numpy as np

    from netopt.instances import expansive_instance
    from netopt.problems import parse_norm

    return expansive_instance(
        p["widths"],
        int(p["seed"]) + index,
        noise=float(p["noise"]),
        noise_kind=p["noise_kind"],
        activation=p["activation"],
        norm=parse_norm(p["norm"]),
        dtype=np.dtype(p["dtype"]).type,
        name=name,
    )


@family(
    "mlp",
    {
        "widths": None,
        "target": "realizable",  # realizable | outside | unreachable
        "box": [-1.0, 1.0],
        "norm": 1,
        "count": 1,
        "seed": 0,
    },
    list_params=("widths", "box"),
)
def _mlp(p: dict[str, Any], index: int, name: str, workdir: Path):
    from netopt.instances import mlp_instance
    from netopt.problems import parse_norm

    return mlp_instance(
        p["widths"],
        int(p["seed"]) + index,
        target=p["target"],
        box=tuple(p["box"]),
        norm=parse_norm(p["norm"]),
        name=name,
    )


@family(
    # a digits decoder trained once per training setting, and its checkpoints (Surfing)
    "generator",
    {
        "latent": 5,
        "hidden": 128,
        "epochs": 60,
        "checkpoints": 40,
        "train_seed": 0,
        "count": 1,
        "seed": 0,
    },
)
def _generator(p: dict[str, Any], index: int, name: str, workdir: Path):
    from netopt.instances.generator import generator_instance, train_generator

    keys = ("latent", "hidden", "epochs", "checkpoints", "train_seed")
    digest = hashlib.sha256(json.dumps({k: p[k] for k in keys}).encode()).hexdigest()[:10]
    ckpts = train_generator(
        Path(workdir) / "generators" / digest,  # one training per setting, whatever the targets
        latent=int(p["latent"]),
        hidden=int(p["hidden"]),
        epochs=int(p["epochs"]),
        checkpoints=int(p["checkpoints"]),
        seed=int(p["train_seed"]),
    )
    return generator_instance(ckpts, int(p["seed"]) + index, relative_to=workdir, name=name)


def folder_files(params: dict[str, Any]) -> list[Path]:
    """The instance JSON files of a ``folder`` family, sorted (a stable index)."""
    return sorted(Path(params["path"]).glob("*.json"))


@family("folder", {"path": None}, count=lambda p: len(folder_files(p)))
def _folder(p: dict[str, Any], index: int, name: str, workdir: Path):
    from netopt.instances import load_instance

    return load_instance(folder_files(p)[index])
