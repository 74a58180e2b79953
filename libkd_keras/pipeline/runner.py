"""`Pipeline`: the LIB-KD steps of one run folder, in order, each resumable; the run's data (`RunData`).

The pipeline is the ordered list of stages below; each stage is the steps (`steps.Step`) of one
kind, made as the pipeline reaches it, and each `libkd` command runs one stage (`libkd pipeline`:
all of them, then the report):

    stage     command         steps                module           outputs
    data      (every command) -                    runner.RunData   the splits, loaded and checked (`prepare`)
    teacher   train-teacher   teacher/<name>       teachers.py      teachers/<name>.keras + .json (trained,
                                                   own_teachers.py  copied from --teachers-from, or the user's own)
    store     precompute      store/train|test     store.py         store/train/, store/test/ (one process, a
                              store/analysis                        worker's share, or --finalize); analysis.json
    student   distill         student/<name>       students.py      students/<name>.keras + .json
    evaluate  evaluate        evaluate/<name>      students.py      each head's top-1/top-5 -> students/<name>.json
    export    export          export/<name>        students.py      LiteRT variants, size, latency -> exports/<name>/
    report    report          -                    analysis/report  report.md + plots (always rewritten)

Each step follows one protocol (`steps.StepRunner.run_step`): a finished step is skipped, a step
whose needs are not finished names the command that makes them, and a step's marker is written
after its outputs, so rerunning resumes; training that was interrupted resumes from its last
finished epoch (`training.py`). A student trained again invalidates its evaluation and export.

Example:
>>> with RunFolder.open("saved_models/quick", config) as folder:
...     Pipeline(folder, config).run_all()
"""

import functools
import os
import time
import warnings

import libkd_keras
from libkd_keras import choices
from libkd_keras.data import load_split
from libkd_keras.pipeline import own_teachers, store, students, teachers
from libkd_keras.pipeline.checks import check_patch_size
from libkd_keras.pipeline.run_folder import teachers_to_copy
from libkd_keras.pipeline.schema import ConfigError
from libkd_keras.pipeline.settings import Config
from libkd_keras.pipeline.steps import STEP_COMMANDS, Made, Step, StepOrderError, StepRunner

__all__ = ["STAGES", "STEP_COMMANDS", "Pipeline", "RunData", "StepOrderError", "prepare"]


class RunData:
    """The splits of one run; `say` receives progress and notice lines."""

    def __init__(self, config, say=print):
        self.config, self.say = config, say
        self._splits, self._pending, self._loading = {}, [], False
        self.checked = False  # whether `pipeline.runner.prepare` ran the checks that need these splits

    def _limits(self):
        data, teachers = self.config.data, self.config.teachers
        return {
            "train": data.train_limit,
            "test": data.test_limit,
            "teacher_train": teachers.train_limit or data.train_limit,
        }

    def split(self, kind):
        """The `Split` of `kind`: "train" (the student's), "teacher_train" or "test"."""
        limits, data = self._limits(), self.config.data
        if kind == "teacher_train" and limits["teacher_train"] == limits["train"]:
            kind = "train"
        if kind not in self._splits:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                self._splits[kind] = load_split(
                    data.dataset,
                    "test" if kind == "test" else "train",
                    data_dir=data.data_dir or None,
                    limit=limits[kind] or None,
                    image_size=data.image_size or None,
                    seed=self.config.run.seed,
                )
            package = os.path.dirname(libkd_keras.__file__)
            self._pending += [" ".join(str(w.message).split()) for w in caught if str(w.filename).startswith(package)]
            if not self._loading:
                self._flush_notices()
            split = self._splits[kind]
            self.say(
                f"[data] {kind.replace('_', ' ')}: {len(split):,} images {split.image_shape[0]}x"
                f"{split.image_shape[1]}, {split.num_classes} classes, from {data.dataset}"
            )
        return self._splits[kind]

    def _flush_notices(self):
        """Data warnings (e.g. images of mixed sizes were resized) as one notice line."""
        if self._pending:
            self.say(f"libkd: notice: {' '.join(dict.fromkeys(self._pending))}")
            self._pending = []

    def load_all(self):
        """Loads every split the run needs and checks the patch size against the images."""
        self._loading = True
        try:
            train = self.split("train")
            self.split("test")
            if any(not t.path for t in self.config.teacher_specs):  # teachers to train (not the user's own)
                self.split("teacher_train")
        finally:
            self._loading = False
        self._flush_notices()
        height, width = train.image_shape[:2]
        for side in dict.fromkeys((height, width)):
            check_patch_size(self.config.student.patch_size, side, "the images' side")


def prepare(config, data, root):
    """Loads the splits of `data` (a `RunData`) and runs every check a run can make before it trains.

    After the data's own checks (`RunData.load_all`): the student builds from the config for these
    images and every student's recipe takes its settings (`students.check_students`), store.views
    fits the images (`store.check_views`), and each teacher still to be copied from
    `teachers.reuse_from` is the one this run would train (`teachers.check_reuse`; `root` is the run
    folder, only read). A ConfigError names the problem; nothing is written. Runs once per `data`.
    """
    config = Config.from_dict(config)
    data.load_all()
    if data.checked:
        return
    train = data.split("train")
    students.check_students(config, train)
    store.check_views(config, train)
    if config.teachers.reuse_from:
        copy = teachers_to_copy(root, config.raw)
        for spec in config.teacher_specs:
            if spec.name in copy:
                teachers.check_reuse(config, data, spec, config.teachers.reuse_from, root)
    data.checked = True


