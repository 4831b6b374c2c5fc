"""torchvision's weights without PyTorch: the restricted .pth reader, the verified download cache, the conversion.

* ``weights.torch_file`` reads what ``torch.save`` writes, in both layouts (zip and legacy), equal to
  ``torch.load`` bit for bit, and refuses pickled code without running it;
* ``weights.download`` fetches over real HTTP (a server on 127.0.0.1), checks the SHA-256 prefix in the
  file name, caches, and leaves nothing behind on a failure;
* ``weights.torchvision`` converts such a file into a zoo model exactly as the PyTorch path does, caches
  the converted weights, and keeps the classifier fresh for fine-tuning when asked.

torchvision's models come with random weights, saved to files here: nothing is downloaded from the internet.
"""

import collections
import functools
import hashlib
import http.server
import os
import pickle
import subprocess
import sys
import threading
import zipfile

import numpy as np
import pytest
from conftest import ROOT

import zoo
from weights import torch_file
from weights.download import (
    CACHE_ENV,
    DownloadError,
    HashMismatchError,
    cache_dir,
    fetch,
    hash_prefix,
)
from weights.torchvision import ConversionError, assign_torch_weights, load_state_dict, load_torchvision_weights

NUM_CLASSES = 10
FORMATS = ["zip", "legacy"]


def _torch():
    return pytest.importorskip("torch")


def _torchvision_ref():
    pytest.importorskip("torch")
    import torchvision_ref

    return torchvision_ref


def _save(obj, directory, stem: str, fmt: str = "zip") -> str:
    """torch.save(obj) as ``<stem>-<sha256[:8]>.pth`` (torchvision's naming), in the given layout."""
    torch = _torch()
    tmp = os.path.join(str(directory), f"{stem}.tmp")
    torch.save(obj, tmp, _use_new_zipfile_serialization=(fmt == "zip"))
    with open(tmp, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    path = os.path.join(str(directory), f"{stem}-{digest[:8]}.pth")
    os.replace(tmp, path)
    return path


def _same(got: np.ndarray, want) -> None:
    """``got`` equals torch tensor ``want`` bit for bit: dtype, shape and bytes."""
    torch = _torch()
    if want.dtype == torch.bfloat16:  # numpy has no bfloat16: compare the bits
        want_np, got = want.view(torch.int16).numpy(), got.view(np.int16)
    else:
        want_np = want.numpy()
    assert got.dtype == want_np.dtype and got.shape == want_np.shape
    assert got.tobytes() == np.ascontiguousarray(want_np).tobytes()


# -- the reader -----------------------------------------------------------------------------------

def _tensor_zoo():
    """Tensors of several dtypes and layouts: offsets, strides, transposes, zero strides, shared storages."""
    torch = _torch()
    gen = torch.Generator().manual_seed(0)
    base = torch.randn(6, 10, generator=gen)
    ints = torch.arange(40, dtype=torch.int16).reshape(5, 8)
    half = torch.randn(4, 6, generator=gen).half()
    return collections.OrderedDict([
        ("float32", base),
        ("offset_view", base[2:, 3:7]),  # same storage as float32, non-zero offset, non-contiguous
        ("transposed", base.t()),
        ("row", base[4]),
        ("stepped", ints[::2, 1::3]),
        ("expanded", torch.randn(3, 1, generator=gen).expand(3, 4)),  # stride 0
        ("float16", half),
        ("float16_view", half[1:3, ::2]),
        ("bfloat16", torch.randn(5, generator=gen).to(torch.bfloat16)),
        ("float64", torch.randn(2, 3, generator=gen).double()),
        ("int64", torch.arange(7)),
        ("int8", torch.arange(-4, 4, dtype=torch.int8)),
        ("uint8", torch.arange(250, 256, dtype=torch.uint8)),
        ("bool", torch.tensor([True, False, True])),
        ("scalar", torch.tensor(3.25)),
        ("empty", torch.zeros(0, 4)),
    ])


@pytest.mark.parametrize("fmt", FORMATS)
def test_reader_equals_torch_load_bit_for_bit(fmt, tmp_path):
    torch = _torch()
    tensors = _tensor_zoo()
    module = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))  # a real state_dict
    obj = {"tensors": tensors, "model": module.state_dict(), "epoch": 7, "name": "run", "blob": b"\x00\xff",
           "pair": (1.5, None), "steps": [1, 2], "classes": {1, 2}}
    path = _save(obj, tmp_path, "mixed", fmt)
    want = torch.load(path, map_location="cpu", weights_only=True)
    got = torch_file.load(path)
    assert {k: got[k] for k in ("epoch", "name", "blob", "pair", "steps", "classes")} == {
        "epoch": 7, "name": "run", "blob": b"\x00\xff", "pair": (1.5, None), "steps": [1, 2], "classes": {1, 2}}
    for group in ("tensors", "model"):
        assert isinstance(got[group], collections.OrderedDict)
        assert list(got[group]) == list(want[group])
        for key, tensor in want[group].items():
            _same(got[group][key], tensor)
    # Tensors that shared a storage are independent arrays here.
    assert got["tensors"]["float32"].flags.c_contiguous and got["tensors"]["float32"].flags.writeable
    got["tensors"]["float32"][2, 3] += 1
    assert got["tensors"]["offset_view"][0, 0] == want["tensors"]["offset_view"][0, 0].item()


