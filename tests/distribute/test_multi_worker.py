"""The Distiller under MultiWorkerMirroredStrategy: two real worker processes on 127.0.0.1 against one process.

Both workers must end with identical weights, equal (within float tolerance) to one process training
on the same global batches; the 2-worker stored run is interrupted after epoch 2 and resumed from
`BackupAndRestore` (chief in BACKUP, the other worker in its temporary sibling).
"""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from libkd_keras.data import Split

pytestmark = pytest.mark.slow
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def tiny_store(path):
    import keras

    from libkd_keras.store import precompute
    from tests.distill.helpers import NUM_CLASSES, SIZE, colour_data
    from tests.models.tiny import tiny_resnet

    images, labels, _ = colour_data(64)
    split = Split(images.astype(np.uint8), labels, np.arange(64) * 2 + 1, tuple("abcd"), "colours", "train")
    keras.utils.set_random_seed(3)
    return precompute({"resnet": tiny_resnet(NUM_CLASSES, SIZE)}, split, path, shard_size=16)


def spawn(store, out, tf_config=None, backup=None):
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3", KERAS_BACKEND="tensorflow")
    env.pop("TF_CONFIG", None)
    if tf_config:
        env["TF_CONFIG"] = json.dumps(tf_config)
    args = [sys.executable, "-m", "tests.distribute.worker", str(store), str(out)] + ([str(backup)] if backup else [])
    return subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(process):
    try:
        output, _ = process.communicate(timeout=600)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
    assert process.returncode == 0, output[-4000:]


def load(out, task):
    with open(out / f"{task}.json") as f:
        result = json.load(f)
    return result, dict(np.load(out / f"{task}.npz"))


def test_two_workers_train_like_one_process_and_resume_from_backup(tmp_path):
    store = tiny_store(tmp_path / "store")
    assert len(store.manifest["examples"]) == 4  # 4 files: FILE sharding would also have one per worker
    alone, out, backup = tmp_path / "alone", tmp_path / "out", tmp_path / "backup"
    alone.mkdir(), out.mkdir()
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    processes = [
        spawn(store.path, out, {"cluster": cluster, "task": {"type": "worker", "index": i}}, backup) for i in range(2)
    ]
    from tests.distribute import worker

    worker.main(store.path, str(alone))  # the one-process run, here while the workers run
    for process in processes:
        finish(process)

    single, single_weights = load(alone, "worker_0")
    first, first_weights = load(out, "worker_0")
    second, second_weights = load(out, "worker_1")
    assert single["replicas"] == 1
    assert (first["replicas"], second["replicas"]) == (2, 2)
    assert (first["chief"], second["chief"]) == (True, False)
    assert first["interrupted"] and second["interrupted"]
    assert first["backup_dir"] == str(backup) and second["backup_dir"] == f"{backup}-workertemp_worker_1"
    assert os.path.isfile(os.path.join(second["backup_dir"], "latest.weights.h5"))
    assert first_weights.keys() == second_weights.keys() == single_weights.keys()
    for key in first_weights:
        np.testing.assert_array_equal(first_weights[key], second_weights[key])  # workers in lockstep
        np.testing.assert_allclose(first_weights[key], single_weights[key], atol=1e-5, err_msg=key)
    # The resumed run trained only the epoch after the backup, and it is the single process' third epoch.
    assert len(first["stored_loss"]) == 1 and len(single["stored_loss"]) == 3
    assert first["stored_loss"][0] == pytest.approx(single["stored_loss"][2], rel=1e-4)
    assert first["online_loss"][0] == pytest.approx(single["online_loss"][0], rel=1e-4)
    assert first["online_steps"] == pytest.approx(single["online_steps"], rel=1e-4)  # every step's logged loss
    assert single["online_loss"][0] == pytest.approx(single["online_steps"][-1])  # the epoch's mean, no phantom step
    assert single["stored_loss"][2] != pytest.approx(single["stored_loss"][0], rel=1e-3)  # training moved
