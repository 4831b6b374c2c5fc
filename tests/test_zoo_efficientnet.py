"""EfficientNet specifics: stochastic-depth rates per block, training-mode parity, builder knobs."""

import numpy as np
import pytest
from torchvision_ref import import_torchvision, reference_model, state_dict_numpy, torch

import zoo
from tools.convert_torchvision import assign_torch_weights
from zoo.layers import StochasticDepth

NUM_CLASSES = 10
SIZE = 64


def _torch_rates(model):
    models = import_torchvision()
    mbconv = models.efficientnet.MBConv
    return [m.stochastic_depth.p for m in model.modules() if isinstance(m, mbconv) and m.use_res_connect]


@pytest.mark.parametrize("rate", [0.2, 0.5])
def test_stochastic_depth_rates_are_torchvision_s(rate):
    models = import_torchvision()
    reference = models.efficientnet_b0(num_classes=NUM_CLASSES, stochastic_depth_prob=rate)
    model = zoo.create_model("efficientnet_b0", num_classes=NUM_CLASSES, image_size=SIZE,
                             stochastic_depth_rate=rate)
    ours = [layer.rate for layer in model.layers if isinstance(layer, StochasticDepth)]
    assert len(ours) == 9  # the blocks with a residual connection
    np.testing.assert_allclose(ours, _torch_rates(reference), rtol=1e-12)


def test_dropout_knob():
    model = zoo.create_model("efficientnet_b0", num_classes=NUM_CLASSES, image_size=SIZE, dropout=0.3)
    assert model.get_layer("classifier.0").rate == pytest.approx(0.3)


def test_training_mode_matches_torchvision_without_randomness():
    """With dropout and stochastic depth off, training mode (batch statistics) matches torchvision's train()."""
    source = zoo.get_torchvision_source("efficientnet_b0")
    models = import_torchvision()
    reference = reference_model(source, num_classes=NUM_CLASSES)
    plain = models.efficientnet_b0(num_classes=NUM_CLASSES, dropout=0.0, stochastic_depth_prob=0.0)
    plain.load_state_dict(reference.state_dict())
    plain.train()
    model = zoo.create_model("efficientnet_b0", num_classes=NUM_CLASSES, image_size=SIZE, dropout=0.0,
                             stochastic_depth_rate=0.0)
    assign_torch_weights(model, state_dict_numpy(plain), source)
    images = np.random.default_rng(1).normal(size=(4, SIZE, SIZE, 3)).astype(np.float32)
    with torch.no_grad():
        want = plain(torch.from_numpy(images.transpose(0, 3, 1, 2).copy())).double().numpy()
    got = np.asarray(model(images, training=True), dtype=np.float64)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4 * np.abs(want).max())


def test_stochastic_depth_is_active_in_training_only():
    model = zoo.create_model("efficientnet_b0", num_classes=NUM_CLASSES, image_size=32, dropout=0.0,
                             stochastic_depth_rate=0.9)
    images = np.random.default_rng(2).normal(size=(8, 32, 32, 3)).astype(np.float32)
    first = np.asarray(model(images, training=False))
    np.testing.assert_array_equal(first, np.asarray(model(images, training=False)))
    # In training the residual branches are dropped per example at random: two calls differ.
    a, b = np.asarray(model(images, training=True)), np.asarray(model(images, training=True))
    assert not np.allclose(a, b)


def test_tiny_inputs_work():
    # torchvision's minimum for EfficientNet-B0 is 1x1: every stride-2 conv pads, so nothing shrinks to 0.
    model = zoo.create_model("efficientnet_b0", num_classes=NUM_CLASSES, image_size=1)
    assert np.asarray(model(np.zeros((1, 1, 1, 3), np.float32), training=False)).shape == (1, NUM_CLASSES)
