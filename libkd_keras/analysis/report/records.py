"""Reading a run folder's artifacts for the report (tolerant: a missing file or key becomes None).

Teachers (`teachers/<name>.json`, written by `train_teacher`) and students (`students/<name>.json`,
written by `train_student`) share one record format; `current_keys` reads records of older run
folders, whose keys differed, under today's names. Each `load_*` returns plain dicts for the
report's sections.

Example:
>>> teachers = load_teachers(RunLayout("saved_models/quick"))
>>> teachers[0]["top1"]
0.62
"""

import sys

from libkd_keras.atomic_files import read_json
from libkd_keras.evaluation import load_predictions as load_predictions_file

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

# Today's record key -> the keys older run folders wrote for the same fact, tried in order.
OLD_KEYS = {
    "architecture": ("arch", "family"),
    "trainable_parameters": ("params",),
    "training_time_s": ("train_seconds",),
    "top1_test_accuracy": ("top1",),
    "top5_test_accuracy": ("top5",),
    "teacher_trainable_parameters": ("teacher_params",),
}


def current_keys(record):
    """`record` with today's key names: a value an old run folder stored under an old key is copied over."""
    record = dict(record or {})
    for key, old_keys in OLD_KEYS.items():
        if record.get(key) is None:
            record[key] = next((record[old] for old in old_keys if record.get(old) is not None), None)
    return record


def _history(record):
    """`{"loss", "val_accuracy", "label_loss", "distill_loss", "time_s"}`, lists by epoch (None: not logged).

    Every model logs `val_acc` (`training.py`, one engine); teachers of run folders written before it logged
    `val_accuracy`. The Distiller also logs its two loss terms
    (`label_loss`: the class head on the labels, the same quantity for every student; `distill_loss`: the
    distillation head's term), and every epoch log its wall time `time_s`.
    """
    history = record.get("history") or {}
    accuracy = _known(*(history.get(k) for k in ("val_accuracy", "val_acc", "test_accuracy")))
    return {
        "loss": list(history.get("loss") or []),
        "val_accuracy": list(accuracy or []),
        **{key: list(history.get(key) or []) for key in ("label_loss", "distill_loss", "time_s")},
    }


def _test_images(record):
    """How many test images a record's accuracy was measured on (None when it does not say)."""
    evaluation = record.get("evaluation") or {}
    return _known(evaluation.get("num_examples"), (record.get("test_dataset") or {}).get("num_examples"))


def _known(*values):
    """The first value that is not None (or None)."""
    return next((v for v in values if v is not None), None)


def _last(values):
    values = [v for v in values or [] if v is not None]
    return values[-1] if values else None


def load_teachers(layout):
    """One dict per trained teacher (from `teachers/<name>.json`), in name order."""
    rows = []
    for path in sorted(layout.teachers.glob("*.json")):
        if path.name.endswith(".history.json"):  # a teacher still training
            continue
        record = current_keys(read_json(path))
        rows.append(
            {
                "name": record.get("name") or path.stem,
                "architecture": record["architecture"] or "?",
                "seed": record.get("seed"),
                "epochs": record.get("epochs"),
                "params": record["trainable_parameters"],
                "size_mb": record.get("size_mb"),
                "train_seconds": record["training_time_s"],
                "top1": record["top1_test_accuracy"],
                "top5": record["top5_test_accuracy"],
                "train_accuracy": record.get("train_accuracy"),
                "test_images": _test_images(record),
                "family": record.get("family"),
                "history": _history(record),
            }
        )
    return rows


def load_students(layout):
    """One dict per trained student (from `students/<name>.json`), in training order.

    Top-1/top-5 come from the record's `evaluation` (the pipeline's evaluate step) when present,
    else from its test accuracy, else from the last epoch's validation accuracy.
    """
    records = [(current_keys(read_json(p)), p) for p in layout.students.glob("*.json")]
    records.sort(key=lambda pair: (pair[0].get("order") or 0, pair[0].get("name") or ""))
    rows = []
    for record, path in records:
        evaluation = record.get("evaluation") or {}
        raw_history = record.get("history") or {}
        history = _history(record)
        rows.append(
            {
                **record,
                "entry": record.get("entry") or record.get("name"),  # the [[students]] entry (older folders: the name)
                "params": record["trainable_parameters"],
                "teacher_params": record["teacher_trainable_parameters"],
                "top1": _known(evaluation.get("top1"), record["top1_test_accuracy"], _last(history["val_accuracy"])),
                "top5": _known(
                    evaluation.get("top5"), record["top5_test_accuracy"], _last(raw_history.get("val_top5"))
                ),
                "cls_top1": evaluation.get("cls_top1"),
                "dist_top1": evaluation.get("dist_top1"),
                "evaluated": bool(evaluation),
                "test_images": _test_images(record),
                "predictions_path": layout.student_predictions(record.get("name") or path.stem),
                "history": history,
            }
        )
    return rows