def test_reader_reads_dtypes_without_storage_classes(tmp_path):
    """uint16 tensors are pickled through _rebuild_tensor_v3 and an untyped storage (zip layout only)."""
    torch = _torch()
    tensor = torch.arange(60000, 60010, dtype=torch.int32).to(torch.uint16)
    path = _save({"u16": tensor, "view": tensor[2::3]}, tmp_path, "u16")
    want = torch.load(path, weights_only=True)
    got = torch_file.load(path)
    for key in want:
        assert got[key].dtype == np.uint16
        assert got[key].tolist() == want[key].tolist()


class _Reduce:
    """Pickles as ``func(*args)``."""

    def __init__(self, func, *args) -> None:
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


class _Storage:
    """A storage reference in a hand-written legacy file: (type, root key, numel, view metadata)."""

    def __init__(self, storage_type, key: str, numel: int, view=None) -> None:
        self.pid = ("storage", storage_type, key, "cpu", numel, view)


class _LegacyPickler(pickle.Pickler):
    def persistent_id(self, obj):
        return obj.pid if isinstance(obj, _Storage) else None


def test_reader_reads_the_oldest_legacy_layout(tmp_path):
    """Files of PyTorch 0.3 (torchvision's oldest weights): tensors through ``_rebuild_tensor`` (no autograd
    arguments), and storages that are views of a root storage (view metadata in the persistent id).
    Written here by hand, in that layout; PyTorch's own loader is the reference."""
    torch = _torch()
    import torch._utils as torch_utils

    root = np.arange(12, dtype=np.float32) * 0.5
    halves = np.array([1.5, -2.25, 3.0], np.float16)
    full = _Storage(torch.FloatStorage, "140001", 12)
    view = _Storage(torch.FloatStorage, "140001", 12, ("140002", 4, 6))  # elements 4..9 of the root
    state = collections.OrderedDict([
        ("conv.weight", _Reduce(torch_utils._rebuild_tensor, full, 0, (3, 4), (4, 1))),
        ("conv.bias", _Reduce(torch_utils._rebuild_tensor, view, 1, (2, 2), (1, 3))),
        ("bn.weight", _Reduce(torch_utils._rebuild_tensor, _Storage(torch.HalfStorage, "140003", 3), 0, (3,), (1,))),
    ])
    path = tmp_path / "old.pth"
    with open(path, "wb") as f:
        for header in (0x1950A86A20F9469CFC6C, 1001, {"protocol_version": 1001, "little_endian": True,
                                                      "type_sizes": {"short": 2, "int": 4, "long": 8}}):
            pickle.dump(header, f, protocol=2)
        _LegacyPickler(f, protocol=2).dump(state)
        pickle.dump(["140001", "140003"], f, protocol=2)
        for data in (root, halves):
            f.write(np.int64(data.size).tobytes())
            f.write(data.tobytes())
    want = torch.load(path, weights_only=False)
    got = torch_file.load(str(path))
    assert list(got) == list(want)
    for key in want:
        _same(got[key], want[key])
    assert got["conv.bias"].tolist() == [[2.5, 4.0], [3.0, 4.5]]  # offset 4 + 1, strides (1, 3)


