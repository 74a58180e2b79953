"""export_report: files, table and JSON for a student across variants."""

import json
import os

import pytest
from conftest import CLASS_NAMES

from libkd_keras.export import ReportSettings, export_report, read_metadata

# One worker builds the session fixtures (tiny models and their exports) for every export test.
pytestmark = pytest.mark.xdist_group("export_fixtures")


def test_report_rows_files_and_table(models, train_data, test_data, tmp_path):
    out, lines = tmp_path / "report", []
    rows = export_report(
        models["deit"],
        out,
        test_data,
        representative_data=train_data[0][:64],
        class_names=CLASS_NAMES,
        settings=ReportSettings(threads=(1, 2), runs=4, warmup=1),
        dataset_name="generated",
        log=lines.append,
    )
    assert [r["variant"] for r in rows] == ["keras float32", "float32", "float16", "dynamic", "int8", "int8_mixed"]
    keras_row, f32, f16, dyn, int8, mixed = rows
    assert f32["top1_drop_points"] == pytest.approx(0.0, abs=1e-9)  # float32 equals Keras
    assert f32["size_vs_float32"] == pytest.approx(1.0)
    assert f16["size_vs_float32"] < 0.7 and dyn["size_vs_float32"] < 0.6 and int8["size_vs_float32"] < 0.6
    assert mixed["size_vs_float32"] < 0.6
    for row in (f16, dyn, int8, mixed):  # each quantized variant's drop is measured against the same Keras top-1
        assert row["top1_drop_points"] == pytest.approx(100 * (keras_row["top1"] - row["top1"]))
        assert set(row["latency_ms"]) == {"1", "2"} and row["latency_ms"]["1"] > 0
    assert [line.split(":")[0] for line in lines[:5]] == [
        "[1/5] float32",
        "[2/5] float16",
        "[3/5] dynamic",
        "[4/5] int8",
        "[5/5] int8_mixed",
    ]
    assert lines[5].startswith("latency: 4 batch-1 runs")
    assert f32["latency_vs_float32"]["1"] == pytest.approx(1.0)
    assert keras_row["size_mb"] is None and keras_row["top1"] >= 0.8
    for row in rows[1:]:
        assert os.path.isfile(out / row["file"])
        assert read_metadata(out / row["file"])["accuracy"]["top1"] == pytest.approx(row["top1"])
        assert read_metadata(out / row["file"])["accuracy"]["dataset"] == "generated"

    summary = json.loads((out / "export_report.json").read_text())
    assert summary["rows"] == json.loads(json.dumps(rows))
    assert summary["test_data"] == {"name": "generated", "n": len(test_data[1])}
    table = (out / "export_report.md").read_text().splitlines()
    assert table[0].startswith("| variant | file | size MB")
    assert len(table) == 2 + len(rows)
    assert table[-3].startswith("| dynamic | `tiny_deit_dynamic.tflite` |")
    assert table[-2].startswith("| int8 | `tiny_deit_int8.tflite` |")
    assert table[-1].startswith("| int8_mixed | `tiny_deit_int8_mixed.tflite` |")


def test_report_needs_calibration_for_int8(models, test_data, tmp_path):
    with pytest.raises(ValueError, match="representative_data"):
        export_report(models["deit"], tmp_path, test_data, quantizations=("int8",))
    with pytest.raises(ValueError, match="quantizations"):
        export_report(models["deit"], tmp_path, test_data, quantizations=("int3",))
    assert os.listdir(tmp_path) == []


def test_report_settings_are_one_object_checked_before_any_conversion(models, test_data, tmp_path):
    with pytest.raises(TypeError, match=r"settings=ReportSettings\(runs=\.\.\., threads=\.\.\.\)"):
        export_report(models["deit"], tmp_path, test_data, threads=(1,), runs=4)  # the keywords of before
    with pytest.raises(TypeError, match="ReportSettings"):
        export_report(models["deit"], tmp_path, test_data, settings={"runs": 4})
    with pytest.raises(ValueError, match=r"`runs` must be an integer >= 1"):
        ReportSettings(runs=0)  # refused when made, not after every variant is converted
    with pytest.raises(ValueError, match=r"`threads` must be an integer >= 1"):
        ReportSettings(threads=(1, 0))
    assert ReportSettings(threads=2).threads == (2,)
    assert ReportSettings(int8_io_dtype="uint8").as_json() == {
        "batch_size": 1,
        "threads": [1, 2],
        "runs": 100,
        "warmup": 10,
        "int8_io_dtype": "uint8",
    }
    assert os.listdir(tmp_path) == []
