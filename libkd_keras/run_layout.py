"""Where a run's artifacts live in its folder, and how they are read and written safely.

One run, one folder (`saved_models/<run-name>/` by default):

    config.toml                 the resolved configuration
    steps/<step>.json           one marker per finished step (time, outputs, summary)
    teachers/<name>.keras/.json each trained teacher and its metrics (paper Tables 2-3)
    store/train/, store/test/   teacher logits (TFRecord shards + manifest.json)
    store/analysis.json         teacher and ensemble accuracy, disagreement matrix
    students/<name>.keras/.json each student, its settings, metrics and per-epoch history
    students/<name>.predictions.npz  its class for each test image (the evaluate step), for paired tests
    exports/<student>/          LiteRT files, their metadata and the export report
    checkpoints/<model>/        BackupAndRestore state of an interrupted training
    logs/<model>/               TensorBoard logs and the per-epoch log (epochs.json)
    ablation/ablation.md/.json  `libkd ablate`: the teacher-combination ablation (in the report when present)
    cka/cka.json, cka/section.md  `libkd analyze`: linear CKA of every model (in the report when present)
    report.md, plots/*.png      the report
    .libkd.lock                 the lock of the process working in the folder (pipeline/run_folder.py)

Every JSON and model file is written to a temporary name and renamed, so a reader never sees a
half-written file.

Example:
>>> layout = RunLayout("saved_models/quick")
>>> layout.teacher_json("resnet26_s0").name
'resnet26_s0.json'
"""

from pathlib import Path

from libkd_keras.evaluation import PREDICTIONS_SUFFIX


class RunLayout:
    """Paths of one run folder (nothing is created here)."""

    def __init__(self, root):
        self.root = Path(root)
        self.config = self.root / "config.toml"
        self.steps = self.root / "steps"
        self.teachers = self.root / "teachers"
        self.store = self.root / "store"
        self.students = self.root / "students"
        self.exports = self.root / "exports"
        self.checkpoints = self.root / "checkpoints"
        self.logs = self.root / "logs"
        self.plots = self.root / "plots"
        self.report = self.root / "report.md"
        self.store_analysis = self.store / "analysis.json"
        self.ablation = self.root / "ablation"  # `libkd ablate`
        self.ablation_section = self.ablation / "ablation.md"  # the report includes it when present
        self.cka = self.root / "cka"  # `libkd analyze`
        self.cka_record = self.cka / "cka.json"
        self.cka_section = self.cka / "section.md"  # the report includes it when present
        self.lock = self.root / ".libkd.lock"

    def teacher_model(self, name):
        return self.teachers / f"{name}.keras"

    def teacher_json(self, name):
        return self.teachers / f"{name}.json"

    def store_split(self, split):
        return self.store / split

    def student_model(self, name):
        return self.students / f"{name}.keras"

    def student_json(self, name):
        return self.students / f"{name}.json"

    def student_predictions(self, name):
        return self.students / f"{name}{PREDICTIONS_SUFFIX}"

    def export_dir(self, student):
        return self.exports / student

    def checkpoint(self, kind, name):
        return self.checkpoints / f"{kind}_{name}"

    def log_dir(self, kind, name):
        return self.logs / f"{kind}_{name}"

    def marker(self, step):
        return self.steps / f"{step.replace('/', '-')}.json"