class _Marker:
    """A pickled object whose unpickling creates a file (what a malicious payload would do)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __setstate__(self, state):
        open(state["marker"], "w").close()


class _SystemCall:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("payload", ["os.system", "custom class"])
def test_reader_refuses_code_and_runs_nothing(fmt, payload, tmp_path):
    torch = _torch()
    marker = tmp_path / "executed"
    if payload == "os.system":
        evil, refused = _SystemCall(f"touch {marker}"), f"{os.system.__module__}.system"
    else:
        evil, refused = _Marker(str(marker)), f"{__name__}._Marker"
    path = _save({"weight": torch.zeros(2), "extra": evil}, tmp_path, "evil", fmt)
    with pytest.raises(torch_file.TorchFileError) as raised:
        torch_file.load(path)
    message = str(raised.value)
    assert f"refers to {refused}," in message and "weights-only" in message and "\n" not in message
    with pytest.raises(ConversionError, match="not a weights-only PyTorch file"):
        load_state_dict(path)
    assert not marker.exists()
    # The payload is live: an unrestricted unpickler runs it (which is why the reader must refuse it).
    torch.load(path, weights_only=False)
    assert marker.exists()


def _zip_file(path, pickled: bytes, storages=None) -> str:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", pickled)
        z.writestr("archive/byteorder", "little")
        for key, data in (storages or {}).items():
            z.writestr(f"archive/data/{key}", data)
    return str(path)


def test_reader_refuses_to_alter_its_own_objects(tmp_path):
    """A pickle's BUILD opcode on an allowed global (a storage class token) would set its dtype to 'object'
    for every later file: refused, and the token is unchanged."""
    pickled = (b"\x80\x02ctorch\nFloatStorage\nN}X\x05\x00\x00\x00dtypeX\x06\x00\x00\x00objects\x86b.")
    path = _zip_file(tmp_path / "forged.pth", pickled)
    with pytest.raises(torch_file.TorchFileError, match="refused to set 'dtype'"):
        torch_file.load(path)
    assert torch_file.storage_dtypes()["FloatStorage"] == "float32"
    protocol2 = (b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storagectorch\nFloatStorage\n"
                 b"X\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x02tQK\x00K\x02\x85K\x01\x85\x89)tR.")
    value = np.array([1.5, -2.0], np.float32)
    got = torch_file.load(_zip_file(tmp_path / "plain.pth", protocol2, {"0": value.tobytes()}))
    assert got.dtype == np.float32 and got.tolist() == [1.5, -2.0]
    short = _zip_file(tmp_path / "short.pth", protocol2, {"0": value.tobytes()[:4]})
    with pytest.raises(torch_file.TorchFileError, match="truncated or damaged"):
        torch_file.load(short)


def test_reader_names_what_it_cannot_read(tmp_path):
    text = tmp_path / "notes.pth"
    text.write_text("not weights")
    with pytest.raises(torch_file.TorchFileError, match="not a PyTorch file"):
        torch_file.load(str(text))
    pickled = tmp_path / "plain.pkl"
    pickled.write_bytes(pickle.dumps({"a": 1}, protocol=2))
    with pytest.raises(torch_file.TorchFileError, match="magic number"):
        torch_file.load(str(pickled))
    with pytest.raises(FileNotFoundError):
        torch_file.load(str(tmp_path / "missing.pth"))


# -- download and cache -----------------------------------------------------------------------------

class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves the fixture's folder; ``/short/<name>`` announces the whole file but sends half of it."""

    requests = None  # the fixture's list of request paths

    def do_GET(self):
        self.requests.append(self.path)
        if self.path.startswith("/short/"):
            with open(os.path.join(self.directory, self.path[len("/short/"):]), "rb") as f:
                data = f.read()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.close_connection = True
            return
        super().do_GET()

    def log_message(self, *args):
        pass


class _Server:
    def __init__(self, root) -> None:
        self.root = root
        self.requests = []
        handler = type("Handler", (_Handler,), {"requests": self.requests})
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=root))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        if self.thread.is_alive():
            self.httpd.shutdown()
            self.httpd.server_close()
            self.thread.join()


@pytest.fixture
def server(tmp_path, monkeypatch):
    """A real HTTP server on 127.0.0.1 serving ``tmp_path/served`` (no proxy in the way)."""
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    root = tmp_path / "served"
    root.mkdir()
    s = _Server(str(root))
    yield s
    s.stop()


