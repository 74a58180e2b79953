"""One student, every export variant: size, latency and accuracy side by side (Markdown + JSON)."""

import datetime
import os

from libkd_keras.atomic_files import write_json_atomic, write_text_atomic
from libkd_keras.export.evaluate import evaluate_keras, evaluate_litert
from libkd_keras.export.latency import compare_latency
from libkd_keras.export.litert import QUANTIZATIONS, to_litert
from libkd_keras.export.metadata import record_accuracy, source_info
from libkd_keras.export.model_info import model_image_shape, resolve_model


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
    int8_io_dtype=None,
    batch_size=1,
    threads=(1, 2),
    runs=100,
    warmup=10,
    eval_batch_size=64,
    dataset_name=None,
    log=None,
):
    """Exports `model` in each of `quantizations` to `out_dir` and measures every file.

    For each variant: file size (MB), batch-1 latency (median and p90 ms, interleaved with the
    other variants, for each entry of `threads`), top-1/top-5 with the LiteRT interpreter, and the
    drop in points against the Keras float model on the same `test_data`. Writes
    `export_report.md` (a Markdown table) and `export_report.json` to `out_dir` and returns the
    rows; the first row is the Keras model itself. `log` (e.g. `print`) gets one line per
    finished variant and before the latency runs.

    Example:
    >>> rows = export_report(student, "exports/", (x_test, y_test), representative_data=x_train[:500])
    >>> [(r["variant"], r["size_mb"], r["top1"]) for r in rows]
    """
    unknown = [q for q in quantizations if q not in QUANTIZATIONS]
    if unknown or not quantizations:
        raise ValueError(f"`quantizations` must be a non-empty subset of {QUANTIZATIONS}; got {list(quantizations)}.")
    if "int8" in quantizations and representative_data is None:
        raise ValueError("the int8 variant needs `representative_data` (a few hundred raw-pixel training images).")
    threads = (threads,) if isinstance(threads, int) else tuple(threads)
    log = log or (lambda line: None)
    model, exported_from = resolve_model(model)
    image_shape = model_image_shape(model)
    name = name or model.name
    os.makedirs(out_dir, exist_ok=True)

    keras_metrics = evaluate_keras(model, test_data, image_shape, eval_batch_size)
    rows = [{"variant": "keras float32", "file": None, "size_mb": None, **keras_metrics}]
    paths = []
    for quantization in quantizations:
        path = os.path.join(out_dir, f"{name}_{quantization}.tflite")
        to_litert(
            model,
            path,
            quantization,
            representative_data=representative_data,
            io_dtype=int8_io_dtype if quantization == "int8" else None,
            class_names=class_names,
            batch_size=batch_size,
        )
        metrics = evaluate_litert(path, test_data, batch_size=eval_batch_size)
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
        "settings": {
            "batch_size": batch_size,
            "threads": list(threads),
            "runs": runs,
            "warmup": warmup,
            "int8_io_dtype": int8_io_dtype or "float32",
        },
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
