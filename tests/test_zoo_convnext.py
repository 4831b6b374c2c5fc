"""ConvNeXt beyond the generic zoo tests: the layer scale, the stochastic-depth schedule, initialisation."""


import numpy as np
import pytest
from torchvision_ref import import_torchvision

import zoo
from zoo.layers import StochasticDepth
from zoo.nets.convnext import LayerScale


@pytest.mark.keras2
def test_layer_scale_takes_torchvision_s_bare_parameter():
    layer = LayerScale(1e-6, name="features.1.0.layer_scale")
    x = np.random.default_rng(0).normal(size=(2, 3, 3, 4)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(layer(x)), x * 1e-6, rtol=1e-6)
    torch_value = np.arange(1, 5, dtype=np.float32).reshape(4, 1, 1)  # torchvision's (C, 1, 1)
    layer.set_weights(layer.torch_weights({"": torch_value}))
    np.testing.assert_allclose(np.asarray(layer(x)), x * np.arange(1, 5, dtype=np.float32), rtol=1e-6)


@pytest.mark.keras2
@pytest.mark.parametrize("rate", [0.1, 0.0])
def test_stochastic_depth_grows_linearly_over_the_blocks(rate):
    """torchvision: block k of n drops its branch with probability rate * k / (n - 1)."""
    model = zoo.create_model("convnext_tiny", num_classes=5, image_size=32, stochastic_depth_rate=rate)
    rates = [layer.rate for layer in model.layers if isinstance(layer, StochasticDepth)]
    assert len(rates) == 3 + 3 + 9 + 3
    np.testing.assert_allclose(rates, rate * np.arange(18) / 17.0, rtol=1e-12, atol=0)


def test_initialisation_is_torchvision_s():
    """Fresh weights have torchvision's spread: N(0, 0.02) kernels, zero biases, layer scales at 1e-6."""
    import torch

    models = import_torchvision()
    torch.manual_seed(0)
    reference = dict(models.get_model("convnext_tiny", weights=None, num_classes=1000).state_dict())
    model = zoo.create_model("convnext_tiny", num_classes=1000)
    checked = 0
    for layer in model.layers:
        kind = type(layer).__name__
        if kind in ("Conv2D", "DepthwiseConv2D", "Dense"):
            kernel, bias = (np.asarray(w) for w in layer.weights)
            want = reference[f"{layer.name}.weight"].numpy()
            assert kernel.size == want.size, layer.name
            assert abs(kernel.std() / want.std() - 1.0) < 0.15, (layer.name, kernel.std(), want.std())
            assert not bias.any() and not reference[f"{layer.name}.bias"].numpy().any(), layer.name
            checked += 1
        elif isinstance(layer, LayerScale):
            np.testing.assert_allclose(np.asarray(layer.weights[0]), reference[layer.name].numpy().reshape(-1))
            checked += 1
    assert checked == 1 + 3 + 18 * 4 + 1
