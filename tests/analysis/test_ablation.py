"""The ablation runner: several teacher sets from one tiny store, no teacher ever called, resumable."""

import functools
import json

import keras
import numpy as np
import pytest
from keras import ops

from libkd_keras.analysis.ablation import (
    Experiment,
    ablation_table,
    describe_teacher_set,
    figure11_experiments,
    run_ablation,
    summarize,
    table4_experiments,
    teacher_families,
)
from libkd_keras.analysis.ablation import runner as ablation_runner
from libkd_keras.data import Split
from libkd_keras.recipes import baseline as baseline_recipe
from libkd_keras.store import precompute
from libkd_keras.training import FitOptions
from tests.builders import tiny_deit, tiny_rednet, tiny_resnet

SIZE, CLASSES = 16, 4


class CountingTeacher(keras.Model):
    """A teacher that counts the images it has been run on (also inside compiled predict/fit)."""

    def __init__(self, inner, **kwargs):
        super().__init__(**kwargs)
        self.inner = inner
        self.images_seen = keras.Variable(0, dtype="int64", trainable=False, name="images_seen")

    def call(self, x, training=False):
        self.images_seen.assign_add(ops.cast(ops.shape(x)[0], "int64"))
        return self.inner(x, training=training)


def make_split(n, split, seed):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % CLASSES
    images = rng.integers(0, 90, size=(n, SIZE, SIZE, 3))
    images[..., 0] += 40 * labels[:, None, None]  # a learnable colour cue per class
    return Split(images.astype(np.uint8), labels, np.arange(n), [f"c{i}" for i in range(CLASSES)], "toy", split)


@pytest.fixture(scope="module")
def tiny_store(tmp_path_factory):
    keras.utils.set_random_seed(0)
    train, test = make_split(48, "train", 0), make_split(24, "test", 1)

    teachers = {
        "resnet26_s0": CountingTeacher(tiny_resnet(CLASSES, SIZE, widths=(8, 8, 8, 8), name="r0")),
        "resnet26_s1": CountingTeacher(tiny_resnet(CLASSES, SIZE, widths=(8, 8, 8, 8), name="r1")),
        "rednet26_s0": CountingTeacher(tiny_rednet(CLASSES, SIZE, zero_init_residual=True)),
    }
    metadata = {
        name: {"trainable_parameters": 1000 * (i + 1), "size_mb": 0.5 * (i + 1)} for i, name in enumerate(teachers)
    }
    store = precompute(teachers, train, tmp_path_factory.mktemp("store") / "train", teacher_metadata=metadata)
    assert all(int(t.images_seen.numpy()) == len(train) for t in teachers.values())  # each ran once
    return store, test, teachers


# A student builder, `tiny_student(distillation_token)`; unseeded: the runner seeds each experiment.
tiny_student = functools.partial(tiny_deit, num_classes=CLASSES, size=SIZE, patch_size=8, dim=16, depth=1)


def test_table4_sets_from_stored_names():
    names = ["rednet26_s0", "resnet26_s1", "resnet26_s0"]
    assert teacher_families(names) == {"resnet": ["resnet26_s0", "resnet26_s1"], "rednet": ["rednet26_s0"]}
    experiments = table4_experiments(names)
    assert len(experiments) == 20  # 10 teacher sets (the paper's 9 and 1 RedNet + 1 ResNet) x 2 recipes
    by_name = {e.name: e for e in experiments}
    assert by_name["baseline"].distillation == "none" and by_name["baseline"].teachers == ()
    assert by_name["t4-2-resnets-1-rednet"].teachers == ("resnet26_s0", "resnet26_s1", "rednet26_s0")
    assert by_name["t4-single-rednet-superior"].recipe == "superior"
    assert by_name["t4-1-rednet-1-resnet"].teachers == ("resnet26_s0", "rednet26_s0")
    assert by_name["t4-1-rednet-1-resnet"].teacher_set == describe_teacher_set(("resnet26_s0", "rednet26_s0"))
    skipped = {e.name: e.skip for e in experiments if e.skip and e.recipe == "baseline"}
    assert sorted(skipped) == ["t4-2-rednets-1-resnet", "t4-3-rednets", "t4-3-resnets", "t4-4-resnets"]
    assert skipped["t4-3-rednets"] == "needs 3 RedNets (the store has 1: rednet26_s0)"
    assert describe_teacher_set(("resnet26_s0", "rednet26_s0", "rednet26_s1")) == "2 RedNets + 1 ResNet"


