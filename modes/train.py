"""``--mode=train``: builds model, dataset and optimizer stack from the run's configuration and trains.

The run logs its whole configuration as a table (setting, value, source), the facts it derived at
start (global batch, the learning rate it trains with and how, the input transform) and writes both
as ``config.json``; the same document is stored beside every checkpoint, so that a resumed run can
be compared with the one that wrote the checkpoint, group by group (:mod:`run_config.compare`).
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable, Dict, Optional, Sequence

import tensorflow as tf
from absl import logging

import zoo
from backends.base import Backend
from datasets import bad_data
from datasets.base import training_input
from keras_compat import create_optimizer_variables
from modes import assemble
from run_config import Resolved, effective_lr, persist, with_values
from run_config.describe import config_table
from runs import preemption, resume_check, run_lock
from runs.checkpoints import Checkpointer
from training import finetune
from training.consistency import check_weights_in_sync
from training.ema import checkpoint_has_ema, maybe_ema
from training.log import TrainLog
from training.optimizers import build_optimizer, decay_in_optimizer
from training.progress import progress_line
from training.schedules import schedule_from_config
from training.summaries import attach_summaries
from training.sync_batch_norm import enable_sync_batch_norm
from training.trainer import PeriodicHook, TrainConfig, Trainer, TrainResult
from training.weight_decay import decay_coefficients
from training.weight_decay import describe as describe_decay

__all__ = ["train"]


def train(run: Resolved, backend: Backend, *,
          make_hooks: Optional[Callable[..., Sequence[PeriodicHook]]] = None) -> TrainResult:
    """Trains the configured model on the configured dataset with the shared optimizer stack.

    The run holds the lock of the directories it writes (:mod:`runs.run_lock`) and turns SIGTERM
    and SIGINT into a checkpoint and :class:`runs.preemption.TrainingPreempted`.

    Args:
        run: the resolved configuration (values and their sources).
        backend: the set-up backend.
        make_hooks: called as ``make_hooks(model=, dataset=, log=, config=, ema=)`` once the model
            exists; returns periodic hooks for the trainer (train_and_evaluate's evaluation).
    """
    config = run.config
    log_dir, ckpt_dir = assemble.rank_dirs(config, backend)
    do_checkpoint = config.checkpoint.do_checkpoint
    # Every rank locks its own log directory; only the chief the checkpoint directory all ranks share.
    locked = [log_dir] + ([ckpt_dir] if do_checkpoint and backend.is_chief else [])
    with run_lock.holding(locked, warn=logging.warning), preemption.handling():
        return _train(run, backend, log_dir, ckpt_dir, make_hooks=make_hooks)


def _train(run: Resolved, backend: Backend, log_dir: str, ckpt_dir: str, *,
           make_hooks: Optional[Callable[..., Sequence[PeriodicHook]]] = None) -> TrainResult:
    config = run.config
    recipe = assemble.model_recipe(config)
    dataset = assemble.make_dataset(config, recipe)
    num_classes = config.model.num_classes or dataset.num_classes
    # The settings the dataset and recipe decided, written into the configuration config.json keeps.
    run = _with_resolved(run, num_classes=num_classes, image_size=recipe.input_size)
    config = run.config
    global_batch = config.data.batch_size * backend.num_replicas
    num_train = dataset.num_examples("train")
    steps_per_epoch = num_train // global_batch
    if steps_per_epoch < 1:
        raise ValueError(
            f"the training split has {num_train} images, fewer than one global batch of {global_batch} "
            f"(--batch_size={config.data.batch_size} x {backend.num_replicas} replicas); lower --batch_size."
        )
    schedule_cfg = config.schedule
    max_steps = schedule_cfg.max_train_steps or int(round(schedule_cfg.max_epochs * steps_per_epoch))
    lr, lr_note = effective_lr(config, global_batch)
    derived: Dict[str, Any] = dict(
        global_batch=global_batch, replicas=backend.num_replicas, lr=lr, num_train_examples=num_train,
        steps_per_epoch=steps_per_epoch, max_steps=max_steps, dataset=dataset.name,
        precision=backend.precision, transforms=assemble.transform_summary(dataset))
    # A live progress line on a terminal; it reads the step counter of the optimizer built below.
    progress = progress_line(sys.stdout, read_step=lambda: optimizer.iterations.numpy(), total_steps=max_steps,
                             global_batch=global_batch, steps_per_epoch=steps_per_epoch) if backend.is_chief else None
    log = TrainLog(log_dir, config.logging.log_name, write_files=True, stream=progress,
                   prefix=f"[rank {backend.rank}] " if backend.world_size > 1 else "")
    summaries = attach_summaries(log, log_dir, enabled=backend.is_chief)
    log.info(
        f"model={config.model.name} dataset={dataset.name} {backend.describe()} classes={num_classes} "
        f"image_size={recipe.input_size} global_batch={global_batch} steps_per_epoch={steps_per_epoch} "
        f"max_steps={max_steps} log_dir={log_dir}"
    )
    log.info(backend.resolve_precision())
    if not zoo.recipe_settings(config.model.name).keys() - {"image_size"}:
        log.info(f"Model {config.model.name} has no training recipe of its own: it trains with the generic defaults "
                 "below (source 'default'); set them on the command line or in a flag file.")
    log.info(f"Learning rate: {lr_note}")
    if backend.is_chief:
        # The console shows what differs from the defaults; the log file and config.json hold everything.
        facts = {k: v for k, v in derived.items() if k != "transforms"}
        log.info(f"Configuration (settings not at their defaults; every setting in {log.log_path} and "
                 f"{os.path.join(log_dir, persist.CONFIG_NAME)}):")
        for line in config_table(run, only_set=True, derived=facts):
            log.info(line)
        for line in config_table(run, derived=facts):
            log.detail(line)
        if derived["transforms"]:
            log.info("Input transform: " + ", ".join(f"{k}={_short(v)}" for k, v in derived["transforms"].items()))
        document = persist.document(run, derived)
        for directory in {log_dir, ckpt_dir}:
            persist.write(directory, run, derived)
    else:
        document = persist.document(run, derived)

    schedule = schedule_from_config(schedule_cfg, lr, steps_per_epoch)
    regularization = config.regularization
    with backend.scope():
        model = zoo.create_model(config.model.name, recipe=recipe, num_classes=num_classes,
                                 **assemble.model_kwargs(config))
        if config.model.sync_bn:
            synced = enable_sync_batch_norm(model, backend)
            log.info(f"--sync_bn: {synced} batch-norm layers compute statistics over the global batch")
        tuning = finetune.prepare(model, config.finetune, recipe.classifier)  # --freeze, --head_lr_multiplier
        for line in tuning.lines:
            log.info(line)
        optimizer = build_optimizer(config.optimizer, schedule, loss_scaling=backend.precision == "fp16",
                                    decay=decay_coefficients(model, assemble.decay_rule(config, recipe)),
                                    lr_multipliers=tuning.lr_multipliers)
        optimizer = backend.wrap_optimizer(optimizer)
        create_optimizer_variables(optimizer, model.trainable_variables)
        ema = maybe_ema(regularization, model, global_batch=global_batch, max_epochs=schedule_cfg.max_epochs,
                        warmup_steps=schedule.warmup_steps)

    checkpointer = None
    if config.checkpoint.do_checkpoint:
        check = resume_check.make_check(document, allow=config.checkpoint.allow_recipe_change, log=log.info,
                                        lr_at=lambda step: schedule.value(max(step - 1, 0)))
        checkpointer = Checkpointer(ckpt_dir, max_to_keep=config.checkpoint.max_checkpoint_to_save,
                                    is_chief=backend.is_chief, settings=document, check_settings=check,
                                    log=log.info, model=model, optimizer=optimizer, **({"ema": ema} if ema else {}))
    _log_ema_start(ema, checkpointer.latest if checkpointer else None, log)
    if config.finetune.pretrained and checkpointer and checkpointer.latest:  # resuming takes precedence
        log.info(f"--pretrained={config.finetune.pretrained} not loaded: resuming from {checkpointer.latest}")
    elif config.finetune.pretrained:
        log.info(finetune.load_pretrained(model, config.model.name, config.finetune, recipe, num_classes,
                                          log=log.info))
    loop = config.loop
    train_config = TrainConfig(
        num_classes=num_classes, per_replica_batch=config.data.batch_size, global_batch=global_batch,
        num_train_examples=num_train, max_steps=max_steps, iterations_per_loop=loop.iterations_per_loop,
        save_summary_steps=config.logging.save_summary_steps,
        save_checkpoints_steps=config.checkpoint.save_checkpoints_steps,
        label_smoothing=regularization.label_smoothing, weight_decay=regularization.weight_decay,
        decay=assemble.decay_rule(config, recipe), aux_loss_weights=tuple(recipe.aux_loss_weights),
        decoupled_decay=decay_in_optimizer(config.optimizer.optimizer),
        clip_grad_norm=config.optimizer.clip_grad_norm, nan_policy=loop.nan_policy,
        max_consecutive_skips=loop.max_consecutive_skips,
    )
    decay_summary = describe_decay(model, train_config.decay_rule)
    log.info("Weight decay: " + ", ".join(f"{kind} {rate:g} ({count} variables)"
                                          for kind, (count, rate) in sorted(decay_summary.items())))
    on_device = assemble.normalize_on_device(config, backend)
    log.info(f"Images are normalised on the {'device, from uint8 batches' if on_device else 'host'} "
             f"(--normalize_on={config.precision.normalize_on})")
    hooks = list(make_hooks(model=model, dataset=dataset, log=log, config=train_config, ema=ema)) \
        if make_hooks else []
    # Unreadable images and records, logged at each log line (datasets/bad_data.py).
    skipped = bad_data.BadDataLog(dataset, "train", log.info)
    hooks.insert(0, PeriodicHook(every_steps=config.logging.save_summary_steps, fn=skipped.update))
    trainer = Trainer(model=model, optimizer=optimizer, schedule=schedule, backend=backend, config=train_config,
                      log=log, checkpointer=checkpointer, hooks=hooks, ema=ema,
                      preprocess=dataset.normalize if on_device else None)

    def dataset_fn(ctx: Optional[tf.distribute.InputContext], start_step: int = 0) -> tf.data.Dataset:
        batch = ctx.get_per_replica_batch_size(global_batch) if ctx else config.data.batch_size
        # A resumed run's stream goes on where the checkpoint's step left it (datasets/base.py).
        return training_input(dataset, batch_size=batch, input_context=ctx, start_step=start_step,
                              global_batch=global_batch, log=log.info, **({"normalize": False} if on_device else {}))

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


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "(" + ",".join(_short(v) for v in value) + ")"
    return str(value)


def _with_resolved(run: Resolved, **values: Any) -> Resolved:
    """``run`` with settings the dataset or recipe decided (those still unset), their source saying so."""
    changes = {k: v for k, v in values.items() if v is not None and run.sources.get(k, "default") == "default"}
    if not changes:
        return run
    sources = dict(run.sources)
    sources.update({k: "derived: the dataset" if k == "num_classes" else "derived: the model recipe"
                    for k in changes})
    return Resolved(with_values(run.config, changes), sources)


def _log_ema_start(ema, latest: Optional[str], log: TrainLog) -> None:
    """Says where the weight average starts: the checkpoint's, or the restored weights when it has none."""
    if ema is None:
        return
    log.info(f"--model_ema: {ema.describe()}")
    if latest and not checkpoint_has_ema(latest):
        log.info(f"--model_ema: {latest} holds no weight average (written without --model_ema); the average "
                 "starts from the restored weights at the next update, evaluation uses the raw weights until then.")
