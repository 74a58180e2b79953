"""Where a student's teacher rows come from: three implementations of one small interface.

- `StoredTargets(store, teachers, ensemble)`: rows stored on the clean images (`store.dataset`), no
  teacher runs; the recipe's augmentation follows (MixUp/CutMix mix the rows with the pixels).
- `ViewTargets(store, teachers, ensemble)`: a multi-view store's rows on the view the reader replays
  (`store.dataset(views=True)`); the recipe's flip and crop are the replayed ones, so the store must
  have been computed with the student's crop and image size (`check_replayable`).
- `OnlineTargets(models, ensemble)`: the teachers label each augmented batch, in `tf.data` on one
  CPU replica (`label_online`), in the Distiller's step elsewhere (`online.in_input_pipeline`).

Each one gives `train_student` what it needs, without it knowing which source it has:

    source.teachers, .ensemble, .name            the record's "teachers", "ensemble", "targets"
    source.distiller_options()                   the Distiller's extra arguments (teachers in its step)
    source.batches(split, kd, recipe, seed)      the augmented training batches, labelled with `kd`'s rows
    source.teacher_sizes()                       (trainable_parameters, size_mb) of the teacher set

`target_source(kind, teachers, ensemble, store=..., models=...)` makes one from a config's
`targets` choice ("clean", "views", "online"); no teachers give None (the student baseline).

Example:
>>> targets = StoredTargets(TeacherStore.open("runs/store/train"), ["resnet26_s0", "rednet26_s0"])
>>> batches = targets.batches(train, recipe.kd, recipe, seed=EpochSeeds(0))
"""

from libkd_keras import choices
from libkd_keras.distill.augment import student_augmentation
from libkd_keras.distill.online import in_input_pipeline, label_online
from libkd_keras.distill.students import teacher_set_size
from libkd_keras.ensembles import as_teacher_list, check_rule
from libkd_keras.store.read import check_replayable


class StoredTargets:
    """Teacher rows stored on the clean images: `store.dataset(kd, ...)`, then the recipe's augmentation."""

    name = "clean"
    views = False

    def __init__(self, store, teachers, ensemble="soft"):
        self.teachers = list(teachers)
        if not self.teachers:
            raise ValueError("`teachers`: name at least one stored teacher (no teachers: pass no targets).")
        if store is None:
            raise ValueError(f"teachers {self.teachers} need the `store` holding their logits.")
        check_rule(ensemble)
        self.store, self.ensemble = store, ensemble

    def distiller_options(self):
        return {}

    def batches(self, split, kd, recipe, seed):
        """`recipe`'s augmented batches of `split` with `kd`'s rows of the stored logits, seeded by `seed`."""
        if self.views:
            check_replayable(self.store, recipe, split.image_shape)
        batches = self.store.dataset(
            kd,
            teachers=self.teachers,
            ensemble=self.ensemble,
            batch_size=recipe.batch_size,
            shuffle=True,
            seed=seed,
            split=split,
            views=self.views,
        )
        return student_augmentation(batches, recipe, split.num_classes, seed=seed, replayed_views=self.views)

    def teacher_sizes(self):
        return teacher_set_size(self.store, self.teachers)

    def __repr__(self):
        return f"{type(self).__name__}({self.store.path!r}, {self.teachers}, ensemble={self.ensemble!r})"


class ViewTargets(StoredTargets):
    """Teacher rows stored on views that the reader replays (a multi-view store), drawn anew each epoch."""

    name = "views"
    views = True


class OnlineTargets:
    """The teachers themselves label each augmented batch: in `tf.data` where `in_input_pipeline()`, else in the step.

    Args:
        models: dict `{name: keras.Model}` of frozen teachers returning logits.
        ensemble: str. How they are combined (`choices.ENSEMBLES`).
        store: TeacherStore or None. Only read for the teachers' sizes in the record (their stored
            records); without it, their parameter counts.
    """

    name = "online"

    def __init__(self, models, ensemble="soft", store=None):
        if not isinstance(models, dict):
            raise ValueError(f"`models` must be a dict {{name: keras.Model}} of the online teachers; got {models!r}.")
        as_teacher_list(models)  # non-empty, keras.Models
        check_rule(ensemble)
        self.models, self.ensemble, self.store = dict(models), ensemble, store
        self.teachers = list(models)

    def in_step(self):
        """Whether the teachers run in the Distiller's step (a GPU, several replicas) rather than in `tf.data`."""
        return not in_input_pipeline()

    def distiller_options(self):
        return {"teachers": list(self.models.values()), "teacher_ensemble": self.ensemble} if self.in_step() else {}

    def batches(self, split, kd, recipe, seed):
        """`recipe`'s augmented batches of `split`, labelled with `kd`'s rows of the teachers' logits on them."""
        batches = split.dataset(recipe.batch_size, shuffle=True, seed=seed)
        batches = student_augmentation(batches, recipe, split.num_classes, seed=seed)
        if self.in_step():
            return batches  # the Distiller's teachers label them (`distiller_options`)
        return label_online(batches, list(self.models.values()), split.num_classes, kd, rule=self.ensemble)

    def teacher_sizes(self):
        if self.store is not None:  # the stored records' counts
            return teacher_set_size(self.store, self.teachers)
        return teacher_set_size({n: {"params": m.count_params()} for n, m in self.models.items()}, self.teachers)

    def __repr__(self):
        return f"OnlineTargets({self.teachers}, ensemble={self.ensemble!r})"


def target_source(kind, teachers, ensemble="soft", *, store=None, models=None):
    """The target source of a config's `targets` choice (`choices.TARGET_SOURCES`); None without teachers.

    Args:
        kind: str. "clean", "views" or "online".
        teachers: list of str. The teachers' names; empty for the student baseline.
        ensemble: str. How several teachers are combined.
        store: TeacherStore. The stored logits ("clean", "views"); for "online" only the teachers' sizes.
        models: dict `{name: keras.Model}`, one per teacher ("online").
    """
    if kind not in choices.TARGET_SOURCES:
        raise ValueError(f"`targets` must be one of {choices.TARGET_SOURCES}; got {kind!r}.")
    teachers = list(teachers)
    if not teachers:
        return None
    if kind == "online":
        if sorted(models or {}) != sorted(teachers):
            raise ValueError(
                f"targets='online' runs the teachers themselves; `models` must hold one keras.Model per teacher "
                f"{sorted(teachers)}; got {sorted(models or {})}."
            )
        return OnlineTargets({t: models[t] for t in teachers}, ensemble, store=store)
    return (ViewTargets if kind == "views" else StoredTargets)(store, teachers, ensemble)
