"""Every zoo architecture is exactly torchvision's: random torchvision weights, converted, give its logits.

For each registered model with a torchvision reference: build torchvision's model with random weights
(batch-norm statistics included), convert its state_dict with ``tools/convert_torchvision.py``'s code
into our NHWC model, and compare logits in eval mode at the model's input size and at one other size.
This is the test that proves each architecture exact, and what makes torchvision's published accuracies
a reference for this project.
"""

import numpy as np
import pytest
from conftest import zoo_params
from torchvision_ref import reference_model, state_dict_numpy, torch_logits

import zoo
from tools.convert_torchvision import ConversionError, assign_torch_weights

NUM_CLASSES = 10


def _models():
    return zoo_params([name for name in zoo.list_models(builtin_only=True)
                       if zoo.get_torchvision_source(name) is not None])


def _other_size(recipe) -> int:
    """A second input size: odd and smaller, so that padding and pooling arithmetic differ from the default.

    Rounded down to the recipe's ``size_multiple`` (ViT's patch size) where the network needs one.
    """
    size = max(recipe.min_input_size, (recipe.input_size * 3 // 4) | 1)
    return size - size % recipe.size_multiple


@pytest.mark.parametrize("name", _models())
def test_logits_match_torchvision(name):
    source = zoo.get_torchvision_source(name)
    recipe = zoo.get_recipe(name)
    rng = np.random.default_rng(0)
    for size in (recipe.input_size, _other_size(recipe)):
        reference = reference_model(source, num_classes=NUM_CLASSES, image_size=size)
        model = zoo.create_model(name, num_classes=NUM_CLASSES, image_size=size)
        assign_torch_weights(model, state_dict_numpy(reference), source)  # auxiliary heads (inception) included
        model = zoo.inference_model(model)
        images = rng.normal(size=(2, size, size, 3)).astype(np.float32)
        want = torch_logits(reference, images)
        got = np.asarray(model(images, training=False), dtype=np.float64)
        assert got.shape == want.shape == (2, NUM_CLASSES)
        scale = np.abs(want).max()
        err = np.abs(got - want).max()
        assert err <= 1e-4 * scale + 1e-6, f"{name} at {size}px: max |diff| {err:.3g} vs max |logit| {scale:.3g}"
        np.testing.assert_array_equal(got.argmax(1), want.argmax(1))


def test_conversion_names_the_first_key_that_does_not_fit():
    source = zoo.get_torchvision_source("resnet18")
    reference = reference_model(source, num_classes=NUM_CLASSES)
    state = state_dict_numpy(reference)
    model = zoo.create_model("resnet18", num_classes=NUM_CLASSES, image_size=64)
    broken = dict(state)
    del broken["layer2.0.bn1.running_var"]
    with pytest.raises(ConversionError, match=r"missing layer2\.0\.bn1\.running_var"):
        assign_torch_weights(model, broken, source)
    extra = dict(state, **{"layer9.conv.weight": np.zeros((1,), np.float32)})
    with pytest.raises(ConversionError, match=r"unexpected key layer9\.conv\.weight"):
        assign_torch_weights(model, extra, source)
    wrong = dict(state, **{"fc.weight": np.zeros((5, 512), np.float32), "fc.bias": np.zeros((5,), np.float32)})
    with pytest.raises(ConversionError, match=r"fc: converted shape \(512, 5\) does not fit fc/kernel \(512, 10\)"):
        assign_torch_weights(model, wrong, source)
