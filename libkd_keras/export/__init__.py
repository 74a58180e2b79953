"""Edge export: LiteRT (TFLite) files with builtin ops only, their accuracy, size and latency.

Example:
>>> from libkd_keras.export import to_litert, evaluate_litert, benchmark_litert
>>> to_litert(student, "student_int8.tflite", "int8", representative_data=x_train[:500], io_dtype="uint8")
>>> evaluate_litert("student_int8.tflite", (x_test, y_test))
{'top1': 0.91, 'top5': 0.99, 'n': 2000}
>>> benchmark_litert("student_int8.tflite", threads=1)["median_ms"]
"""

from libkd_keras.export.evaluate import evaluate_keras, evaluate_litert
from libkd_keras.export.latency import benchmark_litert, compare_latency
from libkd_keras.export.litert import QUANTIZATIONS, UnsupportedOpsError, to_litert
from libkd_keras.export.metadata import metadata_path, read_metadata, record_accuracy
from libkd_keras.export.report import export_report
from libkd_keras.export.runtime import LiteRTModel

__all__ = [
    "LiteRTModel",
    "QUANTIZATIONS",
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
