"""Fixtures only; shared helpers live in tests/helpers (importable as ``helpers``)."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture(autouse=True)
def _netopt_logger_restored():
    """Each test gets the ``netopt`` logger as it found it: a test (or a fuzzer it drives) that
    quiets netopt's warnings must not hide them from the tests that assert on them."""
    import logging

    lg = logging.getLogger("netopt")
    saved = (lg.level, lg.propagate, lg.disabled)
    yield
    lg.propagate, lg.disabled = saved[1], saved[2]
    lg.setLevel(saved[0])  # setLevel, not an assignment: it clears logging's level cache
