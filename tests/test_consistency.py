"""training/consistency.py: the end-of-training check that ranks hold the same weights."""

import numpy as np
import pytest
import tensorflow as tf

from backends.base import Backend
from training.consistency import check_weights_in_sync, weights_checksum

pytestmark = pytest.mark.keras2  # fast, and Keras 2 variables are read differently


class TwoRanks(Backend):
    """A backend that reports two ranks and compares values with a given peer value."""

    name = "two_ranks"

    def __init__(self, peer_value=None):
        super().__init__(rank_size=2)
        self.peer_value = peer_value

    def setup(self):
        pass

    def create_strategy(self):
        return tf.distribute.get_strategy()

    @property
    def world_size(self):
        return 2


class Comparing(TwoRanks):
    def assert_same_on_all_ranks(self, what, value, hint=""):
        if value != self.peer_value:
            raise ValueError(f"{what} differs between ranks. {hint}")


class Lines:
    def __init__(self):
        self.lines = []

    def info(self, line):
        self.lines.append(line)


class Model:
    def __init__(self, *arrays):
        self.weights = [tf.Variable(a) for a in arrays]


def test_checksum_is_sum_of_values_and_squares():
    model = Model(np.array([1.0, -2.0], np.float32), np.array([[0.5]], np.float32))
    assert weights_checksum(model.weights) == pytest.approx((1 - 2 + 0.5) + (1 + 4 + 0.25))


def test_agreeing_ranks_are_reported_identical():
    model = Model(np.arange(6, dtype=np.float32))
    log = Lines()
    checksum = check_weights_in_sync(model, Comparing(peer_value=weights_checksum(model.weights)), log)
    assert log.lines == [f"weights identical on all 2 ranks: checksum {checksum:.17g}"]


def test_diverged_ranks_fail():
    model = Model(np.arange(6, dtype=np.float32))
    with pytest.raises(ValueError, match="the final weights' checksum differs between ranks. The replicas diverged"):
        check_weights_in_sync(model, Comparing(peer_value=0.0), Lines())


def test_backend_that_cannot_compare_does_not_claim_agreement():
    log = Lines()
    check_weights_in_sync(Model(np.ones(3, np.float32)), TwoRanks(), log)
    assert log.lines == ["weights checksum 6 (backend two_ranks cannot compare ranks)"]
