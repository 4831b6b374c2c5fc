"""tools/convert_torchvision.py end to end: a saved torchvision state_dict -> checkpoint -> --mode=predict.

The architecture-by-architecture proof is tests/test_torchvision_parity.py; this file runs the tool as a
user does, on a file written by ``torch.save`` (read by the tool without PyTorch, tests/test_torchvision_weights.py),
and checks what ``main.py --mode=predict`` then prints against PyTorch on the same preprocessed image.
"""

import csv
import functools
import hashlib
import http.server
import json
import os
import re
import subprocess
import sys
import threading

import numpy as np
import pytest
from conftest import ROOT, run_main
from torchvision_ref import reference_model, torch, torch_logits

import zoo

MODEL = "mobilenet_v3_large"
NUM_CLASSES = 10


def _convert(state_dict_path, output_dir, model=MODEL, *extra):
    return subprocess.run([sys.executable, "tools/convert_torchvision.py", f"--model={model}",
                           f"--state_dict={state_dict_path}", f"--output_dir={output_dir}", *extra],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """torchvision's mobilenet_v3_large with random weights, saved with torch.save, and the tool's output."""
    tmp = tmp_path_factory.mktemp("convert")
    reference = reference_model(zoo.get_torchvision_source(MODEL), num_classes=NUM_CLASSES)
    path = tmp / "weights.pth"
    torch.save({"model": reference.state_dict(), "epoch": 600}, path)  # a reference-script checkpoint
    proc = _convert(path, tmp / "tf")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"(model {MODEL})" in proc.stdout
    return reference, tmp / "tf" / "model.ckpt-0"


def test_predict_uses_the_converted_checkpoint(converted, tmp_path):
    from PIL import Image

    from evaluation.predictor import preprocess_config as make_config
    from evaluation.predictor import preprocess_files
    from run_config import AugmentConfig

    reference, checkpoint = converted
    image = tmp_path / "photo.jpg"
    pixels = np.random.default_rng(0).integers(0, 256, size=(300, 260, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(image, quality=95)
    proc = run_main("--mode=predict", f"--model={MODEL}", "--backend=cpu", f"--checkpoint_path={checkpoint}",
                    f"--image={image}")
    printed = re.findall(r"^\s+\d\. ([\d.]+)\s+label (\d+)$", proc.stdout, re.M)
    assert len(printed) == 5, proc.stdout

    # The evaluation preprocessing predict used (the default augmentation settings), recomputed here.
    batch = preprocess_files([str(image)], make_config(AugmentConfig(), zoo.get_recipe(MODEL))).numpy()
    logits = torch_logits(reference, batch)[0]
    probabilities = np.exp(logits - logits.max())
    probabilities /= probabilities.sum()
    want = np.argsort(-probabilities)[:5]
    assert [int(label) for _, label in printed] == want.tolist()
    np.testing.assert_allclose([float(p) for p, _ in printed], probabilities[want], atol=2e-5)


@pytest.mark.slow  # minutes on a 2-core CI machine; `make test-slow` runs it
def test_errors_name_the_problem_and_write_nothing(converted, tmp_path):
    _, checkpoint = converted
    other = tmp_path / "resnet.pth"
    torch.save(reference_model(zoo.get_torchvision_source("resnet18"), num_classes=NUM_CLASSES).state_dict(), other)
    proc = _convert(other, tmp_path / "out")
    assert proc.returncode == 1
    assert "error: missing features.0.0.weight in the state_dict" in proc.stderr
    assert not (tmp_path / "out").exists()
    assert not [n for n in os.listdir(tmp_path) if ".tmp-" in n]

    pickled = tmp_path / "code.pth"
    torch.save({"state_dict": {"x": torch.zeros(1)}, "extra": torch.nn.Linear}, pickled)  # not weights-only
    proc = _convert(pickled, tmp_path / "out2")
    assert proc.returncode == 1 and "weights-only" in proc.stderr

    existing = os.path.dirname(str(checkpoint))
    before = sorted(os.listdir(existing))
    proc = _convert(other, existing)
    assert proc.returncode == 1 and "already exists" in proc.stderr
    assert sorted(os.listdir(existing)) == before

    proc = _convert(other, tmp_path / "out3", model="resnet05")
    assert proc.returncode == 1 and "Did you mean 'resnet50'?" in proc.stderr


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.mark.slow  # two conversions in subprocesses
def test_url_is_downloaded_verified_and_converted(tmp_path, monkeypatch):
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    served = tmp_path / "served"
    served.mkdir()
    saved = served / "resnet18.pth"
    torch.save(reference_model(zoo.get_torchvision_source("resnet18"), num_classes=NUM_CLASSES).state_dict(), saved)
    name = f"resnet18-{hashlib.sha256(saved.read_bytes()).hexdigest()[:8]}.pth"
    saved.rename(served / name)
    (served / "resnet18-00000000.pth").write_bytes((served / name).read_bytes())
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(served)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}"
    cache = tmp_path / "cache"
    try:
        proc = _convert(f"{url}/resnet18-00000000.pth", tmp_path / "bad", "resnet18", f"--cache_dir={cache}")
        assert proc.returncode == 1 and "does not start with 00000000" in proc.stderr
        assert not (tmp_path / "bad").exists() and not os.listdir(cache)
        proc = _convert(f"{url}/{name}", tmp_path / "tf", "resnet18", f"--cache_dir={cache}")
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"Downloading {url}/{name}" in proc.stdout and "(model resnet18)" in proc.stdout
    assert (cache / name).is_file() and (tmp_path / "tf" / "model.ckpt-0.index").is_file()


def test_predict_on_real_photos_matches_torchvision_through_its_own_transforms(converted, tmp_path):
    """The end-to-end check: converted weights, ``main.py --mode=predict`` on a folder of 36 real JPEGs of mixed
    sizes and ``--mode=evaluate`` on the same photos as a labelled folder (decode and evaluation transforms ours),
    against torchvision's model fed through torchvision's own ``Resize(256, antialias) + CenterCrop(224) +
    ToTensor + Normalize`` on PIL.

    Tolerance, derived per image: the network is exact (tests/test_torchvision_parity.py, 1e-4), so what
    separates the two is the input, whose difference is bounded by tests/test_eval_transforms.py (mean <=
    0.5/255). PyTorch's model run on *our* pipeline's input shows how far that input difference moves the
    probabilities; ours may differ from torchvision's by that much plus the network's parity error.
    """
    from PIL import Image
    from sklearn.datasets import load_sample_images

    from evaluation.predictor import preprocess_config as make_config
    from evaluation.predictor import preprocess_files
    from run_config import AugmentConfig
    from tools.torchvision_models import import_models

    import_models()
    import torchvision.transforms as T  # noqa: N812 - after the stub of tools/torchvision_models

    reference, checkpoint = converted
    sources = load_sample_images().images
    rng = np.random.default_rng(5)
    # Edge cases first (square, exactly the resize size, very wide and tall, large), then random sizes and crops.
    sizes = [(300, 300), (333, 517), (640, 427), (1601, 733), (1200, 400), (401, 1203), (257, 256), (900, 600)]
    sizes += [(int(rng.integers(224, 1000)), int(rng.integers(224, 1000))) for _ in range(28)]
    # A labelled folder (labels cycle, so that every class has photos); predict reads val/'s class folders as
    # nested folders, evaluate reads val/ as the validation split (train/, the same photos, names the classes).
    data = tmp_path / "labelled"
    labels = np.arange(len(sizes)) % NUM_CLASSES
    paths = []
    for i, size in enumerate(sizes):
        source = sources[i % 2]
        h, w = source.shape[:2]
        y, x = int(rng.integers(0, h // 3)), int(rng.integers(0, w // 3))
        photo = Image.fromarray(source[y:, x:]).resize(size, Image.BICUBIC)
        for split in ("train", "val"):
            path = data / split / f"c{labels[i]}" / f"photo_{i}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            photo.save(path, "JPEG", quality=90)
        paths.append(str(path))
    csv_path = tmp_path / "predictions.csv"
    run_main("--mode=predict", f"--model={MODEL}", "--backend=cpu", f"--checkpoint_path={checkpoint}",
             f"--image={data / 'val'}", f"--top_k={NUM_CLASSES}", f"--predictions_csv={csv_path}")
    run_main("--mode=evaluate", f"--model={MODEL}", "--backend=cpu", f"--checkpoint_path={checkpoint}",
             f"--data_dir={data}", "--label_smoothing=0", "--batch_size=8", f"--log_dir={tmp_path / 'eval'}")
    evaluated = [json.loads(line) for line in open(tmp_path / "eval" / "metrics.jsonl", encoding="utf-8")]
    evaluated = [r for r in evaluated if r["type"] == "eval"]
    assert len(evaluated) == 1 and evaluated[0]["examples"] == len(paths), evaluated

    rows = {os.path.basename(r["path"]): r for r in csv.DictReader(open(csv_path, encoding="utf-8"))}
    assert len(rows) == len(paths) and not any(r["error"] for r in rows.values())

    def softmax(logits):
        e = np.exp(logits - logits.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)

    recipe = zoo.get_recipe(MODEL)
    transform = T.Compose([T.Resize(recipe.eval_resize, interpolation=T.InterpolationMode.BILINEAR, antialias=True),
                           T.CenterCrop(recipe.input_size), T.ToTensor(), T.Normalize(recipe.mean, recipe.std)])
    torchvision_input = np.stack([transform(Image.open(p).convert("RGB")).numpy().transpose(1, 2, 0) for p in paths])
    our_input = preprocess_files(paths, make_config(AugmentConfig(), recipe)).numpy()
    want = softmax(torch_logits(reference, torchvision_input))
    explained = np.abs(softmax(torch_logits(reference, our_input)) - want).max(axis=1)
    agree = 0
    for i, path in enumerate(paths):
        row = rows[os.path.basename(path)]
        ours = np.zeros(NUM_CLASSES)
        for rank in range(1, NUM_CLASSES + 1):
            ours[int(row[f"class_{rank}"])] = float(row[f"probability_{rank}"])
        error = np.abs(ours - want[i]).max()
        assert error <= explained[i] + 1e-4, (path, error, explained[i])
        agree += int(np.argmax(ours) == np.argmax(want[i]))
    mean_input_difference = np.abs(our_input - torchvision_input).mean() * np.mean(recipe.std) * 255
    print(f"top-1 agreement with torchvision's transforms + model: {agree}/{len(paths)}; mean input difference "
          f"{mean_input_difference:.3f}/255; largest probability difference explained by the input "
          f"{explained.max():.2e}")
    assert mean_input_difference <= 0.5
    assert agree >= len(paths) - int(np.sum(explained > 0.05))  # a flip only where the input moved things

    # --mode=evaluate on the labelled photos: its cross entropy and top-1 against torchvision's on the same labels,
    # within what the input difference explains (the same PyTorch model on our input) plus the network's parity.
    def cross_entropy(probabilities):
        return -np.log(probabilities[np.arange(len(labels)), labels])

    want_loss, on_our_input = cross_entropy(want), cross_entropy(softmax(torch_logits(reference, our_input)))
    loss_explained = float(np.abs(on_our_input - want_loss).mean())
    assert abs(evaluated[0]["loss"] - want_loss.mean()) <= loss_explained + 1e-3, (evaluated[0], want_loss.mean())
    want_correct = int(np.sum(np.argmax(want, axis=1) == labels))
    flips = int(np.sum(explained > 0.05))
    assert abs(evaluated[0]["top1_correct"] - want_correct) <= flips, (evaluated[0], want_correct)
