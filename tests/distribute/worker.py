"""One worker of the multi-worker test: `child(...)`, forked by the test, or `python -m tests.distribute.worker`.

Arguments `OUT STORE [BACKUP]`. With `TF_CONFIG` set it trains under `MultiWorkerMirroredStrategy`
(`make_strategy("multi_worker")`), without it on one process; every case runs in the same process
(importing TensorFlow and tracing the first step is most of the cost):

- stored: the Distiller on the store, `EPOCHS` epochs (DATA sharding, so each step sees the same
  global batch as one process); under MWMS interrupted after epoch `STOP_AFTER`, its weights and
  optimizer state overwritten, and resumed through `BackupAndRestore(worker_dir(BACKUP))`.
- online: the Distiller, 1 epoch, with a tiny BatchNormalization teacher in the step (per-step
  losses recorded too).
- agreement: `same_on_every_worker` with the same flag everywhere, then with worker 0 alone saying yes.
- teacher: `train_teacher` on a tiny CNN with BatchNormalization, inside `strategy.scope()` as the
  CLI calls it; writes `OUT/teachers/tiny_cnn_seed0.keras` (the chief) or its worker's sibling folder.

Writes `OUT/<task>.npz` (the Distillers' final weights) and `OUT/<task>.json` (losses, seconds per case).
"""

import json
import os
import sys
import time
import traceback

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

GLOBAL_BATCH, EPOCHS, STOP_AFTER = 16, 2, 1


def tiny_cnn(num_classes, input_shape):
    """The shared tiny CNN as a Conv-BN-ReLU network: one BatchNormalization layer, quick to trace.

    A function of its own, not a partial: `train_teacher` names its files after it (`tiny_cnn_seed0.keras`)."""
    from tests import builders

    return builders.tiny_cnn(num_classes, input_shape, filters=8, strides=2, batch_norm=True, name="cnn")


def tiny_deit(seed):
    """The smallest DeiT student with a distillation token (one block): the Distiller's cases trace it."""
    from tests import builders
    from tests.distill.helpers import NUM_CLASSES, SIZE

    return builders.tiny_deit(
        num_classes=NUM_CLASSES, size=SIZE, patch_size=8, dim=16, depth=1, num_heads=1, drop_path_rate=0.1, seed=seed
    )


def scramble(distiller, seed):
    """Overwrites the student's weights and the optimizer's state: all a resumed run has is then the backup."""
    for variable, value in zip(distiller.student.weights, tiny_deit(seed).get_weights()):
        variable.assign(value)
    for variable in distiller.optimizer.variables:
        if "learning_rate" not in variable.path:
            variable.assign(variable.numpy() * 0)


def teacher_splits():
    """Train (32 images, two global batches) and test splits whose class is the brightness."""
    import numpy as np

    from libkd_keras.data import Split
    from tests.distill.helpers import colour_data

    splits = []
    for n, seed, name in ((32, 0, "train"), (16, 1, "test")):
        images, labels, _ = colour_data(n, seed=seed)
        splits.append(Split(images.astype(np.uint8), labels, np.arange(n), tuple("abcd"), "colours", name))
    return splits


def teacher_recipe():
    from libkd_keras.teachers import TeacherRecipe

    # One epoch of two steps; learning rate 0.1 at this batch size, so the weights move well past the tolerance.
    # No augmentation: its random crops come from a stateful generator in a parallel `map`, so they
    # differ from run to run even on one process (each worker would crop its own way; still in lockstep).
    return TeacherRecipe(epochs=1, batch_size=GLOBAL_BATCH, learning_rate=0.8, augment=False)


