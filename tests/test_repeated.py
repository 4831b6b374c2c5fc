"""Repeated augmentation (--ra_sampler): torchvision's RASampler positions, per replica, on real pipelines.

The sampler's definition (torchvision references/classification/sampler.py, DeiT's samplers.py): one order
shared by all ranks, each index repeated ``reps`` times in a row, rank ``g`` of ``W`` takes positions
``g, g + W, ...``. ``_reference`` restates it in plain Python; the tf.data implementation must agree.
"""

import collections
import os

import pytest
import tensorflow as tf
from datasets_testutil import make_folder, recipe

from datasets import repeated
from datasets.image_folder import ImageFolderDataset


def _order(n: int = 10, seed: int = 3):
    """A shared shuffled order of ``n`` records, the same on every call (as every pipeline builds it)."""
    return tf.data.Dataset.range(n).shuffle(n, seed=seed, reshuffle_each_iteration=True).repeat().map(
        lambda i: {"i": i})


def _reference(order, reps, num_replicas, replica):
    stream = [i for i in order for _ in range(reps)]
    return stream[replica::num_replicas]


def _take(ds, count):
    return [int(r["i"]) for r in ds.take(count)]


@pytest.mark.parametrize("reps,num_replicas", [(4, 8), (3, 4), (2, 1), (5, 2)])
def test_each_replica_takes_every_w_th_position_of_the_repeated_order(reps, num_replicas):
    order = _take(_order(), 60)
    for g in range(num_replicas):
        ds = repeated.spread(_order, reps=reps, batch_size=4, num_replicas=num_replicas, replica_ids=[g])
        want = _reference(order, reps, num_replicas, g)[:12]
        assert _take(ds, 12) == want, (reps, num_replicas, g)


def test_the_copies_of_an_image_go_to_different_replicas():
    reps, num_replicas, n = 4, 8, 10
    seen = collections.defaultdict(list)
    for g in range(num_replicas):
        ds = repeated.spread(lambda: _order(n), reps=reps, batch_size=5, num_replicas=num_replicas, replica_ids=[g])
        for position, i in enumerate(_take(ds, 5)):  # one step: 8 replicas x 5 = 40 positions
            seen[i].append((g, position))
    assert sorted(seen) == list(range(n))  # the 10 images, 4 copies each
    for copies in seen.values():
        assert len(copies) == reps and len({g for g, _ in copies}) == reps


def test_a_pipeline_with_several_local_replicas_emits_their_batches_in_turn():
    """Two pipelines of two GPUs each: per step, replica 2p's batch, then replica 2p + 1's."""
    order, reps, batch = _take(_order(), 60), 3, 2
    context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=1, num_replicas_in_sync=4)
    num_replicas, ids = repeated.layout(context)
    assert (num_replicas, ids) == (4, (2, 3))
    ds = repeated.spread(_order, reps=reps, batch_size=batch, num_replicas=num_replicas, replica_ids=ids)
    got = _take(ds, 8)
    r2, r3 = _reference(order, reps, 4, 2), _reference(order, reps, 4, 3)
    assert got == r2[0:2] + r3[0:2] + r2[2:4] + r3[2:4]
    with pytest.raises(ValueError, match="do not divide"):
        repeated.layout(tf.distribute.InputContext(num_input_pipelines=3, input_pipeline_id=0,
                                                   num_replicas_in_sync=4))


def test_an_image_folder_pipeline_repeats_its_files_across_pipelines(tmp_path):
    """A real reader: two pipelines (ranks) share one file order; each file's two copies go one to each rank;
    the training batches still come out."""
    data = make_folder(str(tmp_path / "data"), classes={"cat": 3, "dog": 3})
    datasets = [ImageFolderDataset(recipe=recipe(32), data_dir=data, seed=7) for _ in range(2)]
    for ds in datasets:
        ds.ra_reps = 2
    contexts = [tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=p, num_replicas_in_sync=2)
                for p in range(2)]
    names = [[os.path.basename(r["name"].numpy().decode()) for r in
              repeated.records(ds, "train", input_context=ctx, batch_size=3, seed=ds.pipeline_seed(ctx)).take(6)]
             for ds, ctx in zip(datasets, contexts)]
    assert names[0] == names[1]  # copy k of position 2k on rank 0, of position 2k + 1 on rank 1: the same file
    assert len(set(names[0])) == 6  # six distinct files in the first 12 positions of the repeated order
    images, labels = next(iter(datasets[0].input_fn("train", training=True, batch_size=3, input_context=contexts[0])))
    assert images.shape == (3, 32, 32, 3) and labels.shape == (3,)
