"""The end-of-training check that ranks hold the same weights: exact, trainable weights only."""

import numpy as np
import pytest
import tensorflow as tf

from backends.base import Backend
from backends.distributed import bit_chunks, chunks_agree
from keras_compat import keras
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


def _model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    x = keras.layers.BatchNormalization(name="bn")(keras.layers.Dense(3, name="dense")(inputs))
    return keras.Model(inputs, x)


def _one_ulp_up(variable):
    value = variable.numpy().copy()
    value.flat[0] = np.nextafter(value.flat[0], np.float32(np.inf))
    variable.assign(value)


def test_checksum_sees_one_ulp_in_a_trainable_weight_and_ignores_moving_statistics():
    model = _model()
    before = weights_checksum(model.trainable_weights)
    assert before == weights_checksum(_model().trainable_weights)  # same values, same checksum
    moving = [w for w in model.weights if "moving_mean" in w.name or "moving_mean" in getattr(w, "path", "")]
    moving[0].assign(moving[0].numpy() + 1.0)  # statistics legitimately differ across ranks without sync BN
    log = Lines()
    check_weights_in_sync(model, Comparing(peer_value=before), log)
    assert log.lines == [f"weights identical on all 2 ranks: checksum {before:.17g}"]
    _one_ulp_up(model.get_layer("dense").kernel)
    assert weights_checksum(model.trainable_weights) != before


def test_diverged_ranks_fail():
    model = _model()
    with pytest.raises(ValueError, match="the final weights' checksum differs between ranks. The replicas diverged"):
        check_weights_in_sync(model, Comparing(peer_value=0.0), Lines())


def test_backend_that_cannot_compare_does_not_claim_agreement():
    log = Lines()
    model = _model()
    checksum = check_weights_in_sync(model, TwoRanks(), log)
    assert log.lines == [f"weights checksum {checksum:.17g} (backend two_ranks cannot compare ranks)"]


def _sums(values):
    chunks = [bit_chunks(v) for v in values]
    return ([float(sum(c[k] for c in chunks)) for k in range(4)]
            + [float(sum(c[k] ** 2 for c in chunks)) for k in range(4)] + [float(len(values))])


@pytest.mark.parametrize("value", [0.0, 1.0, -3.5, 1e300, 123456.789])
def test_rank_comparison_is_exact_to_one_ulp(value):
    assert chunks_agree(_sums([value] * 8))
    assert not chunks_agree(_sums([value] * 7 + [float(np.nextafter(value, np.inf))]))
    assert not chunks_agree(_sums([value, float(np.nextafter(value, -np.inf))]))
