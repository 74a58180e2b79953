"""Config resolution: presets, user files, overrides, validation, TOML round trip (no TensorFlow)."""

import inspect

import pytest

from libkd_keras.cli import config as cfg
from libkd_keras.cli.config import ConfigError, resolve_config


def test_every_preset_resolves_and_round_trips_through_toml():
    assert set(cfg.available_presets()) >= {
        "quick",
        "budget",
        "paper-cifar10-baseline",
        "paper-cifar10-superior",
        "paper-flowers",
    }
    for name in cfg.available_presets():
        config = resolve_config(preset=name)
        assert config["run"]["name"] == name
        assert cfg.parse_config_text(cfg.to_toml(config), name) == config
        assert cfg.config_differences(config, config) == []


def test_quick_preset_is_small_and_budget_is_a_seeded_experiment():
    quick = resolve_config(preset="quick")
    assert quick["data"]["dataset"] == "cifar10-sample"  # offline: the sample shipped in the package
    assert (quick["teachers"]["resnet_arch"], quick["teachers"]["rednet_arch"]) == ("resnet_cifar", "rednet_cifar")
    assert quick["student"]["arch"] == "deit_micro" and quick["student"]["distillation"] == "soft"
    assert all(cfg.teacher_epochs(quick, family) <= 20 for family in ("resnet", "rednet"))
    assert quick["student"]["epochs"] <= 20 and quick["student"]["patch_size"] == 8
    assert quick["data"]["train_limit"] == 0 and quick["teachers"]["train_limit"] == 0  # all 5,000, one set
    assert [s["name"] for s in quick["students"]] == ["baseline", "ensemble"]
    assert quick["export"]["quantizations"] == ["float32", "float16", "dynamic", "int8", "int8_mixed"]
    budget = resolve_config(preset="budget")
    assert budget["data"]["train_limit"] == 5000 and budget["data"]["test_limit"] == 0  # all 10,000 test images
    assert budget["teachers"]["train_limit"] == 0  # the teachers see the students' images, as in the paper
    assert (budget["teachers"]["resnet_arch"], budget["teachers"]["rednet_arch"]) == ("resnet_cifar", "rednet_cifar")
    assert [(s["name"], len(s.get("seeds") or [0])) for s in budget["students"]] == [
        ("baseline", 3),
        ("ensemble", 3),
        ("resnet", 1),
        ("rednet", 1),
    ]
    assert budget["student"]["epochs"] > 30 and budget["student"]["validate_every"] > 1
    assert budget["run"]["precision"] == "auto"
    paper = resolve_config(preset="paper-cifar10-superior")
    assert paper["student"]["epochs"] == 1000 and paper["student"]["recipe"] == "superior"


def test_layers_apply_in_order(tmp_path):
    user = tmp_path / "mine.toml"
    user.write_text(
        "[student]\nepochs = 7\nalpha = 0.25\n"
        '[teachers]\nresnet_arch = "resnet26"\n[teachers.resnet]\nwidths = [8, 16, 16, 16]\n'
    )
    config = resolve_config(preset="quick", config_file=user, overrides=["student.epochs=9", "data.dataset=/x/y"])
    assert config["student"]["epochs"] == 9 and config["student"]["alpha"] == 0.25
    assert config["data"]["dataset"] == "/x/y"  # a bare word is a string
    assert config["run"]["name"] == "mine"  # the user's file names the run
    assert config["teachers"]["resnet"] == {"widths": [8, 16, 16, 16]}
    assert [t[0] for t in cfg.teacher_specs(config)] == ["resnet_s0", "rednet8_s0"]  # a new arch: a fresh table


def test_student_entries_are_addressed_by_name():
    config = resolve_config(
        preset="quick", overrides=["students.ensemble.alpha=0.3", "students.ensemble.recipe=superior"]
    )
    entry = config["students"][1]
    assert cfg.student_settings(config, entry)["alpha"] == 0.3
    assert cfg.student_settings(config, entry)["recipe"] == "superior"
    assert cfg.student_settings(config, config["students"][0])["alpha"] == 0.5


