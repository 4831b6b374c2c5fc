"""``npu_device.global_options()``: the adapter's option tree, with its names, defaults and allowed values.

The table is that of ``tf_adapter_2.x/python/npu_device/configs/*.py`` (Ascend/tensorflow, master,
December 2023). The checks behave as ``configs/option_base.py`` does:

* an unknown name raises ``ValueError("<Group> has no option <name>, all options [...]")``; a group lists
  its option names in ``_fixed_attrs``;
* a value outside an option's allowed list raises ``TypeError("Expected <type>, got <type>")`` when
  the option has a default of another type (``deterministic="1"``: the default is the int 0), else
  ``ValueError("'<value>' not in optional list [...]")``; membership is Python's ``in``, so ``True``
  passes for ``[0, 1]``;
* options without an allowed list take anything;
* ``getattr(group, name)`` returns the option object (``.default``, ``.optional``, ``.value``), and
  ``.value`` is the string the device receives (``True`` -> ``"1"``, ``False`` -> ``"0"``);
* ``as_dict()`` flattens nested groups by leaf name (``dump_config.enable_dump`` -> ``enable_dump``),
  leaving out unset options; deprecated options print the adapter's warning.

An option set after ``open()`` is silently ignored by the adapter (it reads them when the device
opens); the stand-in records such a call with ``after_open=True`` so that tests can show the backend
never does it.
"""

from npu_device import _standin

PRECISION_MODES = ["force_fp32", "allow_fp32_to_fp16", "force_fp16", "must_keep_origin_dtype", "allow_mix_precision",
                   "cube_fp16in_fp32out", "allow_mix_precision_fp16", "allow_mix_precision_bf16",
                   "allow_fp32_to_bf16"]
_BOOL = [True, False]
_PROFILING_DEFAULT = ('{"output":"./","training_trace":"on","task_trace":"on","hccl":"on","aicpu":"on",'
                      '"aic_metrics":"PipeUtilization","msproftx":"off"}')


class Option:
    """One option: its default, its allowed values (None: anything) and its current value."""

    def __init__(self, default, optional, replacement=False):
        self.default = default
        self.optional = optional
        self._value = default
        self.deprecated = replacement is not False  # False: not deprecated; None: no replacement
        self.replacement = replacement if self.deprecated else None

    @property
    def value(self):
        if self._value is None:
            return None
        if str(self._value) == "True":
            return "1"
        if str(self._value) == "False":
            return "0"
        return str(self._value)

    @value.setter
    def value(self, v):
        if isinstance(self.optional, (list, tuple)) and v not in self.optional:
            if self.default is not None and not isinstance(v, type(self.default)):
                raise TypeError(f"Expected {type(self.default).__name__}, got {type(v).__name__}")
            raise ValueError(f"'{v}' not in optional list {self.optional}")
        self._value = v


def _deprecated(optional, replacement):
    return Option(None, optional, replacement)


