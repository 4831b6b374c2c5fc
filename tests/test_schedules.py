"""Learning-rate schedules, checked against the Ascend recipe's own training log."""

import math
import os

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


# -- the training stack's schedules (torchvision's reference) ---------------------------------------------


def _torch_lrs(make_schedulers, epochs, lr=0.5):
    """The lr of each epoch of a torch scheduler stepped once per epoch, as torchvision's train.py does."""
    if os.environ.get("TF_USE_LEGACY_KERAS") == "1":
        pytest.skip("compared with torch under Keras 3: the schedule's arithmetic is the same under Keras 2")
    torch = pytest.importorskip("torch")
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    scheduler = make_schedulers(torch.optim.lr_scheduler, opt)
    lrs = []
    for _ in range(epochs):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        scheduler.step()
    return lrs


@pytest.mark.parametrize("warmup_method", ["linear", "constant"])
def test_torchvision_warmup_then_cosine(warmup_method):
    spe, epochs, warm = 7, 12, 3
    ours = WarmupDecaySchedule(0.5, spe, warmup_epochs=warm, max_epochs=epochs, kind="cosine", lr_min=0.01,
                               warmup_method=warmup_method, warmup_start_factor=0.1, decay_after_warmup=True)

    def make(sched, opt):
        first = (sched.LinearLR(opt, start_factor=0.1, total_iters=warm) if warmup_method == "linear"
                 else sched.ConstantLR(opt, factor=0.1, total_iters=warm))
        return sched.SequentialLR(opt, [first, sched.CosineAnnealingLR(opt, T_max=epochs - warm, eta_min=0.01)],
                                  milestones=[warm])

    want = _torch_lrs(make, epochs)
    for epoch, lr in enumerate(want):
        for step in (epoch * spe, epoch * spe + spe - 1):  # constant within an epoch
            assert ours.value(step) == pytest.approx(lr, rel=1e-5, abs=1e-7), (epoch, step)


def test_torchvision_step_lr_after_warmup():
    spe, epochs, warm = 5, 10, 2
    ours = WarmupDecaySchedule(0.5, spe, warmup_epochs=warm, max_epochs=epochs, kind="exponential",
                               decay_epochs=3, decay_factor=0.5, warmup_start_factor=0.01, decay_after_warmup=True)
    want = _torch_lrs(lambda s, o: s.SequentialLR(o, [s.LinearLR(o, start_factor=0.01, total_iters=warm),
                                                      s.StepLR(o, step_size=3, gamma=0.5)], milestones=[warm]), epochs)
    assert [round(ours.value(e * spe), 7) for e in range(epochs)] == pytest.approx(want, rel=1e-5)


def test_per_step_cosine_polynomial_and_decay_steps():
    spe = 10
    cos = WarmupDecaySchedule(1.0, spe, max_epochs=4, kind="cosine", lr_min=0.1, unit="step")
    for step in (0, 3, 17, 39):
        assert cos.value(step) == pytest.approx(0.1 + 0.9 * (1 + math.cos(math.pi * step / 40)) / 2, rel=1e-5)
    assert cos.value(3) != cos.value(4)  # per step, not per epoch
    poly = WarmupDecaySchedule(1.0, spe, warmup_epochs=1, max_epochs=5, kind="polynomial", power=2.0, unit="step",
                               warmup_start_factor=0.0, decay_after_warmup=True)
    assert poly.value(5) == pytest.approx(0.5, rel=1e-5)  # linear warm-up from 0, per step
    for step in (10, 25, 49):
        assert poly.value(step) == pytest.approx((1 - (step - 10) / 40) ** 2, rel=1e-5)
    assert poly.value(60) == pytest.approx(0.0, abs=1e-7)  # stays at lr_min past the end
    by_steps = WarmupDecaySchedule(1.0, spe, kind="exponential", decay_factor=0.5, decay_steps=4, unit="step")
    assert [by_steps.value(s) for s in (0, 3, 4, 11, 12)] == pytest.approx([1, 1, 0.5, 0.25, 0.125])


def test_constant_warmup_needs_a_factor():
    with pytest.raises(ValueError, match="--lr_warmup_decay"):
        WarmupDecaySchedule(0.1, 10, warmup_epochs=1, warmup_method="constant")
    with pytest.raises(ValueError, match="lr_schedule_unit"):
        WarmupDecaySchedule(0.1, 10, unit="batch")
