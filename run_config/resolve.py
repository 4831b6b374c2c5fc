"""Resolving a run's configuration: layers of values in precedence order, each value's source recorded.

The layers, lowest first:

1. the dataclass defaults of :mod:`run_config.groups` (generic, no model's);
2. the model's recipe: its published training settings (``zoo/<family>.py``), for the model the
   higher layers name;
3. a finished run's saved configuration (later modes: evaluate, predict, export, and resume);
4. flag files (``--flagfile``), in the order given;
5. the command line.

A higher layer wins. The learning rate follows one rule (:func:`effective_lr`): a layer that states
``lr`` states the global batch it is for (``lr_reference_batch``) and the run scales it linearly to
its own global batch; an ``lr`` given on the command line without a reference batch is used exactly.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from run_config.fields import SettingError, coerce, field_meta
from run_config.groups import GROUPS, RunConfig, group_fields

__all__ = [
    "DEFAULT_SOURCE",
    "Layer",
    "Resolved",
    "SETTINGS",
    "Setting",
    "effective_lr",
    "resolve",
    "with_values",
]

DEFAULT_SOURCE = "default"
COMMAND_LINE = "command line"


@dataclass(frozen=True)
class Setting:
    """Where a setting lives: its flag name, group and field."""

    flag: str
    group: str
    field: dataclasses.Field

    @property
    def cls(self) -> type:
        return GROUPS[self.group]

    @property
    def meta(self):
        return field_meta(self.field)


def _settings() -> Dict[str, Setting]:
    found: Dict[str, Setting] = {}
    for group in GROUPS:
        for f in group_fields(group):
            meta = field_meta(f)
            for name in (meta.flag or f.name,) + meta.aliases:
                if name in found:
                    raise RuntimeError(f"setting --{name} is declared twice ({found[name].group}, {group})")
                found[name] = Setting(meta.flag or f.name, group, f)
    return found


# Flag name (and alias) -> Setting, for every setting of a run.
SETTINGS: Dict[str, Setting] = _settings()


@dataclass(frozen=True)
class Layer:
    """Values from one source: flag name -> value (strings, numbers, lists; coerced on resolve)."""

    source: str
    values: Mapping[str, Any]


@dataclass(frozen=True)
class Resolved:
    """A run's configuration and, for every setting, where its value came from.

    Attributes:
        config: the typed configuration.
        sources: flag name -> source (``default``, ``recipe resnet50``, ``flag file configs/x.flags``,
            ``command line``, ``run results/1p/0/config.json``, or ``derived: ...``).
    """

    config: RunConfig
    sources: Mapping[str, str]

    def source(self, flag: str) -> str:
        return self.sources.get(SETTINGS[flag].flag, DEFAULT_SOURCE)


def value_of(config: RunConfig, flag: str) -> Any:
    """The value of setting ``flag`` (a flag name) in ``config``."""
    setting = SETTINGS[flag]
    holder = config if setting.group == "run" else getattr(config, setting.group)
    return getattr(holder, setting.field.name)


def with_values(config: RunConfig, values: Mapping[str, Any]) -> RunConfig:
    """``config`` with settings replaced (flag name -> value, coerced and validated)."""
    by_group: Dict[str, Dict[str, Any]] = {}
    for flag, value in values.items():
        setting = _setting(flag)
        by_group.setdefault(setting.group, {})[setting.field.name] = coerce(setting.cls, setting.field, value)
    top = dict(by_group.pop("run", {}))
    for group, changes in by_group.items():
        top[group] = dataclasses.replace(getattr(config, group), **changes)
    return dataclasses.replace(config, **top)


def _setting(flag: str) -> Setting:
    if flag not in SETTINGS:
        import difflib

        close = difflib.get_close_matches(flag, list(SETTINGS), n=1)
        hint = f" (did you mean --{close[0]}?)" if close else ""
        raise SettingError(f"--{flag} is not a setting of this program{hint}; see --help.")
    return SETTINGS[flag]


def resolve(layers: Sequence[Layer], *, recipe_of: Optional[Callable[[str], Mapping[str, Any]]] = None,
            recipe_layer_index: int = 0, fixed_from: Optional[Tuple[Layer, Sequence[str]]] = None) -> Resolved:
    """Builds the run's configuration from layers of values (lowest precedence first).

    Args:
        layers: the user's layers above the defaults (and above the recipe), e.g. flag files then
            the command line.
        recipe_of: model name -> its recipe's settings (flag name -> value); inserted as the layer
            just above the defaults, for the model the final configuration names.
        recipe_layer_index: where the recipe layer goes among ``layers`` (0: directly above the
            defaults; a run's saved configuration passed as ``layers[0]`` goes above it with 1).
        fixed_from: ``(layer, flags)``: settings a later mode takes from a finished run; a higher
            layer that gives one of them another value is refused (one line naming both values).

    Returns:
        A :class:`Resolved`.

    Raises:
        SettingError: an unknown setting, an invalid value, or a fixed setting changed.
    """
    layers = list(layers)
    for layer in layers:
        for flag in layer.values:
            _setting(flag)
    model = _top_value("model", layers, RunConfig().model.name)
    if recipe_of is not None:
        recipe = dict(recipe_of(model))
        layers.insert(recipe_layer_index, Layer(f"recipe {model}", recipe))
    values: Dict[str, Any] = {}
    sources: Dict[str, str] = {}
    where: Dict[str, int] = {}
    for index, layer in enumerate(layers):
        for flag, value in layer.values.items():
            name = SETTINGS[flag].flag
            values[name], sources[name], where[name] = value, layer.source, index
    if fixed_from is not None:
        _check_fixed(fixed_from, layers, values, sources)
    # One lr rule: the reference batch belongs to the layer that stated lr (or a higher one).
    lr_layer = where.get("lr", -1)
    if where.get("lr_reference_batch", -1) < lr_layer:
        values["lr_reference_batch"] = None
        sources["lr_reference_batch"] = f"derived: --lr from the {layers[lr_layer].source} is used as it is"
    config = with_values(RunConfig(), values)
    config, derived = _derive(config, where)
    sources.update(derived)
    return Resolved(config, sources)


def _top_value(flag: str, layers: Sequence[Layer], default: Any) -> Any:
    for layer in reversed(layers):
        for name, value in layer.values.items():
            if SETTINGS[name].flag == flag:
                return value
    return default


def _check_fixed(fixed: Tuple[Layer, Sequence[str]], layers: List[Layer], values: Dict[str, Any],
                 sources: Dict[str, str]) -> None:
    run_layer, flags = fixed
    for flag in flags:
        if flag not in run_layer.values or sources.get(flag) == run_layer.source:
            continue
        setting = SETTINGS[flag]
        saved = coerce(setting.cls, setting.field, run_layer.values[flag])
        given = coerce(setting.cls, setting.field, values[flag])
        if saved != given:
            raise SettingError(
                f"--{flag}={_text(given)} ({sources[flag]}) differs from the run's {_text(saved)} "
                f"({run_layer.source}); --mode=evaluate, predict and export use the run's own setting: leave it out."
            )
        values[flag], sources[flag] = run_layer.values[flag], run_layer.source


def _derive(config: RunConfig, where: Mapping[str, int]) -> Tuple[RunConfig, Dict[str, str]]:
    """Settings that follow from others: the log name from the model, the training size from the crop.

    ``image_size`` is the training crop: ``--train_crop_size`` (torchvision's name) and ``--image_size`` say the
    same, and of the two the one from the higher layer wins (``where``: flag -> index of the layer that set it);
    given in one layer they must agree. ``--val_crop_size`` may differ from it (FixRes: torchvision's newer
    recipes train at 176 and evaluate at 224): evaluation builds the model at that size with the same weights
    (:func:`evaluation.predictor.evaluation_config`).
    """
    changes: Dict[str, Any] = {}
    notes: Dict[str, str] = {}
    if config.logging.log_name is None:
        changes["log_name"] = f"{config.model.name}_training.log"
        notes["log_name"] = "derived: <model>_training.log"
    crop, size = config.augment.train_crop_size, config.model.image_size
    if crop and crop != size:
        crop_at, size_at = where.get("train_crop_size", -1), where.get("image_size", -1)
        if size is None or size_at < crop_at:
            changes["image_size"] = crop
            notes["image_size"] = "derived: --train_crop_size"
        elif size_at > crop_at:
            changes["train_crop_size"] = size
            notes["train_crop_size"] = "derived: --image_size"
        else:
            raise SettingError(f"--train_crop_size={crop} differs from --image_size={size}, the training crop it "
                               "names; give one of them (--val_crop_size sets the evaluation crop).")
    if changes:
        config = with_values(config, changes)
    return config, notes


def effective_lr(config: RunConfig, global_batch: int) -> Tuple[float, str]:
    """The learning rate this run trains with, and one line saying how it was obtained.

    Args:
        config: the resolved configuration.
        global_batch: images per step over all replicas (``batch_size`` x replicas).
    """
    schedule = config.schedule
    if not schedule.lr_reference_batch:
        return schedule.lr, f"lr {schedule.lr:g}, used as given"
    lr = schedule.lr * global_batch / schedule.lr_reference_batch
    if global_batch == schedule.lr_reference_batch:
        return lr, f"lr {lr:g} for the global batch of {global_batch}, as stated"
    return lr, (f"lr {lr:.6g} = {schedule.lr:g} (stated for a global batch of {schedule.lr_reference_batch}) x "
                f"{global_batch}/{schedule.lr_reference_batch}, scaled linearly to this run's global batch")


def _text(value: Any) -> str:
    if value is None:
        return "(unset)"
    if isinstance(value, tuple):
        return ",".join(map(str, value)) or "(empty)"
    return str(value)
