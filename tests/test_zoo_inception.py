"""Inception v3 specifics: the auxiliary head against torchvision's, in training mode and below 299 pixels."""

import numpy as np
import pytest
from torchvision_ref import reference_model, state_dict_numpy, torch

import zoo
from tools.convert_torchvision import assign_torch_weights

NUM_CLASSES = 10
F = torch.nn.functional


def _converted(size: int, **kwargs):
    source = zoo.get_torchvision_source("inception_v3")
    reference = reference_model(source, num_classes=NUM_CLASSES)
    model = zoo.create_model("inception_v3", num_classes=NUM_CLASSES, image_size=size, **kwargs)
    assign_torch_weights(model, state_dict_numpy(reference), source)
    return reference, model


def _nchw(images: np.ndarray):
    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))


def _close(got, want, tolerance: float = 1e-4) -> None:
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=tolerance * np.abs(want).max() + 1e-6)


def test_training_mode_matches_torchvision_both_heads():
    """In training mode torchvision returns (logits, aux_logits) with batch statistics; so do we, at 299."""
    reference, model = _converted(299, dropout=0.0)
    reference.dropout.p = 0.0
    reference.train().double()
    images = np.random.default_rng(1).normal(size=(4, 299, 299, 3)).astype(np.float32)
    with torch.no_grad():
        want_logits, want_aux = reference(_nchw(images).double())
    got_logits, got_aux = model(images, training=True)
    # Batch statistics through 94 batch norms spread float32 rounding further than eval mode does: measured
    # against this float64 reference, ours is off by up to 1.6e-4 of the largest logit, torchvision's own
    # float32 forward by 3.5e-5. A wrong layer would be off by the order of the logits.
    _close(got_logits, want_logits.numpy(), 5e-4)
    _close(got_aux, want_aux.numpy(), 5e-4)
    assert len(zoo.inference_model(model).outputs) == 1


@pytest.mark.parametrize("size", [224, 75])
def test_auxiliary_head_below_299_pixels(size):
    """Where torchvision's head cannot run, ours is its layers with the pool window clipped to the map and
    the pooled map zero-padded, centred, to 5x5 (the module's docstring); same weights at every size."""
    reference, model = _converted(size)
    features = {}
    reference.Mixed_6e.register_forward_hook(lambda module, args, out: features.setdefault("x", out))
    images = np.random.default_rng(2).normal(size=(2, size, size, 3)).astype(np.float32)
    head = reference.AuxLogits
    with torch.no_grad():
        reference(_nchw(images))
        x = features["x"]
        window = min(5, x.shape[-1])
        x = head.conv0(F.avg_pool2d(x, kernel_size=window, stride=3))
        before = (5 - x.shape[-1]) // 2
        after = 5 - x.shape[-1] - before
        x = head.conv1(F.pad(x, (before, after, before, after)))
        want = head.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)).numpy()
    assert features["x"].shape[-1] < 17  # torchvision's head would fail here
    _, got = model(images, training=False)
    _close(got, want)
