"""Run configuration: built-in defaults, presets, the user's file, flag overrides, validation.

A run is described by one nested dict with the sections below. It is built in this order, each
layer overriding the one before:

1. the defaults in `SCHEMA` (every key, with its help text);
2. a preset, `libkd_keras/presets/<name>.toml` (`--preset`);
3. the user's own TOML file (`--config my.toml`);
4. the convenience flags (`--epochs`, `--dataset`, ...) and `--set section.key=value`.

Every layer is validated: an unknown section or key, a wrong type or a value out of range is a
`ConfigError` that names the valid choices (a typo is never ignored). The resolved config is
written into the run folder as `config.toml` and is what makes two runs "the same run".

This module reads no flags and imports no TensorFlow, so `--help` and `--print-config` are fast.

Example:
>>> config = resolve_config(preset="quick", overrides=["student.epochs=2"])
>>> config["student"]["epochs"]
2
"""

import copy
import difflib
import json
import sys
from dataclasses import dataclass, field
from importlib import resources

from libkd_keras.precision import CHOICES as PRECISION_CHOICES  # no TensorFlow at import

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


class ConfigError(ValueError):
    """A preset, config file or override that cannot be used as it is (the message says why)."""


@dataclass(frozen=True)
class Option:
    """One config key: its default, type, help text and allowed values."""

    default: object
    kind: str  # "int", "float", "str", "bool", "auto_bool", "int_list", "str_list", "table"
    help: str
    choices: tuple = ()
    minimum: float = None
    maximum: float = None
    keys: tuple = ()  # for kind="table": the keyword arguments it may hold
    extra: dict = field(default_factory=dict)


QUANTIZATIONS = ("float32", "float16", "dynamic", "int8", "int8_mixed")  # = libkd_keras.export.QUANTIZATIONS (no TF here)
TEACHER_FAMILIES = ("resnet", "rednet")
STUDENT_ARCHS = ("deit_tiny", "deit_small", "deit_base")

# Keyword arguments a config may pass to the model builders; the pipeline sets the rest
# (num_classes, input_shape / image_size, patch_size, distillation, drop_path_rate).
RESNET_KWARGS = ("blocks", "widths", "stem")
REDNET_KWARGS = ("blocks", "base_channels", "stem_channels", "expansion", "strides", "stem")
DEIT_KWARGS = ("dim", "depth", "num_heads", "mlp_ratio", "qkv_bias", "layer_norm_epsilon")

