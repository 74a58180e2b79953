"""The user's own saved Keras classifiers as teachers: [[teachers.models]] and --teacher, end to end on tiny data."""

import hashlib
import json
import os

import keras
import numpy as np
import pytest

from libkd_keras.analysis.ablation import table4_experiments
from libkd_keras.cli.main import main
from libkd_keras.store import TeacherStore
from tests.builders import tiny_cnn
from tests.cli.conftest import TINY_CONFIG, write_image_tree
from tests.cli.test_main import _bad

NO_FAMILIES = ["--set", "teachers.resnet_seeds=[]", "--set", "teachers.rednet_seeds=[]"]
NO_EXPORT = ["--set", "export.quantizations=[]"]


def saved_cnn(path, classes=3, size=16, seed=0, softmax=False):
    """The shared tiny CNN for [0, 1] pixels, saved to `path` (`.keras`) as a user's own classifier."""
    model = tiny_cnn(classes, (size, size, 3), strides=2, rescale=False, softmax=softmax, seed=seed)
    model.save(path)
    return model


def _main(argv, capsys):
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 0, captured.out + captured.err
    return captured.out


@pytest.fixture
def data(tmp_path):
    return write_image_tree(tmp_path / "data", classes=3, train=8, test=4)


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_CONFIG)
    return path


@pytest.mark.slow
def test_a_config_teacher_for_0_1_pixels_is_the_only_teacher_of_store_report_and_student(tmp_path, data, capsys):
    model = saved_cnn(tmp_path / "cnn.keras")
    config = tmp_path / "own.toml"
    config.write_text(
        TINY_CONFIG.replace("resnet_seeds = [0]", "resnet_seeds = []").replace(
            "rednet_seeds = [0]", "rednet_seeds = []"
        )
        + f'\n[[teachers.models]]\npath = "{tmp_path / "cnn.keras"}"\nname = "cnn01"\npixels = "0-1"\n\n'
        '[[students]]\nname = "baseline"\n\n[[students]]\nname = "distilled"\nteachers = ["cnn01"]\n'
    )
    run = tmp_path / "run"
    argv = ["pipeline", "--config", str(config), "--dataset", str(data), "--out", str(run), *NO_EXPORT]
    out = _main(argv, capsys)
    assert "[done] teacher cnn01 (your model, not trained)" in out
    assert "epochs on" not in out.split("[done] teacher cnn01")[0]  # nothing was trained before it
    assert sorted(p.name for p in (run / "teachers").iterdir()) == ["cnn01.json", "cnn01.keras"]

    store = TeacherStore.open(run / "store" / "test")
    assert store.teacher_names == ["cnn01"]
    expected = model.predict(store.images().astype("float32") / 255.0, verbose=0)  # the model saw [0, 1] pixels
    np.testing.assert_allclose(store.logits(["cnn01"])[:, 0], expected, rtol=1e-4, atol=1e-4)

    record = json.loads((run / "teachers" / "cnn01.json").read_text())
    assert record["source"]["sha256"] == hashlib.sha256((tmp_path / "cnn.keras").read_bytes()).hexdigest()
    assert record["family"] == "keras" and record["architecture"] == "tiny_cnn (Functional)"
    labels = store.labels
    assert record["top1_test_accuracy"] == pytest.approx(float(np.mean(expected.argmax(1) == labels)))
    student = json.loads((run / "students" / "distilled.json").read_text())
    assert student["teachers"] == ["cnn01"]
    report = (run / "report.md").read_text()
    assert "| cnn01 | tiny_cnn (Functional) |" in report

    # A rerun skips it; a changed file is refused, naming what to do, and the run is kept.
    assert "[skip] teacher cnn01" in _main(argv, capsys)
    saved_cnn(tmp_path / "cnn.keras", seed=1)
    err = _bad(argv, capsys, "cnn01", "changed since this run copied it", "--name")
    assert "Traceback" not in err
    assert (run / "students" / "distilled.keras").exists()


