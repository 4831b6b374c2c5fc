"""Runs a mode from a resolved configuration: the later modes' reading of a run's own settings, the
backend's set-up, and the one-line errors of the command line.

``main.py`` resolves the command line into a :class:`run_config.Resolved` and calls
:func:`run_command_line`; the Python API (``modelzoo.py``) calls :func:`run`.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable, Dict, List, Optional, Sequence

from absl import logging

import run_dir
import zoo
from backends.base import Backend
from modes import assemble
from modes.evaluate import evaluate, train_and_evaluate
from modes.export import export
from modes.predict import predict
from modes.train import train
from run_config import Layer, Resolved, resolve
from run_config.fields import SettingError
from run_config.persist import CONFIG_NAME, read
from run_config.resolve import SETTINGS

__all__ = ["LATER_MODES", "MODES", "configure", "find_saved_config", "run", "run_command_line"]

MODES: Dict[str, Callable[[Resolved, Backend], Any]] = {
    "train": train,
    "evaluate": evaluate,
    "train_and_evaluate": train_and_evaluate,
    "predict": predict,
    "export": export,
}
# Modes that use a finished run: they read its configuration.
LATER_MODES = ("evaluate", "predict", "export")
# What a later mode takes from the run's configuration (the rest is the command line's or default).
_SAVED_GROUPS = ("model", "data", "augment")
_SAVED_FLAGS = ("model_ema", "log_name", "seed", "label_offset")


def find_saved_config(run: Resolved) -> Optional[str]:
    """The configuration document of the run a later mode works on, or None.

    Looks beside ``--checkpoint_path`` (its ``.settings.json``, then ``config.json`` in its directory and
    the directory above), then in ``--checkpoint_dir``, ``--log_dir`` (and its rank-0 directory), then the
    default run directory.
    """
    from runs.checkpoints import SETTINGS_SUFFIX

    config = run.config
    candidates: List[str] = []
    path = config.evaluation.checkpoint_path
    if path:
        prefix = path[:-len(".index")] if path.endswith(".index") else path
        candidates.append(prefix + SETTINGS_SUFFIX)
        directory = prefix if os.path.isdir(prefix) else os.path.dirname(os.path.abspath(prefix))
        candidates += [os.path.join(directory, CONFIG_NAME), os.path.join(os.path.dirname(directory), CONFIG_NAME)]
    for directory in (config.checkpoint.checkpoint_dir, config.logging.log_dir):
        if directory:
            candidates += [os.path.join(directory, CONFIG_NAME), os.path.join(directory, "0", CONFIG_NAME)]
    if not (path or config.checkpoint.checkpoint_dir or config.logging.log_dir):
        candidates.append(os.path.join(run_dir.default_log_dir(config.distribution.rank_size, 0), CONFIG_NAME))
    return next((c for c in candidates if os.path.isfile(c)), None)


def configure(run: Resolved, layers: Sequence[Layer]) -> Resolved:
    """The configuration a mode runs with: for evaluate, predict and export, the run's own settings.

    A later mode reads the finished run's configuration (:func:`find_saved_config`) as a layer between
    the model's recipe and the user's flag files and command line: the network, its classes and input
    size, the data and the evaluation transform are the run's. A setting that defines what the
    checkpoint is (role ``meaning``) may not be given another value; the others may (the evaluation
    batch, the data directory...), and the log says which the command line changed.

    Raises:
        SettingError: a setting that defines the checkpoint given a different value (one line).
    """
    if run.config.mode not in LATER_MODES:
        return run
    path = find_saved_config(run)
    if path is None:
        logging.info("No config.json of the run found (a run from before configurations were saved, or converted "
                     "weights): using the command line's settings.")
        return run
    _, _, values = read(path)
    saved = {flag: value for flag, value in values.items() if SETTINGS[flag].group in _SAVED_GROUPS
             or flag in _SAVED_FLAGS}
    source = f"run {path}"
    saved_layer = Layer(source, saved)
    fixed = [flag for flag in saved if SETTINGS[flag].meta.role == "meaning"]
    resolved = resolve([saved_layer] + list(layers), recipe_of=zoo.recipe_settings, fixed_from=(saved_layer, fixed))
    overridden = [flag for flag in saved if resolved.sources.get(flag) not in (source, None)
                  and not resolved.sources[flag].startswith("derived")]
    logging.info("Settings of the run from %s%s", path,
                 f"; the command line overrides: {', '.join('--' + f for f in overridden)}" if overridden else "")
    return resolved


def run(resolved: Resolved, *, argv: Optional[Sequence[str]] = None) -> Any:
    """Sets the backend up and runs the configured mode; returns the mode's result.

    Args:
        resolved: the configuration (after :func:`configure` for later modes).
        argv: the command line a launcher re-runs for each rank (None: this process trains alone).

    Returns:
        The mode's result, or the exit code of the launched ranks when this process launched them.
    """
    from keras_compat import set_precision_policy, set_random_seed

    config = resolved.config
    backend = assemble.make_backend(config)
    launched = backend.maybe_launch(argv) if argv is not None else None
    if launched is not None:
        return launched
    backend.setup()
    # training logs it with the run; other modes here
    precision_note = backend.resolve_precision(model=config.model.name,
                                               fp32_faster_on=zoo.get_recipe(config.model.name).fp32_faster_on)
    if config.mode not in ("train", "train_and_evaluate"):
        logging.info("%s", precision_note)
    set_precision_policy(backend.precision, float32_layers=backend.float32_layers)
    if config.seed is not None:
        set_random_seed(config.seed)
    logging.info("Running --mode=%s on %s", config.mode, backend.describe())
    import tensorflow as tf

    from datasets import bad_data

    try:
        result = MODES[config.mode](resolved, backend)
    except tf.errors.OpError:
        bad_data.raise_if_over_limit()  # --strict or --max_bad_images stopped the input: one line naming it
        raise
    backend.finish()
    return result


def run_command_line(resolved: Resolved, layers: Sequence[Layer], argv: Sequence[str]) -> int:
    """:func:`run` for ``main.py``: the run's configuration for later modes, then one-line errors and exit codes."""
    from runs.checkpoints import CheckpointSaveError
    from runs.preemption import PREEMPTED_EXIT_CODE, TrainingPreempted

    try:
        resolved = configure(resolved, layers)
        result = run(resolved, argv=argv)
        return result if isinstance(result, int) and not isinstance(result, bool) else 0
    except TrainingPreempted as e:  # SIGTERM/SIGINT: saved; a distinct code tells schedulers to requeue
        print(str(e), file=sys.stderr, flush=True)
        return PREEMPTED_EXIT_CODE
    except (SettingError, ValueError, FileNotFoundError, FileExistsError, FloatingPointError, CheckpointSaveError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # a peer rank died: one line naming it, not TensorFlow's page of its collective's error
        from backends.launcher import lost_peer_message

        line = lost_peer_message(e)
        if line is None:
            raise
        print(f"error: {line}", file=sys.stderr)
        return 1
