"""Fine-tuning: --pretrained (torchvision weights by URL, by the recipe's address, from a .pth file), --freeze,
--head_lr_multiplier, and the two fine-tune flag files, end to end through main.py.

* the head's multiplier: one optimizer with per-variable multipliers takes the same steps as two optimizers
  of the same kind, one at lr for the backbone, one at lr x m for the head (every registered optimizer; under
  Keras 2 the ones it refuses are refused);
* frozen layers: their variables and batch-norm statistics do not move, batch norm runs on its moving
  statistics (a training-mode forward pass equals the inference one), the head learns;
* the weights: torch.save'd random torchvision ResNet-18 files (no internet here), served over real HTTP
  on 127.0.0.1 or read from disk; the run's checkpoints hold them as torch.load + the converter give them.
"""

import dataclasses
import functools
import hashlib
import http.server
import importlib.util
import os
import re
import shutil
import threading

import numpy as np
import pytest
import tensorflow as tf
from conftest import run_main
from datasets_testutil import make_folder

import registry
import zoo
from keras_compat import IS_KERAS_3, keras
from training import finetune
from training.optimizers import build_optimizer
from weights.checkpoint import load_weights
from weights.download import hash_prefix
from weights.torchvision import assign_torch_weights, load_torchvision_weights

SIZE = 64
MULT = 10.0


# -- every zoo model names its published weights ------------------------------------------------------

def test_every_zoo_model_with_a_torchvision_source_names_its_published_weights():
    """The recipe's weights_url is torchvision's IMAGENET1K_V1 file (checked against torchvision's source text
    where it is installed), with the SHA-256 prefix the download checks in its name."""
    spec = importlib.util.find_spec("torchvision")
    sources = ""
    if spec is not None and spec.origin:
        folder = os.path.join(os.path.dirname(spec.origin), "models")
        sources = "".join(open(os.path.join(folder, f), encoding="utf-8").read() for f in sorted(os.listdir(folder))
                          if f.endswith(".py"))
    for name in zoo.list_models(builtin_only=True):
        url = zoo.get_recipe(name).weights_url
        if zoo.get_torchvision_source(name) is None:
            assert url is None, name
            continue
        assert url and url.startswith("https://download.pytorch.org/models/") and hash_prefix(url), (name, url)
        if sources:
            block = sources[sources.index(f'url="{url}"') - 120:sources.index(f'url="{url}"')]
            assert "IMAGENET1K_V1 = Weights(" in block, (name, url)
    assert zoo.get_recipe("alexnet_modelzoo").weights_url is None  # the Ascend network: nothing published


# -- the head's learning-rate multiplier ----------------------------------------------------------------

def _two_layer_model():
    keras.utils.set_random_seed(3)
    inputs = keras.Input((6,))
    x = keras.layers.Dense(5, activation="relu", name="body")(inputs)
    return keras.Model(inputs, keras.layers.Dense(3, name="fc")(x))


_X = np.random.default_rng(0).normal(size=(8, 6)).astype(np.float32)
_Y = np.array([0, 1, 2, 0, 1, 2, 0, 1])


def _grads(model):
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(_Y, model(_X), from_logits=True))
    return tape.gradient(loss, model.trainable_variables)


def _values(model):
    return [np.array(v) for v in model.trainable_variables]


OPTIMIZERS = sorted(registry.OPTIMIZERS.list())
REFUSED_BY_KERAS_2 = ("adam", "rmsprop")