@pytest.mark.slow
def test_teacher_flags_add_keras_teachers_beside_a_trained_family_and_ensemble_them(tmp_path, data, config, capsys):
    saved_cnn(tmp_path / "first.keras", seed=0)
    saved_cnn(tmp_path / "second.keras", seed=1)
    run = tmp_path / "run"
    argv = [
        "pipeline",
        "--config",
        str(config),
        "--dataset",
        str(data),
        "--out",
        str(run),
        "--set",
        "teachers.rednet_seeds=[]",
        *NO_EXPORT,
        "--teacher",
        str(tmp_path / "first.keras"),
        "--teacher",
        f"mine={tmp_path / 'second.keras'}",
    ]
    _main(argv, capsys)
    assert (run / "teachers" / "first.keras").read_bytes() == (tmp_path / "first.keras").read_bytes()  # a plain copy
    assert TeacherStore.open(run / "store" / "train").teacher_names == ["first", "mine", "resnet_s0"]
    analysis = json.loads((run / "store" / "analysis.json").read_text())
    sets = {e["name"]: e["members"] for e in analysis["ensembles"]}
    assert sets["keras x2"] == ["first", "mine"] and sets["all 3 teachers"] == ["resnet_s0", "first", "mine"]
    student = json.loads((run / "students" / "ensemble.json").read_text())
    assert sorted(student["teachers"]) == ["first", "mine", "resnet_s0"]
    # The stored config keeps them, so a later command in the folder needs no --teacher (and repeating it is fine).
    assert "[skip] student ensemble" in _main(["distill", "--out", str(run)], capsys)
    out = _main(argv, capsys)
    assert "[skip] teacher mine" in out and "[skip] teacher first" in out


def test_teacher_models_resolve_round_trip_and_bad_names_are_refused(tmp_path):
    from libkd_keras.pipeline.config import resolve_config
    from libkd_keras.pipeline.config_text import parse_config_text, to_toml
    from libkd_keras.pipeline.schema import ConfigError
    from libkd_keras.pipeline.settings import Config

    mine = f"mine={tmp_path / 'x.keras'}"
    config = resolve_config(
        preset="quick", overrides=['teachers.models=[{path = "a/cnn.keras", pixels = "0-1"}]'], teachers=[mine]
    )
    models = config["teachers"]["models"]
    assert [(m["name"], m["pixels"]) for m in models] == [("cnn", "0-1"), ("mine", "0-255")]
    assert models[0]["path"] == os.path.abspath("a/cnn.keras")  # absolute: the run resumes from any folder
    assert parse_config_text(to_toml(config), "config.toml") == config
    assert resolve_config(base=config, teachers=[mine])["teachers"]["models"] == models  # not added twice
    specs = Config.from_dict(config).teacher_specs
    assert [(t.name, t.family, t.pixels) for t in specs[-2:]] == [("cnn", "keras", "0-1"), ("mine", "keras", "0-255")]
    picked = resolve_config(
        preset="quick", overrides=['students=[{name = "s", teachers = ["keras"]}]'], teachers=["a.keras", "b.keras"]
    )
    assert Config.from_dict(picked).students[0].teachers == ("a", "b")  # the family word picks the user's own
    with pytest.raises(ConfigError, match="'resnet50'.*starts like a trained family"):
        resolve_config(preset="quick", teachers=["resnet50.keras"])
    with pytest.raises(ConfigError, match="'mine'.*is the name of another teacher"):
        resolve_config(preset="quick", teachers=["mine=a.keras", "mine=b.keras"])
    with pytest.raises(ConfigError, match="unknown key 'pixel'.*did you mean 'pixels'"):
        resolve_config(preset="quick", overrides=['teachers.models=[{path = "a.keras", pixel = "0-1"}]'])
    with pytest.raises(ConfigError, match="needs a path"):
        resolve_config(preset="quick", overrides=['teachers.models=[{name = "a"}]'])


