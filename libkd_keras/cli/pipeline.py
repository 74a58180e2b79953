"""The LIB-KD pipeline, one resumable step at a time, in one run folder.

    teacher/<name>     train_teacher            -> teachers/<name>.keras + .json
    store/train|test   precompute (once)        -> store/train/, store/test/
    store/analysis     teacher + ensemble accuracy, disagreement -> store/analysis.json
    student/<name>     Distiller.fit from the store (or the plain baseline) -> students/<name>.keras + .json
    evaluate/<name>    each head's top-1/top-5 on the test split -> students/<name>.json["evaluation"]
    export/<name>      LiteRT variants, their size, latency, accuracy -> exports/<name>/
    report             report.md + plots (always rewritten)

A finished step leaves a marker (`RunFolder.finish`) written after its outputs, so rerunning
skips it; training that was interrupted resumes from its last finished epoch through
`keras.callbacks.BackupAndRestore` (checkpoints/<kind>_<name>/). A student trained again
invalidates its evaluation and export.

Example:
>>> folder = RunFolder.open("saved_models/quick", config)
>>> Pipeline(folder, config).run_all()
"""

import math
import os
import time
import warnings

import keras
import numpy as np
import tensorflow as tf

import libkd_keras
from libkd_keras.atomic_files import read_json, save_model_atomic, write_json_atomic, write_text_atomic
from libkd_keras.analysis.report import write_report
from libkd_keras.cli.config import ConfigError, student_settings, student_teachers, teacher_epochs, teacher_specs
from libkd_keras.data import load_split
from libkd_keras.distill import RECIPES, make_student
from libkd_keras.export import export_report
from libkd_keras.models import DEIT_VARIANTS, STUDENT_BUILDERS, DeiT, rednet, resnet
from libkd_keras.store import TeacherStore, analyses, precompute
from libkd_keras.precision import resolve_precision
from libkd_keras.teachers import TeacherRecipe, train_teacher
from libkd_keras.teachers.training import EpochLog


class SetJitCompile(keras.callbacks.Callback):
    """Sets `model.jit_compile` when `fit` attaches its callbacks, before it builds its step functions.

    `train_teacher` compiles with Keras' default (`"auto"`: XLA with a GPU, none on a CPU); this
    applies an explicit `run.jit_compile = true/false` to it.
    """

    def __init__(self, jit_compile):
        super().__init__()
        self.jit_compile = bool(jit_compile)

    def set_model(self, model):
        super().set_model(model)
        model.jit_compile = self.jit_compile


class StepOrderError(ValueError):
    """A step was asked for before the steps it needs (the message names the command to run first)."""


def _teacher_builder(family, kwargs):
    """`"resnet26"`/`"rednet26"`, or a builder with the config's arguments (e.g. a tiny test model)."""
    if not kwargs:
        return f"{family}26"
    build_family = {"resnet": resnet, "rednet": rednet}[family]
    arguments = {k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()}

    def build(num_classes, input_shape):
        return build_family(num_classes=num_classes, input_shape=input_shape, name=family, **arguments)

    build.__name__ = family
    return build


def _clock():
    """`(wall, cpu)` start times of a step; markers record both (CPU time is what a shared machine steals)."""
    return time.perf_counter(), time.process_time()


def _trainable_params(model):
    return int(sum(np.prod(v.shape) for v in model.trainable_variables))


