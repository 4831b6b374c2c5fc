"""tools/average_checkpoints.py: the mean of the selected checkpoints' weights, a checkpoint the modes read."""

import json
import os

import eval_testutil as ev
import numpy as np
import pytest
import tensorflow as tf

from keras_compat import keras
from runs.checkpoints import Checkpointer
from tools import average_checkpoints as tool
from training.ema import ModelEMA, load_ema_weights
from weights.checkpoint import load_weights

# Checkpoints written by Keras 2 store the model under other keys: run again under Keras 2.
pytestmark = pytest.mark.keras2


def _model(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((3,))
    x = keras.layers.Dense(4, name="fc1")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)  # statistics are averaged with the weights
    return keras.Model(inputs, keras.layers.Dense(2, name="fc2")(x))


def _run(tmp_path, steps=(10, 20, 30, 40)):
    """A run directory with one checkpoint per step (model, optimizer, EMA), each with other weights."""
    model = _model()
    optimizer = keras.optimizers.SGD(0.1, momentum=0.9)
    optimizer.build(model.trainable_variables)
    ema = ModelEMA(model, 0.5, every_steps=1)
    checkpointer = Checkpointer(str(tmp_path / "run"), max_to_keep=10, settings={"format": 1}, model=model,
                                optimizer=optimizer, ema=ema)
    rng = np.random.default_rng(0)
    saved = {}
    for step in steps:
        for w in model.weights:
            w.assign(rng.normal(size=w.shape).astype(np.float32))
        ema.update(tf.constant(step, tf.int64))
        optimizer.iterations.assign(step)
        saved[step] = ([w.numpy().astype(np.float64) for w in model.weights],
                       [s.numpy().astype(np.float64) for s in ema._shadows])
        checkpointer.save(step)
    (tmp_path / "run" / "config.json").write_text("{}")
    return str(tmp_path / "run"), saved


def test_the_last_k_checkpoints_average_into_a_checkpoint_the_model_loads(tmp_path):
    run, saved = _run(tmp_path)
    prefixes = tool.last_checkpoints(run, 3)
    assert [os.path.basename(p) for p in prefixes] == ["model.ckpt-20", "model.ckpt-30", "model.ckpt-40"]
    out = tool.average(prefixes, str(tmp_path / "avg"), rule="last 3")
    assert os.path.basename(out) == "model.ckpt-40"  # the newest step: the epoch column stays meaningful
    assert sorted(os.listdir(tmp_path / "avg")) == [
        "averaged.json", "config.json", "model.ckpt-40.data-00000-of-00001", "model.ckpt-40.index",
        "model.ckpt-40.settings.json"]

    target = _model(seed=9)
    load_weights(target, out)
    for i, w in enumerate(target.weights):  # kernels, biases, gamma/beta and the moving statistics
        want = np.mean([saved[s][0][i] for s in (20, 30, 40)], axis=0)
        np.testing.assert_allclose(w.numpy(), want, rtol=1e-6, atol=1e-7)
    assert not np.allclose(target.weights[0].numpy(), saved[40][0][0])
    # The weight averages of a --model_ema run are averaged too.
    load_ema_weights(target, out)
    for i, w in enumerate(target.weights):
        np.testing.assert_allclose(w.numpy(), np.mean([saved[s][1][i] for s in (20, 30, 40)], axis=0), rtol=1e-6)
    # Everything else is the newest checkpoint's (the optimizer's step counter).
    reader, newest = tf.train.load_checkpoint(out), tf.train.load_checkpoint(prefixes[-1])
    counters = [k for k in newest.get_variable_to_shape_map() if "iteration" in k]
    assert counters and all(reader.get_tensor(k) == newest.get_tensor(k) == 40 for k in counters)
    assert json.load(open(tmp_path / "avg" / "averaged.json"))["steps"] == [20, 30, 40]


