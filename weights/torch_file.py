"""PyTorch ``.pth`` files read without PyTorch: tensors become numpy arrays, and nothing else is trusted.

``torch.save`` writes one of two layouts, and torchvision's published weights use both (the oldest
files, such as ``alexnet-owt-7be5be79.pth`` or the VGG ones, predate the zip layout):

* **zip** (the default since PyTorch 1.6): a zip archive whose entries share one top folder
  (``archive/`` or the file's stem): ``data.pkl`` (the pickled object), ``data/<key>`` (one raw
  storage per key, stored uncompressed), ``byteorder`` (``little`` or ``big``; absent in the
  earliest zip files, which are little-endian), ``version`` and a few bookkeeping entries.
* **legacy** (``_use_new_zipfile_serialization=False``, and every file written before 1.6): five
  pickles and raw data back to back in one stream: a magic number, the protocol version (1001),
  a ``sys_info`` dict (``little_endian``, type sizes), the object itself, the sorted list of
  storage keys; then, for each key in that order, the storage's element count as an 8-byte
  integer followed by its bytes.

In both, a tensor is pickled as a call ``torch._utils._rebuild_tensor_v2(storage, offset, size,
stride, requires_grad, hooks[, metadata])`` whose storage is a *persistent id*
``('storage', <torch.XStorage class>, key, location, numel[, view])``: the pickle names the storage,
the data lives outside it. A pickle can name any importable callable, though, and calling it is how
a malicious file runs code. :class:`_WeightsUnpickler` therefore resolves only the names a weights
file needs (the tensor and parameter rebuild functions, the storage classes and dtypes as tokens,
``collections.OrderedDict`` and a few builtin containers), each to a function of this module that
builds a placeholder; any other global is refused with a one-line :class:`TorchFileError` naming it,
before anything is called. Storages are then read into numpy buffers of their dtype and every
tensor becomes a copy of its (offset, size, stride) view of its storage (so tensors that shared a
storage in PyTorch are independent arrays here).

The pre-1.0 tar layout (``tarfile`` with ``storages``/``tensors``/``pickle`` members) is not
supported: no file torchvision publishes uses it.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import struct
import zipfile
from typing import Any, BinaryIO, Callable, Dict, Optional, Tuple

import numpy as np

__all__ = ["TorchFileError", "load", "storage_dtypes"]

# The legacy layout's first pickle, and its protocol version.
_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001


class TorchFileError(ValueError):
    """The file is not a weights-only PyTorch file this reader can load; the message is one line."""


def _bfloat16():
    """numpy's bfloat16 (from ml_dtypes, which TensorFlow and JAX install), imported on first use."""
    try:
        import ml_dtypes
    except ImportError as e:
        raise TorchFileError("the file holds bfloat16 tensors, which numpy reads with the ml_dtypes package: "
                             "pip install ml_dtypes") from e
    return np.dtype(ml_dtypes.bfloat16)


# torch's dtype names -> numpy dtype names ("bfloat16" is resolved through ml_dtypes).
_DTYPES = {
    "float64": "float64", "double": "float64",
    "float32": "float32", "float": "float32",
    "float16": "float16", "half": "float16",
    "bfloat16": "bfloat16",
    "int64": "int64", "long": "int64",
    "int32": "int32", "int": "int32",
    "int16": "int16", "short": "int16",
    "int8": "int8",
    "uint8": "uint8", "uint16": "uint16", "uint32": "uint32", "uint64": "uint64",
    "bool": "bool",
    "complex64": "complex64", "cfloat": "complex64",
    "complex128": "complex128", "cdouble": "complex128",
}

# The typed storage classes a pickle names (``torch.FloatStorage``), by element dtype.
_STORAGE_CLASSES = {
    "DoubleStorage": "float64",
    "FloatStorage": "float32",
    "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16",
    "LongStorage": "int64",
    "IntStorage": "int32",
    "ShortStorage": "int16",
    "CharStorage": "int8",
    "ByteStorage": "uint8",
    "BoolStorage": "bool",
    "ComplexFloatStorage": "complex64",
    "ComplexDoubleStorage": "complex128",
    "UntypedStorage": "uint8",  # bytes; the tensor's dtype comes with _rebuild_tensor_v3
}


