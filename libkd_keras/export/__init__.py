"""Edge export: LiteRT (TFLite) files with builtin ops only, their accuracy, size and latency.

Three modules, one step each: `litert.py` converts (`to_litert`: the file and its metadata JSON),
`runtime.py` runs and measures a file (`LiteRTModel`, `evaluate_litert`, `benchmark_litert`),
`report.py` does both for every variant of one model (`export_report`, `ReportSettings`).

Example:
>>> from libkd_keras.export import to_litert, evaluate_litert, benchmark_litert
>>> to_litert(student, "student_int8.tflite", "int8", representative_data=x_train[:500], io_dtype="uint8")
>>> evaluate_litert("student_int8.tflite", (x_test, y_test))
{'top1': 0.91, 'top5': 0.99, 'n': 2000}
>>> benchmark_litert("student_int8.tflite", threads=1)["median_ms"]
"""

from libkd_keras.export.litert import (
    QUANTIZATIONS,
    UnsupportedOpsError,
    metadata_path,
    read_metadata,
    record_accuracy,
    to_litert,
)
from libkd_keras.export.report import ReportSettings, export_report
from libkd_keras.export.runtime import LiteRTModel, benchmark_litert, compare_latency, evaluate_keras, evaluate_litert

__all__ = [
    "LiteRTModel",
    "QUANTIZATIONS",
    "ReportSettings",
    "UnsupportedOpsError",
    "benchmark_litert",
    "compare_latency",
    "evaluate_keras",
    "evaluate_litert",
    "export_report",
    "metadata_path",
    "read_metadata",
    "record_accuracy",
    "to_litert",
]
