"""`train_student`: resumable student training with a record keyed like the teachers'."""

import json

import keras
import numpy as np
import pytest

from libkd_keras.distill import baseline, student_augmentation, student_builder, target_source, train_student
from libkd_keras.training import FitOptions
from tests.builders import toy_split


class Stop(keras.callbacks.Callback):
    def __init__(self, at=None):
        super().__init__()
        self.at, self.begun = at, []

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.at:
            raise KeyboardInterrupt
        self.begun.append(epoch)


def _quiet(**options):
    return FitOptions(verbose=0, **options)


def _build():
    return student_builder("deit_tiny", 3, 8, patch_size=4, model={"dim": 16, "depth": 1, "num_heads": 2})


def test_train_student_resumes_and_writes_a_teacher_like_record(tmp_path):
    train, test = toy_split(24, "train", 0), toy_split(6, "test", 1)
    recipe = baseline(distillation="none", batch_size=12, warmup_epochs=0, precision="float32", epochs=2)
    with pytest.raises(KeyboardInterrupt):
        train_student(_build(), train, test, tmp_path, recipe=recipe, name="b", options=_quiet(callbacks=[Stop(1)]))
    assert not (tmp_path / "b.keras").exists() and (tmp_path / "b.backup" / "training_metadata.json").exists()
    resumed = Stop()
    record = train_student(
        _build(), train, test, tmp_path, recipe=recipe, name="b", evaluate=True, options=_quiet(callbacks=[resumed])
    )
    assert resumed.begun == [1] and record["history"]["epoch"] == [0, 1]
    assert json.loads((tmp_path / "b.json").read_text()) == record
    model = keras.saving.load_model(tmp_path / "b.keras")
    assert record["trainable_parameters"] == sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    assert record["size_mb"] == pytest.approx(record["trainable_parameters"] * 4 / 2**20)
    assert record["top1_test_accuracy"] == record["evaluation"]["top1"] and record["evaluation"]["dist_top1"] is None
    assert record["distillation"] == "none" and record["teachers"] == [] and record["recipe"]["name"] == "baseline"
    assert not (tmp_path / "b.backup").exists()
    assert train_student(_build(), train, test, tmp_path, recipe=recipe, name="b", options=_quiet()) == record
    # Its class for each test image, small, beside the record: what the report's McNemar tests pair on.
    with np.load(tmp_path / "b.predictions.npz") as stored:
        assert stored["predictions"].dtype == np.int8 and stored["labels"].dtype == np.int8
        np.testing.assert_array_equal(stored["labels"], test.labels)
        np.testing.assert_array_equal(stored["ids"], test.ids)
        expected = np.argmax(model.predict(test.images.astype("float32"), verbose=0), axis=-1)
        np.testing.assert_array_equal(stored["predictions"], expected)
        assert (stored["predictions"] == stored["labels"]).mean() == pytest.approx(record["evaluation"]["top1"])


def test_train_student_refuses_mismatched_teachers_and_sizes(tmp_path):
    train = toy_split(6, "train", 0)
    with pytest.raises(ValueError, match="distillation='none' goes with no teachers"):
        train_student(_build(), train, train, tmp_path, recipe=baseline(epochs=1))
    with pytest.raises(ValueError, match="need the `store`"):
        train_student(
            _build(), train, train, tmp_path, recipe=baseline(epochs=1), targets=target_source("clean", ["t"])
        )
    with pytest.raises(ValueError, match="`targets` must be StoredTargets"):
        train_student(_build(), train, train, tmp_path, recipe=baseline(epochs=1), targets="clean")
    with pytest.raises(ValueError, match="does not divide the image size 8x8"):
        student_builder("deit_tiny", 3, 8, patch_size=3)
    with pytest.raises(ValueError, match="deit_micro"):
        student_builder("deit_huge", 3, 8)


