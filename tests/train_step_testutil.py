"""A tiny model trained by the real Trainer on a real backend, for tests of the training step."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from backends.cpu import CPUBackend
from keras_compat import create_optimizer_variables, keras
from runs.checkpoints import Checkpointer
from training.log import TrainLog
from training.optimizers import build_optimizer
from training.schedules import WarmupDecaySchedule
from training.trainer import TrainConfig, Trainer

CLASSES, SIZE, BATCH = 3, 8, 4


def make_data(steps: int, nan_steps=()):
    """Random images and labels for ``steps`` batches; a NaN image in each (1-based) step of ``nan_steps``."""
    rng = np.random.default_rng(0)
    images = rng.normal(size=(steps * BATCH, SIZE, SIZE, 3)).astype(np.float32)
    labels = rng.integers(0, CLASSES, size=(steps * BATCH,)).astype(np.int32)
    for step in nan_steps:  # 1-based
        images[(step - 1) * BATCH] = np.nan
    return images, labels


def make_trainer(images, labels, steps, *, policy="stop", max_consecutive=5, ckpt_dir=None, optimizer="momentum",
                 xla=False):
    """A Trainer of a small conv net on one CPU device; returns it and a function that runs ``train``."""
    backend = CPUBackend(xla=xla)
    backend.setup()
    schedule = WarmupDecaySchedule(0.05, 100, warmup_epochs=0, max_epochs=1, kind="constant")
    with backend.scope():
        keras.utils.set_random_seed(3)
        model = keras.Sequential([keras.Input((SIZE, SIZE, 3)), keras.layers.Conv2D(4, 3), keras.layers.Flatten(),
                                  keras.layers.Dense(CLASSES)])
        opt = build_optimizer(optimizer, schedule)
        create_optimizer_variables(opt, model.trainable_variables)
    checkpointer = Checkpointer(ckpt_dir, max_to_keep=100, model=model, optimizer=opt) if ckpt_dir else None
    config = TrainConfig(num_classes=CLASSES, per_replica_batch=BATCH, global_batch=BATCH,
                         num_train_examples=100 * BATCH, max_steps=steps, iterations_per_loop=steps,
                         save_summary_steps=steps, save_checkpoints_steps=1, weight_decay=1e-3,
                         label_smoothing=0.0, nan_policy=policy, max_consecutive_skips=max_consecutive)
    trainer = Trainer(model=model, optimizer=opt, schedule=schedule, backend=backend, config=config,
                      log=TrainLog(None), checkpointer=checkpointer)
    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(BATCH)
    return trainer, lambda: trainer.train(lambda ctx: dataset)
