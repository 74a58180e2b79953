"""Where a run's artifacts live in its folder, and how they are read and written safely.

One run, one folder (`saved_models/<run-name>/` by default):

    config.toml                 the resolved configuration
    steps/<step>.json           one marker per finished step (time, outputs, summary)
    teachers/<name>.keras/.json each trained teacher and its metrics (paper Tables 2-3)
    store/train/, store/test/   teacher logits (TFRecord shards + manifest.json)
    store/analysis.json         teacher and ensemble accuracy, disagreement matrix
    students/<name>.keras/.json each student, its settings, metrics and per-epoch history
    exports/<student>/          LiteRT files, their metadata and the export report
    checkpoints/<model>/        BackupAndRestore state of an interrupted training
    logs/<model>/               TensorBoard logs and the per-epoch log (epochs.json)
    report.md, plots/*.png      the report

Every JSON and model file is written to a temporary name and renamed, so a reader never sees a
half-written file.

Example:
>>> layout = RunLayout("saved_models/quick")
>>> layout.teacher_json("resnet26_s0").name
'resnet26_s0.json'
"""

import json
import math
import os
import tempfile
from pathlib import Path


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

    def export_dir(self, student):
        return self.exports / student

    def checkpoint(self, kind, name):
        return self.checkpoints / f"{kind}_{name}"

    def log_dir(self, kind, name):
        return self.logs / f"{kind}_{name}"

    def marker(self, step):
        return self.steps / f"{step.replace('/', '-')}.json"


def write_json_atomic(path, data):
    """Writes `data` as JSON to `path` through a temporary file and a rename."""
    write_text_atomic(path, json.dumps(_plain(data), indent=2, sort_keys=False) + "\n")


def write_text_atomic(path, text):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def read_json(path, default=None):
    """The JSON at `path`, or `default` when the file does not exist."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return default


def _plain(value):
    """JSON-safe copy: numpy scalars to Python, NaN/inf to None, tuples to lists."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if hasattr(value, "tolist"):
        return _plain(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value
