"""main.py end to end, in real processes: logs, checkpoints, resumption, flags and errors."""

import json
import signal
import subprocess
import sys
import time

import pytest
from conftest import ROOT, run_main

from runs.checkpoints import list_checkpoints, step_of
from training.log import parse_line

FAST = ["--backend=cpu", "--synthetic", "--image_size=63", "--num_classes=10", "--batch_size=8", "--lr=0.001",
        "--seed=1", "--warmup_epochs=0", "--lr_schedule=constant"]


def log_lines(text):
    return [parse_line(line) for line in text.splitlines() if line.startswith("step:")]


def test_done_when_command_logs_and_resumes(tmp_path):
    args = ["--model=alexnet", "--backend=cpu", "--synthetic", "--batch_size=8", "--iterations_per_loop=5",
            "--save_summary_steps=5", f"--log_dir={tmp_path}", "--image_size=63", "--num_classes=10"]
    first = run_main(*args, "--max_train_steps=20")
    lines = [line for line in first.stdout.splitlines() if line.startswith("step:")]
    assert len(lines) == 4
    parsed = [parse_line(line) for line in lines]
    assert all(parsed), lines  # every line in the exact format
    assert [p["step"] for p in parsed] == [5, 10, 15, 20]
    assert all(p["fps"] > 0 and p["batch_time"] > 0 for p in parsed)
    assert [step_of(p) for p in list_checkpoints(str(tmp_path))] == [20]
    # The same lines are in the log file.
    assert (tmp_path / "alexnet_training.log").read_text().count("step:") == 4

    second = run_main(*args, "--max_train_steps=30")
    assert f"Resumed from {tmp_path}/model.ckpt-20: step 20" in second.stdout
    assert [p["step"] for p in log_lines(second.stdout)] == [25, 30]
    assert [step_of(p) for p in list_checkpoints(str(tmp_path))] == [20, 30]


def test_loss_falls_on_a_fixed_synthetic_batch(tmp_path):
    out = run_main(*FAST, "--max_train_steps=40", "--save_summary_steps=10", "--iterations_per_loop=10",
                   "--nodo_checkpoint", f"--log_dir={tmp_path}")
    losses = [p["loss"] for p in log_lines(out.stdout)]
    assert len(losses) == 4
    assert losses[-1] < 0.8 * losses[0], losses
    assert not list_checkpoints(str(tmp_path))  # --nodo_checkpoint writes none


@pytest.mark.slow  # a multi-process or end-to-end run whose behaviour the default suite checks elsewhere
def test_killed_run_resumes_without_repeating_or_skipping_steps(tmp_path):
    log_dir = tmp_path / "run"
    args = [*FAST, "--max_train_steps=40", "--save_summary_steps=2", "--iterations_per_loop=2",
            "--save_checkpoints_steps=2", "--max_checkpoint_to_save=50", f"--log_dir={log_dir}"]
    output = tmp_path / "first_run.txt"
    with open(output, "w") as sink:
        proc = subprocess.Popen([sys.executable, "main.py", *args], cwd=ROOT, stdout=sink, stderr=sink)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and len(list_checkpoints(str(log_dir))) < 2:
            assert proc.poll() is None, output.read_text()
            time.sleep(0.2)
        proc.send_signal(signal.SIGKILL)  # no chance to clean up, like a lost machine
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    saved = [step_of(p) for p in list_checkpoints(str(log_dir))]
    assert saved and saved[-1] < 40, saved
    resumed_at = saved[-1]

    second = run_main(*args)
    assert f"Resumed from {log_dir}/model.ckpt-{resumed_at}: step {resumed_at}" in second.stdout
    steps = [p["step"] for p in log_lines(second.stdout)]
    assert steps == list(range(resumed_at + 2, 41, 2))
    text = (log_dir / "alexnet_training.log").read_text()
    file_steps = [p["step"] for p in (parse_line(line) for line in text.splitlines()) if p]
    # Every step of the file log appears once after the resumption point: none repeated, none skipped.
    after = [s for s in file_steps if s > resumed_at]
    assert after == list(range(resumed_at + 2, 41, 2))


@pytest.mark.slow  # a multi-process or end-to-end run whose behaviour the default suite checks elsewhere
def test_flagfile_runs_with_overrides(tmp_path):
    out = run_main("--flagfile=configs/alexnet_imagenet_1p.flags", "--backend=cpu", "--synthetic",
                   "--max_train_steps=2", "--batch_size=4", "--image_size=63", "--num_classes=10",
                   "--save_summary_steps=1",
                   f"--log_dir={tmp_path}", "--nodo_checkpoint")
    assert "global_batch=4" in out.stdout
    assert [p["step"] for p in log_lines(out.stdout)] == [1, 2]


def test_unknown_model_names_the_closest(tmp_path):
    out = run_main("--model=resnet05", "--backend=cpu", "--synthetic", f"--log_dir={tmp_path}", check=False)
    assert out.returncode != 0
    assert "--model=resnet05: Unknown model 'resnet05'. Did you mean 'resnet50'?" in out.stderr
    assert "alexnet" in out.stderr


