"""The AlexNet builders: parameter counts, shapes, initialisers, adaptive pooling."""

import numpy as np
import pytest
import tensorflow as tf

import zoo
from zoo.layers import AdaptiveAveragePooling2D, adaptive_pool_matrix

# Model building / the lr schedule are shared with the NPU path: run again under Keras 2.
pytestmark = pytest.mark.keras2


@pytest.fixture(scope="module")
def alexnet_224():
    return zoo.create_model("alexnet")


def test_torchvision_parameter_count(alexnet_224):
    assert alexnet_224.count_params() == 61_100_840


def test_layer_shapes_match_torchvision(alexnet_224):
    assert alexnet_224.get_layer("conv1").kernel.shape == (11, 11, 3, 64)
    assert alexnet_224.get_layer("fc6").kernel.shape == (9216, 4096)
    assert alexnet_224.get_layer("logits").kernel.shape == (4096, 1000)
    assert alexnet_224.output_shape == (None, 1000)


@pytest.mark.parametrize("size", [63, 64, 95, 127, 224])
def test_output_shape_for_any_input_from_63(size):
    model = zoo.create_model("alexnet", image_size=size, num_classes=7)
    out = tf.function(lambda x: model(x, training=False))(tf.zeros((2, size, size, 3)))
    assert out.shape == (2, 7)


def test_rejects_too_small_input():
    with pytest.raises(ValueError, match="at least 63x63"):
        zoo.create_model("alexnet", image_size=62)


def test_modelzoo_variant_widths_and_linear_logits():
    model = zoo.create_model("alexnet_modelzoo", num_classes=10, image_size=63)
    assert model.get_layer("conv1").kernel.shape == (11, 11, 3, 96)
    assert model.get_layer("logits").activation.__name__ == "linear"
    assert model.get_layer("drop6").rate == pytest.approx(0.35)
    # The recipe's order: fc6 -> dropout (not dropout -> fc6 as in torchvision).
    names = [layer.name for layer in model.layers]
    assert names.index("fc6") < names.index("drop6") < names.index("fc7")


def test_unknown_builder_argument_is_rejected_loudly():
    with pytest.raises(TypeError, match="does not accept widht"):
        zoo.create_model("alexnet", widht=3)


@pytest.mark.parametrize("initializer", ["he_uniform", "xavier", "torchvision"])
def test_initialisers(initializer):
    model = zoo.create_model("alexnet", image_size=63, num_classes=10, initializer=initializer)
    kernel = model.get_layer("conv2").kernel.numpy()
    bias = model.get_layer("conv2").bias.numpy()
    fan_in, fan_out = 5 * 5 * 64, 5 * 5 * 192
    bound = {
        "he_uniform": np.sqrt(6.0 / fan_in),
        "xavier": np.sqrt(6.0 / (fan_in + fan_out)),
        "torchvision": 1.0 / np.sqrt(fan_in),
    }[initializer]
    assert np.abs(kernel).max() <= bound + 1e-6
    assert np.abs(kernel).max() > 0.9 * bound  # uses the whole range (300k samples)
    if initializer == "torchvision":
        assert 0 < np.abs(bias).max() <= bound
    else:
        assert not bias.any()


def test_unknown_initialiser():
    with pytest.raises(ValueError, match="he_uniform"):
        zoo.create_model("alexnet", image_size=63, initializer="orthogonal")


def test_optional_arguments_set_to_none_take_the_builder_s_default():
    model = zoo.create_model("alexnet", image_size=63, num_classes=10, initializer=None, dropout=None)
    assert model.get_layer("drop6").rate == 0.5
    with pytest.raises(TypeError, match="does not accept initializer"):  # a value the builder has no use for
        zoo.create_model("resnet18", image_size=64, initializer="xavier")
    zoo.create_model("resnet18", image_size=64, num_classes=10, initializer=None)  # None: dropped


@pytest.mark.parametrize("size", [1, 2, 3, 5, 6, 7, 13])
def test_adaptive_pool_matches_pytorch_rule(size):
    x = np.random.default_rng(size).normal(size=(2, size, size + 1, 4)).astype(np.float32)
    layer = AdaptiveAveragePooling2D(6)
    out = tf.function(layer)(tf.constant(x)).numpy()
    expected = np.zeros((2, 6, 6, 4), np.float32)
    h, w = size, size + 1
    for i in range(6):
        for j in range(6):
            hs, he = (i * h) // 6, -(-((i + 1) * h) // 6)
            ws, we = (j * w) // 6, -(-((j + 1) * w) // 6)
            expected[:, i, j] = x[:, hs:he, ws:we].mean(axis=(1, 2))
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


def test_adaptive_pool_matrix_rows_sum_to_one():
    m = adaptive_pool_matrix(13, 6)
    np.testing.assert_allclose(m.sum(axis=1), 1.0, rtol=1e-6)
