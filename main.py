"""Train, evaluate, predict and export image classifiers from the zoo on CPU, GPU or Ascend NPU.

    python main.py --model=alexnet --backend=npu --rank_size=8 --data_dir=/data/imagenet
    python main.py --flagfile=configs/resnet50_imagenet.flags --data_dir=/data/imagenet
    python main.py --model=resnet50 --help          # every setting, grouped, with resnet50's defaults

This is the only module that reads a command line. Its flags are generated from the typed run
configuration (``run_config``, one definition per setting); the values are resolved in layers,
defaults < the model's recipe < ``--flagfile`` files < the command line, logged as a table and saved
as ``config.json`` with the run (docs/configuration.md).
"""

from __future__ import annotations

import os
import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple

# Fewer TensorFlow C++ notices on stderr (a few start-up lines are printed regardless).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _backend_named(argv: Sequence[str]) -> str:
    """The ``--backend`` the arguments name (command line over flag files), read before any import."""
    backend = "auto"
    for i, arg in enumerate(argv):
        path = arg.split("=", 1)[1] if arg.startswith("--flagfile=") else (
            argv[i + 1] if arg == "--flagfile" and i + 1 < len(argv) else None)
        if path and os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                for line in f:
                    if line.strip().startswith("--backend="):
                        backend = line.strip().split("=", 1)[1]
    for i, arg in enumerate(argv):
        if arg.startswith("--backend="):
            backend = arg.split("=", 1)[1]
        elif arg == "--backend" and i + 1 < len(argv):
            backend = argv[i + 1]
    return backend


def _hide_gpus_for_cpu_runs(argv: List[str], environ=os.environ) -> None:
    """A CPU run keeps TensorFlow away from CUDA, so that it prints no ``failed call to cuInit`` errors.

    Must run before TensorFlow is imported. For ``--backend=cpu``, and for ``--backend=auto`` (the
    default) on a machine without an NVIDIA driver, GPUs are hidden (``CUDA_VISIBLE_DEVICES=-1``) and
    TensorFlow's C++ log keeps only fatal messages unless ``TF_CPP_MIN_LOG_LEVEL`` was set lower than
    our default: TensorFlow still probes the driver when its devices are first listed, and logs a
    missing one as an error.
    """
    backend = _backend_named(argv)
    no_driver = not (os.path.exists("/proc/driver/nvidia") or os.path.exists("/dev/nvidiactl"))
    if backend == "cpu" or (backend == "auto" and no_driver):
        if backend == "cpu":
            environ["CUDA_VISIBLE_DEVICES"] = "-1"
        if environ.get("TF_CPP_MIN_LOG_LEVEL", "2") == "2":
            environ["TF_CPP_MIN_LOG_LEVEL"] = "3"


import logging  # noqa: E402

from absl import flags  # noqa: E402 - after the environment is set for TensorFlow

import registry  # noqa: E402
import run_config  # noqa: E402
from run_config.describe import config_table, help_text  # noqa: E402
from run_config.fields import SettingError, field_type  # noqa: E402
from run_config.resolve import SETTINGS, Layer  # noqa: E402

HELP_ARGS = ("--help", "-h", "-?", "--helpfull", "--helpshort")
# Command-line actions that are not settings of a run.
ACTIONS = {"list": "Print the registered models, backends and datasets, then exit.",
           "print_config": "Print the resolved configuration (setting, value, source), then exit without running."}


def define_flags() -> flags.FlagValues:
    """A private set of absl flags, one per setting of ``run_config`` (and per action).

    Every flag defaults to None, so that a parsed value is exactly what the user wrote; defaults come
    from the configuration's layers. Private (not ``absl.flags.FLAGS``), so that TensorFlow's and
    absltest's own flags never appear in ``--help``.
    """
    fv = flags.FlagValues()
    for name, setting in SETTINGS.items():
        if name != setting.flag:
            continue  # aliases below
        kind, _, sequence = field_type(setting.cls, setting.field)
        help_ = setting.meta.help
        if sequence:
            define = flags.DEFINE_multi_string if name == "npu_option" else flags.DEFINE_list
            define(name, None, help_, flag_values=fv)
        elif kind is bool:
            flags.DEFINE_bool(name, None, help_, flag_values=fv)
        else:
            flags.DEFINE_string(name, None, help_, flag_values=fv)  # typed and validated by run_config
        for alias in setting.meta.aliases:
            flags.DEFINE_alias(alias, name, flag_values=fv)
    for name, help_ in ACTIONS.items():
        flags.DEFINE_bool(name, False, help_, flag_values=fv)
    return fv


def _normalise(args: Sequence[str]) -> List[str]:
    """The command line's spellings absl does not know: a bare ``--allow_recipe_change`` means all."""
    return ["--allow_recipe_change=all" if a == "--allow_recipe_change" else a for a in args]


