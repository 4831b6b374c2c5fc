"""One setting of a run: its type, default, help text and validation, declared once.

Every setting is a field of a frozen dataclass (one dataclass per concern, :mod:`run_config.groups`)
declared with :func:`setting`. The field's metadata is what the command line, ``--help``, validation,
``config.json`` and the resume check read, so a setting exists in exactly one place. The flag name of
a setting is its field name, except where ``flag=`` says otherwise (``ModelConfig.name`` is ``--model``).
"""

from __future__ import annotations

import dataclasses
import math
import typing
from typing import Any, Callable, Dict, Optional, Sequence, Tuple, Union

__all__ = ["Meta", "SettingError", "coerce", "field_meta", "field_type", "setting"]

# How a setting relates to a checkpoint (resume) and to later modes (evaluate, predict, export):
#   "meaning": part of what a checkpoint means; resume compares it, later modes take the run's value
#              and refuse a different one.
#   "resume":  compared on resume (it changes what training does from here), free in later modes.
#   "free":    neither: where files go, how often to log, how fast to read data.
ROLES = ("meaning", "resume", "free")


class SettingError(ValueError):
    """A setting's value is invalid; the message names the flag and says what is accepted."""


@dataclasses.dataclass(frozen=True)
class Meta:
    """What a setting declares besides its type and default (stored as the field's metadata).

    Attributes:
        help: one or two sentences for ``--help`` and the docs.
        flag: the command-line name, if not the field's name.
        choices: accepted values, or a callable returning them (a registry's names).
        minimum, maximum: inclusive numeric bounds.
        check: extra validation: returns an error text for a bad value, None for a good one.
        role: ``meaning``, ``resume`` or ``free`` (see ``ROLES``).
        aliases: other flag names (the Ascend recipe's ``--version`` for ``--initializer``).
    """

    help: str
    flag: Optional[str] = None
    choices: Union[Sequence[Any], Callable[[], Sequence[Any]], None] = None
    minimum: Optional[float] = None
    maximum: Optional[float] = None
    check: Optional[Callable[[Any], Optional[str]]] = None
    role: str = "free"
    aliases: Tuple[str, ...] = ()

    def choice_list(self) -> Optional[Sequence[Any]]:
        return self.choices() if callable(self.choices) else self.choices


def setting(default: Any, help: str, *, flag: Optional[str] = None, choices=None, minimum: Optional[float] = None,
            maximum: Optional[float] = None, check: Optional[Callable[[Any], Optional[str]]] = None,
            role: str = "free", aliases: Sequence[str] = ()) -> Any:
    """A dataclass field that is a setting of the run (see :class:`Meta` for the arguments)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    meta = Meta(help=help, flag=flag, choices=choices, minimum=minimum, maximum=maximum, check=check, role=role,
                aliases=tuple(aliases))
    return dataclasses.field(default=default, metadata={"setting": meta})


def field_meta(f: dataclasses.Field) -> Meta:
    """The :class:`Meta` of a setting field."""
    return f.metadata["setting"]


_HINTS: Dict[type, Dict[str, Any]] = {}


def field_type(cls: type, f: dataclasses.Field) -> Tuple[type, bool, bool]:
    """``(scalar type, optional, is_sequence)``: ``Optional[Tuple[float, ...]]`` gives ``(float, True, True)``."""
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    hint = _HINTS[cls][f.name]
    optional = False
    if typing.get_origin(hint) is Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        optional = len(args) < len(typing.get_args(hint))
        hint = args[0]
    if typing.get_origin(hint) in (tuple, Tuple):
        return typing.get_args(hint)[0], optional, True
    return hint, optional, False


def _scalar(value: Any, kind: type, flag: str) -> Any:
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "false", "0", "no"):
            return value.lower() in ("true", "1", "yes")
        raise SettingError(f"--{flag}={value!r}: expected true or false.")
    if kind is int:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise SettingError(f"--{flag}={value!r}: expected an integer.")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise SettingError(f"--{flag}={value!r}: expected an integer.") from None
    if kind is float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise SettingError(f"--{flag}={value!r}: expected a number.") from None
        if math.isnan(number):
            raise SettingError(f"--{flag}=nan: expected a number.")
        return number
    return str(value)


def coerce(cls: type, f: dataclasses.Field, value: Any) -> Any:
    """``value`` converted to the setting's type and validated.

    Accepts what the command line, a recipe or ``config.json`` give: strings for numbers and
    booleans, lists or comma-separated strings for sequences.

    Raises:
        SettingError: one line naming the flag, the value and what is accepted.
    """
    meta = field_meta(f)
    flag = meta.flag or f.name
    kind, optional, sequence = field_type(cls, f)
    if value is None:
        if optional:
            return None
        raise SettingError(f"--{flag} needs a value ({kind.__name__}).")
    if sequence:
        if isinstance(value, str):
            value = [v for v in value.split(",") if v.strip() != ""]
        value = tuple(_scalar(v.strip() if isinstance(v, str) else v, kind, flag) for v in value)
        items = value
    else:
        value = _scalar(value, kind, flag)
        items = (value,)
    choices = meta.choice_list()
    for item in items:
        if choices is not None and item not in choices:
            raise SettingError(f"--{flag}={item}: must be one of {', '.join(map(str, choices))}.")
        if meta.minimum is not None and item < meta.minimum:
            raise SettingError(f"--{flag}={item}: must be at least {meta.minimum:g}.")
        if meta.maximum is not None and item > meta.maximum:
            raise SettingError(f"--{flag}={item}: must be at most {meta.maximum:g}.")
    if meta.check is not None:
        problem = meta.check(value)
        if problem:
            raise SettingError(f"--{flag}={_text(value)}: {problem}")
    return value


def _text(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)
