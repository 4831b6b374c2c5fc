"""Weight decay: which variables take it (the recipe/flag selection), and the step's gradient term.

The step adds ``coefficient * v`` to each gradient instead of differentiating an L2 term in the loss;
these tests hold it to the old formulation (L2 in the loss) for every optimizer of the stack.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf

from backends.cpu import CPUBackend
from keras_compat import create_optimizer_variables, keras, variable_path
from registry import OPTIMIZERS
from training.log import TrainLog
from training.optimizers import build_optimizer
from training.schedules import WarmupDecaySchedule
from training.trainer import TrainConfig, Trainer
from training.weight_decay import DecayRule, decay_coefficients, l2_penalty

pytestmark = pytest.mark.keras2

NUM_CLASSES = 3


def _model(seed: int = 0) -> keras.Model:
    """conv (bias, relu) -> batch norm -> pool -> layer norm -> dense.

    The ReLU keeps the conv bias's gradient non-degenerate (a bias right before batch norm has an
    analytically zero gradient, whose rounding noise Adam would amplify to full steps).
    """
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.LayerNormalization(name="ln")(x)
    x = keras.layers.Dense(NUM_CLASSES, name="head")(x)
    return keras.Model(inputs, x)


def _rates(model, rule):
    return {variable_path(v): c for v, c in zip(model.trainable_variables, decay_coefficients(model, rule))}


def test_default_decays_every_trainable_variable_biases_included():
    model = _model()
    rates = _rates(model, DecayRule(weight_decay=1e-4))
    assert set(rates) == {"conv/kernel", "conv/bias", "bn/gamma", "bn/beta", "ln/gamma", "ln/beta", "head/kernel",
                          "head/bias"}
    assert set(rates.values()) == {1e-4}  # moving statistics are not trainable and never decayed


def test_norm_and_bias_rates_follow_torchvision_s_precedence():
    model = _model()
    rates = _rates(model, DecayRule(weight_decay=1e-4, norm_weight_decay=0.0))
    assert rates["bn/gamma"] == rates["bn/beta"] == rates["ln/gamma"] == rates["ln/beta"] == 0.0
    assert rates["conv/kernel"] == rates["conv/bias"] == rates["head/bias"] == 1e-4
    # --bias_weight_decay covers every bias, a normalisation layer's (beta) included, as torchvision's
    rates = _rates(model, DecayRule(weight_decay=1e-4, norm_weight_decay=0.0, bias_weight_decay=5e-5))
    assert rates["conv/bias"] == rates["head/bias"] == rates["bn/beta"] == rates["ln/beta"] == 5e-5
    assert rates["bn/gamma"] == 0.0 and rates["head/kernel"] == 1e-4


def test_embedding_patterns_take_the_embedding_rate():
    model = _model()
    rule = DecayRule(weight_decay=0.3, embedding_weight_decay=0.0, embedding_patterns=("head/kernel",))
    rates = _rates(model, rule)
    assert rates["head/kernel"] == 0.0 and rates["head/bias"] == 0.3
    # Without its own rate, an embedding takes --weight_decay.
    assert _rates(model, DecayRule(weight_decay=0.3, embedding_patterns=("head/kernel",)))["head/kernel"] == 0.3


def test_penalty_is_half_the_squared_norm_times_the_rate():
    model = _model()
    coeffs = decay_coefficients(model, DecayRule(weight_decay=0.01, norm_weight_decay=0.0))
    want = sum(c * 0.5 * float(np.sum(np.square(v.numpy()))) for v, c in zip(model.trainable_variables, coeffs))
    assert math.isclose(float(l2_penalty(model.trainable_variables, coeffs)), want, rel_tol=1e-6)


def _data(steps: int):
    rng = np.random.default_rng(0)
    images = rng.normal(size=(steps, 4, 8, 8, 3)).astype(np.float32)
    labels = rng.integers(0, NUM_CLASSES, size=(steps, 4)).astype(np.int32)
    return images, labels


@pytest.mark.parametrize("optimizer_name", OPTIMIZERS.list())
def test_gradient_term_step_equals_l2_in_the_loss(optimizer_name):
    steps, wd, lr = 4, 0.05, 0.1
    rule = DecayRule(weight_decay=wd, norm_weight_decay=0.0)
    images, labels = _data(steps)
    schedule = WarmupDecaySchedule(lr, 100, warmup_epochs=0, max_epochs=1, kind="constant")

    # The old formulation: total_loss = loss + sum(c * l2_loss(v)), differentiated.
    reference = _model()
    ref_opt = build_optimizer(optimizer_name, schedule, momentum=0.9)
    create_optimizer_variables(ref_opt, reference.trainable_variables)
    ref_coeffs = decay_coefficients(reference, rule)
    ref_totals = []
    for i in range(steps):
        with tf.GradientTape() as tape:
            logits = reference(images[i], training=True)
            onehot = tf.one_hot(labels[i], NUM_CLASSES)
            loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(onehot, logits))
            total = loss + l2_penalty(reference.trainable_variables, ref_coeffs)
        grads = tape.gradient(total, reference.trainable_variables)
        ref_opt.apply_gradients(zip(grads, reference.trainable_variables))
        ref_totals.append(float(total))

    # The trainer's step: the decay as a gradient term, the penalty computed only for the log.
    backend = CPUBackend()
    backend.setup()
    with backend.scope():
        model = _model()
        optimizer = build_optimizer(optimizer_name, schedule, momentum=0.9)
        create_optimizer_variables(optimizer, model.trainable_variables)
    config = TrainConfig(num_classes=NUM_CLASSES, per_replica_batch=4, global_batch=4, num_train_examples=400,
                         max_steps=steps, iterations_per_loop=steps, save_summary_steps=steps,
                         save_checkpoints_steps=1000, label_smoothing=0.0, decay=rule)
    trainer = Trainer(model=model, optimizer=optimizer, schedule=schedule, backend=backend, config=config,
                      log=TrainLog(None))
    result = trainer.train(lambda ctx: tf.data.Dataset.from_tensor_slices((images, labels)))
    assert result.final_step == steps
    for ours, ref in zip(model.weights, reference.weights):
        np.testing.assert_allclose(ours.numpy(), ref.numpy(), rtol=2e-5, atol=2e-6, err_msg=variable_path(ours))
    # total_loss of the last step: loss + the penalty of the weights that step started from
    assert math.isclose(result.total_loss, ref_totals[-1], rel_tol=1e-5)
    assert result.total_loss > result.loss