# name -> Option factory or nested table. Written out from the adapter's configs/*.py.
_DUMP = {
    "enable_dump": lambda: Option(False, _BOOL),
    "dump_path": lambda: Option(None, None),
    "dump_step": lambda: Option(None, None),
    "dump_mode": lambda: Option("output", ["input", "output", "all"]),
    "enable_dump_debug": lambda: Option(False, _BOOL),
    "dump_debug_mode": lambda: Option("all", ["aicore_overflow", "atomic_overflow", "all"]),
    "dump_data": lambda: Option("tensor", ["tensor", "stats"]),
    "dump_layer": lambda: Option(None, None),
}
_AOE = {
    "aoe_mode": lambda: Option(None, ["1", "2", "4"]),
    "work_path": lambda: Option("./", None),
    "aoe_config_file": lambda: Option(None, None),
}
_PROFILING = {
    "enable_profiling": lambda: Option(False, _BOOL),
    "profiling_options": lambda: Option(_PROFILING_DEFAULT, None),
}
_MEMORY = {
    "atomic_clean_policy": lambda: Option(0, [0, 1]),
    "static_memory_policy": lambda: Option(0, [0, 1, 2]),
}
_EXPERIMENTAL = {
    "multi_branches_config": {
        "input_shape": lambda: Option(None, None),
        "dynamic_node_type": lambda: Option(None, ["0"]),
        "dynamic_dims": lambda: Option(None, None),
    },
    "logical_device_deploy_config": {
        "logical_device_cluster_deploy_mode": lambda: Option("LB", ["LB", "SINGLE"]),
        "logical_device_id": lambda: Option(None, None),
    },
    "model_deploy_config": {
        "model_deploy_mode": lambda: Option(None, None),
        "model_deploy_devicelist": lambda: Option(None, None),
    },
    "graph_memory_optimize_config": {
        "recompute": lambda: Option(None, ["auto", "manual"]),
        "graph_slice": lambda: Option(None, ["auto"]),
    },
    "resource_config_path": lambda: Option(None, None),
    "graph_parallel_option_path": lambda: Option(None, None),
    "enable_graph_parallel": lambda: Option(False, _BOOL),
}
_NPU_CONFIG = {
    "graph_run_mode": lambda: Option(1, [0, 1]),
    "graph_memory_max_size": lambda: Option(None, None),
    "variable_memory_max_size": lambda: Option(None, None),
    "variable_format_optimize": lambda: _deprecated(_BOOL, None),
    "enable_scope_fusion_passes": lambda: Option(None, None),
    "fusion_switch_file": lambda: Option(None, None),
    "precision_mode": lambda: Option(None, PRECISION_MODES),
    "op_select_implmode": lambda: _deprecated(["high_performance", "high_precision"], "op_precision_mode"),
    "optypelist_for_implmode": lambda: _deprecated(None, "op_precision_mode"),
    "op_compiler_cache_mode": lambda: Option("enable", ["enable", "disable", "force"]),
    "op_compiler_cache_dir": lambda: Option(None, None),
    "stream_max_parallel_num": lambda: Option(None, None),
    "ac_parallel_enable": lambda: Option(None, ["0", "1"]),
    "hcom_parallel": lambda: Option(True, _BOOL),
    "hcom_multi_mode": lambda: Option(None, None),
    "is_tailing_optimization": lambda: Option(False, _BOOL),
    "op_debug_level": lambda: _deprecated([0, 1, 2, 3, 4], "op_debug_config"),
    "op_debug_config": lambda: Option(None, None),
    "debug_dir": lambda: Option(None, None),
    "modify_mixlist": lambda: Option(None, None),
    "enable_exception_dump": lambda: Option(2, [0, 1, 2]),
    "dump_config": _DUMP,
    "aoe_config": _AOE,
    "profiling_config": _PROFILING,
    "enable_small_channel": lambda: Option(False, _BOOL),
    "deterministic": lambda: Option(0, [0, 1]),
    "op_precision_mode": lambda: Option(None, None),
    "graph_exec_timeout": lambda: Option(None, None),
    "topo_sorting_mode": lambda: Option(None, [0, 1, None]),
    "customize_dtypes": lambda: Option(None, None),
    "overflow_flag": lambda: Option(1, [0, 1]),
    "stream_sync_timeout": lambda: Option(-1, None),
    "event_sync_timeout": lambda: Option(-1, None),
    "external_weight": lambda: Option(False, _BOOL),
    "memory_config": _MEMORY,
    "jit_compile": lambda: Option("auto", ["true", "false", "auto"]),
    "graph_compiler_cache_dir": lambda: Option(None, None),
    "experimental": _EXPERIMENTAL,
    "precision_mode_v2": lambda: Option(None, ["fp16", "origin", "cube_fp16in_fp32out", "mixed_float16",
                                               "mixed_bfloat16"]),
}
_GROUP_CLASS_NAMES = {"": "NpuConfig", "dump_config.": "NpuDumpConfig", "aoe_config.": "NpuAoeConfig",
                      "profiling_config.": "NpuProfilingConfig", "memory_config.": "MemoryConfig",
                      "experimental.": "NpuExperimentalConfig"}


class Group:
    """A group of options (``NpuConfig`` and its nested configs)."""

    def __init__(self, table, path=""):
        items = {}
        for name, spec in table.items():
            items[name] = Group(spec, f"{path}{name}.") if isinstance(spec, dict) else spec()
        object.__setattr__(self, "_items", items)
        object.__setattr__(self, "_path", path)

    @property
    def _name(self):
        return _GROUP_CLASS_NAMES.get(self._path, "NpuBaseConfig")

    @property
    def _fixed_attrs(self):
        """The group's option names, as ``NpuBaseConfig._fixed_attrs`` lists them."""
        return list(self._items)

    def __getattr__(self, key):
        items = object.__getattribute__(self, "_items")
        if key in items:
            return items[key]
        raise AttributeError(f"'{self._name}' object has no attribute '{key}'")

    def __setattr__(self, key, value):
        if key not in self._items:
            raise ValueError(f"{self._name} has no option {key}, all options {list(self._items)}")
        target = self._items[key]
        if isinstance(target, Option):
            target.value = value
        else:
            # As the adapter does (NpuBaseConfig.__setattr__): the group object is replaced, and every option
            # set in it before is gone from as_dict().
            self._items[key] = value
        _standin.record("set_option", key=self._path + key, value=value,
                        after_open=_standin.STATE.handle is not None)

    def as_dict(self):
        out = {}
        for name, item in self._items.items():
            if isinstance(item, Option) and item.value is not None:
                if item.deprecated:
                    hint = (" Please do not configure this option in the future." if item.replacement is None
                            else f" Please use '{item.replacement}' instead.")
                    print(f"[warning][tf_adapter] Option '{name}' is deprecated and will be removed in future "
                          f"version.{hint}")
                out[name] = item.value
            elif isinstance(item, Group):
                out.update(item.as_dict())
        return out


_GLOBAL = None


def global_options():
    """The process's option tree (created on first use)."""
    global _GLOBAL
    if _GLOBAL is None:
        _GLOBAL = Group(_NPU_CONFIG)
    return _GLOBAL


def reset():
    global _GLOBAL
    _GLOBAL = None
