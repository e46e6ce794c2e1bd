"""Fixtures only; shared helpers live in tests/helpers (importable as ``helpers``)."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