SCHEMA = {
    "run": {
        "name": Option("", "str", "run folder name under saved_models/ ('' = the preset's or config file's name)"),
        "seed": Option(0, "int", "seed for data order, augmentation and the students' initialization", minimum=0),
        "precision": Option(
            "auto", "str",
            "compute precision of training: float32, mixed_bfloat16, or auto (mixed_bfloat16 on a CPU with "
            "AMX-BF16/AVX512-BF16 or a GPU of compute capability >= 8.0, where it trains convolutions "
            "up to 2.4x faster; float32 elsewhere, where bf16 is slower)",
            choices=PRECISION_CHOICES,
        ),
        "jit_compile": Option(
            "auto", "auto_bool",
            "XLA-compile training and inference steps: true, false, or \"auto\" (Keras: on with a GPU, off "
            "on a CPU, where it is slower and takes minutes to compile RedNet-26)",
        ),
    },
    "data": {
        "dataset": Option(
            "cifar10", "str",
            "cifar10, tf_flowers (through tensorflow-datasets) or a PATH: a class-folder tree "
            "(<root>/<split>/<class>/*.jpg|png) or the CIFAR-10 tarball",
        ),
        "data_dir": Option("", "str", "tensorflow-datasets data dir holding prepared data (offline machines)"),
        "image_size": Option(32, "int", "side images are resized to (0 = keep the source's size)", minimum=0),
        "train_limit": Option(0, "int", "training images the student sees (0 = all)", minimum=0),
        "test_limit": Option(0, "int", "test images used for every accuracy (0 = all)", minimum=0),
    },
    "teachers": {
        "resnet_seeds": Option([0], "int_list", "one ResNet (CNN) teacher per seed ([] = none)"),
        "rednet_seeds": Option([0], "int_list", "one RedNet (involution) teacher per seed ([] = none)"),
        "epochs": Option(200, "int", "training epochs of each teacher", minimum=1),
        "resnet_epochs": Option(0, "int", "epochs of the ResNet teachers (0 = teachers.epochs)", minimum=0),
        "rednet_epochs": Option(
            0, "int", "epochs of the RedNet teachers (0 = teachers.epochs; RedNet-26 trains ~4.5x slower on a CPU)",
            minimum=0,
        ),
        "batch_size": Option(128, "int", "teacher batch size", minimum=1),
        "learning_rate": Option(0.1, "float", "SGD learning rate (cosine decay)", minimum=0.0),
        "momentum": Option(0.9, "float", "SGD momentum", minimum=0.0, maximum=1.0),
        "weight_decay": Option(5e-4, "float", "L2 weight decay", minimum=0.0),
        "label_smoothing": Option(0.1, "float", "label smoothing of the teachers' loss", minimum=0.0, maximum=0.99),
        "warmup_epochs": Option(0, "int", "linear warm-up epochs before the cosine decay (capped at epochs - 1)", minimum=0),
        "augment": Option(True, "bool", "pad-4 random crop + flip (random resized crop + flip for large images)"),
        "train_limit": Option(
            0, "int",
            "training images the teachers see (0 = the student's data.train_limit); larger than the "
            "student's is a deviation from the paper, which trains both on the same set",
            minimum=0,
        ),
        "resnet": Option({}, "table", "builder arguments of libkd_keras.models.resnet ({} = ResNet-26)",
                         keys=RESNET_KWARGS),
        "rednet": Option({}, "table", "builder arguments of libkd_keras.models.rednet ({} = RedNet-26)",
                         keys=REDNET_KWARGS),
    },
    "store": {
        "dtype": Option("float32", "str", "precision of the stored teacher logits (float16 halves the logits files but refuses logits above 65504, which a briefly-trained RedNet can produce)", choices=("float16", "float32")),
        "batch_size": Option(256, "int", "batch size of the teachers' single pass over the data", minimum=1),
        "include_images": Option(True, "bool", "store the images too, so the store alone feeds training"),
    },
    "student": {
        "arch": Option("deit_tiny", "str", "student size", choices=STUDENT_ARCHS),
        "patch_size": Option(4, "int", "patch side in pixels (must divide the image size)", minimum=1),
        "drop_path_rate": Option(0.1, "float", "stochastic depth rate", minimum=0.0, maximum=0.99),
        "model": Option({}, "table", "DeiT arguments overriding the arch's ({} = as named)", keys=DEIT_KWARGS),
        "epochs": Option(300, "int", "training epochs of each student", minimum=1),
        "batch_size": Option(128, "int", "student batch size", minimum=1),
        "learning_rate": Option(
            0.0, "float", "AdamW peak learning rate (0 = the recipe's 5e-4 * batch_size / 512)", minimum=0.0
        ),
        "weight_decay": Option(0.05, "float", "AdamW weight decay", minimum=0.0),
        "warmup_epochs": Option(5, "int", "linear warm-up epochs before the cosine decay (capped at epochs - 1)", minimum=0),
        "label_smoothing": Option(0.1, "float", "label smoothing of the true-label loss", minimum=0.0, maximum=0.99),
        "recipe": Option("baseline", "str", "augmentation recipe (superior: MixUp/CutMix, RandAugment, ...)",
                         choices=("baseline", "superior")),
        "distillation": Option("hard", "str", "distillation target type", choices=("hard", "soft")),
        "alpha": Option(0.5, "float", "weight of the true-label loss (1 - alpha on the distillation token)",
                        minimum=0.0, maximum=1.0),
        "temperature": Option(1.0, "float", "softmax temperature of soft distillation", minimum=1e-6),
        "ensemble": Option("soft", "str", "how several teachers are combined", choices=("soft", "vote")),
    },
    "export": {
        "student": Option("", "str", "student to export ('' = the distilled student with the best test top-1)"),
        "quantizations": Option(list(QUANTIZATIONS), "str_list", "LiteRT variants to write ([] = skip export)",
                                choices=QUANTIZATIONS),
        "representative_images": Option(200, "int", "training images calibrating int8 quantization", minimum=1),
        "latency_runs": Option(50, "int", "timed batch-1 runs per variant (after warm-up)", minimum=1),
        "threads": Option(1, "int", "interpreter threads for the latency benchmark", minimum=1),
    },
}

