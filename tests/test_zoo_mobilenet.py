"""MobileNet V2/V3 beyond the generic zoo tests: torchvision's optional variants, tiny inputs, initialisation."""

import numpy as np
import pytest
from torchvision_ref import import_torchvision, reference_model, state_dict_numpy, torch_logits

import zoo
from tools.convert_torchvision import assign_torch_weights
from zoo.nets.mobilenet import make_divisible
from zoo.recipe import TorchvisionSource

NUM_CLASSES = 6


def test_make_divisible_is_torchvision_s():
    import_torchvision()  # installs the stand-in for torchvision's compiled operators first
    from torchvision.models._utils import _make_divisible

    for value in np.arange(0.5, 400.0, 0.37):
        for divisor in (1, 4, 8):
            assert make_divisible(float(value), divisor) == _make_divisible(float(value), divisor), (value, divisor)


@pytest.mark.parametrize("name, kwargs, size", [
    pytest.param("mobilenet_v2", {"width_mult": 0.75}, 35, id="v2-width0.75"),
    pytest.param("mobilenet_v2", {}, 7, id="v2-7px"),
    pytest.param("mobilenet_v3_large", {"reduced_tail": True, "dilated": True}, 33, id="v3l-reduced-dilated"),
    pytest.param("mobilenet_v3_small", {"width_mult": 0.75, "reduced_tail": True}, 35, id="v3s-width0.75-reduced"),
    pytest.param("mobilenet_v3_small", {}, 1, id="v3s-1px"),
])
def test_variants_and_tiny_inputs_match_torchvision(name, kwargs, size):
    """The builder knobs mean what torchvision's do, and torchvision's min_size (1x1) holds."""
    source = TorchvisionSource(name, kwargs=kwargs)
    reference = reference_model(source, num_classes=NUM_CLASSES)
    model = zoo.create_model(name, num_classes=NUM_CLASSES, image_size=size, **kwargs)
    assign_torch_weights(model, state_dict_numpy(reference), source)
    images = np.random.default_rng(1).normal(size=(2, size, size, 3)).astype(np.float32)
    want = torch_logits(reference, images)
    got = np.asarray(model(images, training=False), dtype=np.float64)
    assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max() + 1e-6


@pytest.mark.parametrize("name", ["mobilenet_v2", "mobilenet_v3_small"])
def test_initialisation_is_torchvision_s(name):
    """Fresh kernels have torchvision's spread (kaiming fan_out, depthwise included; normal(0, 0.01) linears)."""
    import torch

    models = import_torchvision()
    torch.manual_seed(0)
    reference = dict(models.get_model(name, weights=None, num_classes=1000).state_dict())
    model = zoo.create_model(name, num_classes=1000)
    checked = 0
    for layer in model.layers:
        kind = type(layer).__name__
        if kind in ("Conv2D", "DepthwiseConv2D", "Dense"):
            kernel = np.asarray(layer.weights[0])
            want = reference[f"{layer.name}.weight"].numpy()
            assert kernel.size == want.size, layer.name
            if kernel.size >= 1000:  # enough samples for a 15% bound on the standard deviation
                assert abs(kernel.std() / want.std() - 1.0) < 0.15, (layer.name, kernel.std(), want.std())
                checked += 1
            if layer.use_bias:
                assert not np.asarray(layer.weights[1]).any(), layer.name
        elif kind == "BatchNormalization":
            np.testing.assert_array_equal(np.asarray(layer.gamma), 1.0)
            np.testing.assert_array_equal(np.asarray(layer.beta), 0.0)
    assert checked > 20
