"""Validation of config layers (names, types, ranges) and of a resolved config (across keys).

Every message names what is wrong and the valid choices; `ConfigError` is what the CLI prints as
one paragraph with exit code 2. No TensorFlow here.
"""

import copy
import os
import re

from libkd_keras import choices
from libkd_keras.pipeline.schema import (
    CIFAR_DEFAULTS,
    SCHEMA,
    SECTIONS,
    STUDENT_ENTRY,
    TEACHER_ARCH_KWARGS,
    TEACHER_MODEL_ENTRY,
    ConfigError,
    did_you_mean,
)
from libkd_keras.pipeline.settings import student_seeds, student_teachers, teacher_specs


def check_layer(layer, origin):
    """Names and types of one layer (preset, file or override) before it is merged."""
    if not isinstance(layer, dict):
        raise ConfigError(f"{origin}: expected a table of sections; got {type(layer).__name__}.")
    for section, values in layer.items():
        if section not in SECTIONS:
            raise ConfigError(
                f"{origin}: unknown section [{section}]{did_you_mean(section, SECTIONS)}. "
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
                    f"{origin}: unknown key {section}.{key}{did_you_mean(key, valid)}. "
                    f"Valid keys of [{section}]: {', '.join(valid)}."
                )
            _check_value(f"{section}.{key}", SCHEMA[section][key], value, origin)
        if section == "teachers" and "models" in values:
            for entry in values["models"]:
                normalize_teacher_model(entry, origin)
        if section == "student" and "seeds" in values:
            _check_seeds("student.seeds", values["seeds"], origin, allow_empty=True)


def _check_seeds(name, seeds, origin, allow_empty):
    """Student seeds are distinct; an entry's list is not empty (omit the key for [student] seeds)."""
    if not seeds and not allow_empty:
        raise ConfigError(
            f"{origin}: {name} = [] trains no student; give at least one seed, e.g. seeds = [0, 1, 2], "
            "or omit the key to use student.seeds (default [run.seed])."
        )
    repeated = sorted({seed for seed in seeds if seeds.count(seed) > 1})
    if repeated:
        raise ConfigError(
            f"{origin}: {name} = {seeds} holds seed(s) {repeated} twice; each seed trains one "
            "student, so list each once."
        )


def _check_entry_keys(entry, options, table, origin):
    """Each key of a `[[table]]` entry is one of `options` (else a ConfigError naming the valid keys) and
    its value fits that key's `Option`."""
    for key, value in entry.items():
        if key not in options:
            valid = tuple(options)
            raise ConfigError(
                f"{origin}: unknown key {key!r} in a [[{table}]] entry{did_you_mean(key, valid)}. "
                f"Valid keys: {', '.join(valid)}."
            )
        _check_value(f"{table}.{key}", options[key], value, origin)


def _check_student_entry(entry, origin):
    _check_entry_keys(entry, STUDENT_ENTRY, "students", origin)
    if "seeds" in entry:
        _check_seeds(f"students.{entry.get('name', '?')}.seeds", entry["seeds"], origin, allow_empty=False)
    if not entry.get("name"):
        raise ConfigError(f'{origin}: every [[students]] entry needs a name, e.g. name = "baseline".')


def normalize_student(entry, origin="students"):
    _check_student_entry(entry, origin)
    out = {"name": entry["name"], "teachers": list(entry.get("teachers", []))}
    for key in STUDENT_ENTRY:  # the declaration's order
        if key in entry and key not in out:
            out[key] = coerce(STUDENT_ENTRY[key], entry[key])
    return out


TEACHER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")  # it names files: teachers/<name>.keras


def normalize_teacher_model(entry, origin="teachers.models"):
    """A [[teachers.models]] entry checked and completed: absolute path, name (default: the file's stem), pixels."""
    _check_entry_keys(entry, TEACHER_MODEL_ENTRY, "teachers.models", origin)
    if not entry.get("path"):
        raise ConfigError(
            f'{origin}: every [[teachers.models]] entry needs a path, e.g. path = "my_cnn.keras" (a saved Keras '
            "classifier)."
        )
    path = os.path.abspath(os.path.expanduser(entry["path"]))
    name = entry.get("name") or os.path.basename(path.rstrip(os.sep)).removesuffix(".keras")
    if not TEACHER_NAME.match(name):
        raise ConfigError(
            f"{origin}: teacher name {name!r} (of {entry['path']!r}) must start with a letter or digit and hold "
            "only letters, digits and '_ . -' (it names the teacher's files); give one with name = ... or "
            "--teacher NAME=PATH."
        )
    return {"name": name, "path": path, "pixels": entry.get("pixels", TEACHER_MODEL_ENTRY["pixels"].default)}


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
    if kind == "table_list":
        return isinstance(value, list) and all(isinstance(v, dict) for v in value)
    if kind == "auto_bool":
        return isinstance(value, bool) or value == "auto"
    raise AssertionError(kind)


