"""Distiller and teacher training under MultiWorkerMirroredStrategy: two real workers on 127.0.0.1 against one process.

One pair of worker processes (`tests/distribute/worker.py`) runs every case, while this process
runs the same cases alone (eagerly, which saves tracing them once more): the Distiller in stored
mode (the 2-worker run interrupted after epoch 1 and resumed from `BackupAndRestore`, chief in
BACKUP, the other worker in its temporary sibling), the Distiller in online mode, and
`train_teacher` on a CNN with BatchNormalization. Both workers must end with identical weights,
equal (within float tolerance) to one process training on the same global batches, and the
teacher the chief saves must load in this (plain) process.
"""

import contextlib
import json
import multiprocessing
import os
import socket
import time
import warnings

import numpy as np
import pytest

from libkd_keras.data import Split

pytestmark = pytest.mark.slow
WORKER_TIMEOUT_S = 300  # a hung collective fails the test instead of the CI job
# Imported by the forkserver before it forks the workers; none of them may run a TensorFlow op on import.
PRELOAD = ["tensorflow", "keras", "libkd_keras.distill", "libkd_keras.store", "libkd_keras.teachers"]


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
    from tests.distribute.worker import tiny_cnn

    images, labels, _ = colour_data(64)
    split = Split(images.astype(np.uint8), labels, np.arange(64) * 2 + 1, tuple("abcd"), "colours", "train")
    keras.utils.set_random_seed(3)
    return precompute({"cnn": tiny_cnn(NUM_CLASSES, (SIZE, SIZE, 3))}, split, path, shard_size=16)


def start_forkserver():
    """A forkserver that imports TensorFlow once, for both workers, and runs no op (so each fork still
    starts its own runtime, as MultiWorkerMirroredStrategy needs); it starts importing right away."""
    from multiprocessing import forkserver

    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    forkserver.ensure_running()
    return context


def start_workers(context, out, store, backup):
    from tests.distribute import worker

    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    processes = []
    for index in (0, 1):
        tf_config = {"cluster": cluster, "task": {"type": "worker", "index": index}}
        processes.append(context.Process(target=worker.child, args=(str(out), store, str(backup), tf_config)))
        processes[-1].start()
    return processes


def finish(processes, out, deadline):
    """Waits for both workers; one that fails (its peer then waits in a collective) or a deadline ends both."""
    while time.monotonic() < deadline and any(p.is_alive() for p in processes):
        if any(p.exitcode for p in processes):
            break
        time.sleep(0.2)
    for process in processes:
        if process.is_alive():
            process.kill()
        process.join()
    for index, process in enumerate(processes):
        error = out / f"worker_{index}.error"
        message = error.read_text()[-4000:] if error.exists() else f"worker {index}: exit code {process.exitcode}"
        assert process.exitcode == 0, message


def stop_forkserver():
    """The forkserver holds a TensorFlow import (hundreds of MB): stopped once the workers are done."""
    from multiprocessing import forkserver

    stop = getattr(forkserver._forkserver, "_stop", None)
    if stop is not None:
        stop()
    forkserver.set_forkserver_preload(["__main__"])  # multiprocessing's default


@contextlib.contextmanager
def eager_functions():
    """The one-process reference runs its steps eagerly: the same numbers (within 1e-7 here), no tracing cost."""
    import tensorflow as tf

    before = tf.config.functions_run_eagerly()
    tf.config.run_functions_eagerly(True)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Even though the `tf.config.experimental_run_functions_eagerly`")
            yield
    finally:
        tf.config.run_functions_eagerly(before)


def load(out, task):
    with open(out / f"{task}.json") as f:
        result = json.load(f)
    return result, dict(np.load(out / f"{task}.npz"))


def run_everything(tmp):
    """`{"single" | "first" | "second": (result, distiller weights)}` and the folders, from one run of every case."""
    from tests.distribute import worker

    started = time.monotonic()
    alone, out, backup = tmp / "alone", tmp / "out", tmp / "backup"
    alone.mkdir(), out.mkdir()
    with contextlib.ExitStack() as cleanup:  # last in, first out: the workers end, then the forkserver
        cleanup.callback(stop_forkserver)
        context = start_forkserver()  # importing while the store is written
        store = tiny_store(tmp / "store")
        assert len(store.manifest["examples"]) == 4  # 4 files: FILE sharding would also have one per worker
        processes = start_workers(context, out, store.path, backup)
        cleanup.callback(finish, processes, out, started + WORKER_TIMEOUT_S)
        with eager_functions():
            worker.main(str(alone), store.path)  # the one-process run, here while the workers run
    results = {"single": load(alone, "worker_0"), "first": load(out, "worker_0"), "second": load(out, "worker_1")}
    for key in ("first", "second", "single"):
        for kind in ("seconds", "cpu"):
            print(f"{key}, {kind}:", {k: round(v, 1) for k, v in results[key][0][kind].items()})
    print(f"workers and the single process: {time.monotonic() - started:.1f} s")
    return results, {"alone": alone, "out": out, "backup": backup}


