"""`run.jit_compile = "auto"`: XLA for students trained from stored targets, Keras' choice elsewhere."""

import pytest

from libkd_keras import xla


@pytest.mark.parametrize(
    "setting, teachers_in_step, replicas, expected",
    [
        ("auto", False, 1, True),  # stored targets or a baseline, one device: XLA
        ("auto", True, 1, "auto"),  # the teachers run inside the step (a GPU): Keras decides
        ("auto", False, 2, "auto"),  # several replicas: Keras decides
        (True, True, 2, True),
        (False, False, 1, False),
    ],
)
def test_auto_compiles_students_from_stored_targets(setting, teachers_in_step, replicas, expected):
    assert xla.student_jit_compile(setting, teachers_in_step, replicas) == expected


def test_the_default_strategy_has_one_replica():
    assert xla.student_jit_compile("auto") is True


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="jit_compile"):
        xla.student_jit_compile("yes")


def test_the_pipeline_compiles_its_students_with_the_resolved_setting(tmp_path, monkeypatch, capsys):
    """`libkd distill` with run.jit_compile = "auto": the setting reaches `train_student`, which resolves it for the
    engine (`FitSettings.jit_compile = True` for a baseline student), as it does for a Python API call."""
    from libkd_keras.cli.main import main
    from libkd_keras.distill import training as distill_training
    from tests.cli.conftest import TINY_CONFIG, write_image_tree

    seen = []

    def recording_fit(build, artifact, settings, *args, **kwargs):
        seen.append(settings.jit_compile)
        raise KeyboardInterrupt  # stop here: only the settings matter

    monkeypatch.setattr(distill_training, "fit_resumably", recording_fit)
    config = tmp_path / "tiny.toml"
    baseline_only = '\n[[students]]\nname = "baseline"\nteachers = []\n'
    config.write_text(TINY_CONFIG.replace("jit_compile = false", 'jit_compile = "auto"') + baseline_only)
    data = write_image_tree(tmp_path / "data", classes=2, train=4, test=2)
    options = ["--config", str(config), "--dataset", str(data), "--out", str(tmp_path / "run")]
    main(["distill", *options, "--set", "teachers.resnet_seeds=[]", "--set", "teachers.rednet_seeds=[]"])
    assert seen[:1] == [True]
