"""Assembles model, backend, dataset and optimizer from flags and runs a mode.

``main.py`` parses and validates flags and calls :func:`run`; everything that computes lives in
the packages this module wires together.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any, Callable, Optional, Sequence

import tensorflow as tf
from absl import logging

import run_dir
import zoo
from backends.base import Backend
from datasets import bad_data
from datasets.base import ImageDataset
from keras_compat import create_optimizer_variables, set_precision_policy, set_random_seed
from registry import BACKENDS, DATASETS
from runs import preemption, resume_check, run_lock
from runs.checkpoints import Checkpointer
from training.consistency import check_weights_in_sync
from training.ema import checkpoint_has_ema, maybe_ema
from training.log import TrainLog
from training.optimizers import build_optimizer, decay_in_optimizer
from training.progress import progress_line
from training.recipe_flags import apply_recipe_defaults, recipe_values_in_use
from training.schedules import WarmupDecaySchedule
from training.summaries import attach_summaries
from training.sync_batch_norm import enable_sync_batch_norm
from training.trainer import PeriodicHook, TrainConfig, Trainer, TrainResult
from training.weight_decay import DecayRule, decay_coefficients
from training.weight_decay import describe as describe_decay
from zoo.recipe import ModelRecipe

__all__ = ["dataset_name", "decay_rule", "default_log_dir", "make_backend", "make_dataset", "model_kwargs", "rank_dirs",
           "optimizer_kwargs", "restore_exclude", "run", "scaled_lr", "schedule_kwargs", "train"]


def dataset_name(flags: Any) -> str:
    """The dataset to use: ``--dataset``, else ``synthetic`` for ``--synthetic``, else inferred."""
    if flags.synthetic:
        if flags.dataset not in (None, "synthetic"):
            raise ValueError(f"--synthetic conflicts with --dataset={flags.dataset}; pass one of them.")
        return "synthetic"
    if flags.dataset:
        return flags.dataset
    if flags.data_dir:
        return _infer_dataset(flags.data_dir)
    if "demo" in DATASETS:
        return "demo"
    raise ValueError("no data: pass --data_dir=DIR (ImageNet TFRecords or an image folder) or --synthetic.")


def _infer_dataset(data_dir: str) -> str:
    """``imagenet`` for TFRecord shards, ``image_folder`` for train/ and val/ folders."""
    if tf.io.gfile.glob(os.path.join(data_dir, "train-*")) and "imagenet" in DATASETS:
        return "imagenet"
    if "image_folder" in DATASETS:
        return "image_folder"
    raise ValueError(f"--data_dir={data_dir}: cannot tell its format; pass --dataset (one of {DATASETS.list()}).")


def make_backend(flags: Any) -> Backend:
    """The backend named by ``--backend``, configured from flags."""
    return BACKENDS.get(flags.backend).from_flags(flags)


def make_dataset(flags: Any, recipe: ModelRecipe) -> ImageDataset:
    """The dataset chosen by :func:`dataset_name`, configured from flags and the model's recipe."""
    return DATASETS.get(dataset_name(flags)).from_flags(flags, recipe)


def default_log_dir(rank_size: int, rank: int) -> str:
    """``results/<N>p/<rank>``, the seed's layout (:mod:`run_dir` owns it)."""
    return run_dir.default_log_dir(rank_size, rank)


def rank_dirs(log_dir: Optional[str], checkpoint_dir: Optional[str], backend: Backend):
    """This rank's log directory and the checkpoint directory every rank shares (see :func:`run_dir.rank_dirs`)."""
    return run_dir.rank_dirs(log_dir, checkpoint_dir, rank_size=backend.num_replicas, rank=backend.rank,
                             multi_process=backend.world_size > 1)


def model_kwargs(flags: Any) -> dict:
    """Optional builder arguments from flags; None (the model's own default) is dropped by ``zoo.create_model``."""
    return {"initializer": getattr(flags, "initializer", None), "dropout": getattr(flags, "dropout", None),
            "stochastic_depth_rate": getattr(flags, "stochastic_depth_rate", None)}


def normalize_on_device(flags: Any, backend: Backend) -> bool:
    """``--normalize_on``: True when uint8 batches go to the device and the step normalises them.

    On accelerators that moves a quarter of the bytes from host to device. On CPUs the batch does not
    move, and normalising in the step measured no faster than in the input pipeline's threads beside
    it (AlexNet 91 vs 92 img/s fp32, bench/RESULTS.md), so ``auto`` keeps it there.
    """
    choice = getattr(flags, "normalize_on", "auto")
    if choice == "auto":
        return backend.name != "cpu"
    return choice == "device"


