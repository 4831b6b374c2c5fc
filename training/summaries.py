"""TensorBoard event files from the metrics records of :class:`training.log.TrainLog`.

Training records go to ``<log_dir>/tensorboard/train`` (``loss``, ``total_loss``, ``lr``,
``images_per_second``), evaluation records to ``<log_dir>/tensorboard/eval`` (``top1``, ``top5``,
``loss``), all against the global step, so ``tensorboard --logdir <log_dir>/tensorboard`` shows the
training and validation loss on one chart.
"""

from __future__ import annotations

import os
from typing import Dict, Optional

import tensorflow as tf
from tensorflow.core.framework import summary_pb2

__all__ = ["EVAL_TAGS", "TRAIN_TAGS", "SummaryListener", "attach_summaries"]

# TensorBoard's scalar plugin reads summaries tagged with this plugin name; writing them through
# tf.summary.write keeps the tensorboard package out of the training dependencies.
_SCALAR_METADATA = summary_pb2.SummaryMetadata(
    plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars")).SerializeToString()

# record field -> TensorBoard tag
TRAIN_TAGS = {"loss": "loss", "total_loss": "total_loss", "lr": "lr", "images_per_second": "images_per_second"}
EVAL_TAGS = {"top1": "top1", "top5": "top5", "loss": "loss"}


class SummaryListener:
    """Writes scalars for ``train`` and ``eval`` records; other records are ignored.

    Args:
        directory: parent of the ``train`` and ``eval`` event-file directories.
    """

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self._writers: Dict[str, tf.summary.SummaryWriter] = {}

    def _writer(self, kind: str) -> tf.summary.SummaryWriter:
        if kind not in self._writers:
            self._writers[kind] = tf.summary.create_file_writer(os.path.join(self.directory, kind))
        return self._writers[kind]

    def __call__(self, record: Dict) -> None:
        kind = record.get("type")
        tags = {"train": TRAIN_TAGS, "eval": EVAL_TAGS}.get(kind)
        if tags is None or "step" not in record:
            return
        writer = self._writer(kind)
        with writer.as_default():
            for field_name, tag in tags.items():
                value = record.get(field_name)
                if value is not None:
                    tf.summary.write(tag, tf.constant(float(value), tf.float32), step=int(record["step"]),
                                     metadata=_SCALAR_METADATA)
        writer.flush()  # records are minutes apart; a crash must not lose them

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()


def attach_summaries(log, log_dir: Optional[str], *, enabled: bool = True) -> Optional[SummaryListener]:
    """Adds a :class:`SummaryListener` writing under ``<log_dir>/tensorboard`` to ``log``.

    Args:
        log: a :class:`training.log.TrainLog`.
        log_dir: the run's log directory; None disables summaries.
        enabled: False on processes that must not write (non-chief ranks).

    Returns:
        The listener (close it at the end), or None when disabled.
    """
    if not log_dir or not enabled:
        return None
    listener = SummaryListener(os.path.join(log_dir, "tensorboard"))
    log.add_listener(listener)
    return listener
