"""The training stack's optimizers against NumPy references of their update rules (and torch where it has them)."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
from conftest import ROOT

from keras_compat import IS_KERAS_3, create_optimizer_variables, keras, optimizer_variables
from registry import OPTIMIZERS
from training.optimizers import (
    build_optimizer,
    decay_in_optimizer,
    scale_loss,
    unscale_gradients,
)

# The optimizers are shared with the NPU path: run again under Keras 2.
pytestmark = pytest.mark.keras2

STEPS = 4
LRS = [0.1, 0.05, 0.08, 0.02]  # a changing lr catches where each rule puts it


class _LR(tf.keras.optimizers.schedules.LearningRateSchedule):
    """The lr of each step from a table (the optimizer evaluates it at its iteration count)."""

    def __call__(self, step):
        return tf.gather(tf.constant(LRS, tf.float32), tf.minimum(tf.cast(step, tf.int32), len(LRS) - 1))

    def get_config(self):
        return {}


def _problem(seed=0):
    rng = np.random.default_rng(seed)
    weights = [rng.normal(size=(3, 4)).astype(np.float32), rng.normal(size=(4,)).astype(np.float32),
               np.zeros((2,), np.float32)]  # a zero variable: the trust ratios' guard
    grads = [[rng.normal(size=w.shape).astype(np.float32) for w in weights] for _ in range(STEPS)]
    grads[1][2] = np.zeros((2,), np.float32)  # and a zero gradient
    return weights, grads


DECAY = [0.05, 0.0, 0.02]


def _run_tf(name, weights, grads, *, decay=DECAY, strategy=None, **kwargs):
    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
        variables = [tf.Variable(w) for w in weights]
        opt = build_optimizer(name, _LR(), decay=decay, **kwargs)
        create_optimizer_variables(opt, variables)

    @tf.function
    def step(gs):
        def replica_fn(gs):
            # Each replica contributes its share; the optimizer sums them across replicas.
            n = tf.distribute.get_replica_context().num_replicas_in_sync
            # As the trainer does with a scaled loss (identities without loss scaling).
            gs = unscale_gradients(opt, [scale_loss(opt, g / n) for g in gs])
            opt.apply_gradients(zip(gs, variables))
        strategy.run(replica_fn, args=(gs,))

    for gs in grads:
        step([tf.constant(g) for g in gs])
    return [v.numpy() for v in variables], opt, variables


# -- NumPy references ---------------------------------------------------------------------------------


def _np_adam_dir(g, m, v, t, b1=0.9, b2=0.999, eps=1e-7):
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    return (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps), m, v


def _trust(num, den):
    return num / den if num > 0 and den > 0 else 1.0


def np_reference(name, weights, grads, decay, momentum=0.9, eps=1e-7, rho=0.9, eta=0.001):
    ws = [w.astype(np.float64).copy() for w in weights]
    state = [dict(m=np.zeros_like(w), v=np.zeros_like(w), buf=np.zeros_like(w),
                  ms=np.ones_like(w) if name == "rmsprop_tf" else np.zeros_like(w)) for w in ws]
    for t, gs in enumerate(grads, start=1):
        lr = LRS[t - 1]
        for w, g, s, c in zip(ws, gs, state, decay):
            g = g.astype(np.float64)
            if name in ("adamw", "lamb"):
                d, s["m"], s["v"] = _np_adam_dir(g, s["m"], s["v"], t, eps=eps)
                if name == "adamw":
                    w *= 1 - lr * c
                    w -= lr * d
                elif c:
                    r = d + c * w
                    w -= lr * _trust(np.linalg.norm(w), np.linalg.norm(r)) * r
                else:
                    w -= lr * d
            elif name == "lars":
                if c:
                    wn = np.linalg.norm(w)
                    inc = lr * _trust(eta * wn, np.linalg.norm(g) + c * wn) * (g + c * w)
                else:
                    inc = lr * g
                s["buf"] = momentum * s["buf"] + inc
                w -= s["buf"]
            elif name == "rmsprop_tf":
                s["ms"] = rho * s["ms"] + (1 - rho) * g * g
                s["buf"] = momentum * s["buf"] + lr * g / np.sqrt(s["ms"] + eps)
                w -= s["buf"]
            elif name == "rmsprop_torch":
                s["ms"] = rho * s["ms"] + (1 - rho) * g * g
                s["buf"] = momentum * s["buf"] + g / (np.sqrt(s["ms"]) + eps)
                w -= lr * s["buf"]
    return ws


RULES = ("adamw", "lamb", "lars", "rmsprop_tf", "rmsprop_torch")


@pytest.mark.parametrize("name", RULES)
def test_matches_numpy_reference(name):
    weights, grads = _problem()
    # eta 0.1 rather than LARS' usual 0.001: steps large enough to tell a wrong rule from a right one.
    got, _, _ = _run_tf(name, weights, grads, optimizer_epsilon=1e-7, lars_trust_coefficient=0.1)
    # Only the decay-applying optimizers take the coefficients; the others ignore them (the trainer adds g + c*v).
    want = np_reference(name, weights, grads, DECAY if decay_in_optimizer(name) else [0.0] * 3, eta=0.1)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=2e-5, atol=2e-6)
    # A wrong rule (no decay / no lr schedule) would not match: the reference is not trivially close.
    assert not np.allclose(got[0], weights[0], atol=1e-3)


def test_decay_set():
    assert {n for n in OPTIMIZERS.list() if decay_in_optimizer(n)} == {"adamw", "lamb", "lars"}
    assert not decay_in_optimizer("momentum")


_TWO_REPLICAS = textwrap.dedent("""
    import sys
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    sys.path[:0] = [".", "tests"]
    import test_optimizers as t
    from keras_compat import keras
    from training.ema import ModelEMA

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    weights, grads = t._problem(1)
    for name in ("lamb", "lars"):
        got, _, variables = t._run_tf(name, weights, grads, strategy=strategy, optimizer_epsilon=1e-7,
                                      lars_trust_coefficient=0.1)
        assert type(variables[0]).__name__ == "MirroredVariable"
        for g, w in zip(got, t.np_reference(name, weights, grads, t.DECAY, eta=0.1)):
            np.testing.assert_allclose(g, w, rtol=2e-5, atol=2e-6)

    # The weight average, updated in cross-replica context and swapped into every replica's copy.
    with strategy.scope():
        inputs = keras.Input((3,))
        model = keras.Model(inputs, keras.layers.BatchNormalization()(keras.layers.Dense(4)(inputs)))
        ema = ModelEMA(model, 0.5, every_steps=1)
    update = tf.function(ema.update)
    history = []
    for step in (1, 2, 3):
        for w in model.weights:
            w.assign(w.numpy() + step)
        update(tf.constant(step, tf.int64))
        history.append([w.numpy() for w in model.weights])
    want = history[0]
    for h in history[1:]:
        want = [0.5 * a + 0.5 * b for a, b in zip(want, h)]
    with ema.swapped_in():
        for w, a in zip(model.weights, want):
            inner = getattr(w, "value", w) if not isinstance(w, tf.Variable) else w
            for copy in getattr(inner, "values", (inner,)):
                np.testing.assert_allclose(copy.numpy(), a, rtol=1e-6)
    print("two replicas ok")