def decay_rule(flags: Any, recipe: ModelRecipe) -> DecayRule:
    """The run's weight-decay selection: the flags, with the recipe's embedding variables."""
    return DecayRule(
        weight_decay=flags.weight_decay,
        norm_weight_decay=getattr(flags, "norm_weight_decay", None),
        bias_weight_decay=getattr(flags, "bias_weight_decay", None),
        embedding_weight_decay=getattr(flags, "embedding_weight_decay", None),
        embedding_patterns=tuple(recipe.embedding_variables),
    )


def scaled_lr(flags: Any, recipe: ModelRecipe, global_batch: int, log: Optional[TrainLog] = None) -> float:
    """``--lr``; when it comes from the recipe, scaled linearly from the recipe's global batch to this run's.

    A recipe's rate belongs to its global batch (torchvision's ResNet recipe: 0.1 for 8 x 32 images). A
    run that keeps the recipe's rate but not its batch would train with a rate many times too large or
    small, so the rate is scaled, as the Ascend recipe scaled its own (0.06 for 1024, 0.015 for 256).
    A ``--lr`` given on the command line or in a flag file is used as it is.
    """
    reference = recipe.lr_reference_batch
    if not reference or "lr" not in recipe_values_in_use(flags, recipe.hparams) or global_batch == reference:
        return flags.lr
    lr = flags.lr * global_batch / reference
    if log is not None:
        log.info(f"--lr={lr:.6g}: the {flags.model} recipe's {flags.lr:g} for a global batch of {reference}, scaled "
                 f"linearly to this run's {global_batch} (set --lr to choose it yourself)")
    return lr


def restore_exclude(flags: Any, recipe: ModelRecipe) -> Sequence[str]:
    """``--restore_exclude``, by default the model's classifier layers."""
    value = getattr(flags, "restore_exclude", None)
    return tuple(recipe.classifier) if value is None else tuple(value)


def schedule_kwargs(flags: Any) -> dict:
    """The learning-rate schedule's recipe-stack settings (``WarmupDecaySchedule`` keywords) from flags."""
    return dict(warmup_method=getattr(flags, "lr_warmup_method", "linear"),
                warmup_start_factor=getattr(flags, "lr_warmup_decay", None), lr_min=getattr(flags, "lr_min", 0.0),
                power=getattr(flags, "lr_power", 1.0), unit=getattr(flags, "lr_schedule_unit", "epoch"),
                decay_after_warmup=getattr(flags, "lr_decay_after_warmup", False),
                decay_steps=getattr(flags, "lr_decay_steps", None))


def optimizer_kwargs(flags: Any) -> dict:
    """The recipe-stack optimizers' hyper-parameters (``build_optimizer`` keywords) from flags."""
    return dict(beta1=getattr(flags, "adam_beta1", 0.9), beta2=getattr(flags, "adam_beta2", 0.999),
                rho=getattr(flags, "rmsprop_decay", 0.9),
                trust_coefficient=getattr(flags, "lars_trust_coefficient", 0.001))


def _log_ema_start(ema, latest: Optional[str], log: TrainLog) -> None:
    """Says where the weight average starts: the checkpoint's, or the restored weights when it has none."""
    if ema is None:
        return
    log.info(f"--model_ema: decay {ema.decay:.6g} per update (adjusted), every {ema.every_steps} steps")
    if latest and not checkpoint_has_ema(latest):
        log.info(f"--model_ema: {latest} holds no weight average (written without --model_ema); the average "
                 "starts from the restored weights at the next update, evaluation uses the raw weights until then.")


def train(flags: Any, backend: Backend, *,
          make_hooks: Optional[Callable[..., Sequence[PeriodicHook]]] = None) -> TrainResult:
    """Trains ``--model`` on ``--dataset`` with the shared optimizer stack (``--mode=train``).

    The run holds the lock of the directories it writes (:mod:`runs.run_lock`) and turns SIGTERM
    and SIGINT into a checkpoint and :class:`runs.preemption.TrainingPreempted`.

    Args:
        flags: parsed flags.
        backend: the set-up backend.
        make_hooks: called as ``make_hooks(model=, dataset=, log=, config=)`` once the model
            exists; returns periodic hooks for the trainer (train_and_evaluate's evaluation).
    """
    log_dir, ckpt_dir = rank_dirs(flags.log_dir, flags.checkpoint_dir, backend)
    # Every rank locks its own log directory; only the chief the checkpoint directory all ranks share.
    locked = [log_dir] + ([ckpt_dir] if flags.do_checkpoint and backend.is_chief else [])
    with run_lock.holding(locked, warn=logging.warning), preemption.handling():
        return _train(flags, backend, log_dir, ckpt_dir, make_hooks=make_hooks)