def test_teacher_sets_expand_all_families_and_names():
    config = resolve_config(preset="budget", overrides=["teachers.resnet_seeds=[0, 1]", "teachers.rednet_seeds=[0, 1]"])
    by_name = {s["name"]: cfg.student_teachers(config, s) for s in config["students"]}
    assert by_name["baseline"] == []
    assert by_name["ensemble"] == ["resnet20_s0", "resnet20_s1", "rednet20_s0", "rednet20_s1"]
    assert all(n.startswith("resnet") for n in by_name["resnet"])
    paper = resolve_config(preset="paper-cifar10-superior")
    assert [cfg.student_teachers(paper, s) for s in paper["students"]][-1] == [
        "resnet26_s0",
        "resnet26_s1",
        "rednet26_s0",
    ]


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(preset="quik"), ["Unknown preset 'quik'", "did you mean 'quick'", "budget"]),
        (dict(preset="quick", overrides=["student.epoch=3"]), ["student.epoch", "did you mean 'epochs'", "batch_size"]),
        (dict(preset="quick", overrides=["studnet.epochs=3"]), ["[studnet]", "Valid sections"]),
        (dict(preset="quick", overrides=["student.epochs=three"]), ["student.epochs must be an integer"]),
        (dict(preset="quick", overrides=["student.alpha=1.5"]), ["student.alpha must be <= 1.0"]),
        (dict(preset="quick", overrides=["student.recipe=fancy"]), ["fancy", "baseline, superior, mix"]),
        (
            dict(preset="quick", overrides=['export.quantizations=["int4"]']),
            ["int4", "float32, float16, dynamic, int8, int8_mixed"],
        ),
        (dict(preset="quick", overrides=["teachers.resnet.widht=2"]), ["teachers.resnet.widht", "width"]),
        (dict(preset="quick", overrides=["teachers.resnet.width=[8]"]), ["teachers.resnet.width", "positive number"]),
        (dict(preset="quick", overrides=["students.nobody.alpha=0.1"]), ["no student named 'nobody'", "baseline"]),
        (dict(preset="quick", overrides=['students.ensemble.teachers=["resnet7"]']), ["unknown teacher 'resnet7'"]),
        (dict(preset="quick", overrides=["student.patch_size=5"]), ["does not divide", "[1, 2, 4, 8, 16, 32]"]),
        (dict(preset="quick", overrides=["export.student=nobody"]), ["export.student", "baseline, ensemble"]),
        (dict(preset="quick", overrides=["epochs"]), ["section.key=value"]),
    ],
)
def test_bad_config_names_what_is_valid(kwargs, words):
    with pytest.raises(ConfigError) as error:
        resolve_config(**kwargs)
    for word in words:
        assert word in str(error.value)