def test_figure11_experiments_and_bad_input():
    names = ["resnet26_s0", "rednet26_s0"]
    experiments = figure11_experiments(names, temperatures=(1, 4))
    assert [(e.distillation, e.temperature) for e in experiments] == [
        ("none", 1.0),
        ("hard", 1.0),
        ("soft", 1.0),
        ("soft", 4.0),
    ]
    assert all(e.teachers == ("resnet26_s0", "rednet26_s0") for e in experiments[1:])
    with pytest.raises(ValueError, match="stored teachers"):
        figure11_experiments(names, teachers=["resnet26_s7"])
    with pytest.raises(ValueError, match="distillation='none' goes with no teachers"):
        Experiment("x", teachers=(), student=baseline_recipe(distillation="hard"))
    with pytest.raises(ValueError, match="temperature"):
        Experiment("x", teachers=("a",), student=baseline_recipe(distillation="soft", temperature=0))
    with pytest.raises(ValueError, match="name"):
        Experiment("../x")


def test_summarize_gain_and_spread_over_seeds():
    base = Experiment("baseline", student=baseline_recipe(distillation="none"))
    kd = Experiment("kd", teachers=("resnet26_s0",))
    records = {
        "baseline": {
            0: {"top1": {"cls": 50.0}, "top5": {"cls": 90.0}},
            1: {"top1": {"cls": 54.0}, "top5": {"cls": 92.0}},
        },
        "kd": {
            0: {"top1": {"cls": 60.0, "dist": 58.0, "both": 61.0}, "top5": {"both": 95.0}},
            1: {"top1": {"cls": 57.0, "dist": 56.0, "both": 56.0}, "top5": {"both": 93.0}},
        },
    }
    rows = {r["experiment"]: r for r in summarize([base, kd], records, epochs=3)}
    assert rows["baseline"]["gain"] == 0.0 and rows["baseline"]["top1"] == 52.0
    assert rows["kd"]["top1"] == 58.5 and rows["kd"]["top1_cls"] == 58.5 and rows["kd"]["top1_dist"] == 57.0
    assert rows["kd"]["gain"] == pytest.approx(6.5)  # mean of (61 - 50, 56 - 54)
    assert rows["kd"]["gain_std"] == pytest.approx(np.std([11.0, 2.0], ddof=1))
    assert rows["baseline"]["gain_std"] == 0.0
    # The gain's test: the t interval over the 2 paired seeds (t = 12.706 at 1 degree of freedom) and its verdict.
    half = 12.706204736174707 * np.std([11.0, 2.0], ddof=1) / np.sqrt(2)
    assert rows["kd"]["gain_interval"] == pytest.approx([6.5 - half, 6.5 + half])
    assert rows["kd"]["verdict"] == "cannot tell at this n" and "verdict" not in rows["baseline"]
    table = ablation_table(list(rows.values()))
    assert f"| 95% CI [{6.5 - half:+.2f}, {6.5 + half:+.2f}] (t, 2 seeds) | cannot tell at this n |" in table


