"""The README's NPU section, word for word: its commands parse, and run against the ``npu_device`` stand-in.

Every ``python3 main.py ...`` command of the section (shell loops and variables resolved as a shell
would for one iteration) is parsed by ``main.py``'s own flags. The slow test then runs the one-NPU
commands exactly as written, with the stand-in on ``PYTHONPATH`` and only appended flags that shrink
the run (synthetic data, a tiny AlexNet, two steps): later flags override earlier ones, so every word
of the README's command is still parsed and used.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys

import pytest
from npu_testutil import ROOT, events, read_calls, standin_env

SHRINK = ["--synthetic", "--num_classes=2", "--image_size=63", "--batch_size=2", "--max_train_steps=2",
          "--iterations_per_loop=2", "--save_summary_steps=2", "--save_checkpoints_steps=2",
          "--synthetic_train_images=64", "--synthetic_val_images=8", "--warmup_epochs=0"]


def npu_section() -> str:
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    start = text.index("## Running on Ascend NPUs")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def main_commands():
    """``main.py`` arguments of every command in the section's code blocks, one shell iteration resolved."""
    commands = []
    for block in re.findall(r"```\n(.*?)```", npu_section(), flags=re.S):
        block = block.replace("\\\n", " ")
        for line in block.splitlines():
            line = line.split("#", 1)[0]
            if "python3 main.py" not in line:
                continue
            line = line.replace("$PWD", ROOT).replace("$r", "0").replace("$d", "0").rstrip(" &")
            words = shlex.split(line[line.index("python3 main.py"):])
            commands.append(words[2:])
    return commands


def test_every_main_command_of_the_npu_section_parses(monkeypatch):
    import main

    commands = main_commands()
    assert len(commands) >= 5  # 1p train and evaluate, 8p train, two hand-started loops (rank table, CM_*)
    monkeypatch.chdir(ROOT)  # the README's flag files are relative to the repository
    for args in commands:
        assert "--backend=npu" in args, args
        resolved, _, _ = main.resolve_command_line(args)
        assert resolved.config.distribution.backend == "npu"


def _readme_command(words_after_python3):
    """The first code-block line starting with these words."""
    for block in re.findall(r"```\n(.*?)```", npu_section(), flags=re.S):
        for line in block.splitlines():
            line = line.split("#", 1)[0].strip()
            if line.startswith("python3 " + words_after_python3):
                return shlex.split(line)[1:]
    raise AssertionError(f"the README's NPU section has no `python3 {words_after_python3}` command")


@pytest.mark.slow
@pytest.mark.keras2
def test_one_npu_steps_run_word_for_word_on_the_stand_in(tmp_path):
    calls_dir = tmp_path / "calls"
    calls_dir.mkdir()
    env = standin_env(calls_dir)
    os.symlink(os.path.join(ROOT, "configs"), tmp_path / "configs")

    def run(words, *extra):
        command = [sys.executable] + [os.path.join(ROOT, "main.py") if w == "main.py" else w for w in words]
        proc = subprocess.run(command + list(extra), cwd=str(tmp_path), env=env, capture_output=True, text=True,
                              timeout=900)
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
        return proc

    importing = run(_readme_command('-c "import npu_device"'))
    assert importing.stdout == ""  # "must print nothing"
    run(_readme_command("main.py --backend=npu --flagfile=configs/alexnet_imagenet_1p.flags"), *SHRINK)
    assert (tmp_path / "results" / "1p" / "0" / "model.ckpt-2.index").exists() or list(
        (tmp_path / "results" / "1p" / "0").glob("model.ckpt-2*"))
    evaluated = run(_readme_command("main.py --backend=npu --mode=evaluate"), *SHRINK)
    assert "Finished evaluation" in evaluated.stdout + evaluated.stderr
    opened = [events(calls, "open") for calls in read_calls(calls_dir).values()]
    assert sorted(o[0]["mode"] for o in opened if o) == ["single", "single"]
