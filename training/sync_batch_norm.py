"""``--sync_bn``: batch-norm statistics over the global batch of every replica and worker.

Without it each replica normalises with its own mini-batch's statistics (what most multi-device
recipes do); with it the mean and variance are all-reduced across the replicas of the
``tf.distribute`` strategy first (Keras' ``synchronized=True``), which matters when the per-replica
batch is small. Any model's batch-norm layers are switched, the zoo's or a user's.
"""

from __future__ import annotations

from backends.base import Backend
from keras_compat import all_layers

__all__ = ["enable_sync_batch_norm"]


def enable_sync_batch_norm(model, backend: Backend) -> int:
    """Makes every batch-norm layer of ``model`` synchronise its batch statistics; returns how many.

    Raises:
        ValueError: the backend distributes without a ``tf.distribute`` strategy (the NPU adapter's
            gradient reducer), whose replicas cannot share batch statistics this way.
    """
    if backend.num_replicas > 1 and backend.strategy.num_replicas_in_sync == 1:
        raise ValueError(f"--sync_bn needs a tf.distribute strategy across the replicas; backend {backend.name} "
                         "averages gradients between single-device processes instead. Leave --sync_bn out.")
    count = 0
    for layer in all_layers(model):
        if type(layer).__name__ not in ("BatchNormalization", "SyncBatchNormalization"):
            continue
        layer.synchronized = True
        if getattr(layer, "fused", False):
            layer.fused = False  # Keras 2 computes fused batch norm without the synchronised moments
        count += 1
    return count
