"""VGG specifics the generic zoo tests leave out: the 32-pixel minimum and the flag files' recipes."""

import os

import numpy as np

import zoo

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_minimum_input_matches_torchvision():
    """At 32x32 the last map is 1x1 and the adaptive pooling repeats it 7x7 times, as PyTorch does."""
    from torchvision_ref import reference_model, state_dict_numpy, torch_logits

    from tools.convert_torchvision import assign_torch_weights

    name, size = "vgg16_bn", zoo.get_recipe("vgg16_bn").min_input_size
    assert size == 32
    source = zoo.get_torchvision_source(name)
    reference = reference_model(source, num_classes=10, image_size=size)
    model = zoo.create_model(name, num_classes=10, image_size=size)
    assign_torch_weights(model, state_dict_numpy(reference), source)
    images = np.random.default_rng(0).normal(size=(2, size, size, 3)).astype(np.float32)
    want = torch_logits(reference, images)
    got = np.asarray(model(images, training=False), dtype=np.float64)
    assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max() + 1e-6