def test_validate_every_scores_the_test_split_on_those_epochs_and_always_the_last(tmp_path):
    train, test = toy_split(24, "train", 0), toy_split(6, "test", 1)
    recipe = baseline(distillation="none", batch_size=12, warmup_epochs=0, precision="float32", epochs=5)
    record = train_student(
        _build(), train, test, tmp_path, recipe=recipe.replace(validate_every=2), name="v", options=_quiet()
    )
    validated = [e for e, acc in zip(record["history"]["epoch"], record["history"]["val_acc"]) if acc is not None]
    assert validated == [1, 3, 4]  # 0-based epochs 2, 4 and the last (5)
    assert record["top1_test_accuracy"] == record["history"]["val_acc"][-1]


def test_validation_epochs_includes_the_last_and_refuses_nonsense():
    from libkd_keras.training import validation_epochs

    assert validation_epochs(10, 4) == [4, 8, 10] and validation_epochs(3, 1) == [1, 2, 3]
    assert validation_epochs(3, 10) == [3]
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="validate_every"):
            validation_epochs(3, bad)


def _teacher():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Rescaling(1 / 255)(inputs))
    return keras.Model(inputs, keras.layers.Dense(3)(x))


def test_students_learn_from_replayed_views_or_online_teachers(tmp_path):
    from libkd_keras.store import StoreError, precompute

    train, test = toy_split(24, "train", 0), toy_split(6, "test", 1)
    teacher = _teacher()
    recipe = baseline(
        distillation="soft", temperature=2.0, batch_size=12, warmup_epochs=0, precision="float32", epochs=1
    )
    views = precompute({"t": teacher}, train, tmp_path / "views", dtype="float32", views=4)
    common = dict(recipe=recipe, options=_quiet())
    record = train_student(
        _build(), train, test, tmp_path, targets=target_source("views", ["t"], store=views), name="v", **common
    )
    assert record["targets"] == "views" and np.isfinite(record["history"]["loss"]).all()
    online = train_student(
        _build(),
        train,
        test,
        tmp_path,
        targets=target_source("online", ["t"], models={"t": teacher}),
        name="o",
        **common,
    )
    assert online["targets"] == "online" and online["teacher_trainable_parameters"] == teacher.count_params()

    clean = precompute({"t": teacher}, train, tmp_path / "clean", dtype="float32")
    with pytest.raises(StoreError, match="clean images only"):
        train_student(
            _build(), train, test, tmp_path, targets=target_source("views", ["t"], store=clean), name="x", **common
        )
    with pytest.raises(StoreError, match=r"crop padding 4 \(store\) vs padding 2"):
        train_student(
            _build(),
            train,
            test,
            tmp_path,
            targets=target_source("views", ["t"], store=views),
            name="x",
            **{**common, "recipe": recipe.replace(crop_padding=2)},
        )
    with pytest.raises(ValueError, match="`models` must hold one keras.Model per teacher"):
        target_source("online", ["t"])
    with pytest.raises(ValueError, match="`targets` must be one of"):
        target_source("view", ["t"], store=clean)


def test_a_seeded_baseline_student_is_the_same_in_every_run(tmp_path):
    """Shuffling, flip-and-crop and initialisation all come from the seed: two runs, identical weights."""
    train, test = toy_split(48, "train", 0), toy_split(6, "test", 1)
    recipe = baseline(distillation="none", batch_size=12, warmup_epochs=0, precision="float32", epochs=2)
    assert recipe.flip_crop  # the augmentation is part of what must repeat
    runs = []
    for seed, folder in ((3, "a"), (3, "b"), (4, "c")):
        record = train_student(
            _build(), train, test, tmp_path / folder, recipe=recipe, seed=seed, name="s", options=_quiet()
        )
        model = keras.saving.load_model(tmp_path / folder / "s.keras")
        runs.append((record["history"]["loss"], model.get_weights()))
    (loss_a, weights_a), (loss_b, weights_b), (loss_c, _) = runs
    assert loss_a == loss_b and loss_a != loss_c
    for a, b in zip(weights_a, weights_b):
        np.testing.assert_array_equal(a, b)