@pytest.mark.keras2  # the NPU path's Keras: SGD/momentum through the gradient, rule optimizers through the lr
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_head_lr_multiplier_steps_as_the_head_at_lr_times_m(name):
    lr, decay = 0.01, [1e-2] * 4
    if not IS_KERAS_3 and name in REFUSED_BY_KERAS_2:
        with pytest.raises(ValueError, match=rf"--head_lr_multiplier with --optimizer={name} needs Keras 3"):
            build_optimizer(name, lr, decay=decay, lr_multipliers=[1.0, 1.0, MULT, MULT])
        return
    model = _two_layer_model()
    assert [m for m in finetune.lr_multipliers(model, ("fc",), MULT)] == [1.0, 1.0, MULT, MULT]
    optimizer = build_optimizer(name, lr, decay=decay, lr_multipliers=finetune.lr_multipliers(model, ("fc",), MULT))
    optimizer.build(model.trainable_variables)
    reference = _two_layer_model()
    body, head = reference.trainable_variables[:2], reference.trainable_variables[2:]
    body_opt, head_opt = build_optimizer(name, lr, decay=decay[:2]), build_optimizer(name, lr * MULT, decay=decay[2:])
    body_opt.build(body)
    head_opt.build(head)
    plain = _two_layer_model()  # the same optimizer without multipliers: what the test must tell apart
    plain_opt = build_optimizer(name, lr, decay=decay)
    plain_opt.build(plain.trainable_variables)
    start = _values(model)
    for _ in range(3):  # momentum, Adam moments, bias corrections: more than one step
        optimizer.apply_gradients(zip(_grads(model), model.trainable_variables))
        g = _grads(reference)
        body_opt.apply_gradients(zip(g[:2], body))
        head_opt.apply_gradients(zip(g[2:], head))
        plain_opt.apply_gradients(zip(_grads(plain), plain.trainable_variables))
    got, want, unscaled = _values(model), _values(reference), _values(plain)
    for i, (a, b) in enumerate(zip(got, want)):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-7, err_msg=f"{name} variable {i}")
    head_moved = [np.abs(got[i] - start[i]).max() for i in (2, 3)]
    assert all(np.abs(got[i] - unscaled[i]).max() > 0.1 * moved for i, moved in zip((2, 3), head_moved)), name


def test_multipliers_need_the_classifier_to_train():
    model = _two_layer_model()
    assert finetune.lr_multipliers(model, ("fc",), 1.0) is None
    with pytest.raises(ValueError, match=r"classifier patterns \(head\) name no layer"):
        finetune.lr_multipliers(model, ("head",), MULT)
    finetune.freeze_layers(model, ["fc"], ("fc",))
    with pytest.raises(ValueError, match=r"the classifier \(fc\) is frozen"):
        finetune.lr_multipliers(model, ("fc",), MULT)


# -- frozen layers and batch norm --------------------------------------------------------------------------

def _all_weights(model):
    return {f"{layer.name}/{i}": np.array(w) for layer in model.layers for i, w in enumerate(layer.get_weights())}


@pytest.mark.keras2  # zoo.layers.BatchNormalization: TensorFlow's fused kernel under Keras 3, Keras' own under 2
def test_frozen_batch_norm_uses_and_keeps_its_moving_statistics():
    from zoo.layers import BatchNormalization

    layer = BatchNormalization(momentum=0.9, epsilon=1e-5)
    x = tf.constant(np.random.default_rng(1).normal(2.0, 3.0, size=(4, 5, 5, 3)).astype(np.float32))
    layer(x, training=False)
    layer.set_weights([np.array([1.5, 0.5, 2.0], np.float32), np.array([0.1, -0.2, 0.3], np.float32),
                       np.array([0.5, -1.0, 2.0], np.float32), np.array([2.0, 0.5, 4.0], np.float32)])
    before = [w.copy() for w in layer.get_weights()]
    inference = np.array(layer(x, training=False))
    layer.trainable = False
    frozen = np.array(layer(x, training=True))
    np.testing.assert_array_equal(frozen, inference)  # the moving statistics, not the batch's
    for a, b in zip(layer.get_weights(), before):
        np.testing.assert_array_equal(a, b)  # and left unchanged
    layer.trainable = True
    trained = np.array(layer(x, training=True))
    assert np.abs(trained - inference).max() > 0.1  # a trainable one normalises with the batch's statistics
    assert not np.array_equal(layer.get_weights()[2], before[2])  # and moves its averages


