"""One declaration per setting: every field of `StudentRecipe` / `TeacherRecipe` is a config key that reaches
`--help`, `--print-config`, a [[students]] entry and the recipe a student trains with, and the code reads it."""

import ast
import dataclasses
from pathlib import Path

import pytest

import libkd_keras
from libkd_keras.pipeline.config import resolve_config
from libkd_keras.pipeline.config_text import config_differences, describe_options, parse_config_text, to_toml
from libkd_keras.pipeline.schema import SCHEMA, STUDENT_ENTRY, ConfigError
from libkd_keras.pipeline.settings import Config
from libkd_keras.recipes import NAMED_RECIPES, StudentRecipe, TeacherRecipe, baseline, mix, options, superior

STUDENT_KEYS = options(StudentRecipe)
QUICK = ["run.precision=float32"]  # "auto" would ask TensorFlow for the hardware


def _other_value(opt, current):
    """A valid value of `opt` other than `current`, derived from the declaration itself."""
    if opt.choices:
        return [c for c in opt.choices if c != current][-1]
    if opt.kind == "bool":
        return not current
    if opt.kind == "int_list":
        return [7, 8]
    if opt.kind == "int":
        return current + 1
    if opt.kind == "float":
        top = opt.maximum if opt.maximum is not None else current + 1.0
        return (current + top) / 2
    raise AssertionError(f"no test value for kind {opt.kind}")


def _toml(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return repr(value)


def test_every_student_and_teacher_field_is_a_config_key_with_help():
    assert SCHEMA["student"] == STUDENT_KEYS
    assert set(options(TeacherRecipe)) <= set(SCHEMA["teachers"])
    missing = {f.name for f in dataclasses.fields(StudentRecipe)} - set(STUDENT_KEYS)
    assert missing == {"precision"}  # run.precision decides it (resolved per family)
    for key, opt in {**STUDENT_KEYS, **options(TeacherRecipe)}.items():
        assert len(opt.help) > 10, key
    help_text = describe_options()
    for key in STUDENT_KEYS:
        assert f"  student.{key} = " in help_text
    assert "mixup_alpha 0.8" in SCHEMA["student"]["recipe"].help  # the named sets, from NAMED_RECIPES


def test_every_student_key_appears_in_print_config_and_reads_back_the_same():
    config = resolve_config(preset="quick", overrides=["student.mixup_alpha=0.2"])
    text = to_toml(config)
    section = text.split("[student]\n", 1)[1].split("\n[", 1)[0]
    for key, opt in STUDENT_KEYS.items():
        written = f"[student.{key}]" in text if opt.kind == "table" else f"\n{key} = " in "\n" + section
        assert written or f"# {key}: unset" in section, key
    assert "\nmixup_alpha = 0.2\n" in section and "# cutmix_alpha: unset" in section
    assert not config_differences(config, parse_config_text(text, "config.toml"))


@pytest.mark.parametrize("key", [k for k, o in STUDENT_KEYS.items() if o.entry])
def test_every_entry_key_is_accepted_in_a_students_entry_and_changes_only_that_students_recipe(key):
    plain = Config.from_dict(resolve_config(preset="quick", overrides=QUICK))
    current = getattr(plain.student_entry("ensemble").recipe, key)
    value = _other_value(STUDENT_KEYS[key], current)
    config = Config.from_dict(
        resolve_config(preset="quick", overrides=[*QUICK, f"students.ensemble.{key}={_toml(value)}"])
    )
    changed = next(s for s in config.students if s.entry == "ensemble")
    assert getattr(changed.recipe, key) == value  # what train_student trains with
    assert getattr(config.student_entry("baseline").recipe, key) == getattr(plain.student_entry("baseline").recipe, key)
    others = {k: getattr(changed.recipe, k) for k in STUDENT_KEYS if k not in (key, "recipe", *NAMED_RECIPES["mix"])}
    before = plain.student_entry("ensemble").recipe
    assert others == {k: getattr(before, k) for k in others}


@pytest.mark.parametrize("key", [k for k, o in STUDENT_KEYS.items() if not o.entry])
def test_run_wide_keys_are_refused_in_an_entry(key):
    with pytest.raises(ConfigError, match=f"unknown key '{key}' in a \\[\\[students\\]\\] entry"):
        resolve_config(preset="quick", overrides=[f'students=[{{name = "x", {key} = 1}}]'])
    assert key not in STUDENT_ENTRY


def test_every_student_and_teacher_field_is_read_by_the_code_that_uses_it():
    """A declared setting that no code reads (a forward that was missed) fails here."""
    package = Path(libkd_keras.__file__).parent
    read = set()
    for path in package.rglob("*.py"):
        nodes = ast.walk(ast.parse(path.read_text()))
        if path == package / "recipes.py":  # the declaration: only what its derived values read
            derived = [
                n for n in nodes if isinstance(n, ast.FunctionDef) and "property" in ast.unparse(n.decorator_list)
            ]
            nodes = [node for function in derived for node in ast.walk(function)]
        read |= {node.attr for node in nodes if isinstance(node, ast.Attribute)}
    fields = [f.name for cls in (StudentRecipe, TeacherRecipe) for f in dataclasses.fields(cls)]
    assert [name for name in fields if name not in read] == []


def test_named_recipes_apply_under_the_keys_set_explicitly_in_any_order():
    for overrides in (
        ["student.recipe=superior", "student.mixup_alpha=0.2"],
        ["student.mixup_alpha=0.2", "student.recipe=superior"],
    ):
        student = Config.from_dict(resolve_config(preset="quick", overrides=overrides)).student
        assert (student.recipe, student.mixup_alpha, student.cutmix_alpha, student.repeats) == ("superior", 0.2, 1.0, 3)
    assert superior(mixup_alpha=0.2).replace(recipe="baseline").mixup_alpha == 0.2  # set: kept
    assert superior().replace(recipe="baseline").mixup_alpha == 0.0  # unset: follows the recipe
    assert mix() == baseline(mixup_alpha=0.8, cutmix_alpha=1.0).replace(recipe="mix")
    for name, values in NAMED_RECIPES.items():
        recipe = StudentRecipe(recipe=name)
        assert {k: getattr(recipe, k) for k in values} == values


def test_an_entry_with_its_own_recipe_follows_it_where_the_student_section_left_keys_unset():
    config = resolve_config(
        preset="quick",
        overrides=[*QUICK, "student.repeats=2", 'students=[{name = "m", teachers = [], recipe = "mix"}]'],
    )
    recipe = Config.from_dict(config).student_entry("m").recipe
    assert (recipe.recipe, recipe.mixup_alpha, recipe.repeats, recipe.distillation) == ("mix", 0.8, 2, "none")


def test_the_peak_learning_rate_is_the_one_the_config_gave():
    recipe = Config.from_dict(resolve_config(preset="quick", overrides=QUICK)).student_entry("ensemble").recipe
    assert recipe.peak_learning_rate == pytest.approx(1e-3) and recipe.record()["learning_rate"] == pytest.approx(1e-3)
    assert baseline().peak_learning_rate == pytest.approx(5e-4 * 128 / 512)


def test_bad_values_are_refused_by_the_declaration_naming_the_field():
    for field, value in (("mixup_alpha", -1.0), ("repeats", 0), ("recipe", "fancy"), ("color_jitter", 1.0)):
        with pytest.raises(ValueError, match=field):
            baseline(**{field: value})
    with pytest.raises(ValueError, match="base_batch_size"):
        TeacherRecipe(base_batch_size=0)