class Steps(keras.callbacks.Callback):
    """The optimizer's step count at the end of every epoch."""

    def __init__(self):
        super().__init__()
        self.iterations = []

    def on_epoch_end(self, epoch, logs=None):
        self.iterations.append(int(self.model.optimizer.iterations))


def test_a_student_makes_ceil_n_over_batch_steps_an_epoch_with_or_without_xla(tmp_path):
    """Issue 34: a pipeline of unknown length made Keras run a step past each epoch's end outside XLA."""
    train, test = toy_split(30, "train", 0), toy_split(6, "test", 1)  # 30 / 12: batches of 12, 12 and 6
    recipe = baseline(distillation="none", batch_size=12, warmup_epochs=0, precision="float32", epochs=2)
    counts = {}
    for jit in (False, True):
        steps = Steps()
        train_student(
            _build(),
            train,
            test,
            tmp_path / f"jit{jit}",
            recipe=recipe,
            name="s",
            options=_quiet(callbacks=[steps], compile_options={"jit_compile": jit}, validate=False),
        )
        counts[jit] = steps.iterations
    assert counts[False] == counts[True] == [3, 6]


def test_every_student_pipeline_keeps_its_batches_and_known_length(tmp_path):
    """Labels, replayed views and online teachers, under the baseline and the superior augmentation."""
    import tensorflow as tf

    from libkd_keras.data.epochs import EpochSeeds
    from libkd_keras.distill import HardDistillation, superior
    from libkd_keras.distill.online import label_online
    from libkd_keras.store import precompute

    train, teacher = toy_split(30, "train", 0), _teacher()
    store = precompute({"t": teacher}, train, tmp_path / "views", dtype="float32", views=2)
    for recipe in (baseline(batch_size=12), superior(batch_size=12)):
        seeds = EpochSeeds(0)
        views = store.dataset(HardDistillation(), teachers=["t"], batch_size=12, seed=seeds, split=train, views=True)
        pipelines = {
            "views": student_augmentation(views, recipe, 3, seed=seeds, replayed_views=True),
            "online": label_online(
                student_augmentation(train.dataset(12, shuffle=True, seed=seeds), recipe, 3, seed=seeds),
                teacher,
                3,
                HardDistillation(),
            ),
        }
        for where, batches in pipelines.items():
            assert int(batches.cardinality()) == 3, (recipe.recipe, where)
            assert [int(tf.shape(images)[0]) for images, _ in batches] == [12, 12, 6], (recipe.recipe, where)


@pytest.mark.parametrize("jit", [False, True])
def test_a_student_stopped_and_resumed_trains_to_the_weights_of_the_run_never_stopped(tmp_path, jit):
    """Issue 36 (5): each epoch's order and flip/crop come from (seed, epoch), not from the process's history."""
    train, test = toy_split(30, "train", 0), toy_split(6, "test", 1)
    recipe = baseline(distillation="none", batch_size=12, warmup_epochs=0, precision="float32", epochs=3)
    assert recipe.flip_crop  # random in every epoch, as drop path (rate 0.1 in the second block) is in every step

    build = student_builder("deit_tiny", 3, 8, patch_size=4, model={"dim": 16, "depth": 2, "num_heads": 2})
    common = dict(recipe=recipe, seed=5, name="s")

    def options(*callbacks):
        return _quiet(callbacks=callbacks, validate=False, compile_options={"jit_compile": jit})

    straight = Steps()
    train_student(build, train, test, tmp_path / "straight", options=options(straight), **common)
    with pytest.raises(KeyboardInterrupt):
        train_student(build, train, test, tmp_path / "resumed", options=options(Stop(1)), **common)
    resumed, steps = Stop(), Steps()
    record = train_student(build, train, test, tmp_path / "resumed", options=options(resumed, steps), **common)
    assert resumed.begun == [1, 2] and steps.iterations == straight.iterations[1:] == [6, 9]
    assert record["history"]["epoch"] == [0, 1, 2]
    weights = [keras.saving.load_model(tmp_path / f / "s.keras").get_weights() for f in ("straight", "resumed")]
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)