def _train(flags: Any, backend: Backend, log_dir: str, ckpt_dir: str, *,
           make_hooks: Optional[Callable[..., Sequence[PeriodicHook]]] = None) -> TrainResult:
    """:func:`train`, once the run holds its directories.

    Args:
        flags: parsed flags.
        backend: the set-up backend.
        make_hooks: called as ``make_hooks(model=, dataset=, log=, config=)`` once the model
            exists; returns periodic hooks for the trainer (train_and_evaluate's evaluation).
    """
    recipe = zoo.get_recipe(flags.model).scaled(flags.image_size)
    dataset = make_dataset(flags, recipe)
    num_classes = flags.num_classes or dataset.num_classes
    global_batch = flags.batch_size * backend.num_replicas
    num_train = dataset.num_examples("train")
    steps_per_epoch = num_train // global_batch
    if steps_per_epoch < 1:
        raise ValueError(
            f"the training split has {num_train} images, fewer than one global batch of {global_batch} "
            f"(--batch_size={flags.batch_size} x {backend.num_replicas} replicas); lower --batch_size."
        )
    max_steps = flags.max_train_steps or int(round(flags.max_epochs * steps_per_epoch))
    # A live progress line on a terminal; it reads the step counter of the optimizer built below.
    progress = progress_line(sys.stdout, read_step=lambda: optimizer.iterations.numpy(), total_steps=max_steps,
                             global_batch=global_batch, steps_per_epoch=steps_per_epoch) if backend.is_chief else None
    log = TrainLog(log_dir, flags.log_name, write_files=True, stream=progress,
                   prefix=f"[rank {backend.rank}] " if backend.world_size > 1 else "")
    summaries = attach_summaries(log, log_dir, enabled=backend.is_chief)
    log.info(
        f"model={flags.model} dataset={dataset.name} {backend.describe()} classes={num_classes} "
        f"image_size={recipe.input_size} global_batch={global_batch} steps_per_epoch={steps_per_epoch} "
        f"max_steps={max_steps} log_dir={log_dir}"
    )
    log.info(backend.resolve_precision())
    from_recipe = recipe_values_in_use(flags, recipe.hparams)
    if from_recipe:
        log.info(f"From the {flags.model} recipe (flags not set): "
                 + " ".join(f"--{k}={_flag_text(v)}" for k, v in sorted(from_recipe.items())))

    lr = scaled_lr(flags, recipe, global_batch, log)
    schedule = WarmupDecaySchedule(
        lr, steps_per_epoch, warmup_epochs=flags.warmup_epochs, max_epochs=flags.max_epochs,
        kind=flags.lr_schedule, boundaries=[float(b) for b in flags.lr_decay_boundaries or ()],
        decay_factor=flags.lr_decay_factor, decay_epochs=flags.lr_decay_epochs, **schedule_kwargs(flags),
    )
    with backend.scope():
        model = zoo.create_model(flags.model, recipe=recipe, num_classes=num_classes, **model_kwargs(flags))
        if getattr(flags, "sync_bn", False):
            synced = enable_sync_batch_norm(model, backend)
            log.info(f"--sync_bn: {synced} batch-norm layers compute statistics over the global batch")
        optimizer = build_optimizer(
            flags.optimizer, schedule, momentum=flags.momentum, use_nesterov=flags.use_nesterov,
            epsilon=flags.optimizer_epsilon, loss_scaling=backend.precision == "fp16",
            decay=decay_coefficients(model, decay_rule(flags, recipe)), **optimizer_kwargs(flags),
        )
        optimizer = backend.wrap_optimizer(optimizer)
        create_optimizer_variables(optimizer, model.trainable_variables)
        ema = maybe_ema(flags, model, global_batch=global_batch, warmup_steps=schedule.warmup_steps)

    checkpointer = None
    if flags.do_checkpoint:
        settings = resume_check.run_settings(flags, num_classes=num_classes, image_size=recipe.input_size,
                                             global_batch=global_batch, lr=lr, num_train_examples=num_train)
        check = resume_check.make_check(settings, allow_change=getattr(flags, "allow_recipe_change", False),
                                        log=log.info, lr_at=lambda step: schedule.value(max(step - 1, 0)))
        checkpointer = Checkpointer(ckpt_dir, max_to_keep=flags.max_checkpoint_to_save,
                                    is_chief=backend.is_chief, settings=settings, check_settings=check,
                                    log=log.info, model=model, optimizer=optimizer, **({"ema": ema} if ema else {}))
    _log_ema_start(ema, checkpointer.latest if checkpointer else None, log)
    if getattr(flags, "pretrained", None) and not (checkpointer and checkpointer.latest):
        from weights.checkpoint import load_weights  # resuming from checkpoint_dir takes precedence

        loaded = load_weights(model, flags.pretrained, exclude=restore_exclude(flags, recipe))
        log.info(f"Initialised from --pretrained={loaded.path}: {len(loaded.restored)} tensors restored, kept "
                 f"fresh: {', '.join(loaded.skipped) or 'none'}")
    config = TrainConfig(
        num_classes=num_classes, per_replica_batch=flags.batch_size, global_batch=global_batch,
        num_train_examples=num_train, max_steps=max_steps, iterations_per_loop=flags.iterations_per_loop,
        save_summary_steps=flags.save_summary_steps, save_checkpoints_steps=flags.save_checkpoints_steps,
        label_smoothing=flags.label_smoothing, weight_decay=flags.weight_decay, decay=decay_rule(flags, recipe),
        aux_loss_weights=tuple(recipe.aux_loss_weights), decoupled_decay=decay_in_optimizer(flags.optimizer),
        clip_grad_norm=flags.clip_grad_norm, nan_policy=flags.nan_policy,
        max_consecutive_skips=flags.max_consecutive_skips,
    )
    decay_summary = describe_decay(model, config.decay_rule)
    log.info("Weight decay: " + ", ".join(f"{kind} {rate:g} ({count} variables)"
                                          for kind, (count, rate) in sorted(decay_summary.items())))
    on_device = normalize_on_device(flags, backend)
    log.info(f"Images are normalised on the {'device, from uint8 batches' if on_device else 'host'} "
             f"(--normalize_on={getattr(flags, 'normalize_on', 'auto')})")
    hooks = list(make_hooks(model=model, dataset=dataset, log=log, config=config, ema=ema)) if make_hooks else []
    # Unreadable images and records, logged at each log line (datasets/bad_data.py).
    skipped = bad_data.BadDataLog(dataset, "train", log.info)
    hooks.insert(0, PeriodicHook(every_steps=flags.save_summary_steps, fn=skipped.update))
    trainer = Trainer(model=model, optimizer=optimizer, schedule=schedule, backend=backend, config=config,
                      log=log, checkpointer=checkpointer, hooks=hooks, ema=ema,
                      preprocess=dataset.normalize if on_device else None)

    def dataset_fn(ctx: Optional[tf.distribute.InputContext]) -> tf.data.Dataset:
        batch = ctx.get_per_replica_batch_size(global_batch) if ctx else flags.batch_size
        return dataset.input_fn("train", training=True, batch_size=batch, input_context=ctx,
                                **({"normalize": False} if on_device else {}))

    try:
        if progress:
            progress.start()
        result = trainer.train(dataset_fn)
        skipped.finish()
        check_weights_in_sync(model, backend, log)
        return result
    finally:
        if progress:
            progress.stop()
        if summaries:
            summaries.close()
        log.close()