""")


@pytest.mark.slow
def test_two_replicas():
    """LAMB and LARS on two replicas (each adding half of the gradient) match the reference; the weight
    average updates and swaps in on every replica's copy."""
    proc = subprocess.run([sys.executable, "-c", _TWO_REPLICAS], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0 and "two replicas ok" in proc.stdout, proc.stderr[-3000:]


def test_loss_scaling():
    """The fp16 loss-scale wrapper (the trainer's scale/unscale) gives the same update."""
    weights, grads = _problem(1)
    got, opt, _ = _run_tf("adamw", weights, grads, optimizer_epsilon=1e-7, loss_scaling=True)
    want = np_reference("adamw", weights, grads, DECAY, eps=1e-7)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=2e-5, atol=2e-6)


def test_adamw_equals_torch():
    torch = pytest.importorskip("torch")
    weights, grads = _problem(2)
    decay = [0.05, 0.05, 0.05]
    got, _, _ = _run_tf("adamw", weights, grads, decay=decay, optimizer_epsilon=1e-8)
    params = [torch.nn.Parameter(torch.tensor(w, dtype=torch.float64)) for w in weights]
    opt = torch.optim.AdamW(params, lr=LRS[0], weight_decay=0.05, eps=1e-8)
    for t, gs in enumerate(grads):
        for group in opt.param_groups:
            group["lr"] = LRS[t]
        for p, g in zip(params, gs):
            p.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
    for g, p in zip(got, params):
        np.testing.assert_allclose(g, p.detach().numpy(), rtol=2e-5, atol=2e-6)


