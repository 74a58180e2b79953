"""One worker of the multi-worker test: `python -m tests.distribute.worker STORE OUT [BACKUP]`.

With `TF_CONFIG` set it trains under `MultiWorkerMirroredStrategy` (`make_strategy("multi_worker")`),
without it on one process. Stored mode: 3 epochs from the store (DATA sharding, so each step sees
the same global batch as one process); under MWMS the run is interrupted after epoch 2 and resumed
by a new Distiller through `BackupAndRestore(worker_dir(BACKUP))`. Online mode: 1 epoch with a tiny
teacher in the step (per-step losses recorded too). Writes `OUT/<task>.npz` (final weights) and
`OUT/<task>.json` (losses).
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

GLOBAL_BATCH, EPOCHS, STOP_AFTER = 16, 3, 2


def main(store_path, out, backup=None):
    from libkd_keras import distribute

    multi = bool(os.environ.get("TF_CONFIG"))
    strategy = distribute.make_strategy("multi_worker" if multi else "default")  # first: before any other op
    import keras
    import numpy as np

    class Interrupt(keras.callbacks.Callback):
        """Stops training after epoch `STOP_AFTER` (a kill, as far as the backup is concerned)."""

        def on_epoch_end(self, epoch, logs=None):
            if epoch + 1 == STOP_AFTER:
                raise KeyboardInterrupt("interrupted for the test")

    from libkd_keras.distill import Distiller
    from libkd_keras.store import TeacherStore
    from tests.distill.helpers import NUM_CLASSES, SIZE, tiny_student
    from tests.models.tiny import tiny_resnet

    store = TeacherStore.open(store_path)
    data = distribute.shard_policy(store.dataset(batch_size=GLOBAL_BATCH, shuffle=False, drop_remainder=True), "data")

    def distiller(seed, teachers=None):
        with strategy.scope():
            model = Distiller(tiny_student(seed=seed), distillation="hard", alpha=0.5, teachers=teachers)
            model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9))
        return model

    result = {
        "replicas": strategy.num_replicas_in_sync,
        "task": list(distribute.worker_task(strategy)),
        "chief": distribute.is_chief(strategy),
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
        stored = distiller(seed=5)  # a fresh model: everything it ends with comes from the backup
        history = stored.fit(data, epochs=EPOCHS, verbose=0, callbacks=callbacks[:1]).history
    else:
        history = stored.fit(data, epochs=EPOCHS, verbose=0).history
    result["stored_loss"] = history["loss"]
    with strategy.scope():
        keras.utils.set_random_seed(7)
        teacher = tiny_resnet(NUM_CLASSES, SIZE)
    online = distiller(seed=2, teachers=[teacher])
    steps = []
    record = keras.callbacks.LambdaCallback(on_train_batch_end=lambda b, logs: steps.append(float(logs["loss"])))
    result["online_loss"] = online.fit(data, epochs=1, verbose=0, callbacks=[record]).history["loss"]
    result["online_steps"] = steps
    name = "_".join(map(str, result["task"]))
    weights = {f"stored_{i}": w.numpy() for i, w in enumerate(stored.weights)}
    weights.update({f"online_{i}": w.numpy() for i, w in enumerate(online.weights)})
    np.savez(os.path.join(out, f"{name}.npz"), **weights)
    with open(os.path.join(out, f"{name}.json"), "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main(*sys.argv[1:])