@pytest.mark.parametrize("flag, message", [
    ("--batch_size=0", "error: --batch_size=0: must be at least 1."),
    ("--optimizer=adagrad", "error: --optimizer=adagrad: must be one of adam, adamw, lamb, lars, momentum"),
    ("--lr_decay_boundaries=60,30", "--lr_decay_boundaries=60.0,30.0: must be increasing numbers of epochs."),
    ("--no_such_setting=1", "error: Unknown command line flag 'no_such_setting'"),
    ("--version=orthogonal", "--initializer=orthogonal: must be one of he_uniform, torchvision, xavier"),
    ("--model=resnet18 --initializer=xavier", "--initializer=xavier: model resnet18 has no initialiser choice"),
    ("--model=resnet18 --stochastic_depth_rate=0.1 --image_size=32",
     "error: model 'resnet18' does not accept stochastic_depth_rate; it accepts"),
    ("--model=vit_b_16 --image_size=40", "error: vit_b_16 needs an input size that is a multiple of 16, got "
     "--image_size=40; use --image_size=32."),
])
def test_bad_flag_values_name_the_flag(flag, message, tmp_path):
    # Its own --log_dir: a run refused after it took the default directory's lock would refuse a concurrent one.
    out = run_main(*flag.split(), "--backend=cpu", "--synthetic", f"--log_dir={tmp_path}", check=False)
    assert out.returncode != 0
    assert message in out.stderr


def test_extra_modules_example_trains_a_user_model(tmp_path):
    out = run_main("--extra_modules=examples.custom_model", "--model=tiny_convnet", "--backend=cpu", "--synthetic",
                   "--max_train_steps=4", "--batch_size=4", "--save_summary_steps=2", "--lr=0.01",
                   f"--log_dir={tmp_path}")
    assert "model=tiny_convnet" in out.stdout and "image_size=32" in out.stdout
    assert [p["step"] for p in log_lines(out.stdout)] == [2, 4]


def test_list_shows_registries():
    out = run_main("--list")
    assert "alexnet_modelzoo" in out.stdout and "cpu" in out.stdout and "synthetic" in out.stdout
    assert "61,100,840" in out.stdout and "56.522/79.066" in out.stdout  # parameters, reference accuracy


def test_list_filters_models_by_wildcard():
    out = run_main("--list", "--model=resnet*")
    models = [line.split()[0] for line in out.stdout.splitlines()[2:]]
    assert models == ["resnet101", "resnet152", "resnet18", "resnet34", "resnet50"]
    assert "25,557,032" in out.stdout and "76.130/92.862" in out.stdout
    assert "alexnet" not in out.stdout and "backends:" not in out.stdout


@pytest.mark.slow  # a multi-process or end-to-end run whose behaviour the default suite checks elsewhere
def test_recipe_supplies_defaults_of_flags_not_set(tmp_path):
    out = run_main("--model=resnet18", "--backend=cpu", "--synthetic", "--image_size=32", "--num_classes=4",
                   "--batch_size=2", "--max_train_steps=2", "--save_summary_steps=1", "--lr=0.05",
                   f"--log_dir={tmp_path}")
    saved = json.loads((tmp_path / "config.json").read_text())
    schedule, sources = saved["config"]["schedule"], saved["sources"]
    assert (schedule["lr_schedule"], sources["lr_schedule"]) == ("piecewise", "recipe resnet18")
    assert (schedule["lr_decay_boundaries"], sources["lr_decay_boundaries"]) == ([30.0, 60.0], "recipe resnet18")
    assert saved["config"]["regularization"]["label_smoothing"] == 0.0
    assert (schedule["lr"], sources["lr"]) == (0.05, "command line")  # the user's value wins, used exactly
    assert saved["derived"]["lr"] == 0.05
    assert "Learning rate: lr 0.05, used as given" in out.stdout
    assert [p["lr"] for p in log_lines(out.stdout)] == [0.05, 0.05]


@pytest.mark.slow  # a multi-process or end-to-end run whose behaviour the default suite checks elsewhere
def test_recipe_lr_is_scaled_to_the_global_batch_unless_set(tmp_path):
    out = run_main("--model=resnet18", "--backend=cpu", "--synthetic", "--image_size=32", "--num_classes=4",
                   "--batch_size=8", "--max_train_steps=1", "--save_summary_steps=1", f"--log_dir={tmp_path}")
    assert ("Learning rate: lr 0.003125 = 0.1 (stated for a global batch of 256) x 8/256, scaled linearly to this "
            "run's global batch" in out.stdout)
    assert [p["lr"] for p in log_lines(out.stdout)] == [pytest.approx(0.003125, abs=1e-5)]  # 5 decimals printed


def test_a_flag_file_on_a_small_machine_runs_one_process_with_the_lr_scaled(tmp_path):
    """The configuration issue's done-when command: the flag file no longer forces 8 processes."""
    out = run_main("--model=resnet50", "--flagfile=configs/resnet50_imagenet.flags", "--batch_size=64", "--synthetic",
                   "--backend=cpu", "--image_size=32", "--max_train_steps=1", "--save_summary_steps=1",
                   "--nodo_checkpoint", f"--log_dir={tmp_path}")
    assert "replicas=1 " in out.stdout and "global_batch=64 " in out.stdout
    assert ("Learning rate: lr 0.025 = 0.1 (stated for a global batch of 256) x 64/256, scaled linearly"
            in out.stdout)
    log = (tmp_path / "resnet50_training.log").read_text()
    assert "lr 0.025 = 0.1" in log and "lr_reference_batch" in log