def test_two_workers_train_the_distiller_and_a_teacher_like_one_process(tmp_path):
    """One test, not four sharing a fixture: xdist could run them on two workers, each running everything."""
    runs = run_everything(tmp_path)
    check_lockstep(runs)
    check_stored_resume(runs)
    check_online(runs)
    check_teacher(runs)
    check_agreement(runs)


def check_lockstep(runs):
    (single, single_weights), (first, first_weights), (second, second_weights) = runs[0].values()
    assert single["replicas"] == 1
    assert (first["replicas"], second["replicas"]) == (2, 2)
    assert (first["chief"], second["chief"]) == (True, False)
    assert first_weights.keys() == second_weights.keys() == single_weights.keys()
    for key in first_weights:
        np.testing.assert_array_equal(first_weights[key], second_weights[key])  # workers in lockstep
        np.testing.assert_allclose(first_weights[key], single_weights[key], atol=1e-5, err_msg=key)


def check_stored_resume(runs):
    (single, _), (first, _), (second, _) = runs[0].values()
    backup = runs[1]["backup"]
    assert first["interrupted"] and second["interrupted"]
    assert first["backup_dir"] == str(backup) and second["backup_dir"] == f"{backup}-workertemp_worker_1"
    assert os.path.isfile(os.path.join(second["backup_dir"], "latest.weights.h5"))
    # The resumed run trained only the epoch after the backup, and it is the single process' second epoch.
    assert len(first["stored_loss"]) == 1 and len(single["stored_loss"]) == 2
    assert first["stored_loss"][0] == pytest.approx(single["stored_loss"][1], rel=1e-4)
    assert single["stored_loss"][1] != pytest.approx(single["stored_loss"][0], rel=1e-3)  # training moved


def check_online(runs):
    (single, _), (first, _), _ = runs[0].values()
    assert first["online_loss"][0] == pytest.approx(single["online_loss"][0], rel=1e-4)
    assert first["online_steps"] == pytest.approx(single["online_steps"], rel=1e-4)  # every step's logged loss
    assert single["online_loss"][0] == pytest.approx(single["online_steps"][-1])  # the epoch's mean, no phantom step


def check_teacher(runs):
    """Workers in lockstep, like one process, and the saved teacher loads in this (plain) process."""
    import keras

    from tests.distribute.worker import tiny_cnn

    (single, _), (first, _), (second, _) = runs[0].values()
    folders = runs[1]
    for key in ("loss", "val_loss", "acc"):
        assert first["teacher"][key] == second["teacher"][key]
        assert first["teacher"][key] == pytest.approx(single["teacher"][key], rel=1e-4), key
    chief = folders["out"] / "teachers"
    other = folders["out"] / "teachers-workertemp_worker_1"  # worker 1 writes its own copies beside
    assert {p.name for p in chief.iterdir()} >= {"tiny_cnn_seed0.keras", "tiny_cnn_seed0.json"}
    assert not (chief / "tiny_cnn_seed0.backup").exists() and not (other / "tiny_cnn_seed0.backup").exists()
    paths = [folder / "tiny_cnn_seed0.keras" for folder in (chief, other, folders["alone"] / "teachers")]
    models = [keras.saving.load_model(path, compile=False) for path in paths]
    for model in models:  # saved with plain BatchNormalization, whatever trained it
        assert [x.synchronized for x in model.layers if isinstance(x, keras.layers.BatchNormalization)] == [False]
    keras.utils.set_random_seed(0)
    initial = tiny_cnn(4, (16, 16, 3)).get_weights()  # as train_teacher builds it
    trained = zip(models[2].weights, *(m.get_weights() for m in models), initial)
    for variable, chief_w, other_w, alone_w, start in trained:
        np.testing.assert_array_equal(chief_w, other_w)
        np.testing.assert_allclose(chief_w, alone_w, atol=1e-5, err_msg=variable.path)  # moving statistics too
        assert not variable.trainable or np.abs(chief_w - start).max() > 1e-3, variable.path  # it trained


def check_agreement(runs):
    """Workers that disagree on a step (one lost its run folder) both stop with one message; none waits."""
    (single, _), (first, _), (second, _) = runs[0].values()
    assert single["agreement"] == {"same": True, "first_only": True}  # one process: its own answer
    for worker in (first, second):
        assert worker["agreement"]["same"] is True and "first_only" not in worker["agreement"]
        assert worker["agreement"]["error"].startswith(
            "The workers disagree on whether step teacher/x is finished: yes on worker(s) [0], no on worker(s) [1]"
        )
