"""Integer arguments of the envs and their data sources, checked one way.

Why: ``int(value)`` would quietly make ``vocab_size=2.5`` a 2 and ``seq_len=True`` a 1, so
every count an env takes goes through :func:`check_int`: a real integer (NumPy integers
included), not a bool, not a float, at least its minimum.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def check_int(name: str, value: Any, low: int, owner: str = "") -> int:
    """``value`` as an ``int`` if it is an integer ``>= low``; ``ValueError`` naming ``name`` otherwise."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer) or value < low:
        where = f"{owner}: " if owner else ""
        raise ValueError(f"{where}{name} must be an integer >= {low}, got {value!r}")
    return int(value)