# The pipeline: its stages in order, each the steps of one kind (`STEP_COMMANDS[kind]` runs it alone), as the
# name of the `Pipeline` method that makes them.
STAGES = (
    ("teacher", "teacher_steps"),
    ("store", "store_steps"),
    ("student", "student_steps"),
    ("evaluate", "evaluate_steps"),
    ("export", "export_steps"),
)


class Pipeline(StepRunner):
    """Runs the steps of one run folder; each step skips what is already finished.

    Args:
        folder: RunFolder. The run folder (opened, so this process holds its lock).
        config: dict or Config. The resolved configuration.
        callbacks: callable. `callbacks(kind, name)` returns extra Keras callbacks for a training run
            (`kind` is "teacher" or "student"); tests use it to interrupt training.
        say: callable. Receives every progress line.
        fit_verbose: Keras `verbose` of `fit` / `predict`.
        data: RunData. The run's splits, already loaded and checked by `prepare` (default: loaded by
            `load_data`).
    """

    def __init__(self, folder, config, callbacks=None, say=print, fit_verbose="auto", data=None):
        super().__init__(folder, say)
        self.config = Config.from_dict(config)
        self.extra_callbacks = callbacks or (lambda kind, name: [])
        self.fit_verbose = fit_verbose
        self.data = RunData(self.config, say=say) if data is None else data
        self.teacher_models = {}
        self.verified_stores = set()  # stores whose shards' sha256 this Pipeline checked (students.open_train_store)

    # ------------------------------------------------------------------- what the steps share

    def split(self, kind):
        """The `Split` of `kind`: "train" (the student's), "teacher_train" or "test"."""
        return self.data.split(kind)

    def load_data(self):
        """Loads every split the run needs and runs every check that needs them (`prepare`, then the user's
        own teachers against the images): bad data, a config that only the images show to be wrong, or a
        teacher that does not fit fails here, before any training."""
        prepare(self.config, self.data, self.folder.root)
        own_teachers.check(self)

    def jit_callbacks(self):
        jit = self.config.run.jit_compile
        return [] if jit == "auto" else [teachers.SetJitCompile(jit)]

    def teacher_names(self):
        return self.config.teacher_names

    # ------------------------------------------------------------------- the stages' steps

    def teacher_steps(self, only=()):
        return teachers.teacher_steps(self, only)

    def store_steps(self, splits=("train", "test"), force=False, worker_index=None, num_workers=None, finalize=False):
        if force and (worker_index is not None or num_workers is not None):
            raise ConfigError("force=True cannot be combined with worker_index/num_workers (sharded precompute).")
        return store.store_steps(self, splits, force, worker_index, num_workers, finalize)

    def student_steps(self, only=()):
        return students.student_steps(self, only)

    def evaluate_steps(self, only=()):
        return students.evaluate_steps(self, only)

    def export_steps(self, student=None):
        return students.export_steps(self, student)

    # ------------------------------------------------------------------- the commands

    def train_teachers(self, only=()):
        self.run_steps(self.teacher_steps(only))

    def precompute(self, splits=("train", "test"), force=False, worker_index=None, num_workers=None):
        """Every teacher over each split, into the store; with `worker_index`/`num_workers` only this worker's share."""
        self.run_steps(self.store_steps(splits, force, worker_index, num_workers))

    def finalize_store(self, splits=("train", "test")):
        """The manifest of each split whose worker shares are all written (`libkd precompute --finalize`)."""
        self.run_steps(self.store_steps(splits, finalize=True))

    def analyze_store(self):
        self.run_step(store.analysis_step(self))

    def distill(self, only=()):
        self.run_steps(self.student_steps(only))

    def evaluate(self, only=()):
        self.run_steps(self.evaluate_steps(only))

    def best_student(self):
        return students.best_student(self)

    def export(self, student=None):
        """Exports one student (default: export.student, or the best distilled one); returns its name (None: no
        export.quantizations)."""
        name = None
        for step in self.export_steps(student):
            self.run_step(step)
            name = step.name.split("/", 1)[1]
        return name

    def ablate(self, experiments="table4", seeds=(0,), epochs=None, recipes=choices.TABLE4_RECIPES):
        self.run_step(students.ablation_step(self, experiments, seeds, epochs, recipes))
        self.report()

    def analyze(self, max_images=512):
        """CKA heatmaps of every trained model (paper Figures 1-2) into `cka/`, and into the report."""
        self.run_step(Step("analyze", functools.partial(self._cka, max_images), marker=False))
        self.report()

    def _cka(self, max_images, announce):
        from libkd_keras.analysis.cka import analyze_run
        from libkd_keras.atomic_files import write_text_atomic

        announce(f": linear CKA on {min(max_images, len(self.split('test')))} test images")
        section = analyze_run(
            self.folder.root, self.split("test").images, max_images=max_images, out_dir=self.folder.cka
        )
        write_text_atomic(self.folder.cka_section, section)
        return Made(detail="cka/")

    def report(self):
        from libkd_keras.analysis.report import write_report

        summary = write_report(self.folder.root)
        self.say(summary.table)
        self.say(f"[done] report  {summary.path}")
        return summary

    def run_all(self):
        """Every stage in order (finished steps are skipped), then the report."""
        started = time.perf_counter()
        self.load_data()
        for _, stage in STAGES:
            self.run_steps(getattr(self, stage)())
        self.report()
        self.say(f"libkd: pipeline finished in {time.perf_counter() - started:.1f} s; run folder {self.folder.root}")