def _parse(args: Sequence[str]) -> Tuple[Dict[str, Any], Dict[str, bool]]:
    """``(settings, actions)`` the arguments give: flag name -> value as written, for flags present only."""
    fv = define_flags()
    try:
        rest = fv(["main.py"] + _normalise(args))
    except flags.Error as e:
        raise SettingError(str(e).splitlines()[0]) from None
    if len(rest) > 1:
        raise SettingError(f"unexpected arguments: {' '.join(rest[1:])} (settings are --name=value)")
    values = {name: fv[name].value for name in SETTINGS if name == SETTINGS[name].flag and fv[name].present}
    actions = {name: bool(fv[name].value) for name in ACTIONS}
    return values, actions


def command_line_layers(argv: Sequence[str]) -> Tuple[List[Layer], Dict[str, bool]]:
    """The user's layers, lowest first: each ``--flagfile`` (in order), then the rest of the command line.

    A flag file's own ``--flagfile`` lines are expanded in place (absl's rules: one flag per line,
    ``#`` comments). The command line wins over every flag file wherever it is written.
    """
    files, rest = [], []
    for i, arg in enumerate(argv):
        if arg.startswith("--flagfile="):
            files.append(arg.split("=", 1)[1])
        elif arg == "--flagfile" and i + 1 < len(argv):
            files.append(argv[i + 1])
        elif i and argv[i - 1] == "--flagfile":
            continue
        else:
            rest.append(arg)
    layers = []
    reader = define_flags()
    for path in files:
        if not os.path.isfile(path):
            raise SettingError(f"--flagfile={path}: no such file.")
        expanded = reader.read_flags_from_files([f"--flagfile={path}"], force_gnu=False)
        values, actions = _parse(expanded)
        if any(actions.values()):
            raise SettingError(f"--flagfile={path}: --list and --print_config belong on the command line.")
        layers.append(Layer(f"flag file {path}", values))
    values, actions = _parse(rest)
    layers.append(Layer("command line", values))
    return layers, actions


def _extra_modules(layers: Sequence[Layer]) -> Tuple[str, ...]:
    for layer in reversed(layers):
        if "extra_modules" in layer.values:
            return tuple(layer.values["extra_modules"])
    return ()


def check_names(config: run_config.RunConfig) -> None:
    """Checks the registry names of a configuration; raises SettingError naming the flag."""
    checks = [("model", registry.MODELS, config.model.name), ("backend", registry.BACKENDS,
                                                             config.distribution.backend)]
    if config.data.dataset:
        checks.append(("dataset", registry.DATASETS, config.data.dataset))
    for flag, reg, value in checks:
        try:
            reg.entry(value)
        except registry.RegistryError as e:
            raise SettingError(f"--{flag}={value}: {e}") from None
    if config.model.initializer is not None:
        model = registry.MODELS.entry(config.model.name).name
        choices = registry.MODELS.metadata(model).get("initializers")
        if not choices:
            raise SettingError(f"--initializer={config.model.initializer}: model {model} has no initialiser choice; "
                               "leave the flag out.")
        if config.model.initializer not in choices:
            raise SettingError(f"--initializer={config.model.initializer}: must be one of "
                               f"{', '.join(sorted(choices))}.")


def print_registries(model_patterns: Sequence[str] = ()) -> None:
    """Prints the zoo (parameters, input size, reference accuracy) and the other registries.

    Imports no TensorFlow: the registries hold names and metadata; builders load when used.

    Args:
        model_patterns: fnmatch patterns that filter the models (``--list --model='resnet*'``); other
            registries are printed only without a filter.
    """
    import zoo

    names = registry.MODELS.list(list(model_patterns) or None)
    print(f"models ({len(names)}):")
    print(f"  {'name':22s} {'params':>12s} {'input':>5s} {'eval':>9s} {'top1/top5':>15s}  description")
    for name in names:
        meta, recipe = registry.MODELS.metadata(name), zoo.get_recipe(name)
        params = f"{meta['params']:,}" if meta.get("params") else "?"
        accuracy = (f"{recipe.reference_top1:.3f}/{recipe.reference_top5:.3f}"
                    if recipe.reference_top1 and recipe.reference_top5 else "-")
        evaluation = f"{recipe.eval_resize}{'b' if recipe.interpolation == 'bicubic' else ''}"
        print(f"  {name:22s} {params:>12s} {recipe.input_size:>5d} {evaluation:>9s} {accuracy:>15s}  "
              f"{meta.get('description', '')}")
    if model_patterns:
        return
    print("  (eval: resize before the central crop; b = bicubic. Accuracy: the reference weights' ImageNet-1k "
          "top-1/top-5, from the source each recipe names.)")
    for kind, reg in (("backends", registry.BACKENDS), ("datasets", registry.DATASETS),
                      ("optimizers", registry.OPTIMIZERS), ("lr schedules", registry.SCHEDULES)):
        print(f"{kind}:")
        for entry_name in reg.list():
            desc = reg.metadata(entry_name).get("description", "")
            print(f"  {entry_name:20s} {desc}")