class Pipeline:
    """Runs the steps of one run folder; each step method skips what is already finished.

    `callbacks(kind, name)` may return extra Keras callbacks for a training run (`kind` is
    "teacher" or "student"); tests use it to interrupt training.
    """

    def __init__(self, folder, config, callbacks=None, say=print, fit_verbose="auto"):
        self.folder, self.config = folder, config
        self.extra_callbacks = callbacks or (lambda kind, name: [])
        self.say = say
        self.fit_verbose = fit_verbose
        self._splits, self._teacher_models = {}, {}
        self._pending, self._loading = [], False

    # ------------------------------------------------------------------------------------- data

    def split(self, kind):
        """The `Split` of `kind`: "train" (the student's), "teacher_train" or "test"."""
        data, teachers = self.config["data"], self.config["teachers"]
        limits = {"train": data["train_limit"], "test": data["test_limit"],
                  "teacher_train": teachers["train_limit"] or data["train_limit"]}
        if kind == "teacher_train" and limits["teacher_train"] == limits["train"]:
            kind = "train"
        if kind not in self._splits:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                self._splits[kind] = load_split(
                    data["dataset"], "test" if kind == "test" else "train", data_dir=data["data_dir"] or None,
                    limit=limits[kind] or None, image_size=data["image_size"] or None, seed=self.config["run"]["seed"],
                )
            package = os.path.dirname(libkd_keras.__file__)
            self._pending += [" ".join(str(w.message).split()) for w in caught
                              if str(w.filename).startswith(package)]
            if not self._loading:
                self._flush_notices()
            split = self._splits[kind]
            self.say(f"[data] {kind.replace('_', ' ')}: {len(split):,} images {split.image_shape[0]}x"
                     f"{split.image_shape[1]}, {split.num_classes} classes, from {data['dataset']}")
        return self._splits[kind]

    def _flush_notices(self):
        """Data warnings (e.g. images of mixed sizes were resized) as one notice line."""
        if self._pending:
            self.say(f"libkd: notice: {' '.join(dict.fromkeys(self._pending))}")
            self._pending = []

    def load_data(self):
        """Loads every split the run needs (bad data fails here, before any training)."""
        self._loading = True
        try:
            self.split("train")
            self.split("test")
            if teacher_specs(self.config):
                self.split("teacher_train")
        finally:
            self._loading = False
        self._flush_notices()

    # ------------------------------------------------------------------------------- reporting

    def _skip(self, step, what):
        marker = self.folder.finished(step)
        self.say(f"[skip] {what}  (finished earlier in {marker['seconds']:.1f} s)")

    def _done(self, step, what, started, outputs, summary=None, detail=""):
        seconds, cpu_seconds = time.perf_counter() - started[0], time.process_time() - started[1]
        self.folder.finish(step, seconds, outputs=outputs, summary={**(summary or {}), "cpu_seconds": cpu_seconds})
        self.say(f"[done] {what}  {seconds:.1f} s{'  ' + detail if detail else ''}")

    def _callbacks(self, kind, name):
        """Epoch log, backup/restore, TensorBoard, and any extra callbacks, in that order."""
        backup = self.folder.checkpoint(kind, name)
        log_dir = self.folder.log_dir(kind, name)
        epochs_path = log_dir / "epochs.json"
        if not (backup / "training_metadata.json").exists() and epochs_path.exists():
            epochs_path.unlink()  # a fresh start: no backed-up epoch, so no history either
        log_dir.mkdir(parents=True, exist_ok=True)
        epoch_log = EpochLog(str(epochs_path))
        return epoch_log, [
            epoch_log,  # before BackupAndRestore: an epoch the backup counts as done is logged
            keras.callbacks.BackupAndRestore(str(backup)),
            keras.callbacks.TensorBoard(str(log_dir)),
            *self.extra_callbacks(kind, name),
        ]

    # --------------------------------------------------------------------------------- teachers

    def teacher_names(self):
        return [name for name, _, _ in teacher_specs(self.config)]

    def train_teachers(self, only=()):
        """Trains every configured teacher (or those in `only`) that is not trained yet."""
        specs = teacher_specs(self.config)
        unknown = sorted(set(only) - {name for name, _, _ in specs})
        if unknown:
            raise ConfigError(f"Unknown teacher(s) {unknown}; this run's teachers: {', '.join(self.teacher_names())}.")
        settings = self.config["teachers"]
        for name, family, seed in specs:
            step = f"teacher/{name}"
            if only and name not in only:
                continue
            if self.folder.done(step):
                self._skip(step, f"teacher {name}")
                continue
            train, test = self.split("teacher_train"), self.split("test")
            epochs = teacher_epochs(self.config, family)
            recipe = TeacherRecipe(
                epochs=epochs, batch_size=settings["batch_size"], learning_rate=settings["learning_rate"],
                momentum=settings["momentum"], weight_decay=settings["weight_decay"],
                label_smoothing=settings["label_smoothing"], warmup_epochs=min(settings["warmup_epochs"], epochs - 1),
                augment=settings["augment"],
            )
            keras.mixed_precision.set_dtype_policy(resolve_precision(self.config["run"]["precision"]))
            self.say(f"[....] teacher {name}: {recipe.epochs} epochs on {len(train):,} images")
            started = _clock()
            metadata = train_teacher(
                _teacher_builder(family, settings[family]), train, test, str(self.folder.teachers), seed=seed,
                recipe=recipe, verbose=self.fit_verbose, name=name,
                callbacks=[*self._jit_callback(), *self.extra_callbacks("teacher", name)],
            )
            self._done(step, f"teacher {name}", started,
                       outputs=[f"teachers/{name}.keras", f"teachers/{name}.json"],
                       summary={"top1": metadata["top1_test_accuracy"]},
                       detail=f"top-1 {100 * metadata['top1_test_accuracy']:.1f}%")

    def _jit_callback(self):
        jit = self.config["run"]["jit_compile"]
        return [] if jit == "auto" else [SetJitCompile(jit)]

    def _require(self, steps, command):
        missing = [s for s in steps if not self.folder.done(s)]
        if missing:
            raise StepOrderError(
                f"Not finished yet: {', '.join(missing)}. Run 'libkd {command}' with the same options first "
                "(or 'libkd pipeline' for every step)."
            )

    def _teacher(self, name):
        if name not in self._teacher_models:
            teacher = keras.saving.load_model(self.folder.teacher_model(name), compile=False)
            if self.config["run"]["jit_compile"] != "auto":
                teacher.jit_compile = self.config["run"]["jit_compile"]  # for its predict loop
            self._teacher_models[name] = teacher
        return self._teacher_models[name]

    # ------------------------------------------------------------------------------------ store

    def precompute(self, splits=("train", "test")):
        """Runs every teacher once over each split and stores the logits; then the store analysis."""
        names = self.teacher_names()
        if not names:
            self.say("[skip] store  (no teachers configured)")
            return
        self._require([f"teacher/{n}" for n in names], "train-teacher")
        for which in splits:
            step = f"store/{which}"
            if self.folder.done(step):
                self._skip(step, f"store {which}")
                continue
            split, path = self.split(which), self.folder.store_split(which)
            started = _clock()
            stored = []
            if (path / "manifest.json").exists():  # written, but the marker was not (interrupted)
                stored = TeacherStore.open(path, expect=split).teacher_names
            missing = [n for n in names if n not in stored]
            if missing:
                self.say(f"[....] store {which}: {len(missing)} teacher(s) over {len(split):,} images")
                metadata = {n: {k: v for k, v in (read_json(self.folder.teacher_json(n)) or {}).items() if k != "history"}
                            for n in missing}
                store = self.config["store"]
                precompute({n: self._teacher(n) for n in missing}, split, str(path), dtype=store["dtype"],
                           include_images=store["include_images"], batch_size=store["batch_size"],
                           teacher_metadata=metadata, verbose=self.fit_verbose)
            self._done(step, f"store {which}", started, outputs=[f"store/{which}/manifest.json"],
                       detail=f"{len(names)} teachers x {len(split):,} images")
        if "test" in splits:
            self.analyze_store()

    def _ensembles(self):
        """`[(name, members), ...]`: each family's seeds, all teachers, each student's teacher set."""
        specs = teacher_specs(self.config)
        groups = []
        for family in ("resnet", "rednet"):
            members = [n for n, f, _ in specs if f == family]
            if len(members) > 1:
                groups.append((f"{members[0].rsplit('_s', 1)[0]} x{len(members)}", members))
        if len({f for _, f, _ in specs}) > 1:
            groups.append((f"all {len(specs)} teachers", [n for n, _, _ in specs]))
        for entry in self.config["students"]:
            members = student_teachers(self.config, entry)
            if len(members) > 1 and all(members != m for _, m in groups):
                groups.append((f"{entry['name']} teachers", members))
        return groups

    def analyze_store(self):
        """Accuracy of every teacher and ensemble on the test store, and their disagreement matrix."""
        step = "store/analysis"
        if self.folder.done(step):
            self._skip(step, "store analysis")
            return
        self._require(["store/test"], "precompute")
        started = _clock()
        store = TeacherStore.open(self.folder.store_split("test"), expect=self.split("test"))
        teachers = {n: read_json(self.folder.teacher_json(n)) or {} for n in self.teacher_names()}
        accuracy = analyses.teacher_accuracy(store, list(teachers), ensemble=())
        ensembles, labels, predictions = [], list(teachers), [analyses.scores(store, n) for n in teachers]
        for name, members in self._ensembles():
            logits = store.logits(members)
            for rule in ("soft", "vote"):
                scores = analyses.ensemble_scores(logits, rule)
                k = min(5, store.num_classes)
                ensembles.append({
                    "name": name, "members": members, "rule": rule,
                    "top1": analyses.top_k_accuracy(scores, store.labels, 1),
                    "top5": analyses.top_k_accuracy(scores, store.labels, k),
                    "params": sum(teachers[m].get("trainable_parameters", 0) for m in members),
                    "size_mb": sum(teachers[m].get("size_mb", 0.0) for m in members),
                })
                if rule == "soft":
                    labels.append(f"{name} (soft)")
                    predictions.append(scores)
        matrix = [[analyses.disagreement(a, b) for b in predictions] for a in predictions]
        write_json_atomic(self.folder.store_analysis, {
            "split": "test", "num_examples": store.num_examples, "teachers": accuracy, "ensembles": ensembles,
            "disagreement": {"labels": labels, "matrix": matrix},
        })
        best = max(ensembles, key=lambda e: e["top1"], default=None)
        detail = f"best ensemble {best['name']} ({best['rule']}) top-1 {100 * best['top1']:.1f}%" if best else ""
        self._done(step, "store analysis", started, outputs=["store/analysis.json"],
                   detail=detail)

    # --------------------------------------------------------------------------------- students

    def _recipe(self, settings, distillation):
        student = self.config["student"]
        overrides = dict(
            batch_size=settings["batch_size"], weight_decay=settings["weight_decay"],
            warmup_epochs=settings["warmup_epochs"], drop_path_rate=settings["drop_path_rate"],
            precision=self.config["run"]["precision"], distillation=distillation, alpha=settings["alpha"],
            temperature=settings["temperature"], label_smoothing=settings["label_smoothing"],
        )
        if student["learning_rate"]:  # the config gives the peak rate; the recipe scales a batch-512 rate
            overrides["base_learning_rate"] = student["learning_rate"] * 512 / settings["batch_size"]
        return RECIPES[settings["recipe"]](**overrides)

    def _make_student(self, recipe, num_classes, image_size, distillation_token):
        student = self.config["student"]
        variant = student["arch"].removeprefix("deit_")
        if student["model"]:
            kwargs = {**DEIT_VARIANTS[variant], "depth": 12, **student["model"]}
            return make_student(recipe, num_classes, image_size, student["patch_size"], variant=None,
                                distillation_token=distillation_token, **kwargs)
        return make_student(recipe, num_classes, image_size, student["patch_size"], variant=variant,
                            distillation_token=distillation_token)

    def distill(self, only=()):
        """Trains every configured student (or those in `only`) that is not trained yet."""
        names = [s["name"] for s in self.config["students"]]
        unknown = sorted(set(only) - set(names))
        if unknown:
            raise ConfigError(f"Unknown student(s) {unknown}; this run's students: {', '.join(names)}.")
        for order, entry in enumerate(self.config["students"]):
            if only and entry["name"] not in only:
                continue
            step = f"student/{entry['name']}"
            if self.folder.done(step):
                self._skip(step, f"student {entry['name']}")
                continue
            self._train_student(order, entry)

    def _train_student(self, order, entry):
        name, teachers = entry["name"], student_teachers(self.config, entry)
        settings = student_settings(self.config, entry)
        if teachers:
            self._require(["store/train"], "precompute")
        train, test = self.split("train"), self.split("test")
        distillation = settings["distillation"] if teachers else "none"
        recipe = self._recipe(settings, distillation)
        keras.utils.set_random_seed(self.config["run"]["seed"])
        student = self._make_student(recipe, train.num_classes, train.image_shape[:2], bool(teachers))
        distiller = recipe.distiller(student)
        seed = self.config["run"]["seed"]
        if teachers:
            store = TeacherStore.open(self.folder.store_split("train"), expect=train, verify=False)
            batches = store.dataset(teachers=teachers, ensemble=settings["ensemble"], target=distillation,
                                    temperature=settings["temperature"], batch_size=settings["batch_size"],
                                    shuffle=True, seed=seed, split=train)
        else:
            batches = train.dataset(settings["batch_size"], shuffle=True, seed=seed)
        batches = recipe.augment(batches, train.num_classes, seed=seed)
        epochs = settings["epochs"]
        distiller.compile(optimizer=recipe.optimizer(math.ceil(len(train) / settings["batch_size"]), epochs),
                          jit_compile=self.config["run"]["jit_compile"])
        epoch_log, callbacks = self._callbacks("student", name)
        what = f"{', '.join(teachers)} ({settings['distillation']}, {settings['ensemble']})" if teachers else "no teacher"
        self.say(f"[....] student {name}: {epochs} epochs on {len(train):,} images, {what}, recipe {recipe.name}")
        started = _clock()
        distiller.fit(batches, validation_data=test.dataset(settings["batch_size"]), epochs=epochs,
                      callbacks=callbacks, verbose=self.fit_verbose)
        seconds = time.perf_counter() - started[0]
        history = epoch_log.history()
        save_model_atomic(student, self.folder.student_model(name))
        teacher_records = [read_json(self.folder.teacher_json(t)) or {} for t in teachers]
        params = _trainable_params(student)
        record = {
            "name": name, "order": order, "teachers": teachers, "true_label": True, "distillation": distillation,
            "ensemble": settings["ensemble"] if teachers else None, "recipe": recipe.name,
            "mixup": recipe.mixup_alpha > 0, "cutmix": recipe.cutmix_alpha > 0, "alpha": recipe.alpha,
            "temperature": recipe.temperature, "arch": self.config["student"]["arch"],
            "patch_size": self.config["student"]["patch_size"], "image_shape": list(train.image_shape),
            "params": params, "size_mb": params * 4 / 2**20,
            "teacher_params": sum(r.get("trainable_parameters", 0) for r in teacher_records) or None,
            "teacher_size_mb": sum(r.get("size_mb", 0.0) for r in teacher_records) or None,
            "epochs": epochs, "batch_size": settings["batch_size"], "learning_rate": recipe.learning_rate,
            "precision": recipe.precision, "train_images": len(train),
            "train_seconds": float(sum(history.get("time_s", [])) or seconds),
            "history": {k: v for k, v in history.items()},
        }
        write_json_atomic(self.folder.student_json(name), record)
        self.folder.forget(f"evaluate/{name}")  # a student trained again is evaluated and exported again
        self.folder.forget(f"export/{name}")
        accuracy = (history.get("val_acc") or [None])[-1]
        self._done(f"student/{name}", f"student {name}", started,
                   outputs=[f"students/{name}.keras", f"students/{name}.json"],
                   summary={"val_top1": accuracy},
                   detail="" if accuracy is None else f"test top-1 {100 * accuracy:.1f}%")

    # ------------------------------------------------------------------------------- evaluation

    def evaluate(self, only=()):
        """Top-1/top-5 of each trained student's heads (class, distillation, average) on the test split."""
        names = [s["name"] for s in self.config["students"]]
        unknown = sorted(set(only) - set(names))
        if unknown:
            raise ConfigError(f"Unknown student(s) {unknown}; this run's students: {', '.join(names)}.")
        for name in names:
            if only and name not in only:
                continue
            step = f"evaluate/{name}"
            if self.folder.done(step):
                self._skip(step, f"evaluate {name}")
                continue
            self._require([f"student/{name}"], "distill")
            started = _clock()
            student = keras.saving.load_model(self.folder.student_model(name), compile=False)
            evaluation = self._evaluate_heads(student, self.split("test"))
            record = read_json(self.folder.student_json(name))
            record["evaluation"] = evaluation
            write_json_atomic(self.folder.student_json(name), record)
            self._done(step, f"evaluate {name}", started, outputs=[f"students/{name}.json"],
                       summary=evaluation, detail=f"top-1 {100 * evaluation['top1']:.1f}%  "
                                                  f"top-5 {100 * evaluation['top5']:.1f}%")

    @staticmethod
    def _evaluate_heads(student, split, batch_size=256):
        heads = tf.function(lambda x: student.heads(x, training=False), reduce_retracing=True)
        cls_rows, dist_rows = [], []
        for images, _ in split.dataset(batch_size):
            cls, dist = heads(images)
            cls_rows.append(np.asarray(cls, np.float32))
            dist_rows.append(np.asarray(dist, np.float32))
        cls, dist = np.concatenate(cls_rows), np.concatenate(dist_rows)
        k = min(5, split.num_classes)
        result = {"split": "test", "num_examples": len(split)}
        for prefix, logits in (("cls_", cls), ("dist_", dist), ("", (cls + dist) / 2)):
            result[f"{prefix}top1"] = analyses.top_k_accuracy(logits, split.labels, 1)
            result[f"{prefix}top5"] = analyses.top_k_accuracy(logits, split.labels, k)
        if not student.distillation:
            result["dist_top1"] = result["dist_top5"] = None
        return result

    # ----------------------------------------------------------------------------------- export

    def best_student(self):
        """The distilled student with the best test top-1 (any student if none is distilled)."""
        scored = []
        for entry in self.config["students"]:
            record = read_json(self.folder.student_json(entry["name"]))
            if record is None:
                continue
            top1 = (record.get("evaluation") or {}).get("top1")
            if top1 is None:
                top1 = ((record.get("history") or {}).get("val_acc") or [0.0])[-1]
            scored.append((bool(record.get("teachers")), top1, entry["name"]))
        if not scored:
            raise StepOrderError("No student is trained yet. Run 'libkd distill' with the same options first.")
        return max(scored)[2]

    def export(self, student=None):
        """Exports one student to every configured LiteRT variant and measures each."""
        settings = self.config["export"]
        if not settings["quantizations"]:
            self.say("[skip] export  (export.quantizations is empty)")
            return None
        names = [s["name"] for s in self.config["students"]]
        if student is not None and student not in names:
            raise ConfigError(f"Unknown student {student!r}; this run's students: {', '.join(names)}.")
        name = student or settings["student"] or self.best_student()
        step = f"export/{name}"
        if self.folder.done(step):
            self._skip(step, f"export {name}")
            return name
        self._require([f"student/{name}"], "distill")
        started = _clock()
        self.say(f"[....] export {name}: {', '.join(settings['quantizations'])}")
        model = keras.saving.load_model(self.folder.student_model(name), compile=False)  # export makes it float32
        train, test = self.split("train"), self.split("test")
        out_dir = self.folder.export_dir(name)
        rows = export_report(
            model, str(out_dir), test, representative_data=train.images[: settings["representative_images"]],
            quantizations=settings["quantizations"], name=name, class_names=list(test.class_names),
            threads=(settings["threads"],), runs=settings["latency_runs"], dataset_name=self.config["data"]["dataset"],
            log=lambda line: self.say(f"       export {name} {line}"),
        )
        files = [f"exports/{name}/{row['file']}" for row in rows if row.get("file")]
        best = {row["variant"]: row for row in rows}
        detail = "  ".join(f"{q} {best[q]['size_mb']:.1f} MB {100 * best[q]['top1']:.1f}%"
                           for q in settings["quantizations"] if q in best)
        self._done(step, f"export {name}", started,
                   outputs=[f"exports/{name}/export_report.json", *files], detail=detail)
        return name

    # ------------------------------------------------------------------------ optional analyses

    def _student_builder(self):
        """`build(distillation_token) -> DeiT` from the config (for the ablation runner)."""
        student, train = self.config["student"], self.split("train")
        variant = student["arch"].removeprefix("deit_")
        common = dict(num_classes=train.num_classes, image_size=train.image_shape[:2],
                      patch_size=student["patch_size"], drop_path_rate=student["drop_path_rate"])

        def build(distillation_token):
            if student["model"]:
                return DeiT(**{**DEIT_VARIANTS[variant], "depth": 12, **student["model"]}, **common,
                            distillation=distillation_token)
            return STUDENT_BUILDERS[student["arch"]](**common, distillation=distillation_token)

        return build

    def ablate(self, experiments="table4", seeds=(0,), epochs=None, recipes=("baseline", "superior")):
        """Table 4's teacher sets and/or Figure 11's hard/soft/temperature runs, all from the train store.

        Results go to `ablation/` (one JSON per finished run: a rerun resumes) and into the report.
        """
        from libkd_keras.analysis import ablation

        self._require(["store/train"], "precompute")
        train, student = self.split("train"), self.config["student"]
        store = TeacherStore.open(self.folder.store_split("train"), expect=train, verify=False)
        chosen = []
        if experiments in ("table4", "all"):
            chosen += ablation.table4_experiments(store.teacher_names, recipes=tuple(recipes), alpha=student["alpha"],
                                                  distillation=student["distillation"], ensemble=student["ensemble"])
        if experiments in ("figure11", "all"):
            chosen += ablation.figure11_experiments(store.teacher_names, alpha=student["alpha"],
                                                    ensemble=student["ensemble"])
        overrides = dict(weight_decay=student["weight_decay"], warmup_epochs=student["warmup_epochs"],
                         drop_path_rate=student["drop_path_rate"], label_smoothing=student["label_smoothing"],
                         precision=self.config["run"]["precision"])
        if student["learning_rate"]:
            overrides["base_learning_rate"] = student["learning_rate"] * 512 / student["batch_size"]
        self.say(f"[....] ablation: {len(chosen)} experiments x {len(seeds)} seed(s), "
                 f"{epochs or student['epochs']} epochs each")
        started = time.perf_counter()
        ablation.run_ablation(
            store, self.split("test"), chosen, self.folder.root / "ablation", make_student=self._student_builder(),
            epochs=epochs or student["epochs"], batch_size=student["batch_size"], seeds=tuple(seeds),
            train_split=train, recipe_overrides=overrides,
            compile_options={"jit_compile": self.config["run"]["jit_compile"]},
            verbose=self.fit_verbose, log=self.say,
        )
        self.say(f"[done] ablation  {time.perf_counter() - started:.1f} s  ablation/ablation.md")
        self.report()

    def analyze(self, max_images=512):
        """CKA heatmaps of every trained model (paper Figures 1-2) into `cka/`, and into the report."""
        from libkd_keras.analysis.cka import analyze_run

        started = time.perf_counter()
        self.say(f"[....] analyze: linear CKA on {min(max_images, len(self.split('test')))} test images")
        section = analyze_run(self.folder.root, self.split("test").images, max_images=max_images)
        write_text_atomic(self.folder.root / "cka" / "section.md", section)
        self.say(f"[done] analyze  {time.perf_counter() - started:.1f} s  cka/")
        self.report()

    # ----------------------------------------------------------------------------------- report

    def report(self):
        summary = write_report(self.folder.root)
        self.say(summary.table)
        self.say(f"[done] report  {summary.path}")
        return summary

    def run_all(self):
        """Every step in order; finished steps are skipped."""
        started = time.perf_counter()
        self.load_data()
        self.train_teachers()
        self.precompute()
        self.distill()
        self.evaluate()
        self.export()
        self.report()
        self.say(f"libkd: pipeline finished in {time.perf_counter() - started:.1f} s; run folder {self.folder.root}")