def storage_dtypes() -> Dict[str, str]:
    """The storage classes this reader accepts (``FloatStorage`` ...) and their numpy dtype names."""
    return dict(_STORAGE_CLASSES)


def _numpy_dtype(name: str) -> np.dtype:
    """The numpy dtype of one of this module's dtype names (never any other: the name may come from a file)."""
    if name not in _NUMPY_NAMES:
        raise TorchFileError(f"unsupported tensor dtype {name!r}.")
    return _bfloat16() if name == "bfloat16" else np.dtype(name)


_NUMPY_NAMES = frozenset(_DTYPES.values())


# -- placeholders the unpickler builds -----------------------------------------------------------

class _Frozen:
    """Objects a pickle can reach are immutable: its BUILD opcode would otherwise set their attributes
    (a storage's dtype, say), and the module-level ones would stay changed for later files."""

    __slots__ = ()

    def _init(self, **values: Any) -> None:
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        raise TorchFileError(f"refused to set {name!r} on {type(self).__name__}: the pickle is not a weights file.")

    def __delattr__(self, name: str) -> None:
        raise TorchFileError(f"refused to delete {name!r} on {type(self).__name__}.")


class _Global(_Frozen):
    """An allowed global: calls ``fn`` (a function of this module, never the original)."""

    __slots__ = ("qualified_name", "fn")

    def __init__(self, qualified_name: str, fn: Callable[..., Any]) -> None:
        self._init(qualified_name=qualified_name, fn=fn)

    def __call__(self, *args: Any) -> Any:
        return self.fn(*args)

    def __repr__(self) -> str:
        return self.qualified_name


class _StorageType(_Frozen):
    """A storage class named by the pickle (``torch.FloatStorage``), as a token: never called."""

    __slots__ = ("qualified_name", "dtype")

    def __init__(self, qualified_name: str, dtype: str) -> None:
        self._init(qualified_name=qualified_name, dtype=dtype)

    def __repr__(self) -> str:
        return self.qualified_name


class _DType(_Frozen):
    """A dtype named by the pickle (``torch.uint16``, for ``_rebuild_tensor_v3``), as a token."""

    __slots__ = ("qualified_name", "dtype")

    def __init__(self, qualified_name: str, dtype: str) -> None:
        self._init(qualified_name=qualified_name, dtype=dtype)

    def __repr__(self) -> str:
        return self.qualified_name


class _StorageRef(_Frozen):
    """A storage named by a persistent id: its key, element dtype and count, and, for a legacy view,
    the element offset into the root storage ``key``."""

    __slots__ = ("key", "dtype", "numel", "view_offset")

    def __init__(self, key: str, dtype: str, numel: int, view_offset: Optional[int] = None) -> None:
        self._init(key=key, dtype=dtype, numel=numel, view_offset=view_offset)


class _PendingTensor(_Frozen):
    """A tensor to build once its storage has been read: (storage, offset, size, stride) in elements."""

    __slots__ = ("storage", "offset", "size", "stride", "dtype")

    def __init__(self, storage: _StorageRef, offset: int, size: Tuple[int, ...], stride: Tuple[int, ...],
                 dtype: Optional[str] = None) -> None:
        # _rebuild_tensor_v3 reinterprets an untyped storage with its own dtype
        self._init(storage=storage, offset=offset, size=size, stride=stride, dtype=dtype or storage.dtype)


def _as_ints(value: Any, what: str) -> Tuple[int, ...]:
    if not isinstance(value, (tuple, list)) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise TorchFileError(f"a tensor's {what} is {value!r}, not a tuple of integers.")
    return tuple(value)


def _tensor(storage: Any, offset: Any, size: Any, stride: Any, dtype: Optional[str] = None) -> _PendingTensor:
    if not isinstance(storage, _StorageRef):
        raise TorchFileError(f"a tensor is rebuilt from {type(storage).__name__}, not from a storage.")
    if not isinstance(offset, int) or isinstance(offset, bool):
        raise TorchFileError(f"a tensor's storage offset is {offset!r}, not an integer.")
    size, stride = _as_ints(size, "size"), _as_ints(stride, "stride")
    if len(size) != len(stride):
        raise TorchFileError(f"a tensor has size {size} but stride {stride}.")
    return _PendingTensor(storage, offset, size, stride, dtype)


