"""One student, every export variant: size, latency and accuracy side by side (Markdown + JSON)."""

import dataclasses
import datetime
import os

from libkd_keras.atomic_files import write_json_atomic, write_text_atomic
from libkd_keras.export.litert import (
    QUANTIZATIONS,
    model_image_shape,
    record_accuracy,
    resolve_model,
    source_info,
    to_litert,
)
from libkd_keras.export.runtime import compare_latency, evaluate_keras, evaluate_litert, positive_int


@dataclasses.dataclass(frozen=True)
class ReportSettings:
    """How `export_report` makes and measures every variant (its JSON's "settings", plus `eval_batch_size`).

    Attributes:
        batch_size: the files' batch dimension (1: what a phone runs); each latency run feeds one such batch.
        int8_io_dtype: the "int8" file's input/output dtype ("int8", "uint8"; None: float32).
        threads: the LiteRT interpreter thread counts to time (an int or a tuple), each in its own rounds.
        runs: timed invocations per variant and thread count, interleaved with the other variants.
        warmup: untimed invocations before them.
        eval_batch_size: images per invocation when evaluating (the Keras model, and files of any batch size).

    Example:
    >>> export_report(student, "exports/", test, train.images[:500], settings=ReportSettings(threads=(1, 4), runs=50))
    """

    batch_size: int | None = 1
    int8_io_dtype: str | None = None
    threads: tuple = (1, 2)
    runs: int = 100
    warmup: int = 10
    eval_batch_size: int = 64

    def __post_init__(self):
        """Latency settings are checked here, before any conversion (the latency runs come last)."""
        threads = (self.threads,) if isinstance(self.threads, int) else tuple(self.threads)
        for count in threads:
            positive_int("threads", count)
        object.__setattr__(self, "threads", threads)
        positive_int("runs", self.runs)
        positive_int("warmup", self.warmup, minimum=0)

    def as_json(self):
        """The "settings" entry of `export_report.json`."""
        return {
            "batch_size": self.batch_size,
            "threads": list(self.threads),
            "runs": self.runs,
            "warmup": self.warmup,
            "int8_io_dtype": self.int8_io_dtype or "float32",
        }


def _ratio(value, reference):
    return None if value is None or not reference else value / reference