_KIND_WORDS = {
    "int": "an integer",
    "float": "a number",
    "str": "a string",
    "bool": "true or false",
    "int_list": "a list of integers, e.g. [0, 1]",
    "str_list": 'a list of strings, e.g. ["a", "b"]',
    "table": "a table of builder arguments",
    "table_list": "an array of tables ([[section.key]] entries)",
    "auto_bool": 'true, false or "auto"',
}


def _check_value(name, opt, value, origin):
    if not _type_ok(opt.kind, value):
        raise ConfigError(f"{origin}: {name} must be {_KIND_WORDS[opt.kind]}; got {value!r}.")
    items = value if isinstance(value, list) else [value]
    if opt.kind == "table_list":
        return  # each table is checked by its owner (normalize_teacher_model)
    if opt.choices:
        for item in items:
            if item not in opt.choices:
                raise ConfigError(
                    f"{origin}: {name} = {value!r} is not valid{did_you_mean(str(item), opt.choices)}. "
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
                    f"{origin}: unknown argument {name}.{key}{did_you_mean(key, opt.keys)}. "
                    f"Valid arguments: {', '.join(opt.keys)}."
                )


def coerce(opt, value):
    return float(value) if opt.kind == "float" else copy.deepcopy(value)


def check_config(config):
    """Checks across keys of a resolved config: teacher sets, names, sizes."""
    _check_teacher_archs(config["teachers"])  # first: teacher names are made from these arguments
    teachers = teacher_specs(config)
    names = [s["name"] for s in config["students"]]
    if not names:
        raise ConfigError('The config has no [[students]] entry; add at least one, e.g. name = "baseline".')
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"Student names must be unique; repeated: {', '.join(duplicates)}.")
    for entry in config["students"]:
        student_teachers(config, entry, teachers)
        targets = entry.get("targets", config["student"]["targets"])
        if targets == "views" and entry.get("teachers") and not config["store"]["views"]:
            raise ConfigError(
                f"student {entry['name']!r} has targets = 'views' but the store holds the clean images only: "
                "set store.views = N (e.g. 16; 162 = every pad-4 flip and crop of a 32x32 image)."
            )
    trained = [name for entry in config["students"] for name, _ in student_seeds(config, entry)]
    clashes = sorted({n for n in trained if trained.count(n) > 1})
    if clashes:
        raise ConfigError(
            f"Students with several seeds are named <name>_s<seed>; these names are given twice: "
            f"{', '.join(clashes)}. Rename a [[students]] entry."
        )
    names = trained + [n for n in names if n not in trained]
    export_student = config["export"]["student"]
    if export_student and export_student not in names:
        raise ConfigError(
            f"export.student = {export_student!r} is not a configured student. Students: {', '.join(names)}."
        )
    check_patch_size(config["student"]["patch_size"], config["data"]["image_size"], "data.image_size")


def check_patch_size(patch, size, what="the image size"):
    """A `ConfigError` unless `patch` divides `size` (0 = unknown until the data is loaded)."""
    if size and size % patch:
        raise ConfigError(
            f"student.patch_size = {patch} does not divide {what} = {size}; "
            f"choose a patch size among {[p for p in range(1, size + 1) if size % p == 0]}."
        )


def _check_teacher_archs(teachers):
    """Each family's builder table holds only its architecture's arguments, and CIFAR depths are 6n+2."""
    for family in choices.TEACHER_FAMILIES:
        arch, table = teachers[f"{family}_arch"], teachers[family]
        valid = TEACHER_ARCH_KWARGS[arch]
        for key in table:
            if key not in valid:
                raise ConfigError(
                    f"teachers.{family}.{key} is not an argument of teachers.{family}_arch = {arch!r}; its "
                    f"arguments: {', '.join(valid)}. Remove the key or choose another teachers.{family}_arch."
                )
        if arch.endswith("_cifar"):
            depth, width = {**CIFAR_DEFAULTS, **table}["depth"], {**CIFAR_DEFAULTS, **table}["width"]
            if not isinstance(depth, int) or isinstance(depth, bool) or depth < 8 or (depth - 2) % 6:
                raise ConfigError(
                    f"teachers.{family}.depth = {depth!r}: a CIFAR ResNet has 6n+2 layers; choose one of "
                    "8, 14, 20, 32, 44, 56, 110."
                )
            if isinstance(width, bool) or not isinstance(width, (int, float)) or width <= 0:
                raise ConfigError(
                    f"teachers.{family}.width = {width!r} must be a positive number (1 = widths 16/32/64)."
                )
