"""Learning-rate schedules, checked against the seed's own training log."""

import math

import pytest

from training.schedules import WarmupDecaySchedule

IMAGENET_TRAIN = 1_281_167

# Model building / the lr schedule are shared with the NPU path: run again under Keras 2.
pytestmark = pytest.mark.keras2


@pytest.fixture(scope="module")
def recipe_8p():
    steps_per_epoch = IMAGENET_TRAIN // 1024
    assert steps_per_epoch == 1251
    return WarmupDecaySchedule(0.06, steps_per_epoch, warmup_epochs=5, max_epochs=150, kind="cosine")


@pytest.mark.parametrize("logged_step, printed", [(700, "0.00671"), (800, "0.00767"), (1800, "0.01727")])
def test_reproduces_the_seeds_log(recipe_8p, logged_step, printed):
    # A log line at step N reports the lr of the N-th step, whose 0-based index is N - 1.
    assert "%7.5f" % recipe_8p.value(logged_step - 1) == "%7s" % printed


def test_warmup_is_linear_and_reaches_the_peak(recipe_8p):
    warm = recipe_8p.warmup_steps
    assert warm == 5 * 1251
    assert recipe_8p.value(0) == pytest.approx(0.06 / warm, rel=1e-5)
    assert recipe_8p.value(warm - 1) == pytest.approx(0.06, rel=1e-5)


def test_cosine_is_evaluated_per_epoch(recipe_8p):
    spe = recipe_8p.steps_per_epoch
    for epoch in (5, 75, 149):
        expected = 0.06 * (1 + math.cos(math.pi * epoch / 150)) / 2
        assert recipe_8p.value(epoch * spe) == pytest.approx(expected, rel=1e-5, abs=1e-8)
        assert recipe_8p.value(epoch * spe + spe - 1) == pytest.approx(expected, rel=1e-5, abs=1e-8)
    assert recipe_8p.value(150 * spe) == pytest.approx(0.0, abs=1e-9)


def test_piecewise_and_exponential():
    piece = WarmupDecaySchedule(0.1, 10, kind="piecewise", boundaries=[2, 4], decay_factor=0.1)
    assert [round(piece.value(s), 6) for s in (0, 19, 20, 39, 40)] == [0.1, 0.1, 0.01, 0.01, 0.001]
    expo = WarmupDecaySchedule(0.1, 10, kind="exponential", decay_factor=0.5, decay_epochs=2)
    assert [round(expo.value(s), 6) for s in (0, 19, 20, 40)] == [0.1, 0.1, 0.05, 0.025]
    const = WarmupDecaySchedule(0.1, 10, warmup_epochs=1, kind="constant")
    assert const.value(4) == pytest.approx(0.05)
    assert const.value(500) == pytest.approx(0.1)


def test_bad_arguments():
    with pytest.raises(ValueError, match="lr_schedule must be one of"):
        WarmupDecaySchedule(0.1, 10, kind="linear")
    with pytest.raises(ValueError, match="steps_per_epoch"):
        WarmupDecaySchedule(0.1, 0)
