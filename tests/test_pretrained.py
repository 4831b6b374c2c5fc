"""--pretrained / --restore_exclude: model weights out of training checkpoints, classifier left out."""

import numpy as np
import pytest
import tensorflow as tf
from conftest import run_main
from datasets_testutil import make_folder

import zoo
from runs.checkpoints import Checkpointer
from training.optimizers import build_optimizer
from weights.checkpoint import checkpoint_layers, checkpoint_num_classes, load_weights

SIZE = 63


def _weights(model):
    return {f"{layer.name}/{v.name.split('/')[-1].split(':')[0]}": np.array(v)
            for layer in model.layers for v in layer.weights}


def _checkpoint_tensors(path):
    """{layer/variable: array} of a checkpoint, through the object graph (as load_weights reads it)."""
    reader = tf.train.load_checkpoint(path)
    model = zoo.create_model("alexnet", num_classes=checkpoint_num_classes(path), image_size=SIZE)
    names = [layer.name for layer in model.layers if layer.weights]
    return {f"{name}/{var}": reader.get_tensor(key)
            for name, layer in zip(names, checkpoint_layers(path)) for var, key in layer.variables.items()}


@pytest.fixture(scope="module")
def training_checkpoint(tmp_path_factory):
    """A checkpoint written the way training writes it (model + built momentum optimizer, one step)."""
    directory = tmp_path_factory.mktemp("pretrained")
    tf.keras.utils.set_random_seed(5)
    model = zoo.create_model("alexnet", num_classes=5, image_size=SIZE)
    optimizer = build_optimizer("momentum", 0.01)
    optimizer.build(model.trainable_variables)
    images = tf.random.normal([2, SIZE, SIZE, 3])
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(model(images, training=True) ** 2)
    optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
    path = Checkpointer(str(directory), model=model, optimizer=optimizer).save(1)
    return path, _weights(model)


@pytest.mark.keras2  # the shared code path also runs on Keras 2 (NPU adapter)
def test_full_restore_is_bit_identical(training_checkpoint):
    path, saved = training_checkpoint
    model = zoo.create_model("alexnet", num_classes=5, image_size=SIZE)
    report = load_weights(model, path)
    assert len(report.restored) == 16 and report.skipped == []
    restored = _weights(model)
    assert restored.keys() == saved.keys()
    for name in saved:
        assert np.array_equal(restored[name], saved[name]), name


@pytest.mark.keras2  # the shared code path also runs on Keras 2 (NPU adapter)
def test_fine_tuning_skips_the_classifier(training_checkpoint):
    path, saved = training_checkpoint
    model = zoo.create_model("alexnet", num_classes=3, image_size=SIZE)
    fresh = _weights(model)
    report = load_weights(model, path, exclude=["logits"])
    assert report.skipped == ["logits/kernel", "logits/bias"]
    after = _weights(model)
    for name in saved:
        if name.startswith("logits/"):
            assert np.array_equal(after[name], fresh[name]), name  # untouched initial values
        else:
            assert np.array_equal(after[name], saved[name]), name


@pytest.mark.keras2  # the shared code path also runs on Keras 2 (NPU adapter)
def test_mismatches_are_refused_without_changes(training_checkpoint):
    path, _ = training_checkpoint
    model = zoo.create_model("alexnet", num_classes=3, image_size=SIZE)
    before = _weights(model)
    with pytest.raises(ValueError, match=r"logits/kernel has shape \(4096, 5\) in the checkpoint.*--restore_exclude"):
        load_weights(model, path)
    other = zoo.create_model("alexnet_modelzoo", num_classes=5, image_size=SIZE)
    with pytest.raises(ValueError, match="conv1/kernel has shape"):
        load_weights(other, path)
    after = _weights(model)
    assert all(np.array_equal(before[k], after[k]) for k in before)  # nothing assigned
    with pytest.raises(FileNotFoundError, match="not a checkpoint"):
        load_weights(model, path + "-nope")


def test_pretrained_flag_end_to_end(training_checkpoint, tmp_path):
    """main.py --pretrained on 3-class data: with lr 0 one step changes nothing, so the run's first
    checkpoint holds the pretrained tensors bit for bit, and a fresh 3-class classifier."""
    path, _ = training_checkpoint
    data = make_folder(str(tmp_path / "data"), classes={"a": 2, "b": 2, "c": 2}, size=(80, 70))
    log_dir = tmp_path / "run"
    proc = run_main("--backend=cpu", f"--data_dir={data}", f"--image_size={SIZE}", "--batch_size=2",
                    "--max_train_steps=1", "--lr=0", "--warmup_epochs=0", f"--pretrained={path}",
                    f"--log_dir={log_dir}", "--save_summary_steps=1")
    assert "Initialised from --pretrained" in proc.stdout and "kept fresh: logits/kernel, logits/bias" in proc.stdout
    pretrained, tuned = _checkpoint_tensors(path), _checkpoint_tensors(str(log_dir / "model.ckpt-1"))
    assert tuned["logits/kernel"].shape == (4096, 3)
    for name in pretrained:
        if not name.startswith("logits/"):
            assert np.array_equal(tuned[name], pretrained[name]), name