def _publish(root, stem: str, data: bytes, name_hash=None) -> str:
    """Writes ``data`` as ``<stem>-<hash>.pth`` (its own SHA-256 prefix unless ``name_hash``); returns the name."""
    name = f"{stem}-{name_hash or hashlib.sha256(data).hexdigest()[:8]}.pth"
    with open(os.path.join(root, name), "wb") as f:
        f.write(data)
    return name


def _cache_files(cache) -> list:
    return sorted(os.listdir(cache)) if os.path.isdir(cache) else []


def test_download_verifies_caches_and_serves_from_cache(server, tmp_path):
    data = os.urandom(3 << 20)  # several chunks
    name = _publish(server.root, "weights", data)
    cache = str(tmp_path / "cache")
    lines = []
    first = fetch(f"{server.url}/{name}", cache, log=lines.append)
    assert first.downloaded and first.path == os.path.join(cache, name)
    assert first.sha256 == hashlib.sha256(data).hexdigest()
    with open(first.path, "rb") as f:
        assert f.read() == data
    assert _cache_files(cache) == [name, name + ".sha256"] and len(lines) == 1
    server.stop()
    second = fetch(f"{server.url}/{name}", cache)  # the server is gone
    assert second == type(first)(path=first.path, sha256=first.sha256, downloaded=False)
    assert server.requests == [f"/{name}"]


def test_a_changed_cached_file_is_hashed_and_downloaded_again(server, tmp_path):
    data = os.urandom(5000)
    name = _publish(server.root, "weights", data)
    cache = str(tmp_path / "cache")
    first = fetch(f"{server.url}/{name}", cache)
    stat = os.stat(first.path)
    with open(first.path, "r+b") as f:  # damaged in place, after its digest was recorded
        f.write(b"\x00" * 10)
    # A later change moves the modification time; within one clock tick of the download it might not.
    os.utime(first.path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    lines = []
    second = fetch(f"{server.url}/{name}", cache, log=lines.append)
    assert second.downloaded and second.sha256 == first.sha256 and "damaged copy" in lines[0]
    with open(second.path, "rb") as f:
        assert f.read() == data
    assert len(server.requests) == 2


def test_hash_mismatch_is_refused_and_nothing_is_cached(server, tmp_path):
    name = _publish(server.root, "weights", b"published bytes", name_hash="0123abcd")
    cache = str(tmp_path / "cache")
    with pytest.raises(HashMismatchError) as raised:
        fetch(f"{server.url}/{name}", cache)
    assert "does not start with 0123abcd" in str(raised.value) and "\n" not in str(raised.value)
    assert _cache_files(cache) == []  # no file, no digest record, no temporary


def test_failed_downloads_leave_nothing(server, tmp_path):
    cache = str(tmp_path / "cache")
    name = _publish(server.root, "weights", os.urandom(100000))
    with pytest.raises(DownloadError, match="connection closed after 50000 of 100000 bytes"):
        fetch(f"{server.url}/short/{name}", cache)
    with pytest.raises(DownloadError, match="HTTP 404"):
        fetch(f"{server.url}/missing-0123abcd.pth", cache)
    assert _cache_files(cache) == []
    server.stop()
    with pytest.raises(DownloadError, match="cannot download"):
        fetch(f"{server.url}/{name}", cache)
    assert _cache_files(cache) == []


def test_local_files_are_checked_in_place(tmp_path):
    data = b"local weights"
    good = tmp_path / _publish(str(tmp_path), "w", data)
    fetched = fetch(str(good), str(tmp_path / "cache"))
    assert fetched.path == str(good) and not fetched.downloaded and fetched.sha256 == hashlib.sha256(data).hexdigest()
    bad = tmp_path / _publish(str(tmp_path), "w", data, name_hash="ffffffff")
    with pytest.raises(HashMismatchError, match="ffffffff"):
        fetch(str(bad))
    unnamed = tmp_path / "weights.pth"  # no hash in the name: nothing to check against
    unnamed.write_bytes(data)
    assert fetch(str(unnamed)).sha256 == fetched.sha256
    with pytest.raises(FileNotFoundError):
        fetch(str(tmp_path / "nope.pth"))
    assert not (tmp_path / "cache").exists()


def test_cache_dir_and_hash_names(tmp_path, monkeypatch):
    monkeypatch.delenv(CACHE_ENV, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == str(tmp_path / "home" / ".cache" / "modelzoo" / "weights")
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "env"))
    assert cache_dir() == str(tmp_path / "env")
    assert cache_dir(str(tmp_path / "arg")) == str(tmp_path / "arg")
    assert hash_prefix("resnet50-0676ba61.pth") == "0676ba61"
    assert hash_prefix("https://x/alexnet-owt-7be5be79.pth") == "7be5be79"
    assert hash_prefix("efficientnet_b0_rwightman-7f5810bc.pth") == "7f5810bc"
    assert hash_prefix("run-1.pth") is None and hash_prefix("model.pth") is None


