"""The CIFAR-10 sample shipped with the package: `load_split("cifar10-sample", ...)`, offline."""

import hashlib
import os
import socket
import tarfile

import numpy as np
import pytest

from libkd_keras.data import CIFAR10_SAMPLE, DataError, load_split, sources
from libkd_keras.data.sources import SAMPLE_PATH, SAMPLE_SHA256, build_sample

CIFAR_EXTRACTED = "/tmp/cifar"
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


@pytest.fixture
def offline(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the shipped sample must load without network")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.mark.parametrize("split, per_class", [("train", 500), ("test", 100)])
def test_sample_loads_offline_balanced(offline, split, per_class):
    data = load_split(CIFAR10_SAMPLE, split)
    assert data.name == "cifar10-sample" and data.split == split and data.class_names == CLASSES
    assert data.images.shape == (10 * per_class, 32, 32, 3) and data.images.dtype == np.uint8
    assert np.bincount(data.labels).tolist() == [per_class] * 10
    assert data.ids.tolist() == list(range(10 * per_class))
    assert 90 < data.images.mean() < 160  # natural images, not blank


def test_sample_is_deterministic_and_limit_keeps_balance(offline):
    first, again = load_split(CIFAR10_SAMPLE, "test"), load_split(CIFAR10_SAMPLE, "test")
    assert first.fingerprint == again.fingerprint
    small = load_split(CIFAR10_SAMPLE, "test", limit=50)
    assert np.bincount(small.labels).tolist() == [5] * 10
    assert small.fingerprint == first.subset(ids=small.ids).fingerprint
    assert load_split(CIFAR10_SAMPLE, "test", image_size=16).image_shape == (16, 16, 3)


def test_sample_file_matches_its_documented_sha256_and_layout():
    with open(SAMPLE_PATH, "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == SAMPLE_SHA256
    readme = open(os.path.join(os.path.dirname(SAMPLE_PATH), "README.md")).read()
    assert SAMPLE_SHA256 in readme and "Krizhevsky" in readme and "Learning Multiple Layers" in readme
    with tarfile.open(SAMPLE_PATH) as archive:
        names = archive.getnames()
    assert len(names) == 6000 and names == sorted(names, key=lambda n: (n.split("/")[0] != "train", n))
    assert "train/cat/0499.jpg" in names and "train/cat/0500.jpg" not in names and "test/ship/0099.jpg" in names


def test_equals_the_same_files_through_the_class_folder_loader(tmp_path):
    with tarfile.open(SAMPLE_PATH) as archive:
        archive.extractall(tmp_path / "tree", filter="data")
    for split in ("train", "test"):
        shipped, folder = load_split(CIFAR10_SAMPLE, split), load_split(str(tmp_path / "tree"), split)
        assert shipped.fingerprint == folder.fingerprint and shipped.class_names == folder.class_names
        np.testing.assert_array_equal(shipped.images, folder.images)


def test_a_damaged_sample_is_refused(tmp_path, monkeypatch):
    damaged = tmp_path / "cifar10_sample.tar.gz"
    damaged.write_bytes(open(SAMPLE_PATH, "rb").read()[:-10])
    monkeypatch.setattr(sources, "SAMPLE_PATH", str(damaged))
    with pytest.raises(DataError, match="damaged.*reinstall"):
        load_split(CIFAR10_SAMPLE, "train")
    with pytest.raises(DataError, match="splits 'train' and 'test'"):
        load_split(CIFAR10_SAMPLE, "validation")


@pytest.mark.skipif(
    not os.path.isdir(os.path.join(CIFAR_EXTRACTED, "train", "truck")),
    reason="the extracted CIFAR-10 JPEG tree is not at /tmp/cifar",
)
def test_rebuilding_from_the_full_tree_gives_the_same_file_and_the_first_files(tmp_path):
    assert build_sample(CIFAR_EXTRACTED, tmp_path / "again.tar.gz") == SAMPLE_SHA256
    full, shipped = load_split(CIFAR_EXTRACTED, "train", limit=5000), load_split(CIFAR10_SAMPLE, "train")
    np.testing.assert_array_equal(full.images, shipped.images)  # the first 500 files per class
    np.testing.assert_array_equal(full.labels, shipped.labels)
