"""The typed run configuration: precedence with provenance, the lr rule, config.json, resume comparison,
--help and --list, and that no module but main.py touches absl's global flags."""

import ast
import json
import os
import subprocess
import sys

import pytest
from conftest import ROOT, run_main

import main
import run_config
import zoo
from run_config import Layer, SettingError, effective_lr, resolve
from run_config.compare import differences, split_allowed
from run_config.persist import document, from_document


def _resolve(argv):
    layers, _ = main.command_line_layers(argv)
    return run_config.resolve(layers, recipe_of=zoo.recipe_settings)


def test_precedence_default_recipe_flagfile_command_line(tmp_path):
    flagfile = tmp_path / "x.flags"
    flagfile.write_text("# a user's flag file\n--model=resnet50\n--momentum=0.8\n--warmup_epochs=2\n--lr_min=0.001\n")
    r = _resolve([f"--flagfile={flagfile}", "--warmup_epochs=3"])
    c = r.config
    assert (c.model.name, r.source("model")) == ("resnet50", f"flag file {flagfile}")
    assert (c.optimizer.momentum, r.source("momentum")) == (0.8, f"flag file {flagfile}")  # file over recipe
    assert (c.schedule.warmup_epochs, r.source("warmup_epochs")) == (3.0, "command line")  # CLI over file
    assert (c.schedule.lr_schedule, r.source("lr_schedule")) == ("piecewise", "recipe resnet50")  # recipe over default
    assert (c.optimizer.clip_grad_norm, r.source("clip_grad_norm")) == (0.0, "default")
    assert (c.model.image_size, r.source("image_size")) == (224, "recipe resnet50")
    assert (c.logging.log_name, r.source("log_name")) == ("resnet50_training.log", "derived: <model>_training.log")


def test_command_line_wins_wherever_it_is_written(tmp_path):
    flagfile = tmp_path / "x.flags"
    flagfile.write_text("--batch_size=16\n")
    r = _resolve(["--batch_size=4", f"--flagfile={flagfile}"])
    assert (r.config.data.batch_size, r.source("batch_size")) == (4, "command line")


@pytest.mark.parametrize("global_batch", [32, 64, 256, 1024])
def test_flag_file_lr_with_reference_batch_scales_linearly(tmp_path, global_batch):
    flagfile = tmp_path / "x.flags"
    flagfile.write_text("--model=resnet18\n--lr=0.2\n--lr_reference_batch=512\n")
    r = _resolve([f"--flagfile={flagfile}"])
    lr, note = effective_lr(r.config, global_batch)
    assert lr == pytest.approx(0.2 * global_batch / 512)
    assert "512" in note


def test_command_line_lr_is_used_exactly():
    r = _resolve(["--model=resnet50", "--lr=0.3"])
    assert r.config.schedule.lr_reference_batch is None
    assert r.source("lr_reference_batch").startswith("derived: --lr from the command line")
    for global_batch in (8, 256, 4096):
        assert effective_lr(r.config, global_batch)[0] == 0.3


def test_recipe_lr_scales_from_the_recipes_reference_batch():
    r = _resolve(["--model=resnet50"])
    assert (r.config.schedule.lr, r.config.schedule.lr_reference_batch) == (0.1, 256)
    assert effective_lr(r.config, 64)[0] == pytest.approx(0.025)


def test_model_without_recipe_gets_generic_defaults_not_alexnets():
    import registry

    @registry.MODELS.register("plain_test_net")
    def plain_test_net(*, num_classes=10):  # pragma: no cover - never built here
        raise AssertionError

    try:
        r = _resolve(["--model=plain_test_net"])
        alexnet = _resolve(["--model=alexnet_modelzoo"])  # the Ascend recipe: 150 epochs, smoothing 0.1
        assert r.source("lr") == "default" and r.source("max_epochs") == "default"
        assert r.config.schedule.max_epochs != alexnet.config.schedule.max_epochs  # 90 vs the Ascend recipe's 150
        assert r.config.regularization.label_smoothing == 0.0 != alexnet.config.regularization.label_smoothing
    finally:
        registry.MODELS.unregister("plain_test_net")


def test_flag_files_no_longer_force_the_device_count():
    configs = os.path.join(ROOT, "configs")
    for name in sorted(os.listdir(configs)):
        text = open(os.path.join(configs, name)).read()
        lines = [line.strip() for line in text.splitlines() if line.strip().startswith("--")]
        if name == "alexnet_imagenet_8p.flags":  # the Ascend recipe's 8-NPU server, and says so
            assert "--rank_size=8" in lines and "8 NPUs" in text
            continue
        assert not any(line.startswith("--rank_size") for line in lines), name
        if any(line.startswith("--lr=") for line in lines):
            assert any(line.startswith("--lr_reference_batch=") for line in lines), f"{name}: --lr without its batch"


def test_invalid_values_are_one_line_errors_naming_the_setting():
    with pytest.raises(SettingError, match=r"^--momentum=-1.0: must be at least 0\.$"):
        _resolve(["--momentum=-1"])
    with pytest.raises(SettingError, match=r"--lr_schedule=linear: must be one of .*cosine_restarts"):
        _resolve(["--lr_schedule=linear"])
    with pytest.raises(SettingError, match="--train_crop_size=176 differs from --image_size=160"):
        _resolve(["--image_size=160", "--train_crop_size=176"])
    with pytest.raises(SettingError, match="not a setting"):
        resolve([Layer("test", {"no_such_thing": 1})])


