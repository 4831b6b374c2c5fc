"""DenseNet specifics: torchvision's published files' legacy key names, and training-mode batch norm."""

import numpy as np
import pytest
from torchvision_ref import reference_model, state_dict_numpy, torch

import zoo
from tools.convert_torchvision import assign_torch_weights, load_state_dict

NUM_CLASSES = 10
SIZE = 64


def test_published_legacy_key_names_convert(tmp_path):
    # densenet121-a639ec97.pth names its dense layers' modules "norm.1", "conv.2", ... (torchvision renames
    # them when it loads the file); the converter must read such a file as it is published.
    source = zoo.get_torchvision_source("densenet121")
    reference = reference_model(source, num_classes=NUM_CLASSES)
    state = reference.state_dict()
    legacy = {}
    for key, value in state.items():
        for old in ("norm1", "norm2", "conv1", "conv2"):
            key = key.replace(f".{old}.", f".{old[:-1]}.{old[-1]}.") if ".denselayer" in key else key
        legacy[key] = value
    assert "features.denseblock1.denselayer1.norm.1.weight" in legacy
    assert "features.transition1.norm.weight" in legacy  # transitions were never renamed
    path = tmp_path / "densenet121_legacy.pth"
    torch.save(legacy, str(path))
    loaded = load_state_dict(str(path))
    assert sorted(loaded) == sorted(state)
    model = zoo.create_model("densenet121", num_classes=NUM_CLASSES, image_size=SIZE)
    assign_torch_weights(model, loaded, source)


def test_training_mode_matches_torchvision():
    """Batch statistics in training mode (eps, layout of every BN) agree with torchvision's train()."""
    source = zoo.get_torchvision_source("densenet121")
    reference = reference_model(source, num_classes=NUM_CLASSES).train()
    model = zoo.create_model("densenet121", num_classes=NUM_CLASSES, image_size=SIZE)
    assign_torch_weights(model, state_dict_numpy(reference), source)
    images = np.random.default_rng(1).normal(size=(4, SIZE, SIZE, 3)).astype(np.float32)
    with torch.no_grad():
        want = reference(torch.from_numpy(images.transpose(0, 3, 1, 2).copy())).double().numpy()
    got = np.asarray(model(images, training=True), dtype=np.float64)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4 * np.abs(want).max())


@pytest.mark.parametrize("size", [28, 29])
def test_minimum_input_size(size):
    if size < zoo.get_recipe("densenet121").min_input_size:
        with pytest.raises(ValueError, match="--image_size"):
            zoo.create_model("densenet121", num_classes=NUM_CLASSES, image_size=size)
    else:
        model = zoo.create_model("densenet121", num_classes=NUM_CLASSES, image_size=size)
        assert tuple(model.output.shape) == (None, NUM_CLASSES)