def load_predictions(student):
    """A student row's per-image test predictions `{"predictions", "labels", "ids"}`, or None.

    None also when the file does not match the row: a student evaluated with predictions of another
    training (its top-1 from the file differs from the record's by more than one image).
    """
    path = student.get("predictions_path")
    found = load_predictions_file(path) if path is not None else None
    if found is None or student.get("top1") is None or not len(found["labels"]):
        return None
    accuracy = float((found["predictions"] == found["labels"]).mean())
    return found if abs(accuracy - student["top1"]) <= 1.0 / len(found["labels"]) else None


# What a student's training budget is: a gain is measured against a baseline with the same budget.
BUDGET_KEYS = ("arch", "patch_size", "epochs", "batch_size", "learning_rate", "train_images")


def same_budget(a, b):
    """Whether two student rows were trained with the same budget (`BUDGET_KEYS`; missing keys match)."""
    return all(a.get(k) is None or b.get(k) is None or a.get(k) == b.get(k) for k in BUDGET_KEYS)


def baseline_student(students, like=None, seed=None):
    """The first scored student trained without teachers (gains are measured against it), or None.

    With `like`, one trained with the same budget as that student (`same_budget`); with `seed`,
    one of that seed if there is one, else any of that budget.
    """
    candidates = [
        s
        for s in students
        if not s.get("teachers") and s.get("top1") is not None and (like is None or same_budget(s, like))
    ]
    return next((s for s in candidates if seed is None or s.get("seed") == seed), None) or (
        candidates[0] if candidates else None
    )


def student_setting(config, students, key, unit=""):
    """A student setting as the students' records give it: `"mix"`, or `"baseline or mix (per student)"`
    when entries differ; the config's [student] value for a record without it. Students without teachers
    are left out of the distillation settings (`distillation`, `alpha`), which they do not use. `unit` is
    appended to the value(s): `student_setting(config, students, "epochs", " epochs")` gives
    `"50 epochs"` or `"30, 50 or 100 epochs (per student)"`.
    """
    default = config.get("student", {}).get(key)
    if key in ("distillation", "alpha"):
        students = [s for s in students if s.get("teachers")]
    values = [default if s.get(key) is None else s[key] for s in students] or [default]
    values = {v.get("name") if isinstance(v, dict) else v for v in values}
    found = sorted(values, key=lambda v: (isinstance(v, str), v if v is not None else 0))
    if len(found) < 2:
        return f"{found[0]}{unit}"
    return f"{', '.join(map(str, found[:-1]))} or {found[-1]}{unit} (per student)"


def trained_images(students):
    """How many training images the students saw, from their records (`train_images`, else the dataset's
    `num_examples`); None when no record says (a run's `data.train_limit` of 0 means "all")."""
    found = next((s.get("train_images") for s in students if s.get("train_images")), None)
    return found or next(((s.get("dataset") or {}).get("num_examples") for s in students if s.get("dataset")), None)


def _per_thread(value):
    """A latency that is a number, or `{threads: ms}` (export_report): the fewest threads' value."""
    if isinstance(value, dict):
        return value[min(value, key=int)] if value else None
    return value


def load_exports(layout):
    """`{student: {"keras_top1": .., "variants": [...]}}` from `exports/<student>/export_report.json`."""
    exports = {}
    for path in sorted(layout.exports.glob("*/export_report.json")):
        record = read_json(path) or {}
        rows = record.get("rows") or []
        keras_row = next((r for r in rows if str(r.get("variant", "")).startswith("keras")), {})
        variants = []
        for row in rows:
            if row is keras_row:
                continue
            drop = row.get("top1_drop_points")
            variants.append(
                {
                    "quantization": row.get("variant", "?"),
                    "size_mb": row.get("size_mb"),
                    "latency_ms": _per_thread(row.get("latency_ms")),
                    "latency_p90_ms": _per_thread(row.get("latency_p90_ms")),
                    "top1": row.get("top1"),
                    "top5": row.get("top5"),
                    "top1_drop": None if drop is None else drop / 100.0,
                    "file": row.get("file"),
                }
            )
        threads = (record.get("settings") or {}).get("threads") or []
        exports[path.parent.name] = {
            "test_images": (record.get("test_data") or {}).get("n"),
            "keras_top1": keras_row.get("top1"),
            "variants": variants,
            "threads": min(threads) if threads else None,
        }
    return exports


def load_steps(layout):
    return [read_json(p) or {} for p in sorted(layout.steps.glob("*.json"), key=lambda p: p.stat().st_mtime)]


def load_config(layout):
    try:
        return tomllib.loads(layout.config.read_text(encoding="utf-8"))
    except (FileNotFoundError, tomllib.TOMLDecodeError):
        return {}