# Each [[students]] entry: a name, a teacher set, and optionally its own value of these [student] keys.
STUDENT_ENTRY_KEYS = ("recipe", "distillation", "alpha", "temperature", "ensemble", "epochs")
STUDENT_ENTRY = {
    "name": Option(None, "str", "the student's name (file names, report rows)"),
    "teachers": Option(
        [], "str_list",
        "teacher set: 'all', a family ('resnet', 'rednet') or teacher names; [] = no teacher (baseline)",
    ),
    **{key: SCHEMA["student"][key] for key in STUDENT_ENTRY_KEYS},
}
DEFAULT_STUDENTS = [{"name": "baseline", "teachers": []}, {"name": "ensemble", "teachers": ["all"]}]
SECTIONS = tuple(SCHEMA) + ("students",)


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
        raise ConfigError(f"Unknown preset {name!r}{_did_you_mean(name, presets)}. Valid presets: {', '.join(presets)}.")
    text = (resources.files("libkd_keras.presets") / f"{name}.toml").read_text(encoding="utf-8")
    return _parse_toml(text, f"preset {name!r}")


def load_config_file(path):
    """The raw dict of a user's TOML config file."""
    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"Config file {str(path)!r} does not exist; pass the path of a TOML file to --config.") from None
    except IsADirectoryError:
        raise ConfigError(f"Config file {str(path)!r} is a folder; pass the path of a TOML file to --config.") from None
    return _parse_toml(text, f"config file {str(path)!r}")


def _parse_toml(text, origin):
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"Cannot parse {origin} as TOML: {e}.") from None


# ---------------------------------------------------------------------------------------------
# Building the resolved config


def default_config():
    """Every key at its built-in default (a fresh copy)."""
    config = {section: {key: copy.deepcopy(opt.default) for key, opt in options.items()}
              for section, options in SCHEMA.items()}
    config["students"] = copy.deepcopy(DEFAULT_STUDENTS)
    return config


def merge(base, layer, origin):
    """`layer` validated and merged over `base` (tables merge key by key; lists are replaced)."""
    check_layer(layer, origin)
    merged = copy.deepcopy(base)
    for section, values in layer.items():
        if section == "students":
            merged["students"] = [_normalize_student(entry) for entry in values]
            continue
        for key, value in values.items():
            if SCHEMA[section][key].kind == "table":
                merged[section][key] = {**merged[section][key], **copy.deepcopy(value)}
            else:
                merged[section][key] = _coerce(SCHEMA[section][key], value)
    return merged


