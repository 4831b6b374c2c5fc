"""Ascend NPU backend on the TensorFlow 2 adapter ``npu_device``: one NPU per process, HCCL between them.

The adapter (``tf_adapter_2.x`` of Ascend/tensorflow; docs/npu.md) has no ``tf.distribute``
strategy: every process opens its own NPU and trains under TensorFlow's default strategy, gradients
are averaged with ``npu_device.distribute.all_reduce`` each step, and rank 0's initial variables are
broadcast once.
``--iterations_per_loop`` becomes the adapter's loop size, so the trainer's ``tf.range`` loop runs on
the device. Mixed precision is the adapter's ``--precision_mode``; its float16 modes train with the
adapter's loss-scale optimizer. Which rank and device this process is comes from its environment
(:mod:`backends.npu_environment`). docs/npu.md lists every adapter call made here and the adapter file
it comes from.

``npu_device`` runs on TensorFlow 2.6, Keras 2 and Python <= 3.9 only: this module keeps to that
(checked with ``vermin --target=3.9``) and imports the adapter only when the backend is set up.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
from absl import logging

from backends import npu_launch
from backends.base import Backend
from backends.npu_environment import LaunchEnvironment, launch_environment
from keras_compat import variable_value
from run_config import RunConfig
from run_config.groups import NPU_BF16_MODES, NPU_FP16_MODES, NPU_PRECISION_MODES

__all__ = [
    "AdapterNotInstalledError",
    "BF16_MODES",
    "FP16_MODES",
    "PRECISION_MODES",
    "NPUBackend",
    "import_npu_device",
    "leaf_options",
    "parse_npu_options",
]

# The adapter's precision modes (declared with the --precision_mode setting). Float16 modes need loss
# scaling; the others do not.
FP16_MODES = NPU_FP16_MODES
BF16_MODES = NPU_BF16_MODES
PRECISION_MODES = NPU_PRECISION_MODES

_UNRESOLVED = object()  # the launch environment, before it is read

_INSTALL_HINT = (
    "The Ascend TensorFlow 2 adapter `npu_device` is not installed. It ships with Huawei's CANN "
    "toolkit (TF_Adapter for TensorFlow 2.x) and runs only on TensorFlow 2.6 (2.6.2-2.6.5) with "
    "Python <= 3.9: install CANN and its npu_device wheel on an Ascend server, source the toolkit's "
    "set_env.sh, then run again. Without NPUs use --backend=cpu or --backend=gpu."
)


class AdapterNotInstalledError(ImportError, ValueError):
    """``npu_device`` cannot be imported; a ValueError too, so ``main.py`` reports it without a traceback."""


def import_npu_device():
    """Imports the adapter (lazily: it exists only on Ascend servers).

    Raises:
        AdapterNotInstalledError: saying what to install and which TensorFlow it needs.
    """
    try:
        import npu_device
    except ImportError as e:
        raise AdapterNotInstalledError(f"{_INSTALL_HINT} (import error: {e})") from e
    return npu_device


def parse_npu_options(items: Sequence[str]) -> Dict[str, str]:
    """``["k=v", "a.b=1"]`` -> ``{"k": "v", "a.b": "1"}``: values stay text until the adapter's table types them.

    Keys are checked against the adapter's option tree when the backend is set up (unknown ones are
    refused with the valid names); a key naming a group (``dump_config``) takes a JSON object, merged
    into the group option by option.

    Raises:
        ValueError: for an item without ``=`` or with an empty key.
    """
    options: Dict[str, str] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--npu_option={item}: expected KEY=VALUE, e.g. --npu_option=op_debug_config=cfg.json.")
        options[key.strip()] = value.strip()
    return options


def _parse_loss_scale(text: str, precision_mode: str) -> Optional[float]:
    """``None`` (no loss scaling), ``0.0`` (dynamic) or a fixed scale."""
    value = (text or "auto").strip().lower()
    if value == "auto":
        return 0.0 if precision_mode in FP16_MODES else None
    if value == "dynamic":
        return 0.0
    if value == "none":
        return None
    try:
        scale = float(value)
    except ValueError:
        scale = -1.0
    if scale < 1.0:
        raise ValueError(f"--npu_loss_scale={text}: use auto, dynamic, none or a fixed scale >= 1 (e.g. 1024).")
    return scale


class NPUBackend(Backend):
    """Trains on Ascend NPUs, one device per process, HCCL collectives between processes.

    Args:
        precision_mode: the adapter's precision mode (see ``PRECISION_MODES``).
        loss_scale: ``auto``, ``dynamic``, ``none`` or a fixed scale (float16 modes need one).
        options: further adapter global options, name -> value (dotted names for nested ones).
        device_ids: NPUs of this server to use (launcher and single-device runs).
        launch: launcher settings; None disables launching.
        argv: the command line the launcher re-runs for every rank (default ``sys.argv``).
        environ: the process environment (default ``os.environ``).
        **kwargs: see :class:`backends.base.Backend`.
    """

    name = "npu"

    def __init__(self, *, precision_mode: str = "allow_mix_precision", loss_scale: str = "auto",
                 options: Optional[Mapping[str, Any]] = None, device_ids: Optional[Sequence[int]] = None,
                 launch: Optional[npu_launch.NpuLaunchConfig] = None, argv: Optional[Sequence[str]] = None,
                 environ: Optional[Mapping[str, str]] = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if precision_mode not in PRECISION_MODES:
            raise ValueError(f"--precision_mode={precision_mode}: must be one of {', '.join(PRECISION_MODES)}.")
        self.precision_mode = precision_mode
        self.loss_scale = _parse_loss_scale(loss_scale, precision_mode)
        self.options: Dict[str, Any] = {"precision_mode": precision_mode}
        self.options.update(options or {})
        self.device_ids = [int(d) for d in device_ids] if device_ids else None
        self.launch_config = launch
        self.argv = list(argv) if argv is not None else None
        self.environ = os.environ if environ is None else environ
        self._npu = None
        self._handle = None
        self._env: Any = _UNRESOLVED  # Optional[LaunchEnvironment], read from the environment on first use
        self._opened: Optional[Tuple[int, int]] = None  # (rank, world size) the opened device reports

    @classmethod
    def from_config(cls, config: RunConfig) -> NPUBackend:
        npu, dist = config.npu, config.distribution
        options: Dict[str, Any] = {"hcom_parallel": npu.npu_hcom_parallel}
        if npu.npu_op_compiler_cache_mode:
            options["op_compiler_cache_mode"] = npu.npu_op_compiler_cache_mode
        if npu.npu_op_compiler_cache_dir:
            options["op_compiler_cache_dir"] = npu.npu_op_compiler_cache_dir
        if npu.npu_deterministic:
            options["deterministic"] = 1
        # The adapter takes memory sizes as decimal strings of bytes.
        if npu.npu_graph_memory_max_size:
            options["graph_memory_max_size"] = str(npu.npu_graph_memory_max_size)
        if npu.npu_variable_memory_max_size:
            options["variable_memory_max_size"] = str(npu.npu_variable_memory_max_size)
        options.update(parse_npu_options(npu.npu_option))
        device_ids = _int_list(npu.npu_device_ids, "--npu_device_ids")
        launch = npu_launch.NpuLaunchConfig(
            rank_size=dist.rank_size, group_size=dist.group_size,
            rank_table_file=npu.rank_table_file, device_ids=device_ids,
            device_ips=npu.npu_device_ips, hccn_conf=npu.hccn_conf, server_id=npu.server_id,
            job_id=npu.job_id, log_dir=config.logging.log_dir, bind_cores=npu.bind_cores,
        )
        return cls(rank_size=dist.rank_size, precision=config.precision.precision,
                   precision_mode=config.precision.precision_mode, loss_scale=config.precision.npu_loss_scale,
                   options=options, device_ids=device_ids, launch=launch)

    # -- process management ---------------------------------------------------------------------

    def auto_precision(self):
        return "fp32", f"on NPUs the adapter's --precision_mode={self.precision_mode} chooses mixed precision"

    def _check_precision(self) -> None:
        if self.precision not in ("fp32", "auto"):
            raise ValueError(
                f"--precision={self.precision} is for CPUs and GPUs; on NPUs the adapter's --precision_mode "
                "chooses mixed precision (e.g. --precision_mode=allow_mix_precision for float16, "
                "allow_mix_precision_bf16 for bfloat16). Leave --precision at fp32."
            )

    def _launch_env(self) -> Optional[LaunchEnvironment]:
        if self._env is _UNRESOLVED:
            self._env = launch_environment(self.environ, self.rank_size)
        return self._env

    def maybe_launch(self, argv: Optional[Sequence[str]]) -> Optional[int]:
        """Starts one process per NPU when ``--rank_size`` > 1 and this process is not one rank of a job.

        Returns:
            None if this process trains (one device, or one rank of a job: ``RANK_ID`` or ``CM_*`` set);
            otherwise the job's exit code.
        """
        self._check_precision()
        if self._launch_env() is not None or self.rank_size == 1:
            return None
        if self.launch_config is None:
            raise ValueError(f"--rank_size={self.rank_size} without RANK_ID: this backend was built without "
                             "launch settings; start it through main.py or set RANK_ID per process.")
        if importlib.util.find_spec("npu_device") is None:  # fail here, not in every rank
            raise AdapterNotInstalledError(_INSTALL_HINT)
        argv = list(argv if argv is not None else (self.argv or sys.argv))
        if not argv:
            raise ValueError("cannot start the NPU ranks: the command line of this process is unknown.")
        script = os.path.abspath(argv[0]) if os.path.exists(argv[0]) else argv[0]
        command = [sys.executable, script] + [str(a) for a in argv[1:]]
        try:
            return npu_launch.launch_npu_ranks(command, self.launch_config, environ=self.environ)
        except OSError as e:
            raise ValueError(f"cannot start the NPU ranks: {e}") from e

    # -- device set-up ----------------------------------------------------------------------------

    def _device_id(self) -> int:
        """The logical id to open (docs/npu.md, "Device ids").

        A rank of a job opens its ``ASCEND_DEVICE_ID`` (the launcher's choice, which already gave
        ``--npu_device_ids`` precedence); a single device is ``--npu_device_ids``, else
        ``ASCEND_DEVICE_ID``, else 0.
        """
        text = self.environ.get("ASCEND_DEVICE_ID", "").strip()
        env = self._launch_env()
        if env is not None and env.world_size > 1:
            return int(text)  # launch_environment checked it is a number
        if self.device_ids:
            return self.device_ids[0]
        return int(text) if text.isdigit() else 0

    def setup(self) -> None:
        """Sets the adapter's global options, then opens this process's NPU as the default device."""
        self._check_precision()
        env = self._launch_env()
        if env is None and self.rank_size > 1:
            raise ValueError(f"--rank_size={self.rank_size}: set RANK_ID, RANK_SIZE, ASCEND_DEVICE_ID and "
                             "RANK_TABLE_FILE (or the CM_* variables) for this process, or let main.py launch the "
                             "ranks.")
        npu = import_npu_device()
        # Options are read when the device opens: all of them first. NPU_LOOP_SIZE is left alone: the
        # adapter reads it once, when it is imported; set_loop_size() sets the loop size before each loop.
        global_options = npu.global_options()
        # Every key is checked before any is set: a refused one leaves nothing half-applied.
        for key, value in leaf_options(global_options, self.options):
            _set_option(global_options, key, value)
        device_id = self._device_id()
        try:
            handle = npu.open(device_id).as_default()
        except (RuntimeError, ValueError) as e:
            raise ValueError(f"cannot open NPU {device_id}: {e}") from e
        rank, world = int(handle.worker_id), int(handle.workers_num)
        expected_world = env.world_size if env else 1
        if world != expected_world or (env is not None and env.rank is not None and rank != env.rank):
            raise ValueError(
                f"the adapter sees rank {rank} of {world} but this process is rank "
                f"{env.rank if env else 0} of {expected_world} (RANK_ID/RANK_SIZE or CM_WORKER_SIZE, --rank_size); "
                "make them agree."
            )
        self._npu, self._handle, self._opened = npu, handle, (rank, world)
        mode = env.mode if env else "single device"
        logging.info("Opened NPU %d as rank %d of %d (%s), precision_mode=%s", device_id, rank, world, mode,
                     self.precision_mode)

    def create_strategy(self) -> tf.distribute.Strategy:
        # One device per process: TensorFlow's default strategy; the adapter places ops on the NPU.
        return tf.distribute.get_strategy()

    @property
    def _adapter(self):
        if self._npu is None:
            raise RuntimeError("the npu backend is not set up yet; call setup() before building anything.")
        return self._npu

    # -- topology -----------------------------------------------------------------------------------

    @property
    def rank(self) -> int:
        if self._opened is not None:
            return self._opened[0]
        env = self._launch_env()
        if env is None:
            return 0
        if env.rank is None:
            raise RuntimeError("in the rank-table-free mode (CM_*) the rank is known once the device is open: "
                               "call setup() first.")
        return env.rank

    @property
    def world_size(self) -> int:
        if self._opened is not None:
            return self._opened[1]
        env = self._launch_env()
        return env.world_size if env else self.rank_size

    @property
    def num_replicas(self) -> int:
        # Every rank trains one replica: the global batch is --batch_size x ranks.
        return self.world_size

    # -- data -----------------------------------------------------------------------------------------

    def distribute_dataset(self, dataset_fn: Callable[[tf.distribute.InputContext], tf.data.Dataset]):
        """This rank's shard, batched at global batch / ranks (the adapter's shard-and-rebatch).

        The shard goes through the input context rather than ``shard_and_rebatch_dataset``, which
        shards after reading: readers can then skip the other ranks' files instead of decoding them.
        """
        context = tf.distribute.InputContext(num_input_pipelines=self.world_size, input_pipeline_id=self.rank,
                                             num_replicas_in_sync=self.world_size)
        return dataset_fn(context)

    # -- collectives ------------------------------------------------------------------------------

    def reduce_gradients(self, grads: List[tf.Tensor]) -> List[tf.Tensor]:
        if self.world_size == 1:
            return grads
        return list(self._adapter.distribute.all_reduce(list(grads), "mean"))

    def broadcast_variables(self, variables: Sequence[tf.Variable]) -> None:
        if self.world_size == 1:
            return
        # Weights and optimizer slots. Integer counters (the step) are equal on every rank already:
        # all ranks restore the same checkpoint directory.
        values = [variable_value(v) for v in variables]
        self._adapter.distribute.broadcast([v for v in values if v.dtype.is_floating], root_rank=0)

    def reduce_sum(self, value: tf.Tensor) -> tf.Tensor:
        if self.world_size == 1:
            return value
        value = tf.convert_to_tensor(value)
        # HCCL reduces int32 and float16/32: int64 counts travel as int32, float64 sums as float32.
        wire = tf.int32 if value.dtype.is_integer else (value.dtype if value.dtype == tf.float16 else tf.float32)
        if value.dtype == wire:
            return self._adapter.distribute.all_reduce(value, "sum")
        return tf.cast(self._adapter.distribute.all_reduce(tf.cast(value, wire), "sum"), value.dtype)

    def assert_same_on_all_ranks(self, what: str, value: float, hint: str = "") -> None:
        if self.world_size == 1:
            return
        # Exact: the float64's bits as two int32 words are equal on all ranks iff their max equals their min.
        # Every rank sees the same max and min, so every rank reaches the same verdict.
        words = tf.bitcast(tf.constant(float(value), tf.float64), tf.int32)
        collectives = self._adapter.distribute
        high = collectives.all_reduce(words, "max").numpy()
        low = collectives.all_reduce(words, "min").numpy()
        if not np.array_equal(high, low):
            raise ValueError(f"{what} differs between the {self.world_size} ranks: {value!r} on rank {self.rank}. "
                             f"{hint}".rstrip())

    def finish(self) -> None:
        if self.world_size == 1:
            return
        # A last all-reduce as a barrier: no rank leaves while a peer still talks to it.
        self._adapter.distribute.all_reduce(tf.constant([1.0]), "sum")
        logging.info("rank %d: all %d ranks finished", self.rank, self.world_size)

    def set_loop_size(self, iterations: int) -> None:
        self._adapter.set_npu_loop_size(int(iterations))

    # -- precision ------------------------------------------------------------------------------------

    def wrap_optimizer(self, optimizer):
        """Float16 modes: the adapter's loss-scale optimizer around the inner optimizer.

        It is a Keras ``LossScaleOptimizer``, so the trainer scales the loss and unscales the
        gradients through ``training.optimizers`` before the all-reduce, and the adapter skips a step
        whose gradients overflowed on any rank.
        """
        if self.loss_scale is None:
            return optimizer
        # The optimizer is never loss-scaled already: --precision (the Keras loss scaling) must be fp32 here.
        factory = self._adapter.train.optimizer.NpuLossScaleOptimizer
        try:
            if self.loss_scale == 0.0:
                return factory(optimizer, dynamic=True)
            return factory(optimizer, dynamic=False, initial_scale=self.loss_scale)
        except TypeError as e:  # a Keras 3 optimizer: the adapter's class is Keras 2's
            raise ValueError(
                f"npu_device's NpuLossScaleOptimizer cannot wrap {type(optimizer).__module__}."
                f"{type(optimizer).__name__}: the adapter runs on Keras 2 (TensorFlow 2.6's tf.keras); with a newer "
                f"TensorFlow set TF_USE_LEGACY_KERAS=1. ({' '.join(str(e).split())[:200]})") from e

    def describe(self) -> str:
        scale = "none" if self.loss_scale is None else ("dynamic" if self.loss_scale == 0.0 else f"{self.loss_scale:g}")
        return (f"backend=npu device={self._device_id()} rank={self.rank}/{self.world_size} "
                f"precision_mode={self.precision_mode} loss_scale={scale}")


def _int_list(values: Optional[Sequence[str]], flag: str) -> Optional[List[int]]:
    if not values:
        return None
    try:
        return [int(v) for v in values]
    except ValueError:
        raise ValueError(f"{flag}={','.join(values)}: expected NPU ids (numbers), e.g. {flag}=0,1,2,3.") from None


def _typed_value(value: Any, option: Any) -> Any:
    """Text from the command line as the adapter's option expects it.

    An option with a list of allowed values (``configs/*.py`` in the adapter) gets the allowed value
    whose text matches, case aside (``"1"`` -> ``1`` for ``deterministic``, ``"true"`` -> ``True`` for
    ``hcom_parallel``, ``"false"`` stays ``"false"`` for ``jit_compile``); any other option gets the
    text, which is what the adapter passes on anyway.
    """
    allowed = getattr(option, "optional", None)
    if not isinstance(value, str) or not isinstance(allowed, (list, tuple)):
        return value
    for candidate in allowed:
        if candidate is not None and str(candidate).lower() == value.strip().lower():
            return candidate
    return value  # not allowed: the adapter refuses it below, and the message lists what is


def _option_names(group: Any) -> List[str]:
    """The option names of one of the adapter's option groups (``NpuBaseConfig._fixed_attrs``)."""
    names = getattr(group, "_fixed_attrs", None)
    return [str(n) for n in names] if isinstance(names, (list, tuple)) else []


def _is_group(item: Any) -> bool:
    """An option group (``NpuBaseConfig``: ``as_dict``), not one option (``OptionValue``: ``optional``)."""
    return item is not None and hasattr(item, "as_dict") and not hasattr(item, "optional")


def _valid_names(group: Any, prefix: str) -> str:
    names = []
    for name in _option_names(group):
        names.append(f"{prefix}{name}" + (".*" if _is_group(getattr(group, name, None)) else ""))
    return ", ".join(names)


def _json_object(value: Any) -> Optional[Mapping[str, Any]]:
    if isinstance(value, Mapping):
        return value
    if isinstance(value, str) and value.strip().startswith("{"):
        try:
            parsed = json.loads(value)
        except ValueError:
            return None
        return parsed if isinstance(parsed, dict) else None
    return None


def leaf_options(global_options: Any, options: Mapping[str, Any]) -> List[Tuple[str, Any]]:
    """``options`` as ``(dotted key, value)`` pairs of single options, checked against the adapter's tree.

    A key that names a group merges a JSON object (``dump_config={"enable_dump": true}``) into that
    group option by option, after and beside any ``dump_config.*`` key given elsewhere. Setting the group
    itself, as ``setattr(global_options, "dump_config", value)`` would, replaces the adapter's group
    object (``NpuBaseConfig.__setattr__``, ``configs/option_base.py``) and drops every option set in it:
    that is refused.

    Raises:
        ValueError: an unknown key (one line with the valid names of its group), or a group given a value
            that is not a JSON object.
    """
    out: List[Tuple[str, Any]] = []
    for key, value in options.items():
        _expand_option(global_options, str(key), value, out)
    return out


def _expand_option(root: Any, key: str, value: Any, out: List[Tuple[str, Any]]) -> None:
    parts = key.split(".")
    group, item = root, None
    for i, part in enumerate(parts):
        prefix = ".".join(parts[:i]) + "." if i else ""
        names = _option_names(group)
        if names and part not in names:
            where = f"the options of {prefix[:-1]} are" if prefix else "its options are"
            raise ValueError(f"npu_device has no option {key}; {where}: {_valid_names(group, prefix)}. Check "
                             "--npu_option (nested options as group.option, e.g. dump_config.enable_dump).")
        item = getattr(group, part, None)
        if i < len(parts) - 1:
            if not _is_group(item):
                raise ValueError(f"npu_device has no option {key}: {prefix}{part} is an option, not a group.")
            group = item
    if not _is_group(item):
        out.append((key, value))
        return
    mapping = _json_object(value)
    if mapping is None:
        first = (_option_names(item) or ["option"])[0]
        raise ValueError(
            f"--npu_option={key}={value}: {key} is a group of options ({_valid_names(item, key + '.')}); set them "
            f"one by one (--npu_option={key}.{first}=...) or as a JSON object (--npu_option='{key}={{\"{first}\": "
            "...}'). A plain value would replace the whole group and drop its other options.")
    for name, sub_value in mapping.items():
        _expand_option(root, f"{key}.{name}", sub_value, out)


def _set_option(options: Any, key: str, value: Any) -> None:
    """Sets ``options.<key>`` (dots reach nested option groups) as the adapter's option types expect.

    Raises:
        ValueError: one line naming the option and, for a refused value, its allowed values.
    """
    parts = key.split(".")
    group, option = options, None
    try:
        for part in parts[:-1]:
            group = getattr(group, part)
        option = getattr(group, parts[-1], None)
        setattr(group, parts[-1], _typed_value(value, option))
    except (AttributeError, TypeError, ValueError) as e:
        detail = " ".join(str(e).split())
        if option is None:
            raise ValueError(f"npu_device has no option {key} ({detail}); check --npu_option (nested options as "
                             "group.option, e.g. dump_config.enable_dump).") from None
        allowed = getattr(option, "optional", None)
        values = ", ".join(str(a) for a in allowed if a is not None) if isinstance(allowed, (list, tuple)) else "text"
        raise ValueError(f"npu_device refused the option {key}={value!r} ({type(e).__name__}: {detail}); "
                         f"allowed values of {key}: {values}.") from None
