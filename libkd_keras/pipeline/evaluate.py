"""Step "evaluate/<name>": each trained student's heads on the test split, into its record.

students/<name>.json["evaluation"]   top-1/top-5 of the class head, the distillation head and
                                     their average (the inference output), as fractions
students/<name>.predictions.npz      the inference output's class for each test image (int8/int16), with
                                     the labels and image ids: the report's McNemar tests pair students on it

A run folder written before predictions were kept has no such file: its evaluate steps run again.
"""

import keras

from libkd_keras.atomic_files import read_json, write_json_atomic
from libkd_keras.distill.students import heads_record


def evaluate(pipeline, only=()):
    """Top-1/top-5 of each trained student's heads (class, distillation, average) on the test split."""
    folder = pipeline.folder
    for name in [s.name for s in pipeline.config.select_students(only)]:
        step = f"evaluate/{name}"
        if pipeline.finished(step):
            pipeline.skip(step, f"evaluate {name}")
            continue
        pipeline.require([f"student/{name}"], "distill")
        started = pipeline.clock()
        student = keras.saving.load_model(folder.student_model(name), compile=False)
        evaluation = heads_record(student, pipeline.split("test"), folder.student_predictions(name))
        record = read_json(folder.student_json(name))
        record.update(
            evaluation=evaluation, top1_test_accuracy=evaluation["top1"], top5_test_accuracy=evaluation["top5"]
        )
        write_json_atomic(folder.student_json(name), record)
        pipeline.done(
            step,
            f"evaluate {name}",
            started,
            outputs=[f"students/{name}.json", folder.relative(folder.student_predictions(name))],
            summary=evaluation,
            detail=f"top-1 {100 * evaluation['top1']:.1f}%  top-5 {100 * evaluation['top5']:.1f}%",
        )


def best_student(pipeline, entry=None):
    """The distilled student with the best test top-1 (any student if none is distilled).

    Each seed of an entry is a student of its own, so this is the best single seed; `entry`
    chooses among the seeds of that [[students]] entry only.
    """
    from libkd_keras.pipeline.runner import StepOrderError

    scored = []
    for name in [s.name for s in pipeline.config.students if entry in (None, s.entry)]:
        record = read_json(pipeline.folder.student_json(name))
        if record is None:
            continue
        top1 = (record.get("evaluation") or {}).get("top1")
        if top1 is None:
            top1 = record.get("top1_test_accuracy") or 0.0
        scored.append((bool(record.get("teachers")), top1, name))
    if not scored:
        raise StepOrderError("No student is trained yet. Run 'libkd distill' with the same options first.")
    return max(scored)[2]