# -- conversion ------------------------------------------------------------------------------------

def _model_weights(model):
    return {f"{layer.name}:{i}": value for layer in model.layers for i, value in enumerate(layer.get_weights())}


def _assert_identical(got, want):
    assert got.keys() == want.keys()
    for key in want:
        assert got[key].dtype == want[key].dtype and np.array_equal(got[key], want[key]), key


def _torch_path(name, path, image_size):
    """The PyTorch path: torch.load(weights_only=True) of the same file, float32, assigned."""
    torch = _torch()
    state = {k: v.float().numpy() for k, v in torch.load(path, map_location="cpu", weights_only=True).items()}
    model = zoo.create_model(name, num_classes=NUM_CLASSES, image_size=image_size)
    assign_torch_weights(model, state, zoo.get_torchvision_source(name))
    return _model_weights(model)


def _check_conversion(name, tmp_path, image_size, fmt="zip"):
    ref = _torchvision_ref()
    reference = ref.reference_model(zoo.get_torchvision_source(name), num_classes=NUM_CLASSES,
                                    image_size=image_size if name.startswith("vit") else None)
    path = _save(reference.state_dict(), tmp_path, name, fmt)
    del reference
    want = _torch_path(name, path, image_size)
    cache = str(tmp_path / "cache")
    model = zoo.create_model(name, num_classes=NUM_CLASSES, image_size=image_size)
    first = load_torchvision_weights(model, name, source=path, cache_dir=cache)
    assert not first.from_cache and first.skipped == [] and os.path.isfile(first.converted_path)
    _assert_identical(_model_weights(model), want)
    again = zoo.create_model(name, num_classes=NUM_CLASSES, image_size=image_size)
    second = load_torchvision_weights(again, name, source=path, cache_dir=cache)
    assert second.from_cache and second.restored == first.restored
    _assert_identical(_model_weights(again), want)


@pytest.mark.parametrize("fmt", FORMATS)
def test_resnet18_converts_as_the_torch_path_does(fmt, tmp_path):
    _check_conversion("resnet18", tmp_path, 64, fmt)


@pytest.mark.keras2  # depthwise kernels are named differently by Keras 2 and Keras 3
def test_mobilenet_v2_converts_as_the_torch_path_does(tmp_path):
    _check_conversion("mobilenet_v2", tmp_path, 64)


@pytest.mark.slow  # ViT-B: 86M parameters, built three times
def test_vit_b_16_converts_as_the_torch_path_does(tmp_path):
    _check_conversion("vit_b_16", tmp_path, 32)