def test_refusals_are_one_line(tmp_path):
    run, _ = _run(tmp_path, steps=(1, 2))
    with pytest.raises(ValueError, match="holds 2 checkpoint"):
        tool.last_checkpoints(run, 3)
    with pytest.raises(ValueError, match="at least two"):
        tool.average(tool.last_checkpoints(run, 1), str(tmp_path / "one"))
    other = str(tmp_path / "other")
    wide = _model()
    keras.utils.set_random_seed(1)
    inputs = keras.Input((5,))  # another input width: fc1's kernel has another shape
    wide = keras.Model(inputs, keras.layers.Dense(2, name="fc2")(keras.layers.Dense(4, name="fc1")(inputs)))
    odd = Checkpointer(other, model=wide).save(3)
    with pytest.raises(ValueError, match="does not hold the variables"):
        tool.average([odd] + tool.last_checkpoints(run, 1), str(tmp_path / "mixed"))
    os.makedirs(tmp_path / "taken")
    (tmp_path / "taken" / "x").write_text("x")
    assert tool.main([run, "--last=2", f"--output_dir={tmp_path / 'taken'}"]) == 2


def test_improved_selects_the_last_k_evaluations_that_beat_every_earlier_one(tmp_path):
    run, _ = _run(tmp_path, steps=(10, 20, 30, 40, 50))
    top1 = {10: 50.0, 20: 55.0, 30: 54.0, 40: 56.0, 50: 56.0}  # 30 and 50 do not improve
    with open(os.path.join(run, "metrics.jsonl"), "w") as f:
        f.write(json.dumps({"type": "train", "step": 10}) + "\n")
        for step, acc in top1.items():
            f.write(json.dumps({"type": "eval", "step": step, "top1": acc}) + "\n")
    chosen = tool.improved_checkpoints(run, 3)
    assert [os.path.basename(p) for p in chosen] == ["model.ckpt-10", "model.ckpt-20", "model.ckpt-40"]
    with pytest.raises(ValueError, match="3 evaluation"):
        tool.improved_checkpoints(run, 4)
    os.remove(os.path.join(run, "model.ckpt-10.index"))
    with pytest.raises(ValueError, match="max_checkpoint_to_save"):
        tool.improved_checkpoints(run, 3)


@pytest.mark.slow  # a multi-process or end-to-end run whose behaviour the default suite checks elsewhere
def test_a_trained_run_s_average_evaluates_with_mode_evaluate(tmp_path, main_runner):
    """End to end: main.py trains and saves three checkpoints, the tool averages them, --mode=evaluate scores
    the average exactly as numpy does."""
    run, out = tmp_path / "run", tmp_path / "avg"
    common = ("--extra_modules=tests/eval_testutil.py", "--model=scores_linear", "--dataset=handmade",
              "--backend=cpu", "--batch_size=3")
    main_runner(*common, "--max_train_steps=6", "--save_checkpoints_steps=2", "--iterations_per_loop=2",
                "--lr=0.5", "--warmup_epochs=0", "--label_smoothing=0", f"--log_dir={run}")
    assert tool.main([str(run), "--last=3", f"--output_dir={out}"]) == 0
    main_runner(*common, "--mode=evaluate", f"--checkpoint_dir={out}", f"--log_dir={tmp_path / 'eval'}")
    record = [json.loads(line) for line in open(tmp_path / "eval" / "metrics.jsonl")][-1]
    weights = []
    for step in (2, 4, 6):
        model = ev.scores_linear()
        load_weights(model, str(run / f"model.ckpt-{step}"))
        weights.append([w.astype(np.float64) for w in model.get_layer("logits").get_weights()])
    kernel, bias = (np.mean([w[i] for w in weights], axis=0) for i in (0, 1))
    assert not np.allclose(kernel, weights[-1][0])  # training moved the weights: the average is not the last
    logits = ev.scores_to_images(ev.VAL_SCORES).reshape(ev.VAL_SIZE, -1).astype(np.float64) @ kernel + bias
    log_probs = logits - logits.max(1, keepdims=True)
    log_probs -= np.log(np.exp(log_probs).sum(1, keepdims=True))
    assert record["step"] == 6
    assert record["loss"] == pytest.approx(-log_probs[np.arange(ev.VAL_SIZE), ev.VAL_LABELS].mean(), rel=1e-5)
