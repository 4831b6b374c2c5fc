"""tools/convert_torchvision.py against a PyTorch reference AlexNet in torchvision's exact layout."""

import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from conftest import ROOT  # noqa: E402
from torch import nn  # noqa: E402

import zoo  # noqa: E402
from training.weights import load_weights  # noqa: E402

NUM_CLASSES = 10


class TorchvisionAlexNet(nn.Module):
    """torchvision.models.AlexNet, module for module, so that state_dict keys match (features.0, ...)."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(p=0.5), nn.Linear(256 * 6 * 6, 4096), nn.ReLU(inplace=True),
            nn.Dropout(p=0.5), nn.Linear(4096, 4096), nn.ReLU(inplace=True),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x):
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


def _convert(state_dict_path, output_dir):
    return subprocess.run([sys.executable, "tools/convert_torchvision.py", f"--state_dict={state_dict_path}",
                           f"--output_dir={output_dir}"], cwd=ROOT, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """A random torchvision-layout AlexNet, its state_dict file and the tool's TF checkpoint."""
    tmp = tmp_path_factory.mktemp("convert")
    torch.manual_seed(0)
    reference = TorchvisionAlexNet(NUM_CLASSES).eval()
    # Random biases too (PyTorch's default init is small), so that a bias mix-up would show.
    with torch.no_grad():
        for module in reference.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                module.bias.uniform_(-0.1, 0.1)
    path = tmp / "alexnet.pth"
    torch.save(reference.state_dict(), path)
    proc = _convert(path, tmp / "tf")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "model.ckpt-0" in proc.stdout
    return reference, tmp / "tf" / "model.ckpt-0", path


@pytest.mark.parametrize("size", [224, 99])  # 99 px: a 2x2 map before the adaptive 6x6 pooling
def test_logits_match_pytorch(converted, size):
    reference, checkpoint, _ = converted
    model = zoo.create_model("alexnet", num_classes=NUM_CLASSES, image_size=size)
    report = load_weights(model, str(checkpoint))
    assert len(report.restored) == 16 and not report.skipped
    images = np.random.default_rng(1).normal(size=(2, 3, size, size)).astype(np.float32)
    with torch.no_grad():
        want = reference(torch.from_numpy(images)).numpy()
    got = model(images.transpose(0, 2, 3, 1), training=False)
    got = np.asarray(got)
    assert got.shape == (2, NUM_CLASSES)
    relative = np.abs(got - want).max() / np.abs(want).max()
    assert relative < 1e-4, f"max relative difference {relative:.2e}"
    assert (got.argmax(1) == want.argmax(1)).all()


def test_refuses_other_weights_and_existing_output(converted, tmp_path):
    _, checkpoint, _ = converted
    wrong = tmp_path / "wrong.pth"
    torch.save({"features.0.weight": torch.zeros(64, 3, 11, 11)}, wrong)
    proc = _convert(wrong, tmp_path / "out")
    assert proc.returncode == 1
    assert "not a torchvision AlexNet state_dict" in proc.stderr and "missing" in proc.stderr
    assert not (tmp_path / "out").exists()

    pickled = tmp_path / "code.pth"
    torch.save({"state_dict": {"x": torch.zeros(1)}, "extra": TorchvisionAlexNet}, pickled)  # not weights-only
    proc = _convert(pickled, tmp_path / "out2")
    assert proc.returncode == 1 and "weights-only" in proc.stderr

    existing = os.path.dirname(str(checkpoint))
    before = sorted(os.listdir(existing))
    proc = _convert(wrong, existing)
    assert proc.returncode == 1 and "already exists" in proc.stderr
    assert sorted(os.listdir(existing)) == before
