"""The typed run configuration: every setting a run has, resolved once, saved with the run.

Read this package to know every setting: :mod:`run_config.groups` declares them (one frozen dataclass
per concern, one field per setting, with type, default, help text, validation and role);
:mod:`run_config.resolve` builds a run's configuration from defaults < model recipe < flag files <
command line and records each value's source; :mod:`run_config.persist` writes and reads
``config.json``; :mod:`run_config.compare` is the resume check; :mod:`run_config.describe` renders
the log's table and ``--help``.

This package imports no TensorFlow and nothing above the top level, so every package may use it.
Only ``main.py`` parses a command line; libraries receive the configuration (or the group they need)
as an argument.
"""

from run_config.fields import SettingError
from run_config.groups import (
    AugmentConfig,
    CheckpointConfig,
    DataConfig,
    DistributionConfig,
    EvaluationConfig,
    ExportConfig,
    FineTuneConfig,
    LoggingConfig,
    LoopConfig,
    ModelConfig,
    NPUConfig,
    OptimizerConfig,
    PrecisionConfig,
    PredictConfig,
    RegularizationConfig,
    RunConfig,
    ScheduleConfig,
)
from run_config.resolve import SETTINGS, Layer, Resolved, effective_lr, resolve, value_of, with_values

__all__ = [
    "SETTINGS",
    "AugmentConfig",
    "CheckpointConfig",
    "DataConfig",
    "DistributionConfig",
    "EvaluationConfig",
    "ExportConfig",
    "FineTuneConfig",
    "Layer",
    "LoggingConfig",
    "LoopConfig",
    "ModelConfig",
    "NPUConfig",
    "OptimizerConfig",
    "PrecisionConfig",
    "PredictConfig",
    "RegularizationConfig",
    "Resolved",
    "RunConfig",
    "ScheduleConfig",
    "SettingError",
    "effective_lr",
    "resolve",
    "value_of",
    "with_values",
]