def _mode(module: str, name: str) -> Callable[[Any, Backend], Any]:
    """A mode implemented in another module, imported when it runs (that module imports this one)."""

    def run_mode(flags: Any, backend: Backend) -> Any:
        return getattr(importlib.import_module(module), name)(flags, backend)

    return run_mode


MODES = {
    "train": train,
    "evaluate": _mode("evaluation.evaluator", "evaluate"),
    "train_and_evaluate": _mode("evaluation.evaluator", "train_and_evaluate"),
    "predict": _mode("evaluation.predictor", "predict"),
    "export": _mode("export.saved_model", "export"),
}


def _flag_text(value: Any) -> str:
    return ",".join(str(v) for v in value) if isinstance(value, (list, tuple)) else str(value)


def run(flags: Any) -> int:
    """Sets the backend up and runs ``--mode``; returns the process exit code."""
    recipe = zoo.get_recipe(flags.model)
    applied = apply_recipe_defaults(flags, flags.model, recipe.hparams)
    if applied:
        logging.info("Model %s: recipe defaults for flags not set: %s", flags.model,
                     " ".join(f"--{k}={_flag_text(v)}" for k, v in sorted(applied.items())))
    backend = make_backend(flags)
    launched = backend.maybe_launch(sys.argv)
    if launched is not None:
        return launched
    backend.setup()
    precision_note = backend.resolve_precision()
    logging.info("%s", precision_note)
    set_precision_policy(backend.precision)
    if flags.seed is not None:
        set_random_seed(flags.seed)
    logging.info("Running --mode=%s on %s", flags.mode, backend.describe())
    try:
        MODES[flags.mode](flags, backend)
    except tf.errors.OpError:
        bad_data.raise_if_over_limit()  # --strict or --max_bad_images stopped the input: one line naming it
        raise
    backend.finish()
    return 0
