"""Checks that the ranks of a multi-process run stayed in step with each other."""

from __future__ import annotations

import hashlib
from typing import Iterable, Optional

import numpy as np

from backends.base import Backend
from keras_compat import variable_value

__all__ = ["check_weights_in_sync", "weights_checksum"]


def weights_checksum(variables: Iterable) -> float:
    """A fingerprint of variable values' exact bits, as a float64 (what the rank check compares).

    Replicas that apply the same all-reduced gradients to the same weights hold bit-identical
    values. The fingerprint is the first 52 bits of a SHA-256 over every variable's bytes, so a
    change of one unit in the last place of any element changes it (a sum of values could hide it).
    """
    digest = hashlib.sha256()
    for v in variables:
        digest.update(np.ascontiguousarray(variable_value(v).numpy()).tobytes())
    return float(int.from_bytes(digest.digest()[:8], "big") >> 12)


def check_weights_in_sync(model, backend: Backend, log: Optional[object] = None) -> Optional[float]:
    """Raises ValueError on every rank if the ranks' weights differ; logs the checksum otherwise.

    Returns:
        The checksum, or None on a single process (nothing to compare).
    """
    if backend.world_size == 1:
        return None
    # Trainable weights only: without synchronised batch norm, moving statistics legitimately differ.
    checksum = weights_checksum(model.trainable_weights)
    if type(backend).assert_same_on_all_ranks is Backend.assert_same_on_all_ranks:
        # A backend without a cross-rank comparison: say so rather than claim the ranks agree.
        if log is not None:
            log.info(f"weights checksum {checksum:.17g} (backend {backend.name} cannot compare ranks)")
        return checksum
    backend.assert_same_on_all_ranks(
        "the final weights' checksum", checksum,
        hint="The replicas diverged: gradients were not averaged the same way on every rank.")
    if log is not None:
        log.info(f"weights identical on all {backend.world_size} ranks: checksum {checksum:.17g}")
    return checksum
