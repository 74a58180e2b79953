"""Whole-or-nothing writes: a failed write leaves the previous file (or none) and no temporary file."""

import json
import math

import numpy as np
import pytest

from libkd_keras.atomic_files import json_safe, read_json, save_model_atomic, temporary_sibling, write_json_atomic


def test_json_safe_turns_numpy_and_non_finite_values_into_plain_json(tmp_path):
    data = {"a": np.float32(0.5), "b": np.arange(3), "c": (1, math.nan), 4: tmp_path, "d": np.int64(7)}
    safe = json_safe(data)
    assert safe == {"a": 0.5, "b": [0, 1, 2], "c": [1, None], "4": str(tmp_path), "d": 7}
    write_json_atomic(tmp_path / "sub" / "x.json", data)  # creates the folder
    assert read_json(tmp_path / "sub" / "x.json") == safe
    assert read_json(tmp_path / "missing.json", default={}) == {}


def test_a_failed_json_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "x.json"
    write_json_atomic(path, {"version": 1})
    with pytest.raises(TypeError):
        write_json_atomic(path, {"bad": object()})
    assert json.loads(path.read_text()) == {"version": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


class _FailingModel:
    def save(self, path):
        with open(path, "wb") as f:
            f.write(b"half a model")
        raise OSError("disk full")


def test_a_failed_model_save_leaves_nothing_under_the_real_name(tmp_path):
    with pytest.raises(OSError, match="disk full"):
        save_model_atomic(_FailingModel(), tmp_path / "student.keras")
    assert list(tmp_path.iterdir()) == []


def test_temporary_sibling_keeps_the_suffix_and_is_removed(tmp_path):
    with temporary_sibling(tmp_path / "plot.png", suffix=".png") as tmp:
        assert tmp.endswith(".png") and tmp.startswith(str(tmp_path))
    assert list(tmp_path.iterdir()) == []