def resolve_config(preset=None, config_file=None, overrides=(), base=None):
    """The full config: `base` (or the defaults), then the preset, the user's file, the overrides.

    `overrides` are `"section.key=value"` strings (value in TOML syntax; a bare word is a string).
    A student entry's key is addressed by its name: `"students.ensemble.alpha=0.3"`.
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
        config["students"][names.index(parts[1])] = _normalize_student(entry, f"--set {override!r}")
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


def parse_value(raw):
    """A TOML value (`5`, `0.3`, `true`, `[0, 1]`, `"x"`); anything else is taken as a bare string."""
    try:
        return tomllib.loads(f"value = {raw}")["value"]
    except tomllib.TOMLDecodeError:
        return raw


def _file_stem(path):
    name = str(path).replace("\\", "/").rsplit("/", 1)[-1]
    return name[:-5] if name.endswith(".toml") else name


# ---------------------------------------------------------------------------------------------
# Validation


def check_layer(layer, origin):
    """Names and types of one layer (preset, file or override) before it is merged."""
    if not isinstance(layer, dict):
        raise ConfigError(f"{origin}: expected a table of sections; got {type(layer).__name__}.")
    for section, values in layer.items():
        if section not in SECTIONS:
            raise ConfigError(
                f"{origin}: unknown section [{section}]{_did_you_mean(section, SECTIONS)}. "
                f"Valid sections: {', '.join(SECTIONS)}."
            )
        if section == "students":
            if not isinstance(values, list) or not all(isinstance(v, dict) for v in values):
                raise ConfigError(f"{origin}: 'students' must be an array of tables ([[students]] entries).")
            for entry in values:
                _check_student_entry(entry, origin)
            continue
        if not isinstance(values, dict):
            raise ConfigError(f"{origin}: [{section}] must be a table; got {values!r}.")
        for key, value in values.items():
            if key not in SCHEMA[section]:
                valid = tuple(SCHEMA[section])
                raise ConfigError(
                    f"{origin}: unknown key {section}.{key}{_did_you_mean(key, valid)}. "
                    f"Valid keys of [{section}]: {', '.join(valid)}."
                )
            _check_value(f"{section}.{key}", SCHEMA[section][key], value, origin)


def _check_student_entry(entry, origin):
    for key, value in entry.items():
        if key not in STUDENT_ENTRY:
            valid = tuple(STUDENT_ENTRY)
            raise ConfigError(
                f"{origin}: unknown key {key!r} in a [[students]] entry{_did_you_mean(key, valid)}. "
                f"Valid keys: {', '.join(valid)}."
            )
        _check_value(f"students.{key}", STUDENT_ENTRY[key], value, origin)
    if not entry.get("name"):
        raise ConfigError(f"{origin}: every [[students]] entry needs a name, e.g. name = \"baseline\".")


def _normalize_student(entry, origin="students"):
    _check_student_entry(entry, origin)
    out = {"name": entry["name"], "teachers": list(entry.get("teachers", []))}
    for key in STUDENT_ENTRY_KEYS:
        if key in entry:
            out[key] = _coerce(STUDENT_ENTRY[key], entry[key])
    return out


def _type_ok(kind, value):
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "str":
        return isinstance(value, str)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "int_list":
        return isinstance(value, list) and all(_type_ok("int", v) for v in value)
    if kind == "str_list":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if kind == "table":
        return isinstance(value, dict)
    if kind == "auto_bool":
        return isinstance(value, bool) or value == "auto"
    raise AssertionError(kind)


_KIND_WORDS = {
    "int": "an integer", "float": "a number", "str": "a string", "bool": "true or false",
    "int_list": "a list of integers, e.g. [0, 1]", "str_list": 'a list of strings, e.g. ["a", "b"]',
    "table": "a table of builder arguments",
    "auto_bool": 'true, false or "auto"',
}


def _check_value(name, opt, value, origin):
    if not _type_ok(opt.kind, value):
        raise ConfigError(f"{origin}: {name} must be {_KIND_WORDS[opt.kind]}; got {value!r}.")
    items = value if isinstance(value, list) else [value]
    if opt.choices:
        for item in items:
            if item not in opt.choices:
                raise ConfigError(
                    f"{origin}: {name} = {value!r} is not valid{_did_you_mean(str(item), opt.choices)}. "
                    f"Valid values: {', '.join(map(str, opt.choices))}."
                )
    for item in items:
        if opt.minimum is not None and isinstance(item, (int, float)) and item < opt.minimum:
            raise ConfigError(f"{origin}: {name} must be >= {opt.minimum}; got {item!r}.")
        if opt.maximum is not None and isinstance(item, (int, float)) and item > opt.maximum:
            raise ConfigError(f"{origin}: {name} must be <= {opt.maximum}; got {item!r}.")
    if opt.kind == "table":
        for key in value:
            if key not in opt.keys:
                raise ConfigError(
                    f"{origin}: unknown argument {name}.{key}{_did_you_mean(key, opt.keys)}. "
                    f"Valid arguments: {', '.join(opt.keys)}."
                )


def _coerce(opt, value):
    return float(value) if opt.kind == "float" else copy.deepcopy(value)


def check_config(config):
    """Checks across keys of a resolved config: teacher sets, names, sizes."""
    teachers = teacher_specs(config)
    names = [s["name"] for s in config["students"]]
    if not names:
        raise ConfigError("The config has no [[students]] entry; add at least one, e.g. name = \"baseline\".")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"Student names must be unique; repeated: {', '.join(duplicates)}.")
    for entry in config["students"]:
        student_teachers(config, entry, teachers)
    export_student = config["export"]["student"]
    if export_student and export_student not in names:
        raise ConfigError(
            f"export.student = {export_student!r} is not a configured student. Students: {', '.join(names)}."
        )
    size, patch = config["data"]["image_size"], config["student"]["patch_size"]
    if size and size % patch:
        raise ConfigError(
            f"student.patch_size = {patch} does not divide data.image_size = {size}; "
            f"choose a patch size among {[p for p in range(1, size + 1) if size % p == 0]}."
        )


def teacher_specs(config):
    """The teachers of a config as `[(name, family, seed), ...]`, e.g. `("resnet26_s0", "resnet", 0)`.

    A family with builder arguments is named without the "26" (it is no longer ResNet-26/RedNet-26).
    """
    specs = []
    for family in TEACHER_FAMILIES:
        seeds = config["teachers"][f"{family}_seeds"]
        if len(set(seeds)) != len(seeds):
            raise ConfigError(f"teachers.{family}_seeds holds a seed twice: {seeds}.")
        base = family if config["teachers"][family] else f"{family}26"
        specs += [(f"{base}_s{seed}", family, seed) for seed in seeds]
    return specs


def student_teachers(config, entry, specs=None):
    """Teacher names of a [[students]] entry, in config order ('all' and family names expanded)."""
    specs = teacher_specs(config) if specs is None else specs
    names = [name for name, _, _ in specs]
    chosen = set()
    for item in entry["teachers"]:
        if item == "all":
            chosen.update(names)
        elif item in TEACHER_FAMILIES:
            chosen.update(name for name, family, _ in specs if family == item)
        elif item in names:
            chosen.add(item)
        else:
            valid = ["all", *TEACHER_FAMILIES, *names]
            raise ConfigError(
                f"Student {entry['name']!r}: unknown teacher {item!r}{_did_you_mean(item, valid)}. "
                f"Valid: {', '.join(valid)}."
            )
    if entry["teachers"] and not chosen:
        raise ConfigError(
            f"Student {entry['name']!r} asks for teachers {entry['teachers']} but the config trains none of "
            "them; set teachers.resnet_seeds / teachers.rednet_seeds."
        )
    return [name for name in names if name in chosen]


def teacher_epochs(config, family):
    """Training epochs of the teachers of `family` ("resnet" or "rednet")."""
    return config["teachers"][f"{family}_epochs"] or config["teachers"]["epochs"]


def student_settings(config, entry):
    """The [student] section with a [[students]] entry's own values applied."""
    return {**config["student"], **{k: entry[k] for k in STUDENT_ENTRY_KEYS if k in entry}}