def test_one_seed_gain_is_tested_with_mcnemar_on_stored_predictions(tmp_path):
    from libkd_keras.evaluation import save_predictions

    base = Experiment("baseline", student=baseline_recipe(distillation="none"))
    kd = Experiment("kd", teachers=("resnet26_s0",))
    labels = np.arange(1000) % 10
    kd_right, base_right = np.zeros(1000, bool), np.zeros(1000, bool)
    kd_right[: 400 + 109] = True  # 400 both, 109 only the distilled student, 77 only the baseline
    base_right[:400] = base_right[509:586] = True
    for name, right in (("kd__seed0", kd_right), ("baseline__seed0", base_right)):
        save_predictions(
            tmp_path / f"{name}.predictions.npz", np.where(right, labels, 9 - labels), labels, np.arange(1000), 10
        )
    records = {
        "baseline": {0: {"top1": {"cls": 47.7}, "top5": {"cls": 90.0}}},
        "kd": {0: {"top1": {"cls": 50.0, "dist": 50.0, "both": 50.9}, "top5": {"both": 95.0}}},
    }
    rows = {r["experiment"]: r for r in summarize([base, kd], records, epochs=3, predictions_dir=tmp_path)}
    assert rows["kd"]["gain_discordant"] == [109, 77] and round(rows["kd"]["gain_p"], 3) == 0.023
    assert rows["kd"]["verdict"] == "holds" and rows["kd"]["gain_interval"] is None
    assert "| McNemar p = 0.0228 (109 vs 77 images) | holds |" in ablation_table(list(rows.values()))
    without = {r["experiment"]: r for r in summarize([base, kd], records, epochs=3)}["kd"]  # no predictions
    assert without["gain_p"] is None and without["verdict"] == "cannot tell at this n"


