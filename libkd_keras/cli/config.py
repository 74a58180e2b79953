"""The configuration the CLI loads: presets, `--config`, flags and `--set`, resolved and validated.

The schema and its rules live in the library (`libkd_keras.pipeline`: `schema.py` for the keys,
`config.py` for resolution, `checks.py` for validation, `config_text.py` for TOML); this module
gathers the names the CLI and its users import. No TensorFlow here.

Example:
>>> config = resolve_config(preset="quick", overrides=["student.epochs=2"])
>>> config["student"]["epochs"]
2
"""

from libkd_keras.pipeline.checks import check_config, check_layer
from libkd_keras.pipeline.config import (
    apply_override,
    available_presets,
    default_config,
    load_config_file,
    load_preset,
    merge,
    parse_value,
    resolve_config,
)
from libkd_keras.pipeline.config_text import config_differences, describe_options, parse_config_text, to_toml
from libkd_keras.pipeline.schema import (
    REDNET_KWARGS,
    RESNET_KWARGS,
    SCHEMA,
    SECTIONS,
    STUDENT_ENTRY,
    ConfigError,
    Option,
)
from libkd_keras.pipeline.settings import student_settings, student_teachers, teacher_epochs, teacher_specs
from libkd_keras.recipes import DEIT_KWARGS

__all__ = [
    "DEIT_KWARGS",
    "REDNET_KWARGS",
    "RESNET_KWARGS",
    "SCHEMA",
    "SECTIONS",
    "STUDENT_ENTRY",
    "ConfigError",
    "Option",
    "apply_override",
    "available_presets",
    "check_config",
    "check_layer",
    "config_differences",
    "default_config",
    "describe_options",
    "load_config_file",
    "load_preset",
    "merge",
    "parse_config_text",
    "parse_value",
    "resolve_config",
    "student_settings",
    "student_teachers",
    "teacher_epochs",
    "teacher_specs",
    "to_toml",
]