def _rebuild_tensor(storage, storage_offset, size, stride, *_ignored):
    """``_rebuild_tensor`` (PyTorch < 0.4) and ``_rebuild_tensor_v2``: requires_grad, hooks and
    metadata that follow are autograd and bookkeeping state, not data."""
    return _tensor(storage, storage_offset, size, stride)


def _rebuild_tensor_v3(storage, storage_offset, size, stride, requires_grad, backward_hooks, dtype, *_ignored):
    """``_rebuild_tensor_v3``: an untyped (byte) storage viewed with ``dtype`` (the dtypes without a
    typed storage class, such as uint16)."""
    if not isinstance(dtype, _DType):
        raise TorchFileError(f"a tensor's dtype is {dtype!r}, not a torch dtype.")
    return _tensor(storage, storage_offset, size, stride, dtype.dtype)


def _rebuild_parameter(data, *_ignored):
    """``_rebuild_parameter`` and ``_rebuild_parameter_with_state``: a parameter is its data here."""
    if not isinstance(data, _PendingTensor):
        raise TorchFileError(f"a parameter is rebuilt from {type(data).__name__}, not from a tensor.")
    return data


def _codecs_encode(text, encoding="utf-8"):
    """``_codecs.encode``, which protocol-2 pickles use for ``bytes`` objects: latin-1 only."""
    if not isinstance(text, str) or str(encoding).replace("-", "").replace("_", "").lower() != "latin1":
        raise TorchFileError(f"refused _codecs.encode({type(text).__name__}, {encoding!r}): only latin-1 text "
                             "encodes the bytes of a pickle.")
    return text.encode("latin-1")


def _ordered_dict(*args):
    """``collections.OrderedDict``, from nothing or from a list of pairs (never another mapping type)."""
    if args and not isinstance(args[0], (list, tuple)):
        raise TorchFileError(f"refused OrderedDict({type(args[0]).__name__}): expected pairs.")
    return collections.OrderedDict(*args)


def _plain(kind: type) -> Callable[..., Any]:
    def build(*args):
        if args and not isinstance(args[0], (list, tuple, set, frozenset, str, bytes)):
            raise TorchFileError(f"refused {kind.__name__}({type(args[0]).__name__}).")
        return kind(*args)
    return build


def _complex(real=0.0, imag=0.0):
    if not all(isinstance(v, (int, float)) for v in (real, imag)):
        raise TorchFileError("refused complex() of non-numbers.")
    return complex(real, imag)


def _size(dims=()):
    """``torch.Size``: a tuple."""
    return _as_ints(dims, "size")


_FUNCTIONS: Dict[Tuple[str, str], Callable[..., Any]] = {
    ("collections", "OrderedDict"): _ordered_dict,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v3"): _rebuild_tensor_v3,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch", "Size"): _size,
    ("_codecs", "encode"): _codecs_encode,
    ("builtins", "set"): _plain(set),
    ("builtins", "frozenset"): _plain(frozenset),
    ("builtins", "complex"): _complex,
    ("__builtin__", "set"): _plain(set),  # Python 2 pickles
    ("__builtin__", "frozenset"): _plain(frozenset),
    ("__builtin__", "complex"): _complex,
}
# Every global a weights file may name, and what it resolves to here.
_ALLOWED: Dict[Tuple[str, str], _Frozen] = {key: _Global(".".join(key), fn) for key, fn in _FUNCTIONS.items()}
for _module in ("torch", "torch.cuda"):  # CUDA storages are read into host memory like the others
    for _name, _dtype in _STORAGE_CLASSES.items():
        _ALLOWED[(_module, _name)] = _StorageType(f"{_module}.{_name}", _dtype)
_ALLOWED[("torch.storage", "UntypedStorage")] = _StorageType("torch.storage.UntypedStorage", "uint8")
for _name, _dtype in _DTYPES.items():
    _ALLOWED[("torch", _name)] = _DType(f"torch.{_name}", _dtype)


