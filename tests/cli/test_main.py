"""The `libkd` command: --help everywhere, and every bad input as one paragraph with exit code 2."""

import json
import subprocess
import sys

import pytest

from libkd_keras.cli.config import SCHEMA, resolve_config, to_toml
from libkd_keras.cli.main import COMMANDS, EXIT_BAD_INPUT, main
from tests.cli.conftest import write_image_tree


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_of_every_subcommand_explains_its_options(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert f"usage: libkd {command}" in text and "--verbose" in text
    if command not in ("report", "analyze"):
        for option in (
            "--preset",
            "--config",
            "--set",
            "--dataset",
            "--data-dir",
            "--epochs",
            "--out",
            "--overwrite",
            "--print-config",
        ):
            assert option in text
        assert text.count("(default:") >= 15  # every option states its default
        assert "student.alpha = 0.5" in text  # the config keys with their defaults


def test_top_level_help_runs_as_a_module():
    done = subprocess.run([sys.executable, "-m", "libkd_keras", "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0
    for command in COMMANDS:
        assert command in done.stdout
    assert "tensorflow" not in done.stderr.lower()


def test_print_config_applies_flags_in_order(tiny_config, capsys):
    code = main(
        [
            "pipeline",
            "--preset",
            "quick",
            "--config",
            str(tiny_config),
            "--epochs",
            "4",
            "--set",
            "teachers.epochs=2",
            "--dataset",
            "/data/flowers",
            "--print-config",
        ]
    )
    assert code == 0
    text = capsys.readouterr().out
    assert 'dataset = "/data/flowers"' in text
    assert "[teachers]\nepochs = 2\n" in text  # --set after --epochs
    assert "[student]" in text and "epochs = 4" in text.split("[student]")[1]


def _bad(argv, capsys, *words):
    code = main(argv)
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT, err
    assert "Traceback" not in err and err.count("error:") == 1
    assert len(err.strip().splitlines()) == 1  # one paragraph
    for word in words:
        assert word in err, err
    return err


def test_unknown_preset_and_key_name_the_valid_ones(tmp_path, capsys):
    _bad(
        ["pipeline", "--preset", "budgt", "--out", str(tmp_path / "r")],
        capsys,
        "budgt",
        "did you mean 'budget'",
        "paper-flowers",
    )
    _bad(["distill", "--set", "student.alfa=0.3", "--out", str(tmp_path / "r")], capsys, "student.alfa", "'alpha'")
    user = tmp_path / "user.toml"
    user.write_text("[data]\ndatset = 'x'\n")
    _bad(["pipeline", "--config", str(user), "--out", str(tmp_path / "r")], capsys, "data.datset", "'dataset'")
    assert not (tmp_path / "r").exists()  # nothing written for a bad config


def test_bad_data_paths(tmp_path, tiny_config, capsys):
    out = ["--config", str(tiny_config), "--out"]
    _bad(["pipeline", *out, str(tmp_path / "r1"), "--dataset", str(tmp_path / "nowhere")], capsys, "does not exist")
    empty = tmp_path / "empty"
    (empty / "train").mkdir(parents=True)
    (empty / "test").mkdir()
    _bad(["pipeline", *out, str(tmp_path / "r2"), "--dataset", str(empty)], capsys, "No class folders")
    tree = write_image_tree(tmp_path / "tree", classes=2, train=3, test=2)
    (tree / "train" / "class9").mkdir()
    _bad(["train-teacher", *out, str(tmp_path / "r3"), "--dataset", str(tree)], capsys, "class9", "holds no images")


def test_output_folder_of_another_run_is_refused_unless_overwrite(tmp_path, tiny_config, capsys):
    run = tmp_path / "run"
    run.mkdir()
    other_config = resolve_config(preset="quick", config_file=tiny_config, overrides=["student.epochs=9"])
    (run / "config.toml").write_text(to_toml(other_config))
    (run / "steps").mkdir()
    (run / "steps" / "teacher-resnet_s0.json").write_text("{}")
    err = _bad(
        ["pipeline", "--config", str(tiny_config), "--out", str(run), "--dataset", str(tmp_path / "x")],
        capsys,
        "2 problems",
        "holds a different run",
        "student.epochs: 9 -> 1",
        "--overwrite",
        "run.replaced-",
    )
    assert err.index("does not exist") < err.index("holds a different run")  # every problem, the missing path first
    assert (run / "steps").exists()
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    _bad(
        ["pipeline", "--config", str(tiny_config), "--out", str(other), "--overwrite"], capsys, "not a libkd run folder"
    )
    assert (other / "notes.txt").exists()  # never deleted, even with --overwrite
    # --overwrite with a missing data path: refused before the old run is touched.
    _bad(
        ["pipeline", "--config", str(tiny_config), "--out", str(run), "--overwrite", "--dataset", str(tmp_path / "x")],
        capsys,
        "does not exist",
    )
    assert (run / "steps" / "teacher-resnet_s0.json").exists() and "epochs = 9" in (run / "config.toml").read_text()
    assert sorted(p.name for p in tmp_path.iterdir() if ".replaced-" in p.name) == []
    # A run that wrote nothing but its config is replaced without --overwrite ('evaluate' stops at once:
    # nothing is trained yet).
    tree = write_image_tree(tmp_path / "tree", classes=2, train=4, test=2)
    (run / "steps" / "teacher-resnet_s0.json").unlink()
    (run / "steps").rmdir()
    data = ["--config", str(tiny_config), "--out", str(run), "--dataset", str(tree)]
    _bad(["evaluate", *data, "--epochs", "2"], capsys, "Run 'libkd distill'")
    assert "epochs = 2" in (run / "config.toml").read_text()
    # A teacher still training (a checkpoint, no finished step) is work: refused without --overwrite.
    backup = run / "checkpoints" / "teacher_resnet26_s0"
    backup.mkdir(parents=True)
    (backup / "training_metadata.json").write_text("{}")
    _bad(["evaluate", *data, "--epochs", "3"], capsys, "holds a different run", "--overwrite")
    assert backup.exists() and "epochs = 2" in (run / "config.toml").read_text()
    # --overwrite moves every entry libkd writes aside, the analyses too (no stale report sections); the
    # message names where it went, and the old run stays there until the new one finishes a step.
    for entry in ("ablation", "cka"):
        (run / entry).mkdir()
        (run / entry / "section.md").write_text("old run")
    code = main(["evaluate", *data, "--epochs", "3", "--overwrite"])
    captured = capsys.readouterr()
    assert code == EXIT_BAD_INPUT and "Run 'libkd distill'" in captured.err
    (aside,) = [p for p in tmp_path.iterdir() if p.name.startswith("run.replaced-")]
    assert f"moved the run that was in {str(run)!r} aside to {str(aside)!r}" in captured.out
    assert not any((run / e).exists() for e in ("checkpoints", "ablation", "cka"))
    assert "epochs = 3" in (run / "config.toml").read_text()
    assert "epochs = 2" in (aside / "config.toml").read_text()
    assert (aside / "checkpoints" / "teacher_resnet26_s0" / "training_metadata.json").exists()
    assert (aside / "ablation" / "section.md").read_text() == "old run"


def test_mixed_image_sizes_are_resized_with_one_notice(tmp_path, tiny_config, capsys):
    tree = write_image_tree(tmp_path / "mixed", classes=2, train=6, test=4, sizes=[16, 20, 24])
    code = main(
        [
            "evaluate",
            "--config",
            str(tiny_config),
            "--out",
            str(tmp_path / "r"),
            "--dataset",
            str(tree),
            "--image-size",
            "0",
        ]
    )
    captured = capsys.readouterr()
    assert code == EXIT_BAD_INPUT  # nothing trained yet: evaluate says what to run first
    assert "Run 'libkd distill'" in captured.err
    notices = [line for line in captured.out.splitlines() if "notice" in line]
    assert len(notices) == 1 and "resized" in notices[0]
    assert "16x16" in captured.out


def test_an_arch_typo_is_one_paragraph_before_anything_is_written(tmp_path, tiny_config, capsys):
    _bad(
        [
            "pipeline",
            "--config",
            str(tiny_config),
            "--out",
            str(tmp_path / "r"),
            "--set",
            "teachers.rednet_arch=rednet_cifer",
        ],
        capsys,
        "rednet_cifer",
        "did you mean 'rednet_cifar'",
    )
    assert not (tmp_path / "r").exists()


def test_a_patch_size_that_does_not_divide_the_images_fails_before_teachers(tmp_path, tiny_config, capsys):
    tree = write_image_tree(tmp_path / "tree", classes=2, train=4, test=2, size=18)
    _bad(
        [
            "pipeline",
            "--config",
            str(tiny_config),
            "--out",
            str(tmp_path / "r"),
            "--dataset",
            str(tree),
            "--image-size",
            "0",
        ],
        capsys,
        "student.patch_size = 4 does not divide the images' side = 18",
        "[1, 2, 3",
    )
    assert not (tmp_path / "r" / "teachers").exists() and not (tmp_path / "r" / ".libkd.lock").exists()


def test_help_text_points_to_the_benchmarks_instead_of_quoting_figures(capsys):
    import re

    with pytest.raises(SystemExit):
        main(["pipeline", "--help"])
    text = capsys.readouterr().out
    assert "benchmarks/RESULTS.md" in text
    assert not re.search(r"\d(\.\d+)?x (faster|slower)|images/s|img/s", text)


def _help(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("preset", ["quick", "budget"])
def test_help_of_a_preset_shows_the_values_it_runs_with(preset, capsys):
    config = resolve_config(preset=preset)
    text = _help(["pipeline", "--preset", preset, "--help"], capsys)
    assert f"(section.key = value of the {preset} preset -- meaning)" in text
    for key in ("data.dataset", "student.arch", "student.epochs", "teachers.resnet_arch", "teachers.resnet_epochs"):
        section, name = key.split(".")
        value = config[section][name]
        assert f"  {key} = {json.dumps(value) if isinstance(value, str) else value}" in text
    assert f"student.epochs = {config['student']['epochs']}: the {preset} preset)" in " ".join(text.split())
    for entry in config["students"]:
        assert f'name = "{entry["name"]}"' in text
    # the schema's built-in default is named beside a value that differs from it
    epochs, built_in = config["student"]["epochs"], SCHEMA["student"]["epochs"].default
    assert epochs != built_in and f"student.epochs = {epochs} (built-in: {built_in})" in text
    # flags and --set come on top, as they do when the command runs
    flags = ["--student-epochs", "7", "--set", "student.alpha=0.25"]
    text = _help(["distill", "--preset", preset, *flags, "--help"], capsys)
    assert "student.epochs = 7 (built-in: 300)" in text and "student.alpha = 0.25 (built-in: 0.5)" in text
    assert f"value of the {preset} preset and the flags given" in text


def test_help_of_a_bad_preset_still_shows_the_schema_defaults(capsys):
    text = _help(["pipeline", "--preset", "nope", "--help"], capsys)
    assert "(section.key = default -- meaning)" in text and 'data.dataset = "cifar10"  --' in text


def test_top_level_help_names_what_the_default_preset_trains(capsys):
    from libkd_keras.pipeline.settings import teacher_specs

    text = " ".join(_help(["--help"], capsys).split())
    quick = resolve_config(preset="quick")
    for name, family, _ in teacher_specs(quick):
        depth = name.rsplit("_s", 1)[0][len(family) :]
        assert f"{ {'resnet': 'ResNet', 'rednet': 'RedNet'}[family] }-{depth}" in text
    assert quick["data"]["dataset"] == "cifar10-sample" and "offline" in text
    assert "add --dataset PATH on offline machines" not in text


def test_version_is_the_installed_package_version(capsys, monkeypatch):
    import importlib.metadata

    import libkd_keras

    assert _help(["--version"], capsys).strip() == f"libkd {importlib.metadata.version('libkd_keras')}"

    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    assert _help(["--version"], capsys).strip() == f"libkd {libkd_keras.__version__}"