def test_bad_user_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        resolve_config(preset="quick", config_file=tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[student\nepochs = 3")
    with pytest.raises(ConfigError, match="Cannot parse"):
        resolve_config(preset="quick", config_file=broken)
    typo = tmp_path / "typo.toml"
    typo.write_text('[[students]]\nname = "a"\nteacher = ["all"]\n')
    with pytest.raises(ConfigError, match="unknown key 'teacher'.*did you mean 'teachers'"):
        resolve_config(preset="quick", config_file=typo)


def test_builder_argument_names_exist_in_the_builders():
    from libkd_keras.models import DeiT, rednet, resnet

    assert set(cfg.RESNET_KWARGS) <= set(inspect.signature(resnet).parameters)
    assert set(cfg.REDNET_KWARGS) <= set(inspect.signature(rednet).parameters)
    assert set(cfg.DEIT_KWARGS) <= set(inspect.signature(DeiT).parameters)


def test_choice_lists_come_from_their_one_owner():
    from libkd_keras import choices

    schema = cfg.SCHEMA
    assert schema["export"]["quantizations"].choices is choices.QUANTIZATIONS
    assert schema["student"]["arch"].choices is choices.STUDENT_ARCHS
    assert schema["student"]["recipe"].choices is choices.RECIPES
    assert schema["student"]["distillation"].choices is choices.DISTILLATIONS
    assert schema["student"]["ensemble"].choices is choices.ENSEMBLES
    assert schema["store"]["dtype"].choices is choices.STORE_DTYPES
    assert schema["run"]["precision"].choices is choices.PRECISIONS
    assert schema["teachers"]["resnet_arch"].choices is choices.TEACHER_ARCHS["resnet"]
    assert schema["teachers"]["rednet_arch"].choices is choices.TEACHER_ARCHS["rednet"]


def test_differences_name_the_changed_keys():
    a = resolve_config(preset="quick")
    b = resolve_config(preset="quick", overrides=["student.epochs=4", "run.name=other"])
    assert cfg.config_differences(a, b) == [f"student.epochs: {a['student']['epochs']} -> 4"]


def test_cifar_architectures_name_their_teachers_by_depth():
    config = resolve_config(
        preset="budget",
        overrides=[
            "teachers.resnet_arch=resnet_cifar",
            "teachers.rednet_arch=rednet_cifar",
            "teachers.rednet.depth=14",
            "teachers.resnet_seeds=[0, 1]",
        ],
    )
    assert [t[0] for t in cfg.teacher_specs(config)] == ["resnet20_s0", "resnet20_s1", "rednet14_s0"]
    from libkd_keras.pipeline.settings import Config

    typed = Config.from_dict(config)
    assert typed.teachers.resnet_arch == "resnet_cifar" and typed.teacher_specs[2].kwargs == {"depth": 14}
    ensemble = next(s for s in typed.students if s.entry == "ensemble")
    assert ensemble.teachers == ("resnet20_s0", "resnet20_s1", "rednet14_s0")
    wide = resolve_config(preset="budget", overrides=["teachers.resnet.width=2"])
    assert cfg.teacher_specs(wide)[0][0] == "resnet20x2_s0"
    paper = resolve_config(preset="paper-cifar10-baseline")
    assert cfg.teacher_specs(paper)[0][0] == "resnet26_s0"  # the paper's stay as named


@pytest.mark.parametrize(
    "overrides, words",
    [
        (
            ["teachers.resnet_arch=resnet_cifra"],
            ["resnet_cifra", "did you mean 'resnet_cifar'", "resnet26, resnet_cifar"],
        ),
        (["teachers.rednet_arch=resnet_cifar"], ["rednet26, rednet_cifar"]),
        (["student.arch=deit_mikro"], ["deit_mikro", "deit_micro"]),
        (
            ["teachers.resnet_arch=resnet_cifar", "teachers.resnet.blocks=[1, 1, 1, 1]"],
            ["teachers.resnet.blocks is not an argument", "depth, width"],
        ),
        (["teachers.resnet.depth=20"], ["teachers.resnet.depth is not an argument", "resnet26"]),
        (["teachers.rednet_arch=rednet_cifar", "teachers.rednet.depth=21"], ["6n+2", "20, 32"]),
    ],
)
def test_bad_architectures_are_refused_before_anything_runs(overrides, words):
    with pytest.raises(ConfigError) as error:
        resolve_config(preset="paper-cifar10-baseline", overrides=overrides)  # the paper's archs
    for word in words:
        assert word in str(error.value)


def test_typed_sections_carry_every_key_of_the_schema():
    from libkd_keras.pipeline.settings import Config
    from libkd_keras.recipes import NAMED_RECIPES

    raw = resolve_config(preset="budget", overrides=['students.rednet.targets="online"'])
    typed = Config.from_dict(raw)
    for section, options in cfg.SCHEMA.items():
        resolved = dict(raw[section])
        if section == "student":  # keys left unset take the named recipe's value
            named = NAMED_RECIPES[resolved["recipe"]]
            resolved = {k: named[k] if v is None else v for k, v in resolved.items()}
        assert {key: getattr(getattr(typed, section), key) for key in options} == resolved
    online = typed.student_entry("rednet")
    assert online.settings.targets == "online" and typed.student.targets == "clean"


def test_student_seeds_name_one_student_per_seed():
    from libkd_keras.pipeline.settings import Config

    one = Config.from_dict(resolve_config(preset="quick", overrides=["run.seed=3"]))
    assert [(s.name, s.entry, s.seed) for s in one.students] == [
        ("baseline", "baseline", 3),
        ("ensemble", "ensemble", 3),
    ]
    typed = Config.from_dict(resolve_config(preset="quick", overrides=["students.baseline.seeds=[0, 1]"]))
    assert [(s.name, s.entry, s.seed) for s in typed.students] == [
        ("baseline_s0", "baseline", 0),
        ("baseline_s1", "baseline", 1),
        ("ensemble", "ensemble", 0),
    ]
    assert [s.name for s in typed.select_students(["baseline"])] == ["baseline_s0", "baseline_s1"]
    every = Config.from_dict(resolve_config(preset="quick", overrides=["student.seeds=[4, 5]"]))
    assert every.student_names == ["baseline_s4", "baseline_s5", "ensemble_s4", "ensemble_s5"]
    config = resolve_config(preset="quick", overrides=["students.ensemble.seeds=[2, 0]"])
    assert cfg.parse_config_text(cfg.to_toml(config), "x") == config


@pytest.mark.parametrize(
    "overrides, words",
    [
        (["students.baseline.seeds=[]"], ["students.baseline.seeds = [] trains no student", "seeds = [0, 1, 2]"]),
        (["students.baseline.seeds=[0, 1, 0]"], ["holds seed(s) [0] twice"]),
        (["student.seeds=[2, 2]"], ["student.seeds = [2, 2] holds seed(s) [2] twice"]),
        (["student.seeds=[-1]"], ["student.seeds must be >= 0"]),
        (['students.baseline.seeds=["a"]'], ["must be a list of integers"]),
        (['students=[{name = "a", seeds = [0, 1]}, {name = "a_s1"}]'], ["a_s1", "given twice"]),
    ],
)
def test_bad_student_seeds_are_refused(overrides, words):
    with pytest.raises(ConfigError) as error:
        resolve_config(preset="quick", overrides=overrides)
    for word in words:
        assert word in str(error.value)


def test_example_experiments_share_the_budget_teachers():
    """examples/*.toml merge over `budget` and keep its teachers, so `--teachers-from` a budget run applies."""
    from pathlib import Path

    from libkd_keras.pipeline.settings import Config

    examples = Path(__file__).resolve().parents[2] / "examples"
    budget = resolve_config(preset="budget")
    expected = {
        "target_sources.toml": {"baseline": "clean", "clean": "clean", "views": "views", "online": "online"},
        "budget_study.toml": {
            name: "clean"
            for name in ("baseline_e30", "ensemble_e30", "ensemble_hard", "ensemble_soft_t1")
            + ("baseline_e100", "ensemble_e100")
        },
    }
    expected["../benchmarks/targets_views_online.toml"] = {"views": "views", "online": "online"}  # RESULTS.md's run
    expected["../benchmarks/budget_temperature.toml"] = {"ensemble_t10": "clean", "ensemble_t20": "clean"}
    expected["../benchmarks/budget_function_matching.toml"] = {"ensemble_fm": "online", "baseline_superior": "clean"}
    students = {}  # file -> {entry: settings}, resolved once
    for file, targets in expected.items():
        config = resolve_config(preset="budget", config_file=str(examples / file))
        assert config["teachers"] == budget["teachers"] and config["data"] == budget["data"], file
        students[file] = {s.entry: s.settings for s in Config.from_dict(config).students}
        assert {entry: settings.targets for entry, settings in students[file].items()} == targets, file
    study = students["budget_study.toml"]
    assert (study["ensemble_hard"].distillation, study["ensemble_hard"].temperature) == ("hard", 1.0)
    assert study["ensemble_e100"].epochs == 100 and study["baseline_e30"].epochs == 30
    sweep = students["../benchmarks/budget_temperature.toml"]
    assert [(entry, s.temperature, s.distillation) for entry, s in sweep.items()] == [
        ("ensemble_t10", 10.0, "soft"),
        ("ensemble_t20", 20.0, "soft"),
    ]
    matching = students["../benchmarks/budget_function_matching.toml"]
    assert {entry: s.recipe for entry, s in matching.items()} == {
        "ensemble_fm": "superior",
        "baseline_superior": "superior",
    }


def test_patient_consistent_config_runs_mix_students_on_the_function_matching_teachers():
    """benchmarks/patient_consistent.toml: the function-matching run's teacher recipe with a 30-epoch RedNet, a
    store of 32 views, and `mix` students whose recipe is MixUp/CutMix on flip/crop only."""
    from pathlib import Path

    from libkd_keras.pipeline.settings import Config

    benchmarks = Path(__file__).resolve().parents[2] / "benchmarks"
    config = resolve_config(preset="budget", config_file=str(benchmarks / "patient_consistent.toml"))
    matching = resolve_config(preset="budget", config_file=str(benchmarks / "budget_function_matching.toml"))
    matching["teachers"].update(random_erasing=0.5, resnet_epochs=120, rednet_epochs=30)  # its command's --set, but 30
    assert config["teachers"] == matching["teachers"] and config["store"]["views"] == 32
    parsed = Config.from_dict(config)
    students = {s.entry: s.settings for s in parsed.students}
    assert {e: (s.recipe, s.targets, s.epochs) for e, s in students.items()} == {
        "views_mix": ("mix", "views", 200),
        "clean_mix": ("mix", "clean", 200),
        "alone_mix": ("mix", "clean", 200),
        "views_mix_e1000": ("mix", "views", 1000),
    }
    recipe = next(s for s in parsed.students if s.entry == "views_mix").recipe
    assert recipe.distillation == "soft" and recipe.precision == "float32"  # run.precision "auto": float32 on a CPU
    assert (recipe.recipe, recipe.mixup_alpha, recipe.cutmix_alpha, recipe.flip_crop) == ("mix", 0.8, 1.0, True)
    assert (recipe.rand_augment_ops, recipe.color_jitter, recipe.random_erasing, recipe.repeats) == (0, 0.0, 0.0, 1)


def test_mixed_vs_same_example_has_teacher_sets_of_equal_size():
    """examples/mixed_vs_same.toml: two teachers of each family, sets of two, 3 student seeds each, at the budget."""
    from pathlib import Path

    from libkd_keras.analysis.report.seeds import teacher_families
    from libkd_keras.pipeline.settings import Config

    example = Path(__file__).resolve().parents[2] / "examples" / "mixed_vs_same.toml"
    budget = resolve_config(preset="budget")
    resolved = resolve_config(preset="budget", config_file=str(example))
    config = Config.from_dict(resolved)
    assert config.teacher_names == ["resnet20_s0", "resnet20_s1", "rednet20_s0", "rednet20_s1"]
    assert resolved["data"] == budget["data"] and resolved["student"] == budget["student"]
    expected_teachers = {k: v for k, v in budget["teachers"].items() if k not in ("resnet_seeds", "rednet_seeds")}
    assert {k: v for k, v in resolved["teachers"].items() if k in expected_teachers} == expected_teachers
    sets = {}
    for student in config.students:
        sets.setdefault(student.entry, {"teachers": student.teachers, "seeds": []})["seeds"].append(student.seed)
        assert sets[student.entry]["teachers"] == student.teachers  # one teacher set per entry
    assert {entry: (set(s["teachers"]), s["seeds"]) for entry, s in sets.items()} == {
        "baseline": (set(), [0, 1, 2]),
        "resnet_pair": ({"resnet20_s0", "resnet20_s1"}, [0, 1, 2]),
        "rednet_pair": ({"rednet20_s0", "rednet20_s1"}, [0, 1, 2]),
        "mixed_pair": ({"resnet20_s0", "rednet20_s0"}, [0, 1, 2]),
    }
    families = {entry: teacher_families([{"teachers": list(s["teachers"])}]) for entry, s in sets.items()}
    assert families == {
        "baseline": set(),
        "resnet_pair": {"resnet"},
        "rednet_pair": {"rednet"},
        "mixed_pair": {"resnet", "rednet"},  # what the report pairs against each same-bias set
    }
    assert {len(s["teachers"]) for entry, s in sets.items() if entry != "baseline"} == {2}  # equal size


def test_teacher_random_erasing_reaches_the_recipe_and_is_checked():
    from libkd_keras.pipeline.settings import Config

    config = Config.from_dict(resolve_config(preset="budget", overrides=["teachers.random_erasing=0.5"]))
    assert config.teachers.replace(epochs=40).random_erasing == 0.5  # the [teachers] section is the recipe
    assert Config.from_dict(resolve_config(preset="budget")).teachers.random_erasing == 0.0
    with pytest.raises(ConfigError, match="random_erasing"):
        resolve_config(preset="budget", overrides=["teachers.random_erasing=2"])
