"""`Pipeline`: the LIB-KD steps of one run folder, in order, each resumable.

    teacher/<name>     pipeline/teachers.py   train_teacher         -> teachers/<name>.keras + .json
                       pipeline/own_teachers.py  the user's own (checked in load_data, copied in, scored)
    store/train|test   pipeline/store.py      precompute (once)     -> store/train/, store/test/
                       pipeline/store_shares.py  the same over N workers (--worker-index/--num-workers, --finalize)
    store/analysis     pipeline/store.py      teacher + ensemble accuracy, disagreement -> store/analysis.json
    student/<name>     pipeline/students.py   train_student         -> students/<name>.keras + .json
    evaluate/<name>    pipeline/evaluate.py   each head's top-1/top-5 -> students/<name>.json["evaluation"]
    export/<name>      pipeline/export.py     LiteRT variants, size, latency, accuracy -> exports/<name>/
    report             analysis/report.py     report.md + plots (always rewritten)

A finished step leaves a marker (`RunFolder.finish`) written after its outputs, so rerunning skips
it; training that was interrupted resumes from its last finished epoch (`training.py`). A student
trained again invalidates its evaluation and export.

Example:
>>> with RunFolder.open("saved_models/quick", config) as folder:
...     Pipeline(folder, config).run_all()
"""

import contextlib
import time

from libkd_keras import choices
from libkd_keras.distribute import same_on_every_worker
from libkd_keras.pipeline import evaluate as evaluate_step
from libkd_keras.pipeline import export as export_step
from libkd_keras.pipeline import own_teachers, store_shares
from libkd_keras.pipeline import store as store_step
from libkd_keras.pipeline import students as students_step
from libkd_keras.pipeline import teachers as teachers_step
from libkd_keras.pipeline.data import RunData
from libkd_keras.pipeline.run_folder import teachers_to_copy
from libkd_keras.pipeline.schema import ConfigError
from libkd_keras.pipeline.settings import Config

# The command that makes each kind of step ("teacher/<name>" -> libkd train-teacher).
STEP_COMMANDS = {
    "teacher": "train-teacher",
    "store": "precompute",
    "student": "distill",
    "evaluate": "evaluate",
    "export": "export",
}


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
    students_step.check_students(config, train)
    store_step.check_views(config, train)
    if config.teachers.reuse_from:
        copy = teachers_to_copy(root, config.raw)
        for spec in config.teacher_specs:
            if spec.name in copy:
                teachers_step.check_reuse(config, data, spec, config.teachers.reuse_from, root)
    data.checked = True


class StepOrderError(ValueError):
    """A step was asked for before the steps it needs (the message names the command to run first)."""


class Pipeline:
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
        self.folder, self.config = folder, Config.from_dict(config)
        self.extra_callbacks = callbacks or (lambda kind, name: [])
        self.say, self.fit_verbose = say, fit_verbose
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

    @staticmethod
    def clock():
        """`(wall, cpu)` start times of a step; markers record both (CPU time is what a shared machine steals)."""
        return time.perf_counter(), time.process_time()

    def finished(self, step):
        """Whether `step` is finished; under multi-worker training, the same answer on every worker or an error."""
        return same_on_every_worker(
            self.folder.done(step),
            f"whether step {step} is finished",
            fix="Copy the run folder of a worker that finished it (the chief's) over the others' and rerun.",
        )

    def skip(self, step, what):
        marker = self.folder.finished(step)
        self.say(f"[skip] {what}  (finished earlier in {marker['seconds']:.1f} s)")

    def done(self, step, what, started, outputs, summary=None, detail=""):
        seconds, cpu_seconds = time.perf_counter() - started[0], time.process_time() - started[1]
        summary = {**(summary or {}), "cpu_seconds": cpu_seconds}
        removed = self.folder.finish(step, seconds, outputs=outputs, summary=summary)
        with contextlib.suppress(OSError):  # empty once no training is in progress (saved_models/README.md)
            self.folder.checkpoints.rmdir()
        self.say(f"[done] {what}  {seconds:.1f} s{'  ' + detail if detail else ''}")
        for aside, kept in removed or ():
            self.say(
                f"libkd: deleted the run that --overwrite moved aside to {str(aside)!r}"
                + (" (the folder stays: it also holds files libkd did not write)" if kept else "")
            )

    def notice_damaged(self):
        """One notice per finished step whose model files were damaged since: it runs again, and how."""
        for step, problems in self.folder.damaged_steps().items():
            command = STEP_COMMANDS.get(step.split("/", 1)[0], "pipeline")
            self.say(
                f"libkd: notice: {'; '.join(problems)}. Step {step} counts as not finished: 'libkd {command}' "
                "(or 'libkd pipeline') makes it again."
            )

    def require(self, steps, command):
        missing = [s for s in steps if not self.folder.done(s)]
        if missing:
            raise StepOrderError(
                f"Not finished yet: {', '.join(missing)}. Run 'libkd {command}' with the same options first "
                "(or 'libkd pipeline' for every step)."
            )

    def jit_callbacks(self):
        jit = self.config.run.jit_compile
        return [] if jit == "auto" else [teachers_step.SetJitCompile(jit)]

    def teacher_names(self):
        return self.config.teacher_names

    # ---------------------------------------------------------------------------- the steps

    def train_teachers(self, only=()):
        teachers_step.train_teachers(self, only)

    def precompute(self, splits=("train", "test"), force=False, worker_index=None, num_workers=None):
        """Every teacher over each split, into the store; with `worker_index`/`num_workers` only this worker's share."""
        if worker_index is None and num_workers is None:
            store_step.precompute(self, splits, force=force)
        elif force:
            raise ConfigError("force=True cannot be combined with worker_index/num_workers (sharded precompute).")
        else:
            store_shares.precompute_share(self, splits, worker_index, num_workers)

    def finalize_store(self, splits=("train", "test")):
        """The manifest of each split whose worker shares are all written (`libkd precompute --finalize`)."""
        store_shares.finalize(self, splits)

    def analyze_store(self):
        store_step.analyze_store(self)

    def distill(self, only=()):
        students_step.distill(self, only)

    def evaluate(self, only=()):
        evaluate_step.evaluate(self, only)

    def best_student(self):
        return evaluate_step.best_student(self)

    def export(self, student=None):
        return export_step.export(self, student)

    def ablate(self, experiments="table4", seeds=(0,), epochs=None, recipes=choices.TABLE4_RECIPES):
        students_step.ablate(self, experiments, seeds, epochs, recipes)
        self.report()

    def analyze(self, max_images=512):
        """CKA heatmaps of every trained model (paper Figures 1-2) into `cka/`, and into the report."""
        from libkd_keras.analysis.cka import analyze_run
        from libkd_keras.atomic_files import write_text_atomic

        started = time.perf_counter()
        self.say(f"[....] analyze: linear CKA on {min(max_images, len(self.split('test')))} test images")
        section = analyze_run(self.folder.root, self.split("test").images, max_images=max_images)
        write_text_atomic(self.folder.root / "cka" / "section.md", section)
        self.say(f"[done] analyze  {time.perf_counter() - started:.1f} s  cka/")
        self.report()

    def report(self):
        from libkd_keras.analysis.report import write_report

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