class _WeightsUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals of :data:`_ALLOWED` and never calls anything else.

    Persistent ids (storages) become :class:`_StorageRef` placeholders; with ``allow_storages=False``
    (the legacy layout's bookkeeping pickles) a persistent id is refused as well.
    """

    def __init__(self, file: BinaryIO, path: str, allow_storages: bool = True) -> None:
        super().__init__(file, encoding="utf-8")
        self._path = path
        self._allow_storages = allow_storages

    def find_class(self, module: str, name: str) -> Any:
        found = _ALLOWED.get((module, name))
        if found is None:
            raise TorchFileError(
                f"{self._path}: not a weights-only PyTorch file: it refers to {module}.{name}, which is not a "
                "tensor, storage or plain container; refused without running it (only state_dicts of tensors "
                "load here).")
        return found

    def persistent_load(self, pid: Any) -> Any:
        if not self._allow_storages:
            raise TorchFileError(f"{self._path}: unexpected storage reference {pid!r} outside the pickled object.")
        if not isinstance(pid, tuple) or len(pid) < 5 or pid[0] != "storage":
            raise TorchFileError(f"{self._path}: unknown persistent id {pid!r}; only storages are read.")
        storage_type, key, _location, numel = pid[1:5]
        if not isinstance(storage_type, _StorageType):
            raise TorchFileError(f"{self._path}: storage of type {storage_type!r} is not a storage class.")
        if not isinstance(numel, int) or numel < 0:
            raise TorchFileError(f"{self._path}: storage {key!r} has {numel!r} elements.")
        key = str(key)
        view = pid[5] if len(pid) > 5 else None
        if view is not None:  # very old legacy files: (view_key, offset, size) of a view of storage `key`
            if not (isinstance(view, tuple) and len(view) == 3 and all(isinstance(v, int) for v in view[1:])):
                raise TorchFileError(f"{self._path}: storage view {view!r} is not (key, offset, size).")
            return _StorageRef(key, storage_type.dtype, view[2], view_offset=view[1])
        return _StorageRef(key, storage_type.dtype, numel)


def _unpickle(file: BinaryIO, path: str, allow_storages: bool = True) -> Any:
    try:
        return _WeightsUnpickler(file, path, allow_storages).load()
    except TorchFileError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, KeyError, IndexError,
            UnicodeDecodeError, struct.error, OverflowError, MemoryError) as e:
        raise TorchFileError(f"{path}: not a readable PyTorch file ({type(e).__name__}: {e}).") from None


# -- from storages to arrays ---------------------------------------------------------------------------

def _materialise(obj: Any, storage_bytes: Callable[[_StorageRef], np.ndarray], little_endian: bool, path: str) -> Any:
    """``obj`` with every :class:`_PendingTensor` replaced by a numpy array, containers rebuilt in kind.

    ``storage_bytes`` gives a storage's raw bytes (file byte order) as a flat uint8 array.
    """
    arrays: Dict[int, np.ndarray] = {}
    seen: Dict[int, Any] = {}

    def tensor(pending: _PendingTensor) -> np.ndarray:
        if id(pending) in arrays:  # the same tensor object pickled once, referenced twice
            return arrays[id(pending)]
        raw = storage_bytes(pending.storage)
        dtype = _numpy_dtype(pending.dtype)
        if raw.nbytes % dtype.itemsize:
            raise TorchFileError(f"{path}: storage {pending.storage.key} holds {raw.nbytes} bytes, not a whole "
                                 f"number of {dtype} elements.")
        data = raw.view(_file_dtype(dtype, little_endian))
        size, stride, offset = pending.size, pending.stride, pending.offset
        if any(s < 0 for s in size) or any(s < 0 for s in stride) or offset < 0:
            raise TorchFileError(f"{path}: a tensor of storage {pending.storage.key} has a negative size, stride "
                                 f"or offset ({size}, {stride}, {offset}).")
        if 0 in size:
            array = np.zeros(size, dtype)
        else:
            last = offset + sum((n - 1) * s for n, s in zip(size, stride))
            if last >= data.size:
                raise TorchFileError(f"{path}: a tensor reaches element {last} of storage {pending.storage.key}, "
                                     f"which has {data.size}; the file is truncated or damaged.")
            view = np.lib.stride_tricks.as_strided(data[offset:], shape=size,
                                                   strides=[s * dtype.itemsize for s in stride], writeable=False)
            array = _native(np.array(view, copy=True, order="C"), dtype)
        arrays[id(pending)] = array
        return array

    def walk(value: Any) -> Any:
        if isinstance(value, _PendingTensor):
            return tensor(value)
        if isinstance(value, (_StorageRef, _StorageType, _DType)):
            raise TorchFileError(f"{path}: a bare storage or dtype outside a tensor is not supported.")
        if id(value) in seen:
            return seen[id(value)]
        if isinstance(value, dict):
            seen[id(value)] = value
            for k in list(value):
                value[k] = walk(value[k])
            return value
        if isinstance(value, list):
            seen[id(value)] = value
            value[:] = [walk(v) for v in value]
            return value
        if isinstance(value, tuple):
            result = tuple(walk(v) for v in value)
            seen[id(value)] = result
            return result
        if isinstance(value, (set, frozenset)):
            result = type(value)(walk(v) for v in value)
            seen[id(value)] = result
            return result
        return value

    return walk(obj)


def _file_dtype(dtype: np.dtype, little_endian: bool) -> np.dtype:
    """How elements of ``dtype`` lie in the file: with its byte order (bfloat16 as 2-byte integers)."""
    if dtype.itemsize == 1:
        return dtype
    order = "<" if little_endian else ">"
    if dtype.name == "bfloat16":
        return np.dtype(order + "u2")
    return dtype.newbyteorder(order)


def _native(array: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``array`` (elements in file order) as ``dtype`` in this machine's byte order."""
    if array.dtype == dtype:
        return array
    if dtype.name == "bfloat16":
        return array.astype(np.uint16).view(dtype)
    return array.astype(dtype)


def _storage_view(data: bytes, ref: _StorageRef, path: str) -> np.ndarray:
    """The bytes of storage ``ref`` (a legacy view's slice of its root storage) as a flat uint8 array."""
    itemsize = _numpy_dtype(ref.dtype).itemsize
    start = (ref.view_offset or 0) * itemsize
    end = start + ref.numel * itemsize
    if end > len(data):
        raise TorchFileError(f"{path}: storage {ref.key} holds {len(data) // itemsize} elements, "
                             f"{(ref.view_offset or 0) + ref.numel} expected; the file is truncated or damaged.")
    return np.frombuffer(data, np.uint8, count=end - start, offset=start)


def _load_zip(path: str, archive: zipfile.ZipFile) -> Any:
    names = archive.namelist()
    pickles = sorted((n for n in names if n == "data.pkl" or n.endswith("/data.pkl")), key=len)
    if not pickles:
        raise TorchFileError(f"{path}: a zip file without data.pkl, not a file written by torch.save.")
    prefix = pickles[0][: -len("data.pkl")]
    if prefix + "constants.pkl" in names or any(n.startswith(prefix + "code/") for n in names):
        raise TorchFileError(f"{path}: a TorchScript archive (torch.jit.save), not a state_dict written by "
                             "torch.save; save model.state_dict() instead.")
    byteorder = "little"
    if prefix + "byteorder" in names:
        byteorder = archive.read(prefix + "byteorder").decode("ascii", "replace").strip()
        if byteorder not in ("little", "big"):
            raise TorchFileError(f"{path}: unknown byte order {byteorder!r}.")
    obj = _unpickle(io.BytesIO(archive.read(pickles[0])), path)
    cache: Dict[str, bytes] = {}

    def storage_bytes(ref: _StorageRef) -> np.ndarray:
        if ref.key not in cache:
            entry = f"{prefix}data/{ref.key}"
            try:
                cache[ref.key] = archive.read(entry)
            except KeyError:
                raise TorchFileError(f"{path}: storage {entry} is missing from the archive.") from None
            except (zipfile.BadZipFile, OSError) as e:
                raise TorchFileError(f"{path}: storage {entry} cannot be read ({e}).") from None
        return _storage_view(cache[ref.key], ref, path)

    return _materialise(obj, storage_bytes, byteorder == "little", path)


def _load_legacy(path: str, f: BinaryIO) -> Any:
    magic = _unpickle(f, path, allow_storages=False)
    if magic != _MAGIC_NUMBER:
        raise TorchFileError(f"{path}: not a PyTorch file (neither a zip archive nor the legacy format's magic "
                             "number).")
    protocol = _unpickle(f, path, allow_storages=False)
    if protocol != _LEGACY_PROTOCOL:
        raise TorchFileError(f"{path}: legacy PyTorch file of protocol {protocol!r}; only {_LEGACY_PROTOCOL} is "
                             "known.")
    sys_info = _unpickle(f, path, allow_storages=False)
    little_endian = bool(sys_info.get("little_endian", True)) if isinstance(sys_info, dict) else True
    obj = _unpickle(f, path)
    keys = _unpickle(f, path, allow_storages=False)
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise TorchFileError(f"{path}: the legacy storage list is {type(keys).__name__}, not a list of keys.")
    # Element sizes come from the references: every storage in the list is referenced by some tensor.
    dtypes: Dict[str, str] = {}

    def collect(value: Any, seen: set) -> None:
        if id(value) in seen:
            return
        seen.add(id(value))
        if isinstance(value, _PendingTensor):
            dtypes.setdefault(value.storage.key, value.storage.dtype)
        elif isinstance(value, dict):
            for v in value.values():
                collect(v, seen)
        elif isinstance(value, (list, tuple, set, frozenset)):
            for v in value:
                collect(v, seen)

    collect(obj, set())
    count = struct.Struct("<q" if little_endian else ">q")
    storages: Dict[str, bytes] = {}
    for key in keys:
        header = f.read(count.size)
        if len(header) != count.size:
            raise TorchFileError(f"{path}: the file ends before storage {key}; it is truncated.")
        (numel,) = count.unpack(header)
        if key not in dtypes:
            raise TorchFileError(f"{path}: storage {key} is listed but no tensor refers to it, so its element "
                                 "size is unknown.")
        nbytes = numel * _numpy_dtype(dtypes[key]).itemsize
        if numel < 0 or nbytes > os.fstat(f.fileno()).st_size:
            raise TorchFileError(f"{path}: storage {key} claims {numel} elements; the file is damaged.")
        data = f.read(nbytes)
        if len(data) != nbytes:
            raise TorchFileError(f"{path}: the file ends inside storage {key}; it is truncated.")
        storages[key] = data

    def storage_bytes(ref: _StorageRef) -> np.ndarray:
        if ref.key not in storages:
            raise TorchFileError(f"{path}: storage {ref.key} is referenced but not in the file.")
        return _storage_view(storages[ref.key], ref, path)

    return _materialise(obj, storage_bytes, little_endian, path)


def load(path: str) -> Any:
    """The object a ``.pth`` file holds, with every tensor as a numpy array (a copy, C-contiguous).

    Reads both of ``torch.save``'s layouts (zip and legacy). Only tensors, parameters (as their
    data), numbers, strings, bytes, ``None`` and plain containers (dict, OrderedDict, list, tuple,
    set) load; a file that names any other Python object (a class, a function such as
    ``os.system``) is refused before anything is called. bfloat16 tensors need the ``ml_dtypes``
    package (installed with TensorFlow).

    Args:
        path: the file.

    Returns:
        The unpickled object, e.g. a ``state_dict`` (an OrderedDict of names to arrays).

    Raises:
        FileNotFoundError: no such file.
        TorchFileError: not a PyTorch file, a refused global (named in the message), or a damaged file.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file.")
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                return _load_zip(path, archive)
        except zipfile.BadZipFile as e:
            raise TorchFileError(f"{path}: a damaged zip archive ({e}).") from None
    with open(path, "rb") as f:
        head = f.read(512)
        f.seek(0)
        if len(head) >= 262 and head[257:262] == b"ustar":
            raise TorchFileError(f"{path}: a tar archive, PyTorch's pre-1.0 layout, which this reader does not "
                                 "support; re-save it with a recent torch (torch.save(torch.load(f), f)).")
        if not head.startswith(b"\x80"):
            raise TorchFileError(f"{path}: not a PyTorch file (neither a zip archive nor a pickle).")
        return _load_legacy(path, f)