def test_rmsprop_torch_equals_torch():
    torch = pytest.importorskip("torch")
    weights, grads = _problem(3)
    got, _, _ = _run_tf("rmsprop_torch", weights, grads, optimizer_epsilon=0.0316, rmsprop_decay=0.9, momentum=0.9)
    params = [torch.nn.Parameter(torch.tensor(w, dtype=torch.float64)) for w in weights]
    opt = torch.optim.RMSprop(params, lr=LRS[0], alpha=0.9, eps=0.0316, momentum=0.9)
    for t, gs in enumerate(grads):
        for group in opt.param_groups:
            group["lr"] = LRS[t]
        for p, g in zip(params, gs):
            p.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
    for g, p in zip(got, params):
        np.testing.assert_allclose(g, p.detach().numpy(), rtol=2e-5, atol=2e-6)


def test_slots_are_checkpointed(tmp_path):
    weights, grads = _problem(4)
    _, opt, variables = _run_tf("rmsprop_tf", weights, grads[:2])
    path = tf.train.Checkpoint(optimizer=opt, variables=variables).save(str(tmp_path / "ckpt"))
    saved = [v.numpy() for v in optimizer_variables(opt)]
    assert len(saved) >= 1 + 2 * len(weights)  # iterations + ms and momentum per variable
    with tf.distribute.get_strategy().scope():
        fresh_vars = [tf.Variable(w) for w in weights]
        fresh = build_optimizer("rmsprop_tf", _LR())
        create_optimizer_variables(fresh, fresh_vars)
    assert not all(np.array_equal(a, b.numpy()) for a, b in zip(saved, optimizer_variables(fresh)))
    tf.train.Checkpoint(optimizer=fresh, variables=fresh_vars).restore(path).assert_consumed()
    for a, b in zip(saved, optimizer_variables(fresh)):
        np.testing.assert_array_equal(a, b.numpy())


def test_bad_decay_length():
    with pytest.raises(ValueError, match="3 coefficients for 2 variables"):
        _run_tf("adamw", [np.ones(2, np.float32)] * 2, [[np.ones(2, np.float32)] * 2], decay=[0.1] * 3)


@pytest.mark.skipif(not IS_KERAS_3, reason="the fused SGD is Keras 3's")
@pytest.mark.parametrize("nesterov", [True, False], ids=["nesterov", "heavy_ball"])
def test_fused_momentum_sgd_equals_keras_sgd(nesterov):
    """The fused kernel computes Keras' own momentum update, step for step."""
    from training.optimizers import FusedMomentumSGD

    rng = np.random.default_rng(0)
    start = [rng.normal(size=s).astype(np.float32) for s in [(3, 4), (4,)]]
    grads = [[rng.normal(size=w.shape).astype(np.float32) for w in start] for _ in range(4)]
    results = []
    for cls in (keras.optimizers.SGD, FusedMomentumSGD):
        variables = [keras.Variable(w) for w in start]
        opt = cls(0.1, momentum=0.9, nesterov=nesterov)
        for g in grads:
            opt.apply_gradients(zip([tf.constant(x) for x in g], variables))
        results.append([np.asarray(v) for v in variables])
    for fused, plain in zip(results[1], results[0]):
        np.testing.assert_allclose(fused, plain, rtol=1e-6, atol=1e-7)
    assert not np.allclose(results[1][0], start[0])
