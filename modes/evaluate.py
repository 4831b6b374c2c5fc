"""``--mode=evaluate`` (every checkpoint of a run, or one) and ``--mode=train_and_evaluate``.

Evaluation reads the run's own configuration (``config.json`` beside the checkpoints, see
:func:`modes.runner.configure`): the model, its classes, input size and evaluation transform are
the run's, whatever the command line's defaults are.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional

import tensorflow as tf

import zoo
from backends.base import Backend
from datasets import bad_data
from evaluation.evaluator import (
    EvalReport,
    EvalResult,
    Evaluator,
    checkpoint_step,
    checkpoints_to_evaluate,
    evaluation_every_steps,
    log_raw,
    readable_num_classes,
)
from evaluation.predictor import evaluation_config
from modes import assemble
from modes.train import train
from run_config import Resolved, RunConfig
from runs.checkpoints import READ_ERRORS, checkpoint_problem, previous_checkpoint
from training.ema import load_ema_weights
from training.log import TrainLog
from training.summaries import attach_summaries
from training.trainer import PeriodicHook
from weights.checkpoint import checkpoint_mtime, load_weights

__all__ = ["evaluate", "train_and_evaluate"]


@dataclass
class _EvalSetup:
    """What both modes need: the dataset, sizes and the validation input function."""

    dataset: Any
    recipe: Any
    num_classes: int
    global_batch: int  # of training, for the epoch column
    num_train: Optional[int]
    dataset_fn: Callable
    val_size: Optional[int]
    preprocess: Optional[Callable] = None  # normalisation on the device (--normalize_on)

    def epoch_at(self, step: int) -> float:
        return step * self.global_batch / self.num_train if self.num_train else math.nan


def _setup(config: RunConfig, backend: Backend, dataset=None, num_classes: Optional[int] = None) -> _EvalSetup:
    evaluated = evaluation_config(config)  # FixRes: the model and its input at --val_crop_size
    if evaluated is not config:
        config, dataset = evaluated, None  # a training run's dataset is built at the training crop
    recipe = assemble.model_recipe(config)
    if dataset is None:
        dataset = assemble.make_dataset(config, recipe)
    num_classes = num_classes or config.model.num_classes or dataset.num_classes
    try:
        num_train = dataset.num_examples("train")
    except (FileNotFoundError, ValueError, OSError):  # only the validation split may be present
        num_train = None
    eval_batch = config.evaluation.eval_batch_size or config.data.batch_size
    global_eval_batch = eval_batch * backend.num_replicas
    on_device = assemble.normalize_on_device(config, backend)

    def dataset_fn(ctx: Optional[tf.distribute.InputContext]) -> tf.data.Dataset:
        batch = ctx.get_per_replica_batch_size(global_eval_batch) if ctx else eval_batch
        return dataset.input_fn("validation", training=False, batch_size=batch, input_context=ctx,
                                **({"normalize": False} if on_device else {}))

    return _EvalSetup(dataset=dataset, recipe=recipe, num_classes=num_classes,
                      global_batch=config.data.batch_size * backend.num_replicas, num_train=num_train,
                      dataset_fn=dataset_fn, val_size=dataset.num_examples("validation"),
                      preprocess=dataset.normalize if on_device else None)


def _open_log(config: RunConfig, backend: Backend, log_dir: str) -> TrainLog:
    return TrainLog(log_dir, config.logging.log_name, prefix=f"[rank {backend.rank}] " if backend.world_size > 1
                    else "")


def _rank_sum(backend: Backend) -> Callable[[int], int]:
    """Adds an integer over the processes of the backend (the identity on one process)."""
    return lambda n: int(backend.reduce_sum(tf.constant(n, tf.int64)))


def evaluate(run: Resolved, backend: Backend, checkpoints: Optional[List[str]] = None) -> List[EvalResult]:
    """Evaluates every checkpoint of the run (or ``--checkpoint_path``) on the validation split.

    Args:
        run: the resolved configuration (the run's own, see :func:`modes.runner.configure`).
        backend: the set-up backend.
        checkpoints: these checkpoint prefixes instead of the ones the configuration names.
    """
    config = run.config
    log_dir, ckpt_dir = assemble.rank_dirs(config, backend)
    paths = list(checkpoints or checkpoints_to_evaluate(config.evaluation.checkpoint_path, ckpt_dir))
    setup = _setup(config, backend, num_classes=config.model.num_classes)
    stored_classes = readable_num_classes(paths)
    if stored_classes != setup.num_classes:
        raise ValueError(
            f"{paths[0]} has a {stored_classes}-class classifier, the dataset {setup.dataset.name} has "
            f"{setup.num_classes} classes; evaluate it on data with the same classes (or pass --num_classes)."
        )
    with backend.scope():
        model = zoo.create_model(config.model.name, recipe=setup.recipe, num_classes=setup.num_classes)
    evaluator = Evaluator(zoo.inference_model(model), backend, num_classes=setup.num_classes,
                          label_smoothing=config.regularization.label_smoothing, preprocess=setup.preprocess)
    log = _open_log(config, backend, log_dir)
    summaries = attach_summaries(log, log_dir, enabled=backend.is_chief)
    report = EvalReport(log, setup.val_size, bad_data.tracker_of(setup.dataset, "validation"), _rank_sum(backend))
    use_ema = config.regularization.model_ema
    try:
        if use_ema:
            log.info("--model_ema: evaluating the weight averages stored in the checkpoints")
        while paths:
            path = paths.pop(0)
            problem = checkpoint_problem(path)
            if problem is None:
                try:
                    load_weights(model, path)
                except READ_ERRORS:
                    problem = checkpoint_problem(path, full=True)  # damaged data, else another model: raise
                    if problem is None:
                        raise
            if problem is not None:
                # A damaged newest checkpoint (evaluated alone): fall back to the newest readable one before it.
                older = previous_checkpoint(path) if not paths and not report.results else None
                log.info(f"Checkpoint {path} cannot be read ({problem}): skipped"
                         + (f"; falling back to the previous one, {older}." if older else "."))
                if older:
                    paths.append(older)
                continue
            if use_ema:
                load_ema_weights(model, path)
            step = checkpoint_step(path)
            totals = evaluator.run(setup.dataset_fn)
            report.add(EvalResult(step=step, epoch=setup.epoch_at(step), totals=totals,
                                  timestamp=checkpoint_mtime(path), checkpoint=os.path.abspath(path)))
        report.finish()
    finally:
        if summaries:
            summaries.close()
        log.close()
    return report.results


def _model_at(setup: _EvalSetup, model, config: RunConfig, backend: Backend, num_classes: int):
    """The model evaluation runs: the training model itself, or (FixRes: ``--val_crop_size`` differs from the
    training crop) the same network built at the evaluation size, which :func:`_copy_weights` fills."""
    if evaluation_config(config) is config:
        return model
    with backend.scope():
        return zoo.create_model(config.model.name, recipe=setup.recipe, num_classes=num_classes)


def _copy_weights(model, eval_model) -> None:
    """Assigns the training model's weights to the evaluation model built at another input size (FixRes)."""
    if eval_model is model:
        return
    if [tuple(w.shape) for w in model.weights] != [tuple(w.shape) for w in eval_model.weights]:
        raise ValueError(f"{model.name}: the evaluation model at another input size has other weights than the "
                         "trained one; evaluate at the training size (leave --val_crop_size out).")
    for source, target in zip(model.weights, eval_model.weights):
        target.assign(source)


def train_and_evaluate(run: Resolved, backend: Backend):
    """Trains, evaluating every ``--epochs_between_evals`` epochs and at the end."""
    config = run.config
    state: Dict[str, Any] = {}

    def make_hooks(*, model, dataset, log, config: Any, ema=None, **_):
        train_config = config
        setup = _setup(run.config, backend, dataset=dataset, num_classes=train_config.num_classes)
        setup.global_batch, setup.num_train = train_config.global_batch, train_config.num_train_examples
        eval_model = _model_at(setup, model, run.config, backend, train_config.num_classes)
        evaluator = Evaluator(zoo.inference_model(eval_model), backend, num_classes=train_config.num_classes,
                              label_smoothing=run.config.regularization.label_smoothing, preprocess=setup.preprocess)
        report = EvalReport(log, setup.val_size, bad_data.tracker_of(setup.dataset, "validation"),
                            _rank_sum(backend))
        ckpt_dir = assemble.rank_dirs(run.config, backend)[1]
        state["report"] = report

        def hook(step: int) -> None:
            _copy_weights(model, eval_model)
            totals = evaluator.run(setup.dataset_fn)
            if ema is not None and ema.has_average:  # as torchvision: both, the table shows the average
                log_raw(log, step, totals)
                with ema.swapped_in():
                    _copy_weights(model, eval_model)
                    totals = evaluator.run(setup.dataset_fn)
            prefix = os.path.join(ckpt_dir, f"model.ckpt-{step}")
            saved = os.path.exists(prefix + ".index")
            report.add(EvalResult(step=step, epoch=setup.epoch_at(step), totals=totals,
                                  timestamp=checkpoint_mtime(prefix) if saved else time.time(),
                                  checkpoint=os.path.abspath(prefix) if saved else None))
            if step >= train_config.max_steps:
                report.finish(repeat_table=len(report.results) > 1)

        every = evaluation_every_steps(run.config.evaluation.epochs_between_evals,
                                       train_config.num_train_examples // train_config.global_batch,
                                       train_config.max_steps)
        return [PeriodicHook(every_steps=every, fn=hook, at_end=True)]

    result = train(run, backend, make_hooks=make_hooks)
    report = state.get("report")
    if report is not None and not report.results:
        # Training had nothing left to do (resumed at the last step): evaluate its last checkpoint.
        ckpt_dir = assemble.rank_dirs(config, backend)[1]
        evaluate(run, backend, checkpoints=checkpoints_to_evaluate(None, ckpt_dir)[-1:])
    return result