def main(out, store_path, backup=None):
    started = time.perf_counter()
    from libkd_keras import distribute

    multi = bool(os.environ.get("TF_CONFIG"))
    strategy = distribute.make_strategy("multi_worker" if multi else "default")  # first: before any other op
    import keras
    import numpy as np

    from libkd_keras.distill import Distiller, HardDistillation
    from libkd_keras.store import TeacherStore
    from libkd_keras.teachers import train_teacher
    from libkd_keras.training import FitOptions
    from tests.distill.helpers import NUM_CLASSES, SIZE

    seconds = {"start": time.perf_counter() - started}  # wall seconds per case; `cpu`: this process' CPU seconds
    cpu, clock = {"start": time.process_time()}, [time.perf_counter(), time.process_time()]

    def lap(name):
        now = time.perf_counter(), time.process_time()
        seconds[name], cpu[name] = now[0] - clock[0], now[1] - clock[1]
        clock[:] = now

    class Interrupt(keras.callbacks.Callback):
        """Stops training after epoch `STOP_AFTER` (a kill, as far as the backup is concerned)."""

        def on_epoch_end(self, epoch, logs=None):
            if epoch + 1 == STOP_AFTER:
                raise KeyboardInterrupt("interrupted for the test")

    store = TeacherStore.open(store_path)
    data = store.dataset(HardDistillation(), batch_size=GLOBAL_BATCH, shuffle=False, drop_remainder=True)
    data = distribute.shard_policy(data, "data")

    def distiller(seed, teachers=None):
        with strategy.scope():
            model = Distiller(tiny_deit(seed), HardDistillation(), alpha=0.5, teachers=teachers)
            model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9))
        return model

    result = {
        "replicas": strategy.num_replicas_in_sync,
        "task": list(distribute.worker_task(strategy)),
        "chief": distribute.is_chief(strategy),
        "seconds": seconds,
        "cpu": cpu,
    }
    stored = distiller(seed=1)
    if backup:
        folder = distribute.worker_dir(backup, strategy)
        result["backup_dir"] = folder
        callbacks = [keras.callbacks.BackupAndRestore(folder, delete_checkpoint=False), Interrupt()]
        try:
            stored.fit(data, epochs=EPOCHS, verbose=0, callbacks=callbacks)
        except KeyboardInterrupt:
            result["interrupted"] = True
        lap("stored_interrupted")
        scramble(stored, seed=5)  # the same model (no second trace), but all it resumes with is the backup
        history = stored.fit(data, epochs=EPOCHS, verbose=0, callbacks=callbacks[:1]).history
    else:
        history = stored.fit(data, epochs=EPOCHS, verbose=0).history
    result["stored_loss"] = history["loss"]
    lap("stored")

    with strategy.scope():
        keras.utils.set_random_seed(7)
        teacher = tiny_cnn(NUM_CLASSES, (SIZE, SIZE, 3))
    online = distiller(seed=2, teachers=[teacher])
    steps = []
    record = keras.callbacks.LambdaCallback(on_train_batch_end=lambda b, logs: steps.append(float(logs["loss"])))
    result["online_loss"] = online.fit(data, epochs=1, verbose=0, callbacks=[record]).history["loss"]
    result["online_steps"] = steps
    lap("online")

    train, test = teacher_splits()
    with strategy.scope():  # as the CLI calls it: the strategy comes from the scope
        meta = train_teacher(
            tiny_cnn, train, test, os.path.join(out, "teachers"), recipe=teacher_recipe(), options=FitOptions(verbose=0)
        )
    result["teacher"] = {k: meta["history"][k] for k in ("loss", "val_loss", "acc")}  # the engine's metric names
    lap("teacher")

    # A step finished on worker 0 only (a worker that lost its run folder): an error on both, not a hang.
    agreement = {"same": distribute.same_on_every_worker(True, "a flag every worker has", strategy=strategy)}
    try:
        agreement["first_only"] = distribute.same_on_every_worker(
            result["task"][1] == 0, "whether step teacher/x is finished", strategy=strategy
        )
    except distribute.WorkersDisagree as error:
        agreement["error"] = str(error)
    result["agreement"] = agreement
    lap("agreement")

    name = "_".join(map(str, result["task"]))
    weights = {f"stored_{i}": w.numpy() for i, w in enumerate(stored.weights)}
    weights.update({f"online_{i}": w.numpy() for i, w in enumerate(online.weights)})
    np.savez(os.path.join(out, f"{name}.npz"), **weights)
    seconds["total"], cpu["total"] = time.perf_counter() - started, time.process_time()
    with open(os.path.join(out, f"{name}.json"), "w") as f:
        json.dump(result, f)


def child(out, store_path, backup, tf_config):
    """A worker forked from the test's forkserver (TensorFlow imported there, its runtime not started yet)."""
    os.environ["TF_CONFIG"] = json.dumps(tf_config)
    try:
        main(out, store_path, backup)
    except BaseException:
        with open(os.path.join(out, f"worker_{tf_config['task']['index']}.error"), "w") as f:
            f.write(traceback.format_exc())
        raise


if __name__ == "__main__":
    main(*sys.argv[1:])