def test_table4_adds_a_row_per_own_teacher_and_all_teachers():
    rows = {e.name: e for e in table4_experiments(["resnet8_s0", "mine"], recipes=("baseline",))}
    assert rows["t4-own-mine"].teachers == ("mine",) and rows["t4-own-mine"].teacher_set == "single mine"
    assert rows["t4-all-teachers"].teachers == ("resnet8_s0", "mine") and not rows["t4-all-teachers"].skip
    assert "t4-all-teachers" not in {e.name for e in table4_experiments(["resnet8_s0", "rednet8_s0"])}


@pytest.mark.parametrize(
    "make, extra, words",
    [
        (dict(classes=5), [], ("returns outputs of shape (8, 5)", "3 classes")),
        (dict(size=32), [], ("takes 32x32 images", "16x16", "--image-size 32")),
        (dict(softmax=True), [], ("returns probabilities", "without its final softmax")),
        (None, [], ("does not exist", "saved Keras classifier")),
        (dict(), ["--set", 'teachers.models=[{path = "x.keras", pixels = "0-100"}]'], ("pixels", "0-255, 0-1")),
    ],
    ids=["class-count", "input-size", "softmax", "missing-file", "pixel-range"],
)
def test_a_teacher_that_does_not_fit_is_refused_before_anything_trains(
    tmp_path, data, config, capsys, make, extra, words
):
    path = tmp_path / "bad.keras"
    if make is not None:
        saved_cnn(path, **make)
    run = tmp_path / "run"
    argv = ["pipeline", "--config", str(config), "--dataset", str(data), "--out", str(run), "--teacher", str(path)]
    _bad([*argv, *NO_EXPORT, *extra], capsys, *words)
    assert not (run / "teachers").exists() or not any((run / "teachers").iterdir())  # the ResNet did not train
    assert not (run / "store").exists()


def test_a_keras_hub_preset_folder_is_folded_into_a_raw_pixel_model(tmp_path, data):
    keras_hub = pytest.importorskip("keras_hub")
    from libkd_keras.data import load_split
    from libkd_keras.pipeline.own_teachers import check_fits, file_sha256, import_libraries, load_source
    from libkd_keras.pipeline.settings import TeacherSpec

    backbone = keras_hub.models.ResNetBackbone(
        input_conv_filters=[64],
        input_conv_kernel_sizes=[3],
        stackwise_num_filters=[64],
        stackwise_num_blocks=[1],
        stackwise_num_strides=[1],
        block_type="basic_block",
        use_pre_activation=False,
        image_shape=(None, None, 3),
    )
    converter = keras_hub.layers.ResNetImageConverter(image_size=(24, 24), scale=1 / 255.0, offset=-0.5)
    preprocessor = keras_hub.models.ResNetImageClassifierPreprocessor(image_converter=converter)
    classifier = keras_hub.models.ResNetImageClassifier(backbone=backbone, num_classes=3, preprocessor=preprocessor)
    classifier.save_to_preset(str(tmp_path / "preset"))

    test = load_split(str(data), "test", image_size=16)
    spec = TeacherSpec("hub", "keras", "keras", None, {}, 0, str(tmp_path / "preset"), "0-255")
    model, inner, needs = load_source(spec, test.image_shape)
    assert needs == "keras_hub" and model is not inner  # wrapped: KerasHub's preprocessor runs only in predict
    check_fits(spec, model, test)
    images = test.images.astype("float32")
    expected = classifier.predict(images, verbose=0)  # KerasHub's own resize + scale + offset, then the classifier
    np.testing.assert_allclose(model.predict(images, verbose=0), expected, rtol=1e-4, atol=1e-4)
    model.save(tmp_path / "copy.keras")
    import_libraries({"needs": needs})
    reloaded = keras.saving.load_model(tmp_path / "copy.keras", compile=False)
    np.testing.assert_allclose(reloaded.predict(images, verbose=0), expected, rtol=1e-4, atol=1e-4)
    before = file_sha256(tmp_path / "preset")
    (tmp_path / "preset" / "metadata.json").write_text("{}")
    assert file_sha256(tmp_path / "preset") != before