def export_report(
    model,
    out_dir,
    test_data,
    representative_data=None,
    quantizations=QUANTIZATIONS,
    *,
    name=None,
    class_names=None,
    settings=ReportSettings(),
    dataset_name=None,
    log=None,
    **removed,
):
    """Exports `model` in each of `quantizations` to `out_dir` and measures every file.

    For each variant: file size (MB), latency (median and p90 ms of `settings.runs` invocations at
    `settings.batch_size`, interleaved with the other variants, for each of `settings.threads`),
    top-1/top-5 with the LiteRT interpreter, and the drop in points against the Keras float model
    on the same `test_data`. Writes `export_report.md` (a Markdown table) and `export_report.json`
    to `out_dir` and returns the rows; the first row is the Keras model itself. `log` (e.g.
    `print`) gets one line per finished variant and before the latency runs.

    Example:
    >>> rows = export_report(student, "exports/", (x_test, y_test), representative_data=x_train[:500])
    >>> [(r["variant"], r["size_mb"], r["top1"]) for r in rows]
    """
    if removed:
        given = ", ".join(f"{key}=..." for key in sorted(removed))
        raise TypeError(
            f"export_report() got unexpected argument(s) {sorted(removed)}. How the variants are made and timed is "
            f"one object now: `export_report(..., settings=ReportSettings({given}))` (libkd_keras.export); "
            f"its fields: {', '.join(field.name for field in dataclasses.fields(ReportSettings))}."
        )
    if not isinstance(settings, ReportSettings):
        raise TypeError(f"`settings` must be a libkd_keras.export.ReportSettings; got {type(settings).__name__}.")
    unknown = [q for q in quantizations if q not in QUANTIZATIONS]
    if unknown or not quantizations:
        raise ValueError(f"`quantizations` must be a non-empty subset of {QUANTIZATIONS}; got {list(quantizations)}.")
    if "int8" in quantizations and representative_data is None:
        raise ValueError("the int8 variant needs `representative_data` (a few hundred raw-pixel training images).")
    threads, runs, warmup, batch_size = settings.threads, settings.runs, settings.warmup, settings.batch_size
    log = log or (lambda line: None)
    model, exported_from = resolve_model(model)
    image_shape = model_image_shape(model)
    name = name or model.name
    os.makedirs(out_dir, exist_ok=True)

    keras_metrics = evaluate_keras(model, test_data, image_shape, settings.eval_batch_size)
    rows = [{"variant": "keras float32", "file": None, "size_mb": None, **keras_metrics}]
    paths = []
    for quantization in quantizations:
        path = os.path.join(out_dir, f"{name}_{quantization}.tflite")
        to_litert(
            model,
            path,
            quantization,
            representative_data=representative_data,
            io_dtype=settings.int8_io_dtype if quantization == "int8" else None,
            class_names=class_names,
            batch_size=batch_size,
        )
        metrics = evaluate_litert(path, test_data, batch_size=settings.eval_batch_size)
        record_accuracy(path, metrics, dataset=dataset_name)
        rows.append(
            {"variant": quantization, "file": os.path.basename(path), "size_mb": os.path.getsize(path) / 1e6, **metrics}
        )
        paths.append(path)
        log(
            f"[{len(paths)}/{len(quantizations)}] {quantization}: {rows[-1]['size_mb']:.2f} MB, "
            f"top-1 {100 * metrics['top1']:.1f}% on {metrics['n']:,} images"
        )

    log(f"latency: {runs} batch-{batch_size} runs per variant after {warmup} warm-up, threads {list(threads)}")
    latency = {t: compare_latency(paths, threads=t, runs=runs, warmup=warmup) for t in threads}
    reference = rows[1 + list(quantizations).index("float32")] if "float32" in quantizations else None
    for i, row in enumerate(rows[1:]):
        row["latency_ms"] = {str(t): latency[t][i]["median_ms"] for t in threads}
        row["latency_p90_ms"] = {str(t): latency[t][i]["p90_ms"] for t in threads}
    for row in rows:
        row["top1_drop_points"] = 100.0 * (keras_metrics["top1"] - row["top1"])
        row["top5_drop_points"] = 100.0 * (keras_metrics["top5"] - row["top5"])
        row["size_vs_float32"] = _ratio(row["size_mb"], reference and reference["size_mb"])
        row["latency_vs_float32"] = {
            str(t): _ratio(row.get("latency_ms", {}).get(str(t)), reference and reference["latency_ms"][str(t)])
            for t in threads
        }

    summary = {
        "generated_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "model": source_info(model, exported_from),
        "test_data": {"name": dataset_name, "n": keras_metrics["n"]},
        "settings": settings.as_json(),
        "rows": rows,
    }
    write_json_atomic(os.path.join(out_dir, "export_report.json"), summary)
    write_text_atomic(os.path.join(out_dir, "export_report.md"), markdown_table(rows, threads))
    return rows


def _fmt(value, pattern):
    return "-" if value is None else pattern.format(value)


def markdown_table(rows, threads):
    """The report rows as a Markdown table (accuracies in %, drops in points)."""
    header = ["variant", "file", "size MB", "size vs f32"]
    for t in threads:
        header += [f"latency ms, {t} thr (median / p90)", f"vs f32 ({t} thr)"]
    header += ["top-1 %", "top-5 %", "top-1 drop (pts)", "top-5 drop (pts)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [
            row["variant"],
            _fmt(row["file"], "`{}`"),
            _fmt(row["size_mb"], "{:.2f}"),
            _fmt(row["size_vs_float32"], "{:.2f}x"),
        ]
        for t in threads:
            median = row.get("latency_ms", {}).get(str(t))
            p90 = row.get("latency_p90_ms", {}).get(str(t))
            cells += [
                "-" if median is None else f"{median:.2f} / {p90:.2f}",
                _fmt(row["latency_vs_float32"][str(t)], "{:.2f}x"),
            ]
        cells += [
            f"{100 * row['top1']:.2f}",
            f"{100 * row['top5']:.2f}",
            f"{row['top1_drop_points']:+.2f}",
            f"{row['top5_drop_points']:+.2f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