def test_conversion_imports_no_torch(tmp_path):
    """In a process where torch cannot be imported, the file converts to the same weights."""
    ref = _torchvision_ref()
    path = _save(ref.reference_model(zoo.get_torchvision_source("resnet18"), num_classes=NUM_CLASSES).state_dict(),
                 tmp_path, "resnet18", "legacy")
    out = tmp_path / "weights.npz"
    script = (
        "import sys\n"
        "class NoTorch:  # any import of torch or torchvision fails, as where they are not installed\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('torch', 'torchvision'):\n"
        "            raise ModuleNotFoundError(f'No module named {name!r} (blocked)')\n"
        "sys.meta_path.insert(0, NoTorch())\n"
        "import numpy as np\n"
        "import zoo\n"
        "from weights.torchvision import load_torchvision_weights\n"
        "model = zoo.create_model('resnet18', num_classes=10, image_size=64)\n"
        "load_torchvision_weights(model, 'resnet18', source=sys.argv[1], cache_dir=sys.argv[2])\n"
        "np.savez(sys.argv[3], **{f'{l.name}:{i}': w for l in model.layers for i, w in enumerate(l.get_weights())})\n"
        "assert not [m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision')]\n"
    )
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run([sys.executable, "-c", script, path, str(tmp_path / "cache"), str(out)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with np.load(out) as npz:
        got = {k: npz[k] for k in npz.files}
    _assert_identical(got, _torch_path("resnet18", path, 64))


@pytest.mark.keras2  # the fine-tuning path the NPU adapter (Keras 2) takes too
def test_fine_tuning_keeps_the_classifier_fresh(tmp_path):
    ref = _torchvision_ref()
    source = zoo.get_torchvision_source("resnet18")
    path = _save(ref.reference_model(source, num_classes=NUM_CLASSES).state_dict(), tmp_path, "resnet18")
    want = _torch_path("resnet18", path, 64)
    cache = str(tmp_path / "cache")
    classifier = zoo.get_recipe("resnet18").classifier

    model = zoo.create_model("resnet18", num_classes=3, image_size=64)
    fresh = _model_weights(model)
    with pytest.raises(ConversionError, match=r"fc: converted shape \(512, 10\) does not fit fc/kernel \(512, 3\)"):
        load_torchvision_weights(model, "resnet18", source=path, cache_dir=cache)
    _assert_identical(_model_weights(model), fresh)  # nothing assigned

    report = load_torchvision_weights(model, "resnet18", source=path, cache_dir=cache, exclude=classifier)
    assert report.skipped == ["fc/kernel", "fc/bias"] and not report.from_cache
    assert "fc/kernel" not in report.restored and "conv1/kernel" in report.restored
    got = _model_weights(model)
    for key in got:
        expected = fresh[key] if key.startswith("fc:") else want[key]
        assert np.array_equal(got[key], expected), key

    # The cache holds what was converted (no classifier): the full model converts again, then both hit.
    full = zoo.create_model("resnet18", num_classes=NUM_CLASSES, image_size=64)
    assert not load_torchvision_weights(full, "resnet18", source=path, cache_dir=cache).from_cache
    _assert_identical(_model_weights(full), want)
    assert load_torchvision_weights(model, "resnet18", source=path, cache_dir=cache, exclude=classifier).from_cache
    assert load_torchvision_weights(full, "resnet18", source=path, cache_dir=cache).from_cache


def test_served_weights_load_then_come_from_the_cache(server, tmp_path):
    ref = _torchvision_ref()
    name = os.path.basename(_save(ref.reference_model(zoo.get_torchvision_source("resnet18"),
                                                      num_classes=NUM_CLASSES).state_dict(), server.root, "resnet18"))
    cache = str(tmp_path / "cache")
    url = f"{server.url}/{name}"
    model = zoo.create_model("resnet18", num_classes=NUM_CLASSES, image_size=64)
    first = load_torchvision_weights(model, "resnet18", source=url, cache_dir=cache)
    assert first.downloaded and not first.from_cache and first.path == os.path.join(cache, name)
    want = _torch_path("resnet18", first.path, 64)
    _assert_identical(_model_weights(model), want)
    server.stop()
    with open(first.converted_path, "r+b") as f:  # a damaged converted cache is converted again
        f.truncate(100)
    again = zoo.create_model("resnet18", num_classes=NUM_CLASSES, image_size=64)
    second = load_torchvision_weights(again, "resnet18", source=url, cache_dir=cache)
    assert not second.downloaded and not second.from_cache
    third = load_torchvision_weights(again, "resnet18", source=url, cache_dir=cache)
    assert not third.downloaded and third.from_cache
    _assert_identical(_model_weights(again), want)
    assert server.requests == [f"/{name}"]


def test_weights_for_another_model_are_refused(tmp_path):
    ref = _torchvision_ref()
    path = _save(ref.reference_model(zoo.get_torchvision_source("resnet18"), num_classes=NUM_CLASSES).state_dict(),
                 tmp_path, "resnet18")
    model = zoo.create_model("mobilenet_v2", num_classes=NUM_CLASSES, image_size=64)
    before = _model_weights(model)
    with pytest.raises(ConversionError, match=r"missing features\.0\.0\.weight"):
        load_torchvision_weights(model, "mobilenet_v2", source=path, cache_dir=str(tmp_path / "cache"))
    _assert_identical(_model_weights(model), before)
    assert not os.path.isdir(tmp_path / "cache" / "converted")
