"""Run configuration: built-in defaults, presets, the user's file, overrides, validation.

A run is described by one nested dict with the sections of `schema.py`. It is built in this
order, each layer overriding the one before:

1. the defaults in `schema.SCHEMA` (every key, with its help text);
2. a preset, `libkd_keras/presets/<name>.toml`;
3. the user's own TOML file;
4. `section.key=value` overrides (the CLI's convenience flags and `--set`).

Every layer is validated: an unknown section or key, a wrong type or a value out of range is a
`ConfigError` that names the valid choices (a typo is never ignored). `settings.Config.from_dict`
turns the resolved dict into typed sections; `config_text.to_toml` writes it into the run folder.
No TensorFlow here.

Example:
>>> config = resolve_config(preset="quick", overrides=["student.epochs=2"])
>>> config["student"]["epochs"]
2
"""

import copy
import sys
from importlib import resources

from libkd_keras import choices
from libkd_keras.pipeline.checks import check_config, check_layer, coerce, normalize_student, normalize_teacher_model
from libkd_keras.pipeline.schema import DEFAULT_STUDENTS, SCHEMA, SECTIONS, ConfigError, did_you_mean

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


# ---------------------------------------------------------------------------------------------
# Presets and files


def available_presets():
    """Names of the presets shipped in `libkd_keras/presets/`."""
    folder = resources.files("libkd_keras.presets")
    return sorted(p.name[: -len(".toml")] for p in folder.iterdir() if p.name.endswith(".toml"))


def load_preset(name):
    """The raw dict of a shipped preset; an unknown name lists the valid ones."""
    presets = available_presets()
    if name not in presets:
        raise ConfigError(f"Unknown preset {name!r}{did_you_mean(name, presets)}. Valid presets: {', '.join(presets)}.")
    text = (resources.files("libkd_keras.presets") / f"{name}.toml").read_text(encoding="utf-8")
    return parse_toml(text, f"preset {name!r}")


def load_config_file(path):
    """The raw dict of a user's TOML config file."""
    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"Config file {str(path)!r} does not exist; pass the path of a TOML file to --config."
        ) from None
    except IsADirectoryError:
        raise ConfigError(f"Config file {str(path)!r} is a folder; pass the path of a TOML file to --config.") from None
    return parse_toml(text, f"config file {str(path)!r}")


def parse_toml(text, origin):
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"Cannot parse {origin} as TOML: {e}.") from None


# ---------------------------------------------------------------------------------------------
# Building the resolved config


def default_config():
    """Every key at its built-in default (a fresh copy)."""
    config = {
        section: {key: copy.deepcopy(opt.default) for key, opt in options.items()}
        for section, options in SCHEMA.items()
    }
    config["students"] = copy.deepcopy(DEFAULT_STUDENTS)
    return config


def merge(base, layer, origin):
    """`layer` validated and merged over `base` (tables merge key by key; lists are replaced).

    A layer that changes a teacher family's architecture (`teachers.resnet_arch`, ...) starts that
    family's builder table afresh: arguments of the old architecture do not fit the new one.
    """
    check_layer(layer, origin)
    merged = copy.deepcopy(base)
    for section, values in layer.items():
        if section == "students":
            merged["students"] = [normalize_student(entry) for entry in values]
            continue
        if section == "teachers":
            for family in choices.TEACHER_FAMILIES:
                arch = values.get(f"{family}_arch")
                if arch is not None and arch != merged["teachers"][f"{family}_arch"]:
                    merged["teachers"][family] = {}
        for key, value in values.items():
            if SCHEMA[section][key].kind == "table":
                merged[section][key] = {**merged[section][key], **copy.deepcopy(value)}
            elif (section, key) == ("teachers", "models"):
                merged[section][key] = [normalize_teacher_model(entry, origin) for entry in value]
            else:
                merged[section][key] = coerce(SCHEMA[section][key], value)
    return merged


def resolve_config(preset=None, config_file=None, overrides=(), base=None, teachers=()):
    """The full config: `base` (or the defaults), then the preset, the user's file, the overrides.

    `overrides` are `"section.key=value"` strings (value in TOML syntax; a bare word is a string).
    A student entry's key is addressed by its name: `"students.ensemble.alpha=0.3"`.
    `teachers`: `"PATH"` or `"NAME=PATH"` strings (the CLI's `--teacher`), added to `teachers.models`.
    """
    config = copy.deepcopy(base) if base is not None else default_config()
    name = ""
    if preset is not None:
        config = merge(config, load_preset(preset), f"preset {preset!r}")
        name = preset
    if config_file is not None:
        config = merge(config, load_config_file(config_file), f"config file {str(config_file)!r}")
        name = _file_stem(config_file)
    for override in overrides:
        config = apply_override(config, override)
    config = add_teacher_models(config, teachers)
    if not config["run"]["name"]:
        config["run"]["name"] = name or "run"
    check_config(config)
    return config


def apply_override(config, override):
    """One `section.key=value` (or `students.<name>.<key>=value`) applied to a copy of `config`."""
    if "=" not in override:
        raise ConfigError(f"--set expects section.key=value, e.g. student.epochs=5; got {override!r}.")
    path, raw = override.split("=", 1)
    parts = path.strip().split(".")
    value = parse_value(raw.strip())
    config = copy.deepcopy(config)
    if parts[0] == "students" and len(parts) == 3:
        names = [s["name"] for s in config["students"]]
        if parts[1] not in names:
            raise ConfigError(f"--set {override!r}: no student named {parts[1]!r}; students: {', '.join(names)}.")
        entry = {k: v for k, v in config["students"][names.index(parts[1])].items()}
        entry[parts[2]] = value
        config["students"][names.index(parts[1])] = normalize_student(entry, f"--set {override!r}")
        return config
    if parts[0] == "students" and len(parts) == 1:
        return merge(config, {"students": value}, f"--set {override!r}")
    if len(parts) == 3 and parts[0] in SCHEMA and getattr(SCHEMA[parts[0]].get(parts[1]), "kind", None) == "table":
        return merge(config, {parts[0]: {parts[1]: {parts[2]: value}}}, f"--set {override!r}")
    if len(parts) != 2:
        raise ConfigError(
            f"--set {override!r}: the key must be section.key (sections: {', '.join(SECTIONS)}), "
            "students.<name>.<key>, or section.table.key for builder arguments."
        )
    return merge(config, {parts[0]: {parts[1]: value}}, f"--set {override!r}")


def add_teacher_models(config, teachers):
    """`config` with each `"[NAME=]PATH"` of `teachers` appended to `teachers.models` (an entry already
    there, e.g. from the run folder's stored config, is not added twice)."""
    config = copy.deepcopy(config)
    for text in teachers:
        name, _, path = text.partition("=") if "=" in text.split("/", 1)[0] else ("", "", text)
        entry = normalize_teacher_model({"path": path, **({"name": name} if name else {})}, f"--teacher {text!r}")
        models = config["teachers"]["models"]
        if not any(m["name"] == entry["name"] and m["path"] == entry["path"] for m in models):
            models.append(entry)
    return config


def parse_value(raw):
    """A TOML value (`5`, `0.3`, `true`, `[0, 1]`, `"x"`); anything else is taken as a bare string."""
    try:
        return tomllib.loads(f"value = {raw}")["value"]
    except tomllib.TOMLDecodeError:
        return raw


def _file_stem(path):
    name = str(path).replace("\\", "/").rsplit("/", 1)[-1]
    return name[:-5] if name.endswith(".toml") else name
