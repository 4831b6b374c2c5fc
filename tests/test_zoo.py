"""Every registered model: parameter count, output shape, a training step, a checkpoint round trip."""

import fnmatch

import numpy as np
import pytest
import tensorflow as tf
from conftest import KERAS2_MODELS, zoo_params

import zoo
from keras_compat import keras
from registry import MODELS
from training.losses import classification_loss
from weights.checkpoint import load_weights

SMALL_CLASSES = 7


def _names():
    return [pytest.param(n, id=n) for n in zoo.list_models(builtin_only=True)]


def _heavy(marks=None):
    """Models of the tests that build and train: a representative set by default, all under `make test-slow`."""
    return zoo_params(zoo.list_models(builtin_only=True), marks=marks)


def _small_size(recipe) -> int:
    return max(recipe.min_input_size, 64)


@pytest.mark.parametrize("name", _heavy())
def test_parameter_count_at_1000_classes_is_torchvision_s(name):
    expected = MODELS.metadata(name).get("params")
    assert expected, f"{name} is registered without params="
    model = zoo.create_model(name, num_classes=1000)
    count = sum(int(np.prod(v.shape)) for v in model.trainable_weights)
    assert count == expected


@pytest.mark.parametrize("name", _heavy(marks={name: [pytest.mark.keras2] for name in KERAS2_MODELS}))
def test_trains_one_step_and_round_trips_a_checkpoint(name, tmp_path):
    recipe = zoo.get_recipe(name)
    size = _small_size(recipe)
    model = zoo.create_model(name, num_classes=SMALL_CLASSES, image_size=size)
    images = tf.random.stateless_normal((2, size, size, 3), seed=(1, 2))
    labels = tf.constant([1, 5])
    outputs = model(images, training=True)
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    assert len(outputs) == 1 + len(recipe.aux_loss_weights)
    for out in outputs:
        assert tuple(out.shape) == (2, SMALL_CLASSES)
    optimizer = keras.optimizers.SGD(0.01, momentum=0.9)
    with tf.GradientTape() as tape:
        outputs = model(images, training=True)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        # The stack's loss: auxiliary heads (inception_v3's) weighted by the recipe, so that they get gradients.
        loss = tf.reduce_mean(classification_loss(labels, outputs, SMALL_CLASSES, aux_weights=recipe.aux_loss_weights))
    grads = tape.gradient(loss, model.trainable_variables)
    assert np.isfinite(float(loss))
    assert all(g is not None for g in grads), [v.name for v, g in zip(model.trainable_variables, grads) if g is None]
    # Clipped: at this size and batch of two, some networks' gradients are huge (inception_v3's, torchvision's
    # too: batch norm over 1x1 maps of two images), and one plain step would overflow the outputs below.
    grads, _ = tf.clip_by_global_norm(grads, 1.0)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))

    inference = zoo.inference_model(model)
    before = np.asarray(inference(images, training=False))
    assert np.isfinite(before).all()
    # A training checkpoint (model and optimizer, as Checkpointer writes it), read back by the
    # weights-only loader that evaluation, predict, export and --pretrained use.
    prefix = tf.train.Checkpoint(model=model, optimizer=optimizer).write(str(tmp_path / "model.ckpt-1"))
    fresh = zoo.create_model(name, num_classes=SMALL_CLASSES, image_size=size)
    report = load_weights(fresh, prefix)
    assert len(report.restored) == len(fresh.weights) and not report.skipped
    after = np.asarray(zoo.inference_model(fresh)(images, training=False))
    np.testing.assert_array_equal(before, after)
    # Fine-tuning: the recipe's classifier is left out by default, and only it.
    tuned = zoo.create_model(name, num_classes=SMALL_CLASSES + 1, image_size=size)
    report = load_weights(tuned, prefix, exclude=recipe.classifier)
    assert report.skipped
    assert all(any(fnmatch.fnmatchcase(n.rsplit("/", 1)[0], p) for p in recipe.classifier) for n in report.skipped)
    assert len(report.restored) + len(report.skipped) == len(tuned.weights)


@pytest.mark.parametrize("name", _names())
def test_recipe_is_complete(name):
    recipe = zoo.get_recipe(name)
    meta = MODELS.metadata(name)
    assert meta.get("description")
    assert recipe.reference_top1 and recipe.reference_top5
    assert recipe.min_input_size <= recipe.input_size <= recipe.eval_resize
    model = zoo.create_model(name, num_classes=SMALL_CLASSES, image_size=_small_size(recipe))
    layer_names = {layer.name for layer in model.layers}
    assert any(fnmatch.filter(layer_names, p) for p in recipe.classifier), (recipe.classifier, sorted(layer_names)[-5:])


@pytest.mark.parametrize("name", _names())
def test_input_below_the_minimum_is_refused_naming_the_flag(name):
    recipe = zoo.get_recipe(name)
    with pytest.raises(ValueError, match=rf"at least {recipe.min_input_size}x.*--image_size"):
        zoo.create_model(name, num_classes=SMALL_CLASSES, image_size=recipe.min_input_size - 1)