@pytest.mark.keras2
def test_frozen_backbone_does_not_move_and_the_head_learns():
    model = zoo.create_model("resnet18", num_classes=3, image_size=32)
    report = finetune.freeze_layers(model, ["backbone"], zoo.get_recipe("resnet18").classifier)
    assert "fc" not in report.layers and "conv1" in report.layers and report.batch_norm == 20
    assert report.trainable_params == 512 * 3 + 3 and report.frozen_params == 11_689_512 - 513_000
    assert [v.shape for v in model.trainable_variables] == [(512, 3), (3,)]
    optimizer = build_optimizer("momentum", 0.5)
    optimizer.build(model.trainable_variables)
    before = _all_weights(model)
    images = tf.random.stateless_normal([4, 32, 32, 3], seed=[1, 2])
    labels = tf.constant([0, 1, 2, 1])
    for _ in range(2):
        with tf.GradientTape() as tape:
            logits = model(images, training=True)
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True))
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
    after = _all_weights(model)
    for key in before:
        if key.startswith("fc/"):
            assert not np.array_equal(after[key], before[key]), key
        else:
            np.testing.assert_array_equal(after[key], before[key], err_msg=key)  # BN statistics included
    # Batch norm of the frozen backbone runs in inference mode: training=True changes nothing.
    np.testing.assert_array_equal(np.array(model(images, training=True)), np.array(model(images, training=False)))


def test_freeze_patterns_and_their_errors():
    model = zoo.create_model("resnet18", num_classes=3, image_size=32)
    report = finetune.freeze_layers(model, ["conv1", "bn1", "layer1.*"], ("fc",))
    assert report.layers[:2] == ["conv1", "bn1"]
    assert all(n.startswith(("conv1", "bn1", "layer1.")) for n in report.layers)
    assert "layer2.0.conv1" not in report.layers
    with pytest.raises(ValueError, match=r"--freeze: 'stem\*' names no layer with weights"):
        finetune.freeze_layers(model, ["stem*"], ("fc",))
    with pytest.raises(ValueError, match=r"freezes every layer: nothing would train"):
        finetune.freeze_layers(zoo.create_model("resnet18", num_classes=3, image_size=32), ["*"], ("fc",))
    with pytest.raises(ValueError, match=r"--freeze=backbone: the model's classifier patterns \(head\) name no layer"):
        finetune.freeze_layers(model, ["backbone"], ("head",))


# -- torchvision weights, served and on disk -----------------------------------------------------------------

def _save_resnet18(directory, num_classes=1000) -> str:
    """A torch.save'd random torchvision ResNet-18 state_dict named as torchvision names files."""
    torch = pytest.importorskip("torch")
    ref = pytest.importorskip("torchvision_ref")
    model = ref.reference_model(zoo.get_torchvision_source("resnet18"), num_classes=num_classes)
    tmp = os.path.join(str(directory), "resnet18.tmp")
    torch.save(model.state_dict(), tmp)
    with open(tmp, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    path = os.path.join(str(directory), f"resnet18-{digest[:8]}.pth")
    os.replace(tmp, path)
    return path


@pytest.fixture(scope="module")
def resnet18_pth(tmp_path_factory):
    return _save_resnet18(tmp_path_factory.mktemp("weights"))


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    return make_folder(str(tmp_path_factory.mktemp("photos")), classes={"cat": 4, "dog": 4, "fox": 4},
                       val={"cat": 2, "dog": 2, "fox": 2}, size=(80, 70))


class _Server:
    """A real HTTP server on 127.0.0.1 serving one folder, recording the paths asked for."""

    def __init__(self, root: str) -> None:
        requests = self.requests = []

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self):
                requests.append(self.path)
                super().do_GET()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=root))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture
def served(resnet18_pth, tmp_path):
    """The .pth served over HTTP; the environment's proxies out of the way."""
    root = tmp_path / "served"
    root.mkdir()
    os.link(resnet18_pth, root / os.path.basename(resnet18_pth))
    server = _Server(str(root))
    env = {k: "" for k in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY")}
    env["no_proxy"] = "127.0.0.1,localhost"
    yield server, f"{server.url}/{os.path.basename(resnet18_pth)}", env
    server.stop()


def _torch_path_weights(pth, num_classes=3):
    """torch.load (weights only) and the converter: what the backbone must hold, bit for bit."""
    torch = pytest.importorskip("torch")
    state = {k: v.float().numpy() for k, v in torch.load(pth, map_location="cpu", weights_only=True).items()}
    model = zoo.create_model("resnet18", num_classes=num_classes, image_size=SIZE)
    assign_torch_weights(model, state, zoo.get_torchvision_source("resnet18"), exclude=("fc",))
    return _all_weights(model)


def _checkpoint_weights(path, num_classes=3):
    model = zoo.create_model("resnet18", num_classes=num_classes, image_size=SIZE)
    load_weights(model, path)
    return _all_weights(model)


def _common(data, log_dir, *extra):
    return ("--backend=cpu", f"--data_dir={data}", f"--image_size={SIZE}", "--batch_size=4", "--max_train_steps=2",
            "--save_summary_steps=1", "--iterations_per_loop=1", f"--log_dir={log_dir}", "--seed=1", *extra)


@pytest.mark.keras2  # the NPU path's Keras trains the same way: frozen layers, the head's multiplier
def test_linear_probe_flag_file_end_to_end(resnet18_pth, photos, tmp_path):
    """The linear-probe file on a 3-class folder: after two steps the backbone (BN statistics included) is the
    .pth's, bit for bit; the new 3-class fc learned; evaluation reads the run."""
    log_dir = tmp_path / "probe"
    proc = run_main("--flagfile=configs/finetune_linear_probe.flags", f"--pretrained={resnet18_pth}",
                    f"--weights_cache_dir={tmp_path / 'cache'}", *_common(photos, log_dir))
    out = proc.stdout
    assert "--freeze=backbone: 40 layers frozen" in out and "20 of them batch norm in inference mode" in out, out
    assert "1,539 parameters train" in out and "kept fresh: fc/kernel, fc/bias" in out, out
    want = _torch_path_weights(resnet18_pth)
    got = _checkpoint_weights(str(log_dir / "model.ckpt-2"))
    for key in want:
        if not key.startswith("fc/"):
            np.testing.assert_array_equal(got[key], want[key], err_msg=key)
    assert got["fc/0"].shape == (512, 3) and not np.array_equal(got["fc/0"], want["fc/0"])
    evaluation = run_main("--mode=evaluate", f"--log_dir={log_dir}", "--backend=cpu")
    assert "Validation dataset size: 6" in evaluation.stdout, evaluation.stdout
    assert re.search(r"^\s+2\s+0\.7\s+\d+\.\d+\s+100\.00\s", evaluation.stdout, re.M), evaluation.stdout


@pytest.mark.slow  # a multi-process or end-to-end run whose behaviour the default suite checks elsewhere
@pytest.mark.keras2  # the NPU path's Keras trains the same way: frozen layers, the head's multiplier
def test_full_fine_tune_flag_file_downloads_and_trains_everything(served, photos, tmp_path):
    """The full fine-tune file with the weights given by URL: downloaded once into the cache, checked, converted;
    every layer moves, the head 10x faster; a second run reads the converted cache and asks the server nothing."""
    server, url, env = served
    cache = tmp_path / "cache"
    log_dir = tmp_path / "full"
    proc = run_main("--flagfile=configs/finetune_full.flags", f"--pretrained={url}", f"--weights_cache_dir={cache}",
                    *_common(photos, log_dir), env=env)
    out = proc.stdout
    assert f"Downloading {url}" in out and "kept fresh: fc/kernel, fc/bias" in out, out
    assert "--head_lr_multiplier=10: 2 classifier variables (fc) learn at lr x 10" in out, out
    assert server.requests == [url[len(server.url):]]
    pretrained = _torch_path_weights(str(cache / os.path.basename(url)))
    got = _checkpoint_weights(str(log_dir / "model.ckpt-2"))
    assert not np.array_equal(got["conv1/0"], pretrained["conv1/0"])  # the backbone trains
    assert not np.array_equal(got["bn1/2"], pretrained["bn1/2"])  # and its batch norm updates its statistics
    again = run_main("--flagfile=configs/finetune_full.flags", f"--pretrained={url}", f"--weights_cache_dir={cache}",
                     *_common(photos, tmp_path / "again"), env=env)
    assert "converted weights from the cache" in again.stdout and "Downloading" not in again.stdout, again.stdout
    assert len(server.requests) == 1


_MIRROR = '''"""A mirror of torchvision's published weights: resnet18's recipe points at it (as a site without internet
access would register its own copy)."""
import dataclasses
import os

from registry import MODELS

_entry = MODELS.entry("resnet18")
_metadata = dict(_entry.metadata)
_metadata["recipe"] = dataclasses.replace(_metadata["recipe"], weights_url=os.environ["RESNET18_WEIGHTS_URL"])
MODELS.unregister("resnet18")
MODELS.register_lazy("resnet18", _entry.target, **_metadata)
'''


def test_pretrained_torchvision_reads_the_recipe_url_bit_equal_to_the_torch_path(served, tmp_path):
    """--pretrained=torchvision fetches the recipe's weights_url (here a local mirror registered by a plugin):
    with lr 0 and the backbone frozen the checkpoint holds the converter's values of torch.load's tensors, bit for
    bit; the same
    number of classes as the weights' (synthetic data, 1000 classes) keeps their classifier; resuming does not
    load the weights again."""
    server, url, env = served
    (tmp_path / "mirror_weights.py").write_text(_MIRROR)
    env = dict(env, RESNET18_WEIGHTS_URL=url, PYTHONPATH=str(tmp_path))
    log_dir = tmp_path / "tv"
    common = [a for a in _common("", log_dir, "--model=resnet18", "--pretrained=torchvision", "--lr=0",
                                 "--extra_modules=mirror_weights", f"--weights_cache_dir={tmp_path / 'cache'}",
                                 "--synthetic", "--synthetic_train_images=16", "--nouse_nesterov",
                                 "--freeze=backbone")  # batch norm keeps its statistics: every tensor comparable
              if not a.startswith(("--data_dir", "--max_train_steps"))]
    proc = run_main(*common, "--max_train_steps=1", env=env)
    assert "kept fresh: none" in proc.stdout, proc.stdout
    assert f"--pretrained=torchvision ({url}, cached at" in proc.stdout, proc.stdout
    want = _torch_path_weights(str(tmp_path / "cache" / os.path.basename(url)), num_classes=1000)
    got = _checkpoint_weights(str(log_dir / "model.ckpt-1"), num_classes=1000)
    for key in want:
        if not key.startswith("fc/"):
            np.testing.assert_array_equal(got[key], want[key], err_msg=key)
    torch = pytest.importorskip("torch")
    fc = torch.load(str(tmp_path / "cache" / os.path.basename(url)), map_location="cpu", weights_only=True)
    np.testing.assert_array_equal(got["fc/0"], fc["fc.weight"].numpy().T)  # the published classifier, kept
    resumed = run_main(*common, "--max_train_steps=2", env=env)
    assert "--pretrained=torchvision not loaded: resuming from" in resumed.stdout, resumed.stdout
    assert server.requests == [url[len(server.url):]]


def test_modelzoo_create_model_with_published_weights(served, tmp_path, monkeypatch):
    """modelzoo.create_model(name, weights="torchvision") with another number of classes: the recipe's URL,
    the backbone the file's, the classifier fresh."""
    import modelzoo

    server, url, env = served
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("MODELZOO_CACHE", str(tmp_path / "cache"))
    entry = registry.MODELS.entry("resnet18")
    metadata = dict(entry.metadata)
    metadata["recipe"] = dataclasses.replace(metadata["recipe"], weights_url=url)
    registry.MODELS.unregister("resnet18")
    try:
        registry.MODELS.register_lazy("resnet18", entry.target, **metadata)
        model = modelzoo.create_model("resnet18", weights="torchvision", num_classes=3, image_size=SIZE)
    finally:
        registry.MODELS.unregister("resnet18")
        registry.MODELS.register_lazy("resnet18", entry.target, **entry.metadata)
    got, want = _all_weights(model), _torch_path_weights(str(tmp_path / "cache" / os.path.basename(url)))
    for key in want:
        if not key.startswith("fc/"):
            np.testing.assert_array_equal(got[key], want[key], err_msg=key)
    assert got["fc/0"].shape == (512, 3) and server.requests == [url[len(server.url):]]


def test_pretrained_classifier_kept_when_the_classes_match(resnet18_pth, tmp_path):
    """A .pth whose classifier has the run's classes loads whole: nothing kept fresh (read once to tell)."""
    three = _save_resnet18(tmp_path, num_classes=3)
    model = zoo.create_model("resnet18", num_classes=3, image_size=SIZE)
    config = dataclasses.replace(finetune.FineTuneConfig(), pretrained=three, weights_cache_dir=str(tmp_path / "c"))
    line = finetune.load_pretrained(model, "resnet18", config, zoo.get_recipe("resnet18"), 3)
    assert "102 tensors restored" in line and "kept fresh: none" in line, line
    line = finetune.load_pretrained(zoo.create_model("resnet18", num_classes=3, image_size=SIZE), "resnet18",
                                    dataclasses.replace(config, pretrained=resnet18_pth), zoo.get_recipe("resnet18"), 3)
    assert "kept fresh: fc/kernel, fc/bias" in line, line
    report = load_torchvision_weights(zoo.create_model("resnet18", num_classes=3, image_size=SIZE), "resnet18",
                                      source=three, cache_dir=str(tmp_path / "c"))
    assert report.from_cache  # the conversion above was cached


@pytest.mark.slow  # five main.py runs: the README's worked example as written
def test_readme_fine_tune_example_runs_as_written(resnet18_pth, photos, tmp_path):
    """README "Fine-tune on your photos": each command, on a 3-class folder, the weights from a local .pth
    instead of the download, a small input and two steps; predict names the classes, export writes a model."""
    from conftest import ROOT

    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    section = readme.split("## Fine-tune on your photos", 1)[1].split("\n## ", 1)[0]
    block = section.split("```shell", 1)[1].split("```", 1)[0]
    commands = [line.split("python main.py ", 1)[1].split() for line in block.splitlines()
                if line.startswith("python main.py ")]
    assert len(commands) == 6
    cats = os.path.join(photos, "val", "cat")
    new_photo = shutil.copy(os.path.join(cats, sorted(os.listdir(cats))[0]), tmp_path / "new_photo.jpg")
    shutil.copy(new_photo, tmp_path / "another.jpg")
    train = ["--backend=cpu", f"--pretrained={resnet18_pth}", f"--weights_cache_dir={tmp_path / 'cache'}",
             f"--image_size={SIZE}", "--batch_size=4", "--max_train_steps=2"]
    outputs = []
    for args in commands:
        args = [a.replace("my_photos", photos).replace("runs/", f"{tmp_path}/runs/")
                .replace("exported/", f"{tmp_path}/exported/")
                .replace("new_photo.jpg,another.jpg", f"{tmp_path / 'new_photo.jpg'},{tmp_path / 'another.jpg'}")
                for a in args]
        extra = train if any(a.startswith("--flagfile") for a in args) else ["--backend=cpu"]
        if any(a.startswith("--pretrained=") for a in args):  # 6.: from the probe's checkpoint, not the .pth
            extra = [a for a in extra if not a.startswith("--pretrained=")]
        outputs.append(run_main(*args, *extra).stdout)
    assert "--freeze=backbone" in outputs[0] and "--head_lr_multiplier=10" in outputs[1]
    assert "Validation dataset size: 6" in outputs[2]
    assert "new_photo.jpg" in outputs[3] and re.search(r"\b(cat|dog|fox) \(label [012]\)", outputs[3]), outputs[3]
    assert os.path.isfile(tmp_path / "exported" / "photos" / "saved_model.pb"), outputs[4]
    assert f"--pretrained={tmp_path}/runs/probe (checkpoint " in outputs[5] and "kept fresh: none" in outputs[5]


@pytest.mark.slow  # a multi-process or end-to-end run whose behaviour the default suite checks elsewhere
def test_two_worker_processes_freeze_and_multiply_alike(resnet18_pth, photos, tmp_path):
    """--rank_size=2 on CPUs (two worker processes, MultiWorkerMirroredStrategy): the multipliers find every
    distributed variable (a miss would stop the run), the frozen backbone stays the file's on both ranks."""
    log_dir = tmp_path / "two"
    proc = run_main("--rank_size=2", "--model=resnet18", f"--pretrained={resnet18_pth}", "--freeze=backbone",
                    "--head_lr_multiplier=10", "--optimizer=momentum", "--lr=0.01",
                    f"--weights_cache_dir={tmp_path / 'cache'}", *_common(photos, log_dir, "--batch_size=2"))
    assert proc.stdout.count("weights identical on all 2 ranks") == 2, proc.stdout
    want = _torch_path_weights(resnet18_pth)
    got = _checkpoint_weights(str(log_dir / "0" / "model.ckpt-2"))
    for key in want:
        if not key.startswith("fc/"):
            np.testing.assert_array_equal(got[key], want[key], err_msg=key)
