"""A resolved config as TOML text and back, the differences between two configs, the key list for --help.

No TensorFlow here.
"""

import copy
import json

from libkd_keras.pipeline.config import default_config, merge, parse_toml
from libkd_keras.pipeline.schema import SCHEMA, STUDENT_ENTRY, TEACHER_MODEL_ENTRY

# Neither the folder's name nor where the teachers were copied from (they are checked to be the
# ones this run would train) changes what a run computes.
IGNORED_IN_COMPARISON = (("run", "name"), ("teachers", "reuse_from"))


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
                tables.append((f"[{section}.{key}]", value))
            elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
                tables += [(f"[[{section}.{key}]]", entry) for entry in value]  # e.g. [[teachers.models]]
            elif value is None:  # TOML has no null: an unset key, read back as unset
                lines.append(f"# {key}: {UNSET}")
            else:
                lines.append(f"{key} = {_toml_value(value)}")
        lines.append("")
        for header, table in tables:
            lines.append(header)
            lines += [f"{k} = {_toml_value(v)}" for k, v in table.items()]
            lines.append("")
    for entry in config.get("students", []):
        lines.append("[[students]]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in entry.items()]
        lines.append("")
    return "\n".join(lines)


UNSET = "unset (the named recipe's value)"


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
    return merge(default_config(), parse_toml(text, origin), origin)


def describe_options(config=None):
    """Every key with its default and help, for `--help` and the documentation.

    With `config` (a resolved config), each key shows that config's value, and the schema's own
    default after it where they differ; its [[students]] entries are listed by name and teachers.
    """
    lines = []
    for section, options in SCHEMA.items():
        for key, opt in options.items():
            default = _value_text(opt.default)
            if config is None:
                lines.append(f"  {section}.{key} = {default}  -- {opt.help}")
            else:
                value = _value_text(config[section][key])
                built_in = f" (built-in: {default})" if value != default else ""
                lines.append(f"  {section}.{key} = {value}{built_in}  -- {opt.help}")
            if (section, key) == ("teachers", "models"):
                lines += [f"    [[teachers.models]] {k}  -- {o.help}" for k, o in TEACHER_MODEL_ENTRY.items()]
    own_keys = [key for key in STUDENT_ENTRY if key not in ("name", "teachers")]
    lines.append("  [[students]] name, teachers, and optionally any of " + ", ".join(own_keys))
    for entry in (config or {}).get("students", []):
        own = ", ".join(f"{k} = {_toml_value(v)}" for k, v in entry.items() if k not in ("name", "teachers"))
        teachers = _toml_value(entry["teachers"])
        lines.append(f"    name = {_toml_value(entry['name'])}, teachers = {teachers}{', ' + own if own else ''}")
    return "\n".join(lines)


def _value_text(value):
    """A config value as TOML (a builder table inline: `{dim = 96, depth = 6}`)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + "}"
    if value is None:
        return UNSET
    return _toml_value(value)
