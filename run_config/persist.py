"""``config.json``: a run's resolved configuration on disk, and read back into the same dataclasses.

The document holds the configuration (group by group), where each value came from, the facts the run
derived when it started (global batch, the learning rate it trains with, the dataset's classes and
size) and the versions that wrote it. Training writes it atomically into its log directory (and the
checkpoint directory, when that is elsewhere); the same document is stored beside every checkpoint, so
evaluate, predict, export and resume know exactly what a checkpoint was trained with.
"""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any, Dict, Mapping, Optional, Tuple

from atomic import write_text
from run_config.fields import SettingError
from run_config.groups import GROUPS, RunConfig, group_fields
from run_config.resolve import SETTINGS, Resolved, with_values
from run_dir import CONFIG_NAME

__all__ = ["CONFIG_NAME", "FORMAT", "PROJECT_VERSION", "document", "find_run_config", "from_document", "read",
           "write"]

FORMAT = 1
PROJECT_VERSION = "2026.12"


def _commit() -> Optional[str]:
    """The repository's commit, if this checkout is a git repository (for config.json; best effort)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        out = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def document(resolved: Resolved, derived: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """The JSON document of a resolved configuration (see the module docstring)."""
    versions: Dict[str, Any] = {"project": PROJECT_VERSION, "commit": _commit()}
    try:
        import tensorflow as tf  # noqa: F401 - only its version, and only when it is already loaded

        versions["tensorflow"] = tf.__version__
    except ImportError:
        pass
    return {
        "format": FORMAT,
        "versions": versions,
        "config": resolved.config.to_dict(),
        "sources": {flag: resolved.sources.get(flag, "default") for flag in sorted(_flags())},
        "derived": dict(derived or {}),
    }


def _flags():
    return {s.flag for s in SETTINGS.values()}


def write(path: str, resolved: Resolved, derived: Optional[Mapping[str, Any]] = None) -> str:
    """Writes the document atomically to ``path`` (a file, or a directory to hold ``config.json``)."""
    if os.path.isdir(path):
        path = os.path.join(path, CONFIG_NAME)
    write_text(path, json.dumps(document(resolved, derived), indent=1, sort_keys=False) + "\n")
    return path


def from_document(doc: Mapping[str, Any]) -> Tuple[RunConfig, Dict[str, Any], Dict[str, Any]]:
    """``(config, derived, flat values)`` of a document; the config is built from the stored values.

    Settings this version does not know are ignored (a run written by an older version); settings it
    added since take their defaults.

    Raises:
        SettingError: a stored value is invalid, naming the setting.
    """
    if doc.get("format") != FORMAT:
        raise SettingError(f"config format {doc.get('format')!r} is not {FORMAT}: written by another version.")
    stored = doc.get("config", {})
    values: Dict[str, Any] = {}
    for group in GROUPS:
        holder = stored if group == "run" else stored.get(group, {})
        for f in group_fields(group):
            flag = SETTINGS_BY_FIELD[(group, f.name)]
            if f.name in holder:
                values[flag] = holder[f.name]
    return with_values(RunConfig(), values), dict(doc.get("derived", {})), values


SETTINGS_BY_FIELD = {(s.group, s.field.name): s.flag for s in SETTINGS.values()}


def read(path: str) -> Tuple[RunConfig, Dict[str, Any], Dict[str, Any]]:
    """:func:`from_document` of the file at ``path``.

    Raises:
        FileNotFoundError; SettingError for a damaged file (one line naming it).
    """
    with open(path, encoding="utf-8") as f:
        try:
            doc = json.load(f)
        except json.JSONDecodeError as e:
            raise SettingError(f"{path} is not a readable config.json ({e}); delete it or pass the settings.") from None
    try:
        return from_document(doc)
    except SettingError as e:
        raise SettingError(f"{path}: {e}") from None


def find_run_config(*directories: Optional[str]) -> Optional[str]:
    """The first ``config.json`` in ``directories`` (None entries skipped), or None."""
    for directory in directories:
        if directory:
            path = os.path.join(directory, CONFIG_NAME)
            if os.path.isfile(path):
                return path
    return None
