"""A resumed run's input goes on where the checkpoint's step left the data stream (with --seed).

Pipelines of a real image folder (JPEG and PNG photo crops) and of TFRecord shards written from it by
tools/build_tfrecords.py, two input pipelines (two ranks' shares): the 20 batches a pipeline started at
step N yields are the batches N+1..N+20 of an uninterrupted pipeline, labels and image bytes, with the
random crops, flips and mixup of their own positions. Then through main.py: a run resumed from the
checkpoint of step 5 trains on the batches an uninterrupted run trained on after step 5
(tests/witness_model.py records them).
"""

import hashlib
import io
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from conftest import ROOT
from datasets_testutil import make_folder, recipe

from datasets.base import training_input
from datasets.image_folder import ImageFolderDataset
from datasets.imagenet import ImageNetDataset, count_records
from datasets.pipeline import PipelineOptions
from tools.build_tfrecords import build

SIZE = 48
BATCH = 3
RANKS = 2
# 23 training images: a pipeline's epoch (11 or 12 images) is no multiple of the batch, so resumed steps start
# inside an epoch, and 20 batches span several epochs.
CLASSES = {"cat": 9, "dog": 8, "fox": 6}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    base = tmp_path_factory.mktemp("data_resume")
    folder = make_folder(str(base / "folder"), classes=CLASSES, val={name: 1 for name in CLASSES})
    records = str(base / "records")
    build(folder, records, train_shards=3, validation_shards=1, num_workers=1, progress_stream=io.StringIO())
    return folder, records


def _context(rank):
    return tf.distribute.InputContext(num_input_pipelines=RANKS, input_pipeline_id=rank, num_replicas_in_sync=RANKS)


def _dataset(kind, data, **preprocess):
    folder, records = data
    cls, data_dir = (ImageFolderDataset, folder) if kind == "image_folder" else (ImageNetDataset, records)
    return cls(recipe=recipe(SIZE), data_dir=data_dir, seed=7, preprocess=preprocess or None,
               options=PipelineOptions(shuffle_buffer=16, deterministic=True))


def _batches(ds, count):
    """``count`` batches as (labels, SHA-1 of the image bytes)."""
    return [(np.asarray(labels).tolist(), hashlib.sha1(np.asarray(images).tobytes()).hexdigest())
            for images, labels in ds.take(count)]


def _from_step(dataset, rank, step, count):
    ds = training_input(dataset, batch_size=BATCH, input_context=_context(rank), start_step=step,
                        global_batch=BATCH * RANKS, normalize=False)
    return _batches(ds, count)


@pytest.mark.parametrize("kind,preprocess", [("image_folder", {}), ("imagenet", {}),
                                             ("image_folder", {"mixup_alpha": 0.4, "random_erase": 0.5})])
def test_a_pipeline_started_at_step_n_yields_the_uninterrupted_batches_from_n(data, kind, preprocess):
    tf.random.set_seed(0)  # as main.py does for --seed=0: graph seeds of 0 break some of tf.data's seeded ops
    for rank in range(RANKS):
        dataset = _dataset(kind, data, **preprocess)
        uninterrupted = _from_step(dataset, rank, 0, 31)
        assert len({h for _, h in uninterrupted}) == 31  # no two batches alike: an offset would show
        for step in (7, 11):
            resumed = _from_step(_dataset(kind, data, **preprocess), rank, step, 20)
            assert resumed == uninterrupted[step:step + 20], (rank, step)
        # Another rank's stream is another stream.
        assert _from_step(dataset, 1 - rank, 7, 20) != uninterrupted[7:27]


def test_epochs_are_permutations_and_shard_records_are_counted_from_their_headers(data):
    folder, records = data
    dataset = _dataset("image_folder", data)
    share = len(dataset.split("train").files[0::RANKS])  # pipeline 0's files
    names = [r["name"].numpy() for r in dataset.records("train", training=True, input_context=_context(0), seed=7)
             .take(3 * share)]
    epochs = [names[i * share:(i + 1) * share] for i in range(3)]
    assert all(sorted(e) == sorted(epochs[0]) for e in epochs) and epochs[0] != epochs[1]
    shards = sorted(os.path.join(records, f) for f in os.listdir(records) if f.startswith("train-"))
    counted = [count_records(path, os.path.getsize(path)) for path in shards]
    assert counted == [sum(1 for _ in tf.data.TFRecordDataset(path)) for path in shards]
    assert sum(counted) == sum(CLASSES.values())


def _witnessed_run(log_dir, witness, folder, steps):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", WITNESS_DIR=str(witness))
    os.makedirs(witness, exist_ok=True)
    proc = subprocess.run(
        [sys.executable, "main.py", "--precision=fp32", "--extra_modules=tests/witness_model.py", "--model=witness_net",
         f"--data_dir={folder}", "--backend=cpu", f"--batch_size={BATCH}", "--lr=0.01", "--seed=3",
         "--deterministic", "--iterations_per_loop=4", "--save_summary_steps=4", "--save_checkpoints_steps=5",
         f"--image_size={SIZE}", f"--log_dir={log_dir}", f"--max_train_steps={steps}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout + proc.stderr


def test_a_resumed_run_trains_on_the_batches_an_uninterrupted_run_trained_on(data, tmp_path):
    """The run stops after step 5: the uninterrupted run's directory as it was then (its checkpoint of step 5)."""
    import shutil

    from witness_model import read_witness

    from runs.checkpoints import checkpoint_files, list_checkpoints, step_of

    folder = data[0]
    _witnessed_run(tmp_path / "reference", tmp_path / "w_reference", folder, 14)
    shutil.copytree(tmp_path / "reference", tmp_path / "run")
    for prefix in list_checkpoints(str(tmp_path / "run")):
        if step_of(prefix) > 5:
            for path in checkpoint_files(prefix):
                os.remove(path)
    out = _witnessed_run(tmp_path / "run", tmp_path / "w_run", folder, 14)
    assert "Resumed from" in out and "step 5," in out
    reference, resumed = read_witness(tmp_path / "w_reference"), read_witness(tmp_path / "w_run")
    assert len(reference) == 14 and len(set(reference)) == 14
    assert resumed == reference[5:]  # steps 6-14: the same batches, in the same order
