"""Step "export/<name>": one student to every configured LiteRT variant, measured.

exports/<name>/   the .tflite files, their metadata and export_report.json (size, latency, accuracy)
"""

import keras

from libkd_keras.export import export_report
from libkd_keras.pipeline.evaluate import best_student
from libkd_keras.pipeline.schema import ConfigError
from libkd_keras.pipeline.settings import not_a_file_hint


def export(pipeline, student=None):
    """Exports one student (default: export.student, or the best distilled one); returns its name.

    A [[students]] entry with several seeds names its best seed.
    """
    settings, folder = pipeline.config.export, pipeline.folder
    if not settings.quantizations:
        pipeline.say("[skip] export  (export.quantizations is empty)")
        return None
    names = pipeline.config.student_names
    entries = {s.entry for s in pipeline.config.students}
    if student is not None and student not in names and student not in entries:
        raise ConfigError(
            f"Unknown student {student!r}; this run's students: {', '.join(names)}." + not_a_file_hint([student])
        )
    name = student or settings.student
    if not name or name not in names:  # none given, or an entry with several seeds: its best seed
        name = best_student(pipeline, entry=name or None)
    step = f"export/{name}"
    if pipeline.finished(step):
        pipeline.skip(step, f"export {name}")
        return name
    pipeline.require([f"student/{name}"], "distill")
    started = pipeline.clock()
    pipeline.say(f"[....] export {name}: {', '.join(settings.quantizations)}")
    model = keras.saving.load_model(folder.student_model(name), compile=False)  # export makes it float32
    train, test = pipeline.split("train"), pipeline.split("test")
    rows = export_report(
        model,
        str(folder.export_dir(name)),
        test,
        representative_data=train.images[: settings.representative_images],
        quantizations=settings.quantizations,
        name=name,
        class_names=list(test.class_names),
        threads=(settings.threads,),
        runs=settings.latency_runs,
        dataset_name=pipeline.config.data.dataset,
        log=lambda line: pipeline.say(f"       export {name} {line}"),
    )
    files = [f"exports/{name}/{row['file']}" for row in rows if row.get("file")]
    best = {row["variant"]: row for row in rows}
    detail = "  ".join(
        f"{q} {best[q]['size_mb']:.1f} MB {100 * best[q]['top1']:.1f}%" for q in settings.quantizations if q in best
    )
    pipeline.done(
        step, f"export {name}", started, outputs=[f"exports/{name}/export_report.json", *files], detail=detail
    )
    return name