def test_run_ablation_from_one_store_without_calling_teachers(tiny_store, tmp_path, monkeypatch):
    store, test, teachers = tiny_store
    seen_before = {name: int(t.images_seen.numpy()) for name, t in teachers.items()}
    wanted = ("baseline", "t4-single-resnet", "t4-single-rednet", "t4-2-resnets-1-rednet", "t4-4-resnets")
    wanted += ("t4-single-rednet-superior",)  # MixUp/CutMix, RandAugment, ... on the stored targets too
    experiments = [e for e in table4_experiments(store.teacher_names) if e.name in wanted]
    experiments += figure11_experiments(
        store.teacher_names, teachers=["resnet26_s0", "rednet26_s0"], temperatures=(4,)
    )[::2]  # the baseline again, and soft at T=4
    lines = []
    # Eager steps: tracing a train step costs more than 3 tiny steps on a shared 2-core machine.
    kwargs = dict(
        make_student=tiny_student,
        epochs=1,
        recipe_overrides={"batch_size": 16, "warmup_epochs": 0},
        options=FitOptions(verbose=0, validate=False, compile_options={"run_eagerly": True}, say=lines.append),
    )
    rows = run_ablation(store, test, experiments, tmp_path, **kwargs)

    # No teacher ran: the targets came from the store.
    assert {name: int(t.images_seen.numpy()) for name, t in teachers.items()} == seen_before
    by_name = {row["experiment"]: row for row in rows}
    assert list(by_name) == [e.name for e in experiments if e.name != "baseline" or e.group == "table4"]
    done = [name for name, row in by_name.items() if row["status"] == "done"]
    assert done == [
        "baseline",
        "t4-single-resnet",
        "t4-single-rednet",
        "t4-2-resnets-1-rednet",
        "t4-single-rednet-superior",
        "f11-soft-t4",
    ]
    superior = by_name["t4-single-rednet-superior"]
    assert superior["mixup_cutmix"] and superior["gain"] is None and "no superior baseline" in superior["note"]
    assert sum("already done" in line for line in lines) == 0 and any("skipped" in line for line in lines)
    assert by_name["t4-4-resnets"]["status"] == "skipped" and "needs 4 ResNets" in by_name["t4-4-resnets"]["note"]

    expected_fields = {
        "experiment",
        "teacher_set",
        "distillation",
        "mixup_cutmix",
        "alpha",
        "params",
        "size_mb",
        "epochs",
        "top1",
        "top5",
        "top1_cls",
        "top1_dist",
        "gain",
        "gain_std",
        "student_params",
    }
    for name in done:
        row = by_name[name]
        assert expected_fields <= set(row)
        assert 0.0 <= row["top1"] <= row["top5"] <= 100.0 and row["epochs"] == 1
    baseline = by_name["baseline"]
    assert baseline["gain"] == 0.0 and baseline["top1_dist"] is None and baseline["params"] is None
    single = by_name["t4-single-resnet"]
    assert single["gain"] == pytest.approx(single["top1"] - baseline["top1"])
    assert single["top1_dist"] is not None and single["top1_cls"] is not None
    assert by_name["t4-2-resnets-1-rednet"]["params"] == 6000  # the three teachers' stored metadata
    assert by_name["f11-soft-t4"]["distillation"] == "soft" and by_name["f11-soft-t4"]["temperature"] == 4.0
    assert single["student_params"] > baseline["student_params"]  # the distillation token and head
    # One seed: the gain is tested with McNemar on the two students' predictions kept beside them in models/.
    assert single["gain_p"] is not None and 0.0 < single["gain_p"] <= 1.0 and sum(single["gain_discordant"]) >= 0
    assert single["verdict"] in ("holds", "does not hold", "cannot tell at this n")

    table = (tmp_path / "ablation.md").read_text()
    assert "| t4-single-rednet | single RedNet | hard |" in table and "soft (T=4)" in table
    assert json.loads((tmp_path / "ablation.json").read_text())["rows"][0]["experiment"] == "baseline"
    assert not (tmp_path / "experiments").exists()  # one record per run: the student's own (train_student's)
    trained = json.loads((tmp_path / "models" / "t4-single-resnet__seed0.json").read_text())
    assert trained["teachers"] == ["resnet26_s0"] and trained["trainable_parameters"] == single["student_params"]
    assert (
        trained["ablation"]["experiment"] == "t4-single-resnet" and trained["ablation"]["run_settings"]["epochs"] == 1
    )
    assert len(list((tmp_path / "models").glob("*.keras"))) == len(done)
    assert not list((tmp_path / "models").glob("*.backup"))  # the engine discards each backup once recorded

    # Rerun: every finished experiment is read back, none is trained again.
    def no_training(*args, **kwargs):
        raise AssertionError("a finished experiment was trained again")

    monkeypatch.setattr(ablation_runner, "_train_and_evaluate", no_training)
    again = run_ablation(store, test, experiments, tmp_path, **kwargs)
    assert [r["top1"] for r in again] == [r["top1"] for r in rows]
    with pytest.raises(AssertionError, match="trained again"):  # other settings: not reused
        run_ablation(store, test, experiments[:1], tmp_path, **{**kwargs, "epochs": 2})

    # An ablation folder written before one engine kept each result in experiments/<run>.json: still read back.
    run = "t4-single-resnet__seed0"
    result = ablation_runner._result(json.loads((tmp_path / "models" / f"{run}.json").read_text()))
    older = {**trained["ablation"], **result}
    (tmp_path / "experiments").mkdir()
    (tmp_path / "experiments" / f"{run}.json").write_text(json.dumps(older))
    (tmp_path / "models" / f"{run}.json").unlink()
    assert [r["top1"] for r in run_ablation(store, test, experiments, tmp_path, **kwargs)] == [r["top1"] for r in rows]
    (tmp_path / "experiments" / f"{run}.json").write_text(json.dumps({**older, "run_settings": {}}))  # other settings
    with pytest.raises(AssertionError, match="trained again"):
        run_ablation(store, test, experiments, tmp_path, **kwargs)


def test_run_ablation_refuses_unknown_teachers_and_names_where_old_keywords_went(tiny_store, tmp_path):
    store, test, _ = tiny_store
    with pytest.raises(ValueError, match="stored teachers"):
        run_ablation(store, test, [Experiment("kd", teachers=("resnet26_s9",))], tmp_path, make_student=tiny_student)
    kd = Experiment("kd", teachers=("resnet26_s0",))
    with pytest.raises(TypeError, match=r"batch_size= -> recipe_overrides=\{'batch_size': ...\}.*log= -> options="):
        run_ablation(store, test, [kd], tmp_path, batch_size=16, log=print)
    with pytest.raises(ValueError, match=r"batch sizes \[16, 128\].*recipe_overrides=\{'batch_size': 16\}"):
        other = Experiment("kd-16", teachers=("resnet26_s0",), student=kd.student.replace(batch_size=16))
        run_ablation(store, test, [kd, other], tmp_path)
    with pytest.raises(ValueError, match=r"may not set \['epochs'\]"):
        run_ablation(store, test, [kd], tmp_path, recipe_overrides={"epochs": 3})
    assert not list(tmp_path.iterdir())  # refused before anything was written
