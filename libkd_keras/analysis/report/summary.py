"""A run's results as one small JSON file (`benchmarks/results/<run>/summary.json`), from its folder alone.

The schema (top-1 in percent on the test split, times in seconds, seeds as string keys):

    {"run", "date", "command", "machine",
     "data": {"dataset", "train_images", "test_images"},
     "teachers": {NAME: {"family", "top1", "wall_s"}},
     "students": {ENTRY: {"teachers": [NAMES], "targets", "recipe", "epochs",
                          "top1": {SEED: percent}, "wall_s": {SEED: seconds}}}}

A [[students]] entry trained with several seeds is one entry (keyed by its name) with per-seed values;
a student alone has `"teachers": []` and `"targets": null`. A teacher's family is its record's, else
"resnet" / "rednet" from its name or architecture, else its architecture. `libkd report RUN
--summary-json PATH` and `benchmarks/publish_run.py` write it.

Example:
>>> summary = run_summary("saved_models/budget", command="libkd pipeline --preset budget --dataset PATH")
>>> summary["students"]["ensemble"]["top1"]
{'0': 58.42, '1': 57.51, '2': 58.28}
"""

import os
import platform

from libkd_keras.analysis.report.records import load_config, load_steps, load_students, load_teachers, trained_images
from libkd_keras.atomic_files import read_json, write_json_atomic
from libkd_keras.choices import TEACHER_FAMILIES
from libkd_keras.run_layout import RunLayout


def machine_description():
    """This machine in words, without TensorFlow: CPU model and cores, and the NVIDIA GPUs its driver shows."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model)
    except OSError:
        pass
    gpus = "/proc/driver/nvidia/gpus"
    count = len(os.listdir(gpus)) if os.path.isdir(gpus) else 0
    gpu_text = f"{count} NVIDIA GPU(s)" if count else "no GPU"
    return f"{os.cpu_count()}-core CPU ({model}, {platform.machine()}), {gpu_text}, {platform.system()}"


def _family(teacher):
    if teacher.get("family"):
        return teacher["family"]
    for text in (teacher["name"], teacher.get("architecture") or ""):
        found = next((f for f in TEACHER_FAMILIES if text.lower().startswith(f)), None)
        if found:
            return found
    return teacher.get("architecture")


def _percent(value):
    return None if value is None else round(100.0 * value, 4)


def _seconds(value):
    return None if value is None else round(float(value), 1)


def _date(layout, teachers, students):
    """The day the run last finished a step (else its newest record), `YYYY-MM-DD`; None when unknown."""
    stamps = [s.get("finished_at") for s in load_steps(layout)]
    stamps += [(read_json(layout.teacher_json(t["name"])) or {}).get("created") for t in teachers]
    stamps += [s.get("created") for s in students]
    stamps = [str(s) for s in stamps if s]
    return max(stamps)[:10] if stamps else None


def _recipe(record):
    recipe = record.get("recipe")
    return recipe.get("name") if isinstance(recipe, dict) else recipe


def run_summary(run_dir, run=None, command=None, machine=None):
    """The run folder's summary (a dict in the schema above).

    Args:
        run_dir: path. A `libkd pipeline` run folder.
        run: str. The run's name (default: the config's `run.name`, else the folder's name).
        command: str. The command that made the run (default: one that reproduces it from its resolved
            config, `libkd pipeline --config RUN_DIR/config.toml --out RUN_DIR`).
        machine: str. Where it ran (default: `machine_description()` of this machine).
    """
    layout = RunLayout(run_dir)
    config = load_config(layout)
    teachers, students = load_teachers(layout), load_students(layout)
    analysis = read_json(layout.store_analysis) or {}
    data = config.get("data", {})
    train_images = trained_images(students)
    test_images = next((m.get("test_images") for m in [*students, *teachers] if m.get("test_images")), None)
    entries = {}
    default_seed = config.get("run", {}).get("seed", 0)
    for s in students:
        entry = entries.setdefault(
            s.get("entry") or s["name"],
            {
                "teachers": list(s.get("teachers") or []),
                "targets": (s.get("targets") or "clean") if s.get("teachers") else None,
                "recipe": _recipe(s),
                "epochs": s.get("epochs"),
                "top1": {},
                "wall_s": {},
            },
        )
        seed = str(s.get("seed") if s.get("seed") is not None else default_seed)
        entry["top1"][seed] = _percent(s.get("top1"))
        entry["wall_s"][seed] = _seconds(s.get("training_time_s"))
    return {
        "run": run or config.get("run", {}).get("name") or layout.root.name,
        "date": _date(layout, teachers, students),
        "command": command or f"libkd pipeline --config {layout.config} --out {layout.root}",
        "machine": machine or machine_description(),
        "data": {
            "dataset": data.get("dataset"),
            "train_images": train_images or data.get("train_limit") or None,
            "test_images": test_images or analysis.get("num_examples") or data.get("test_limit") or None,
        },
        "teachers": {
            t["name"]: {"family": _family(t), "top1": _percent(t["top1"]), "wall_s": _seconds(t["train_seconds"])}
            for t in teachers
        },
        "students": entries,
    }


def write_summary(run_dir, path, **kwargs):
    """Writes `run_summary(run_dir, **kwargs)` to `path` as JSON (atomically); returns the summary."""
    summary = run_summary(run_dir, **kwargs)
    write_json_atomic(path, summary)
    return summary
