"""The Distiller under tf.distribute.MirroredStrategy on two logical CPU devices.

Logical devices must be configured before TensorFlow initialises, so the run happens in a fresh
interpreter. One SGD step on a batch split over two replicas must give the weights and the logged
loss of the same step on one device (the loss is scaled per replica as Keras' own losses are).
"""

import json
import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import json, sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras, numpy as np
    from libkd_keras.distill import Distiller, HardDistillation
    from tests.distill.helpers import NUM_CLASSES, SIZE, colour_data, store_dataset, tiny_student
    from tests.builders import tiny_resnet

    images, labels, teacher = colour_data(8)
    data = store_dataset(images, labels, teacher, batch_size=8)

    def one_step(student, teachers=None):
        distiller = Distiller(student, HardDistillation(), alpha=0.5, teachers=teachers)
        distiller.compile(optimizer=keras.optimizers.SGD(0.5))
        if teachers:
            return distiller.fit(images, labels, batch_size=8, epochs=1, verbose=0).history["loss"][0]
        return distiller.fit(data, epochs=1, verbose=0).history["loss"][0]

    single = tiny_student(seed=1)
    initial = [w.numpy() for w in single.weights]
    single_loss = one_step(single)

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        mirrored = tiny_student(seed=2)
        mirrored.set_weights(initial)
        mirrored_loss = one_step(mirrored)
        online_loss = one_step(tiny_student(seed=3), teachers=[tiny_resnet(NUM_CLASSES, SIZE)])
    difference = max(float(np.abs(a.numpy() - b.numpy()).max()) for a, b in zip(single.weights, mirrored.weights))
    moved = max(float(np.abs(a.numpy() - b).max()) for a, b in zip(single.weights, initial))
    print(json.dumps(dict(replicas=strategy.num_replicas_in_sync, single_loss=single_loss,
                          mirrored_loss=mirrored_loss, online_loss=online_loss, difference=difference, moved=moved)))
""")


def test_mirrored_strategy_step_equals_single_device_step():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=root)
    run = subprocess.run([sys.executable, "-c", SCRIPT], cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2
    assert result["mirrored_loss"] == __import__("pytest").approx(result["single_loss"], rel=1e-5)
    assert result["moved"] > 1e-3  # the step changed the weights...
    assert result["difference"] < 1e-5  # ...identically on one device and on two replicas
    assert result["online_loss"] > 0
