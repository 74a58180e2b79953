"""`Distiller`: trains a DeiT student with `model.fit` from stored (or online) teacher targets."""

import keras
from keras import ops

from libkd_keras.distill import losses, targets
from libkd_keras.distribute import MultiWorkerFit
from libkd_keras.ensembles import ENSEMBLE_RULES, as_teacher_list, teacher_target


@keras.saving.register_keras_serializable(package="libkd_keras")
class Distiller(MultiWorkerFit, keras.Model):
    """Train a DeiT student with one distillation token from teacher targets, with `fit`.

    Each batch is `(images, {"label", "teacher", "target_kind"})`, as `TeacherStore.dataset(kd)` yields:
    `label` is int `(B,)` or probability rows `(B, C)` (mixed labels), `teacher` is a probability
    row `(B, C)` (`kd.target`: one-hot of the ensemble decision for `HardDistillation()`,
    probabilities at `T` for `SoftDistillation(T)`), `target_kind` says which (see `targets.py`).
    No teacher runs and no teacher is in memory. The loss (see `losses.py`, which holds the
    formulas, their notes and the two distillation objects) is, as in the LIB-KD paper:

        hard: alpha * CE_ls(cls, y) + (1 - alpha) * CE(dist, teacher_hard)
        soft: alpha * CE_ls(cls, y) + (1 - alpha) * T^2 * KL(teacher_T || softmax(dist / T))

    Note: DeiT's code weights the *distillation* term by alpha; the paper, and this class, weight
    the *true-label* term by alpha (identical at the paper's alpha = 0.5). Label smoothing applies
    to the true-label term only. Losses are computed in float32, also under `mixed_bfloat16`.

    Modes:
    - `kd=HardDistillation()` or `SoftDistillation(T)`, `teachers=None` (stored mode): targets from
      the store, read with the same object (`store.dataset(kd, ...)`): `fit` and `evaluate` raise
      `ValueError` on batches whose `target_kind` says they are of another kind (`kd.matches`),
      unless `check_target_kind=False` (deliberate mixes). Batches without `target_kind` (built
      by hand) are used as given.
    - `teachers=[model, ...]` (online mode): the frozen teachers run inside the step on the
      (augmented) batch images (`training=False`, no gradient), their ensemble target is built by
      `libkd_keras.ensembles.teacher_target` (`teacher_ensemble` "soft" or "vote") and the same loss
      applies. Batches may then be `(images, labels)`; a stored `"teacher"` entry is ignored. The
      teachers are not tracked: they are not part of `distiller.weights` and are never saved.
      `distill.online.label_online` gives the same targets from `tf.data` instead: the Distiller
      then trains in stored mode (with XLA on a CPU too), and validation runs no teacher.
    - `kd=None`: the plain student baseline through the same entry point. A student
      with a distillation token trains both heads on the true label (`alpha * CE_ls(cls, y) +
      (1 - alpha) * CE_ls(dist, y)`, reported as `label_loss` and `distill_loss`), so its
      inference output (the average of the heads) is meaningful; a student without one trains
      on `CE_ls(cls, y)`.

    Logs: `loss`, `label_loss`, `distill_loss`, top-1 and top-5 of the class head (`cls_acc`,
    `cls_top5`), of the distillation head (`dist_acc`, `dist_top5`) and of their average, the
    inference output (`acc`, `top5`). Validation data may be `(images, labels)` or the store
    format; without teacher rows `val_loss` is the true-label term alone (`loss` is the weighted
    sum), so a callback should monitor `val_label_loss` against `label_loss`, or `val_acc`.
    With mixed labels, accuracy counts the argmax of the mixed row.

    `distiller.call(x)` returns the student's two heads `(cls_logits, dist_logits)`;
    `distiller.predict(x)` returns the student's inference output. `distiller.student` is a plain
    DeiT: save it (`distiller.student.save("student.keras")`) to keep or export the model.
    `distiller.save(...)` also works and stores the student and the loss settings only (no
    teacher); reloading gives a Distiller for stored-mode training.

    Works under `tf.distribute.MirroredStrategy` and `MultiWorkerMirroredStrategy` (create it, the
    student and any online teachers inside `strategy.scope()`; see `libkd_keras.distribute`).

    Example:
    >>> student = DeiT(num_classes=10, image_size=32, patch_size=4, dim=192, depth=12, num_heads=3)
    >>> kd = SoftDistillation(4.0)
    >>> distiller = Distiller(student, kd, alpha=0.5)
    >>> distiller.compile(optimizer=keras.optimizers.AdamW(5e-4 * 128 / 512, weight_decay=0.05))
    >>> distiller.fit(store.dataset(kd, teachers=["resnet26", "rednet26"]), epochs=20)
    >>> distiller.student.save("student.keras")
    """

    def __init__(
        self,
        student,
        kd=losses.HardDistillation(),
        alpha=0.5,
        teachers=None,
        label_smoothing=0.1,
        teacher_ensemble="soft",
        check_target_kind=True,
        **kwargs,
    ):
        if "distillation" in kwargs or "temperature" in kwargs:
            raise TypeError(
                "Distiller takes the distillation as one object now: `kd=HardDistillation()`, "
                "`kd=SoftDistillation(temperature)` or `kd=None` (libkd_keras.distill), not `distillation=` and "
                "`temperature=`."
            )
        super().__init__(**kwargs)
        losses.check_kd(kd)
        losses.check_loss_args(alpha, label_smoothing)
        if not isinstance(student, keras.Model) or not hasattr(student, "heads"):
            raise ValueError(
                "`student` must be a DeiT (a keras.Model with `heads(x, training)` returning "
                f"(cls_logits, dist_logits)); got {type(student).__name__}."
            )
        self.has_dist_head = bool(getattr(student, "distillation", False))
        if kd is not None and not self.has_dist_head:
            raise ValueError(
                f"`student` has no distillation token, which {kd!r} trains. "
                "Build it with `DeiT(..., distillation=True)`, or use kd=None for the plain student."
            )
        if teacher_ensemble not in ENSEMBLE_RULES:
            raise ValueError(f"`teacher_ensemble` must be one of {ENSEMBLE_RULES}; got {teacher_ensemble!r}.")
        teachers = () if teachers is None else as_teacher_list(teachers)
        if teachers and kd is None:
            raise ValueError(
                "`teachers` were given but kd=None uses none; pass HardDistillation() or SoftDistillation(T)."
            )
        self.num_classes = int(student.num_classes)
        for teacher in teachers:
            try:
                classes = teacher.output_shape[-1]
            except (AttributeError, ValueError):  # a subclassed model not called yet: checked at trace time
                classes = None
            if classes is not None and classes != self.num_classes:
                raise ValueError(
                    f"`teachers`: {teacher.name} predicts {classes} classes but the student predicts "
                    f"{self.num_classes}; they must match."
                )

        self.student = student
        self.kd = kd
        self.alpha = float(alpha)
        self.label_smoothing = float(label_smoothing)
        self.teacher_ensemble = teacher_ensemble
        self.check_target_kind = bool(check_target_kind)
        # Bypass Keras' attribute tracking: online teachers are neither trained nor saved.
        object.__setattr__(self, "_teachers", teachers)

        self.label_loss_tracker = keras.metrics.Mean(name="label_loss")
        self.distill_loss_tracker = keras.metrics.Mean(name="distill_loss")
        # One per (kind, head): heads are the class head, the distillation head, their average.
        self.accuracy_metrics = [
            keras.metrics.CategoricalAccuracy(name=f"{prefix}acc") for prefix in ("cls_", "dist_", "")
        ] + [keras.metrics.TopKCategoricalAccuracy(k=5, name=f"{prefix}top5") for prefix in ("cls_", "dist_", "")]
        self.built = True

    @property
    def teachers(self):
        """The online teachers (a tuple; empty in stored mode)."""
        return self._teachers

    # -- forward -------------------------------------------------------------------------------

    def call(self, inputs, training=None):
        """The student's two heads `(cls_logits, dist_logits)` (the class head twice without a token)."""
        return self.student.heads(inputs, training=bool(training))

    def predict_step(self, data):
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        return self.student(x, training=False)

    def _online_target(self, images):
        return teacher_target(self._teachers, images, self.num_classes, self.kd, rule=self.teacher_ensemble)

    # -- targets -------------------------------------------------------------------------------

    def check_targets(self, y, training=True):
        """Check batch targets (tensors or `TensorSpec`s); returns `(labels, teacher_or_None)`."""
        needs_teacher = training and not self._teachers and self.kd is not None
        return targets.split_targets(y, self.num_classes, needs_teacher, self.kd)

    def _checks_kind(self):
        return self.check_target_kind and not self._teachers and self.kd is not None

    def _prepare(self, data, y, training):
        """Check the targets' structure now; check their kind batch by batch (`targets.kind_checked`)."""
        spec = getattr(data, "element_spec", None)
        if isinstance(spec, tuple) and len(spec) >= 2:
            self.check_targets(spec[1], training=training)
        if not self._checks_kind():
            return data
        if isinstance(data, tuple) and len(data) >= 2:  # validation_data=(x, y)
            targets.check_kind_arrays(data[1], self.kd)
        targets.check_kind_arrays(y, self.kd)
        return targets.kind_checked(data, self.kd)

    def fit(self, x=None, y=None, *args, **kwargs):
        # Fail before the first step (and before any callback) on a dataset of the wrong shape.
        x = self._prepare(x, y, training=True)
        if kwargs.get("validation_data") is not None:
            kwargs["validation_data"] = self._prepare(kwargs["validation_data"], None, training=False)
        with targets.kind_errors(self.kd):
            return super().fit(x, y, *args, **kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        if not kwargs.get("_use_cached_eval_dataset"):  # fit's validation reuses the data `fit` prepared
            x = self._prepare(x, y, training=False)
        with targets.kind_errors(self.kd):
            return super().evaluate(x, y, *args, **kwargs)

    # -- loss and metrics ----------------------------------------------------------------------

    def compile(self, optimizer="rmsprop", loss=None, loss_weights=None, metrics=None, weighted_metrics=None, **kwargs):
        if loss is not None or loss_weights is not None or metrics or weighted_metrics:
            raise ValueError(
                "The Distiller computes its own loss and metrics (set kd, alpha and label_smoothing on the "
                "Distiller); call `compile(optimizer=...)` only."
            )
        super().compile(optimizer=optimizer, **kwargs)

    def compile_from_config(self, config):
        # Keras skips recompiling models with a custom `compile` on load; ours takes the same config.
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if getattr(self, "optimizer", None) is not None:
            self.optimizer.build(self.trainable_variables)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        cls_logits, dist_logits = y_pred
        labels, teacher = self.check_targets(y, training=training)
        if self._teachers:
            teacher = self._online_target(x)
        batch_size = ops.shape(cls_logits)[0]
        if self.kd is not None and teacher is None:  # evaluation on (images, labels)
            label_loss = losses.cross_entropy(
                cls_logits, losses.label_rows(labels, self.num_classes), self.label_smoothing
            )
            total = losses.batch_mean(label_loss, sample_weight)
            self.label_loss_tracker.update_state(total, sample_weight=batch_size)
        else:
            terms = losses.distillation_loss(
                cls_logits,
                dist_logits if self.has_dist_head else None,
                labels,
                teacher,
                kd=self.kd,
                alpha=self.alpha,
                label_smoothing=self.label_smoothing,
            )
            total = losses.batch_mean(terms["loss"], sample_weight)
            self.label_loss_tracker.update_state(
                losses.batch_mean(terms["label_loss"], sample_weight), sample_weight=batch_size
            )
            if self.has_dist_head:
                self.distill_loss_tracker.update_state(
                    losses.batch_mean(terms["distill_loss"], sample_weight), sample_weight=batch_size
                )
        for extra in self.losses:  # regularisers, add_loss
            total = total + ops.cast(ops.sum(extra), "float32")
        return losses.scale_for_replicas(total)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        labels = y["label"] if isinstance(y, dict) else y
        rows = losses.label_rows(labels, self.num_classes)
        cls_logits, dist_logits = (ops.cast(p, "float32") for p in y_pred)
        heads = (cls_logits, dist_logits, (cls_logits + dist_logits) * 0.5)
        for i, metric in enumerate(self.accuracy_metrics):
            metric.update_state(rows, heads[i % 3], sample_weight=sample_weight)
        return self.get_metrics_result()

    # -- saving --------------------------------------------------------------------------------

    def get_config(self):
        return {
            **super().get_config(),
            "student": keras.saving.serialize_keras_object(self.student),
            "kd": keras.saving.serialize_keras_object(self.kd),
            "alpha": self.alpha,
            "label_smoothing": self.label_smoothing,
            "teacher_ensemble": self.teacher_ensemble,
            "check_target_kind": self.check_target_kind,
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        config["student"] = keras.saving.deserialize_keras_object(config["student"], custom_objects=custom_objects)
        if "distillation" in config:  # saved before the distillation objects
            config["kd"] = losses.distillation_for(config.pop("distillation"), config.pop("temperature", 1.0))
        else:
            config["kd"] = keras.saving.deserialize_keras_object(config["kd"], custom_objects=custom_objects)
        return cls(**config)