def _did_you_mean(word, valid):
    close = difflib.get_close_matches(str(word), [str(v) for v in valid], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


# ---------------------------------------------------------------------------------------------
# Comparing and writing


IGNORED_IN_COMPARISON = (("run", "name"),)  # the folder's name does not change what a run computes


def config_differences(old, new):
    """`["section.key: old -> new", ...]` between two resolved configs (empty when the same run)."""
    old, new = copy.deepcopy(old), copy.deepcopy(new)
    for section, key in IGNORED_IN_COMPARISON:
        for config in (old, new):
            config.get(section, {}).pop(key, None)
    lines = []
    for section in sorted(set(old) | set(new)):
        a, b = old.get(section), new.get(section)
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b)):
                if a.get(key) != b.get(key):
                    lines.append(f"{section}.{key}: {json.dumps(a.get(key))} -> {json.dumps(b.get(key))}")
        elif a != b:
            lines.append(f"{section}: {json.dumps(a)} -> {json.dumps(b)}")
    return lines


def to_toml(config):
    """The resolved config as TOML text (sections, builder tables and [[students]] entries)."""
    lines = ["# Resolved libkd configuration of this run (written by libkd; do not edit).", ""]
    for section, values in config.items():
        if section == "students":
            continue
        lines.append(f"[{section}]")
        tables = []
        for key, value in values.items():
            if isinstance(value, dict):
                tables.append((key, value))
            else:
                lines.append(f"{key} = {_toml_value(value)}")
        lines.append("")
        for key, table in tables:
            lines.append(f"[{section}.{key}]")
            lines += [f"{k} = {_toml_value(v)}" for k, v in table.items()]
            lines.append("")
    for entry in config.get("students", []):
        lines.append("[[students]]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in entry.items()]
        lines.append("")
    return "\n".join(lines)


def _toml_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a valid TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"Cannot write {value!r} as TOML.")


def parse_config_text(text, origin):
    """A resolved config read back from `config.toml` text."""
    return merge(default_config(), _parse_toml(text, origin), origin)


def describe_options():
    """Every key with its default and help, for `--help` and the documentation."""
    lines = []
    for section, options in SCHEMA.items():
        for key, opt in options.items():
            lines.append(f"  {section}.{key} = {_toml_value(opt.default) if opt.kind != 'table' else '{}'}  -- {opt.help}")
    lines.append("  [[students]] name, teachers, and optionally " + ", ".join(STUDENT_ENTRY_KEYS))
    return "\n".join(lines)
