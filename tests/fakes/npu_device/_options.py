"""``npu_device.global_options()``: a fixed set of options with their allowed values.

As in the adapter, an unknown option or a value outside the allowed list raises ValueError. The
stand-in also refuses options set after ``open()``, which the adapter would silently ignore.
"""

from npu_device import _standin

_PRECISION_MODES = ["force_fp32", "allow_fp32_to_fp16", "force_fp16", "must_keep_origin_dtype",
                    "allow_mix_precision", "cube_fp16in_fp32out", "allow_mix_precision_fp16",
                    "allow_mix_precision_bf16", "allow_fp32_to_bf16"]


class _Group:
    """A group of options; allowed values None mean "anything"."""

    _SPEC = {}

    def __init__(self, path=""):
        object.__setattr__(self, "_path", path)
        object.__setattr__(self, "_values", {k: default for k, (default, _) in self._SPEC.items()})
        object.__setattr__(self, "_groups", {k: cls(f"{path}{k}.") for k, cls in self._GROUPS.items()})

    _GROUPS = {}

    def __getattr__(self, key):
        groups = object.__getattribute__(self, "_groups")
        if key in groups:
            return groups[key]
        values = object.__getattribute__(self, "_values")
        if key in values:
            return values[key]
        raise AttributeError(f"{type(self).__name__} has no option {key}")

    def __setattr__(self, key, value):
        if key not in self._SPEC:
            raise ValueError(f"{type(self).__name__} has no option {key}, all options {sorted(self._SPEC)}")
        allowed = self._SPEC[key][1]
        if allowed is not None and value not in allowed:
            raise ValueError(f"'{value}' not in optional list {allowed}")
        if _standin.STATE.handle is not None:
            raise RuntimeError(f"npu_device stand-in: option {self._path}{key} set after npu_device.open(); the "
                               "adapter reads its options when the device opens")
        self._values[key] = value
        _standin.record("set_option", key=self._path + key, value=value)

    def as_dict(self):
        out = {self._path + k: v for k, v in self._values.items() if v is not None}
        for group in self._groups.values():
            out.update(group.as_dict())
        return out


class _DumpConfig(_Group):
    _SPEC = {"enable_dump": (False, [True, False]), "dump_path": (None, None), "dump_mode": ("output", None)}


class NpuConfig(_Group):
    _SPEC = {
        "graph_run_mode": (1, [0, 1]),
        "graph_memory_max_size": (None, None),
        "variable_memory_max_size": (None, None),
        "precision_mode": (None, _PRECISION_MODES),
        "op_compiler_cache_mode": ("disable", ["enable", "disable", "force"]),
        "op_compiler_cache_dir": (None, None),
        "hcom_parallel": (True, [True, False]),
        "op_debug_config": (None, None),
        "deterministic": (0, [0, 1]),
        "jit_compile": (False, [True, False]),
    }
    _GROUPS = {"dump_config": _DumpConfig}


_GLOBAL = None


def global_options():
    global _GLOBAL
    if _GLOBAL is None:
        _GLOBAL = NpuConfig()
    return _GLOBAL


def reset():
    global _GLOBAL
    _GLOBAL = None