def test_config_json_round_trips_into_the_same_dataclasses(tmp_path):
    r = _resolve(["--model=convnext_tiny", "--batch_size=3", "--npu_option=a.b=1", "--npu_option=c=2",
                  "--lr_decay_boundaries=1,2.5", "--allow_recipe_change=lr,schedule", "--seed=7"])
    path = run_config.persist.write(str(tmp_path), r, {"global_batch": 3})
    config, derived, values = run_config.persist.read(path)
    assert config == r.config
    assert derived == {"global_batch": 3}
    assert values["npu_option"] == ["a.b=1", "c=2"]
    doc = json.loads(open(path).read())
    assert doc["sources"]["batch_size"] == "command line" and doc["versions"]["project"]


def _doc(argv, derived=None):
    return document(_resolve(argv), derived or {"global_batch": 8})


@pytest.mark.parametrize("change, group", [
    (["--lr_power=2"], "schedule"), (["--lr_min=0.01"], "schedule"), (["--lr_decay_steps=100"], "schedule"),
    (["--lr_schedule_unit=step"], "schedule"), (["--model_ema"], "regularization"),
    (["--auto_augment=ta_wide"], "augment"), (["--random_erase=0.25"], "augment"), (["--mixup_alpha=0.2"], "augment"),
    (["--image_size=96"], "model"), (["--optimizer=adamw"], "optimizer"), (["--label_smoothing=0.2"], "regularization"),
])
def test_resume_refuses_each_changed_group_naming_both_values(change, group):
    from runs.resume_check import RecipeChangeError, make_check

    base = ["--model=resnet18"]
    saved = _doc(base)
    check = make_check(_doc(base + change), allow=(), log=lambda _: None)
    flag, value = change[0].lstrip("-").split("=") if "=" in change[0] else (change[0].lstrip("-"), "true")
    with pytest.raises(RecipeChangeError) as e:
        check(dict(saved, step=10), "ckpt-10")
    assert f"--{flag} ({group}):" in str(e.value)
    assert "now" in str(e.value) and f"--allow_recipe_change={flag}" in str(e.value)
    # The same change is accepted when named (by setting or by group), and logged.
    logged = []
    make_check(_doc(base + change), allow=(group,), log=logged.append)(dict(saved, step=10), "ckpt-10")
    assert logged and f"--{flag}" in logged[0]


def test_resume_compares_the_global_batch_and_allows_free_settings():
    base = ["--model=resnet18"]
    diffs = differences(*[from_document(_doc(base + extra, {"global_batch": b}))[0] for extra, b in
                          (([], 8), (["--save_summary_steps=7", "--log_dir=/elsewhere", "--max_bad_images=3"], 8))])
    assert diffs == []  # where logs go and how often are free
    saved, current = (from_document(_doc(base, {"global_batch": b})) for b in (8, 16))
    diffs = differences(saved[0], current[0], saved[1], current[1])
    assert [(d.flag, d.saved, d.current) for d in diffs] == [("global_batch", 8, 16)]
    with pytest.raises(ValueError, match="not a setting or group"):
        split_allowed(diffs, ["nonsense"])


def test_help_groups_settings_with_the_chosen_models_defaults():
    out = run_main("--model=resnet50", "--help").stdout
    assert "absltest" not in out and "--tpu" not in out and "test_srcdir" not in out
    assert "\nOptimizer:\n" in out and "\nSchedule and learning rate:\n" in out and "\nAscend NPU:\n" in out
    lr_line = next(line for line in out.splitlines() if line.startswith("  --lr_schedule="))
    assert "(default: piecewise [recipe resnet50])" in lr_line
    ascend = run_main("--model=alexnet_modelzoo", "--help").stdout
    assert "(default: cosine [recipe alexnet_modelzoo])" in next(
        line for line in ascend.splitlines() if line.startswith("  --lr_schedule="))
    flagfile = run_main("--flagfile=configs/alexnet_imagenet_8p.flags", "--help").stdout  # a flag file's values too
    assert "(default: 8 [flag file configs/alexnet_imagenet_8p.flags])" in next(
        line for line in flagfile.splitlines() if line.startswith("  --rank_size="))


def test_list_does_not_import_tensorflow():
    code = ("import sys, main; rc = main.main(['--list']); "
            "assert rc == 0; print('TF' if 'tensorflow' in sys.modules or 'keras' in sys.modules else 'no TF')")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "no TF"
    assert "resnet50" in out.stdout and "cosine_restarts" in out.stdout


def test_every_lazy_registry_entry_loads():
    import registry

    for reg in (registry.MODELS, registry.BACKENDS, registry.DATASETS, registry.OPTIMIZERS, registry.SCHEDULES):
        for name in reg.list():
            assert callable(reg.entry(name).obj), (reg.kind, name)


def test_print_config_shows_every_setting_and_its_source(tmp_path):
    out = run_main("--model=resnet18", "--batch_size=5", f"--log_dir={tmp_path}", "--print_config").stdout
    rows = [line for line in out.splitlines() if " batch_size " in f" {line} "]
    assert rows and rows[0].split()[-2:] == ["command", "line"] and "5" in rows[0].split()
    assert len([line for line in out.splitlines() if line.strip()]) >= len(
        {s.flag for s in run_config.SETTINGS.values()})


def _touches_global_flags(path):
    tree = ast.parse(open(path).read())
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == "FLAGS":
            return True
        if isinstance(node, ast.Attribute) and node.attr.startswith("DEFINE_") and path != "main.py":
            return True
        if isinstance(node, ast.ImportFrom) and node.module == "absl.flags":
            return True
    return False


def test_no_module_but_main_touches_absl_flags():
    offenders = []
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if not d.startswith((".", "bazel-")) and d not in ("results", "third_party")]
        for name in files:
            path = os.path.relpath(os.path.join(folder, name), ROOT)
            if name.endswith(".py") and path not in ("main.py", os.path.join("tests", "test_run_config.py")):
                if _touches_global_flags(os.path.join(ROOT, path)):
                    offenders.append(path)
    assert offenders == []
