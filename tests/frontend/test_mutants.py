"""Property: a mutant of a valid model (dropped node, corrupt bytes, wrong attribute types,
dangling inputs, cycles, duplicate outputs, empty graph, ...) either loads, and then agrees with
onnxruntime where onnxruntime accepts it too, or raises a :class:`netopt.NetoptError`: never any
other exception.
"""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from helpers.nets import NETS
from helpers.onnx_builders import Case
from helpers.onnx_strategies import MUTATIONS, describe, models, mutate, property_settings
from helpers.ort_oracle import check_mutant
from hypothesis import given, note
from hypothesis import strategies as st

# the real files small enough to mutate quickly (the big ones only add weight bytes)
REAL_FILES = (
    sorted(p for p in NETS.glob("*/*.onnx") if p.stat().st_size < 100_000) if NETS.is_dir() else []
)


@property_settings(1200)
@given(case=models(max_steps=4), kind=st.sampled_from(MUTATIONS), data=st.data())
def test_mutants_of_generated_models(case: Case, kind: str, data) -> None:
    """A broken or altered model loads and agrees with onnxruntime, or raises a NetoptError."""
    note(describe(case))
    note(f"mutation: {kind}")
    check_mutant(mutate(case.model, kind, data.draw))


@pytest.mark.skipif(not REAL_FILES, reason=f"the shared networks folder {NETS} is absent")
@property_settings(800)
@given(
    path=st.sampled_from(REAL_FILES or [Path("absent")]),
    kind=st.sampled_from(MUTATIONS),
    data=st.data(),
)
def test_mutants_of_real_files(path: Path, kind: str, data) -> None:
    """The same for mutants of the exporters' files in ../shared/nets."""
    note(f"mutation: {kind}")
    check_mutant(mutate(onnx.load(path), kind, data.draw))
