"""benchmark_litert / compare_latency: sane numbers for every file kind; bad input fails clearly."""

import os

import pytest

from libkd_keras.export import benchmark_litert, compare_latency

# One worker builds the session fixtures (tiny models and their exports) for every export test.
pytestmark = pytest.mark.xdist_group("export_fixtures")


def test_benchmark_numbers(exported):
    path = exported["deit", "int8"]["path"]
    result = benchmark_litert(path, threads=2, runs=12, warmup=2)
    assert 0 < result["min_ms"] <= result["median_ms"] <= result["p90_ms"]
    assert result["size_mb"] == pytest.approx(os.path.getsize(path) / 1e6)
    assert (result["threads"], result["runs"], result["warmup"], result["batch"]) == (2, 12, 2, 1)
    assert result["input_dtype"] == "int8"


def test_compare_latency_interleaves_several_files(exported):
    paths = [
        exported["deit", "float32"]["path"],
        exported["deit", "int8"]["path"],
        exported["rednet", "float32"]["path"],
    ]  # the last has a dynamic batch: run at 1
    results = compare_latency(paths, threads=1, runs=5, warmup=1)
    assert [r["path"] for r in results] == paths
    assert all(r["median_ms"] > 0 and r["batch"] == 1 for r in results)
    assert results[0]["size_mb"] > results[1]["size_mb"]


def test_corrupt_file(tmp_path):
    path = tmp_path / "junk.tflite"
    path.write_bytes(b"PK\x03\x04 this is a zip, not a model")
    with pytest.raises(ValueError, match="junk.tflite"):
        benchmark_litert(path)


@pytest.mark.parametrize("kwargs", [{"threads": 0}, {"runs": 0}, {"warmup": -1}, {"threads": 1.5}])
def test_bad_settings(exported, kwargs):
    with pytest.raises(ValueError):
        benchmark_litert(exported["deit", "float32"]["path"], **kwargs)


def test_no_paths():
    with pytest.raises(ValueError, match="empty"):
        compare_latency([])
