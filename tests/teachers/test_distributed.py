"""`train_teacher` under tf.distribute.MirroredStrategy on two logical CPU devices.

With BatchNormalization synchronized over the replicas while training, a teacher trained on two
replicas matches one trained on one device (loss, weights and moving statistics), and the saved
`.keras` has plain BatchNormalization. Without the synchronization the loss differs, so the match
is not luck. Logical devices must be configured before TensorFlow initialises: a fresh interpreter.
(Two real workers under MultiWorkerMirroredStrategy: tests/distribute/test_multi_worker.py.)
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

SCRIPT = textwrap.dedent("""
    import contextlib, json, tempfile
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from libkd_keras import distribute
    from libkd_keras.teachers import train_teacher
    from libkd_keras.training import FitOptions
    from tests.distribute.worker import teacher_recipe, teacher_splits, tiny_cnn

    train, test = teacher_splits()
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])

    def run(strategy):
        folder = tempfile.mkdtemp()
        quiet = FitOptions(verbose=0)
        meta = train_teacher(tiny_cnn, train, test, folder, recipe=teacher_recipe(), strategy=strategy, options=quiet)
        model = keras.saving.load_model(f"{folder}/tiny_cnn_seed0.keras", compile=False)
        bn = [x.synchronized for x in model.layers if isinstance(x, keras.layers.BatchNormalization)]
        return {"loss": meta["history"]["loss"], "weights": [w.tolist() for w in model.get_weights()], "bn": bn}

    result = {"replicas": mirrored.num_replicas_in_sync, "one": run(None), "mirrored": run(mirrored)}
    distribute.synchronized_batch_norm = lambda model, strategy=None: contextlib.nullcontext([])
    result["per_replica_bn"] = run(mirrored)
    print(json.dumps(result))
""")


def test_mirrored_teacher_trains_like_one_device_with_synchronized_batch_norm():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=root, KERAS_BACKEND="tensorflow")
    run = subprocess.run([sys.executable, "-c", SCRIPT], cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    one, mirrored, unsynced = result["one"], result["mirrored"], result["per_replica_bn"]
    assert result["replicas"] == 2
    assert one["bn"] == mirrored["bn"] == [False]  # the saved architecture is plain BatchNormalization
    assert mirrored["loss"] == pytest.approx(one["loss"], rel=1e-5)
    for a, b in zip(mirrored["weights"], one["weights"]):
        np.testing.assert_allclose(a, b, atol=1e-5)
    assert unsynced["loss"] != pytest.approx(one["loss"], rel=1e-4)  # per-replica statistics: another loss