def resolve_command_line(argv: Sequence[str]) -> Tuple[Optional[run_config.Resolved], List[Layer], Dict[str, bool]]:
    """The configuration the arguments describe (without a finished run's saved settings); None with ``--list``.

    Raises:
        SettingError: a bad flag, value or name (one line).
    """
    import zoo

    layers, actions = command_line_layers(argv)
    registry.import_extra_modules(_extra_modules(layers))
    registry.load_entry_point_plugins()
    if actions["list"]:
        return None, layers, actions
    model = next((layer.values["model"] for layer in reversed(layers) if "model" in layer.values), None)
    if model is not None:
        try:
            registry.MODELS.entry(model)
        except registry.RegistryError as e:
            raise SettingError(f"--model={model}: {e}") from None
    resolved = run_config.resolve(layers, recipe_of=zoo.recipe_settings)
    check_names(resolved.config)
    return resolved, layers, actions


def _help(argv: Sequence[str]) -> str:
    """``--help`` for the model (and flag files) the other arguments name."""
    import zoo

    try:
        layers, _ = command_line_layers([a for a in argv if a not in HELP_ARGS])
    except SettingError:
        layers = []
    registry.import_extra_modules(_extra_modules(layers))
    # The defaults shown: the model's recipe and the flag files; the command line only names the model.
    shown = [layer for layer in layers if layer.source != "command line"]
    model = {k: v for layer in layers if layer.source == "command line" for k, v in layer.values.items()
             if k == "model"}
    try:
        resolved = run_config.resolve(shown + [Layer("command line", model)], recipe_of=zoo.recipe_settings)
    except (SettingError, registry.RegistryError) as e:
        return f"error: {e}"
    return help_text(resolved)


class _ProjectRecords(logging.Filter):
    """Keeps the project's own log records at INFO and anyone's warnings; drops libraries' INFO chatter."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or record.pathname.startswith(_ROOT)


_ROOT = os.path.dirname(os.path.abspath(__file__)) + os.sep


# TensorFlow's C++ start-up notices that say nothing a user acts on (printed twice, before TensorFlow's own
# log-level setting applies, so TF_CPP_MIN_LOG_LEVEL cannot hide them).
_STARTUP_NOISE = ("All log messages before absl::InitializeLog() is called", "oneDNN custom operations are on",
                  "Could not find cuda drivers on your machine", "TF-TRT Warning: Could not find TensorRT",
                  "This TensorFlow binary is optimized to use available CPU instructions",
                  "To enable the following instructions", "rebuild TensorFlow with the appropriate compiler flags")


def import_tensorflow_quietly() -> None:
    """Imports TensorFlow and Keras with their C++ start-up notices filtered out of stderr.

    The C++ libraries write to file descriptor 2 while they load; that output goes to a temporary
    file, and every line but the known notices is written to stderr afterwards. Set
    ``MODELZOO_TF_STARTUP=1`` to see everything.
    """
    if os.environ.get("MODELZOO_TF_STARTUP") == "1" or "tensorflow" in sys.modules:
        import keras_compat  # noqa: F401
        return
    import tempfile

    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import keras_compat  # noqa: F401 - TensorFlow and the chosen Keras
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            text = captured.read().decode("utf-8", "replace")
    kept = [line for line in text.splitlines() if line.strip() and not any(n in line for n in _STARTUP_NOISE)]
    if kept:
        print("\n".join(kept), file=sys.stderr)


def quiet_console() -> None:
    """One plain line per message on stderr: the project's own INFO records and every warning.

    absl's Python logger would print ``INFO:absl:`` lines of TensorFlow's internals too (checkpoint
    sharding callbacks and the like); those carry nothing a user acts on. C++ start-up notices are
    handled by ``TF_CPP_MIN_LOG_LEVEL`` before TensorFlow is imported.
    """
    from absl import logging as absl_logging

    absl_logging.set_verbosity(absl_logging.INFO)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.addFilter(_ProjectRecords())
    logger = logging.getLogger("absl")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logging.getLogger("tensorflow").setLevel(logging.WARNING)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Runs the command line ``argv`` (without the program name); returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a in HELP_ARGS for a in argv):
        print(_help(argv))
        return 0
    try:
        resolved, layers, actions = resolve_command_line(argv)
    except (SettingError, registry.RegistryError, ImportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if actions["list"]:
        patterns = [layer.values["model"] for layer in layers if "model" in layer.values][-1:]
        print_registries(patterns)
        return 0
    quiet_console()
    import_tensorflow_quietly()
    from modes import runner  # TensorFlow is imported from here on

    if actions["print_config"]:
        try:
            resolved = runner.configure(resolved, layers)
        except (SettingError, ValueError, FileNotFoundError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        print("\n".join(config_table(resolved)))
        return 0
    return runner.run_command_line(resolved, layers, argv=[sys.argv[0]] + argv)


if __name__ == "__main__":
    _hide_gpus_for_cpu_runs(sys.argv[1:])
    sys.exit(main())
