"""`tf.distribute` for libkd: a strategy by name, TF_CONFIG checks, store sharding and per-worker save paths.

- `make_strategy("default" | "mirrored" | "multi_worker")`: build models and optimizers under its
  `scope()`. `multi_worker` is `tf.distribute.MultiWorkerMirroredStrategy` and needs `TF_CONFIG`
  on every worker (checked first: a missing or malformed one is a `ValueError` with an example).
- `shard_policy(dataset, "data" | "file" | "auto")`: how `fit` splits a store dataset over workers.
  `"file"`: each worker reads its own store shards (least I/O; needs at least one shard per worker);
  `"data"`: every worker reads everything and keeps its part of each global batch, so a step sees
  the same global batch as one process (what the 2-worker test checks).
- `worker_dir(path)`: Keras 3 callbacks write on every worker; as tf.keras documented for
  multi-worker, the chief writes `path` and worker k a temporary `<path>-workertemp_worker_k` (a
  sibling, so the chief deleting its backup at the end never races a worker). Use it for
  `BackupAndRestore(backup_dir)` and `ModelCheckpoint`; every worker restores its own copy (the
  weights are identical on all workers), so no shared filesystem is needed to resume.
- `same_on_every_worker(flag, what)`: a per-worker yes/no (is this step finished here?) checked
  with one `all_gather` before the workers act on it. Without a shared filesystem each worker reads
  its own run folder; one that skips a step its peers run would leave them waiting in a collective.
- `synchronized_batch_norm(model)`: BatchNormalization on the global batch while training with
  several replicas (the saved model keeps plain BatchNormalization); `train_teacher` uses it.

Example (on each host, with its own TF_CONFIG):
>>> strategy = make_strategy("multi_worker")
>>> with strategy.scope():
...     distiller = Distiller(student); distiller.compile(optimizer="adamw")
>>> distiller.fit(shard_policy(store.dataset(batch_size=256), "data"), epochs=300,
...               callbacks=[keras.callbacks.BackupAndRestore(worker_dir("run/backup"))])
"""

import contextlib
import importlib
import json
import os


class _Lazy:
    """`tensorflow`, imported on first use: the CLI's parser reads `STRATEGIES` without loading TF."""

    def __getattr__(self, name):
        return getattr(importlib.import_module("tensorflow"), name)


tf = _Lazy()

STRATEGIES = ("default", "mirrored", "multi_worker")  # the CLI's --strategy
SHARD_POLICIES = ("auto", "data", "file")
TF_CONFIG_EXAMPLE = (
    'TF_CONFIG=\'{"cluster": {"worker": ["host0:12345", "host1:12345"]}, "task": {"type": "worker", "index": 0}}\' '
    "(the same cluster on every host; index 1 on the second)"
)


def _bad(what):
    return ValueError(
        f"--strategy multi_worker needs a valid TF_CONFIG environment variable: {what}. Example: {TF_CONFIG_EXAMPLE}."
    )


def check_tf_config(environ=None):
    """The parsed `TF_CONFIG` of this worker; `ValueError` naming what is missing or malformed."""
    raw = (os.environ if environ is None else environ).get("TF_CONFIG")
    if not raw:
        raise _bad("TF_CONFIG is not set")
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as error:
        raise _bad(f"it is not JSON ({error})") from None
    if not isinstance(config, dict):
        raise _bad(f"it must be a JSON object, got {type(config).__name__}")
    cluster, task = config.get("cluster"), config.get("task")
    if not isinstance(cluster, dict) or not cluster:
        raise _bad('it has no "cluster" object')
    for role, hosts in cluster.items():
        if not isinstance(hosts, list) or not hosts or not all(isinstance(h, str) and ":" in h for h in hosts):
            raise _bad(f'cluster[{role!r}] must be a non-empty list of "host:port" strings, got {hosts!r}')
    if not isinstance(task, dict) or "type" not in task or "index" not in task:
        raise _bad('it has no "task" object with "type" and "index"')
    role, index = task["type"], task["index"]
    if role not in cluster:
        raise _bad(f"task type {role!r} is not in the cluster (roles: {sorted(cluster)})")
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(cluster[role]):
        raise _bad(f"task index {index!r} is not in [0, {len(cluster[role])}) for {role!r}")
    return config


def make_strategy(name="default"):
    """A `tf.distribute.Strategy` by name: `default` (one device), `mirrored` (all local GPUs), `multi_worker`."""
    if name not in STRATEGIES:
        raise ValueError(f"Unknown strategy {name!r}; choose one of {STRATEGIES}.")
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    check_tf_config()
    return tf.distribute.MultiWorkerMirroredStrategy()


def shard_policy(dataset, policy="data"):
    """`dataset` with the auto-shard policy `fit` uses under a multi-worker strategy (see the module doc)."""
    if policy not in SHARD_POLICIES:
        raise ValueError(f"Unknown shard policy {policy!r}; choose one of {SHARD_POLICIES}.")
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = getattr(tf.data.experimental.AutoShardPolicy, policy.upper())
    return dataset.with_options(options)


def _resolver(strategy):
    resolver = getattr((strategy or tf.distribute.get_strategy()).extended, "_cluster_resolver", None)
    return resolver if resolver is not None and getattr(resolver, "task_type", None) else None


def worker_task(strategy=None):
    """`(task type, task index)` of this worker; `("worker", 0)` outside multi-worker training."""
    resolver = _resolver(strategy)
    return ("worker", 0) if resolver is None else (resolver.task_type, int(resolver.task_id or 0))


def is_chief(strategy=None):
    """Whether this worker writes the real outputs: the chief, or worker 0 in a cluster without one."""
    resolver = _resolver(strategy)
    if resolver is None:
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    role, index = worker_task(strategy)
    return role == "chief" if has_chief else (role == "worker" and index == 0)


def worker_dir(path, strategy=None):
    """`path` on the chief; `<path>-workertemp_<type>_<index>` beside it on the other workers (module doc)."""
    path = os.fspath(path).rstrip("/")
    if is_chief(strategy):
        return path
    role, index = worker_task(strategy)
    return f"{path}-workertemp_{role}_{index}"


class WorkersDisagree(ValueError):
    """Workers of one multi-worker run found different states (raised on every worker alike)."""


def same_on_every_worker(flag, what, fix="", strategy=None):
    """`flag`, when every worker of a multi-worker run has the same; else `WorkersDisagree` on all of them.

    Args:
        flag: bool. This worker's answer (e.g. "is `what` finished in my run folder?").
        what: str. What the flag is about, for the message.
        fix: str. How to make the workers agree, appended to the message.
        strategy: tf.distribute.Strategy or None. The current one by default; outside multi-worker
            training `flag` is returned as it is.
    """
    strategy = strategy or tf.distribute.get_strategy()
    if not _multi_worker(strategy):
        return bool(flag)
    # One value per replica, gathered in replica order: the workers' flags, each repeated per local device.
    flags = strategy.gather(strategy.run(lambda: tf.constant([1.0 if flag else 0.0])), axis=0).numpy()
    per_worker = flags.reshape(-1, strategy.num_replicas_in_sync // _worker_count(strategy)).max(axis=1)
    if per_worker.min() == per_worker.max():
        return bool(flag)
    yes = [i for i, value in enumerate(per_worker) if value]
    no = [i for i, value in enumerate(per_worker) if not value]
    raise WorkersDisagree(
        f"The workers disagree on {what}: yes on worker(s) {yes}, no on worker(s) {no} (in cluster order). "
        f"Each worker reads its own run folder, so they part when one lost or never got its copy. {fix}".strip()
    )


def _worker_count(strategy):
    spec = _resolver(strategy).cluster_spec().as_dict()
    return sum(len(spec.get(role, [])) for role in ("chief", "worker"))


@contextlib.contextmanager
def synchronized_batch_norm(model, strategy=None):
    """Within the block, `model`'s BatchNormalization layers use the global batch's statistics.

    With more than one replica in sync, plain BatchNormalization normalises each replica's part of
    a batch with that part's mean and variance, so the loss and the moving statistics differ from
    one process on the same global batch. Keras 3 reads `layer.synchronized` when it traces the
    step (`ops.moments(..., synchronized=...)`, an all-reduce of the sums), so it is switched on
    here for training and switched back afterwards: the saved architecture stays plain
    BatchNormalization and loads anywhere. With one replica nothing changes.

    >>> with synchronized_batch_norm(teacher):
    ...     teacher.fit(train, epochs=200)
    """
    import keras

    strategy = strategy or tf.distribute.get_strategy()
    layers = []
    if strategy.num_replicas_in_sync > 1:
        bn = keras.layers.BatchNormalization
        layers = [x for x in model._flatten_layers() if isinstance(x, bn) and not x.synchronized]
    for layer in layers:
        layer.synchronized = True
    try:
        yield layers
    finally:
        for layer in layers:
            layer.synchronized = False


def _multi_worker(strategy):
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and strategy.extended._in_multi_worker_mode()


def local_build_batch(strategy, iterator, data_batch):
    """`(iterator, data_batch)` for Keras' `_maybe_symbolic_build` under a strategy, MWMS included.

    Under a strategy Keras builds the model from a first batch it reads from `fit`'s input, then
    restarts the input: a shuffled `tf.data` dataset (`reshuffle_each_iteration`) then trains its
    first epoch on its second order, not the one a single process sees; and it reduces that
    (nested) batch with `strategy.reduce`, which MultiWorkerMirroredStrategy cannot do for a nest
    (TF's "TODO: support value being a nest"). Building needs only shapes and dtypes, so a
    `tf.data` input builds from its `element_spec`; any other input, under MWMS, from this worker's
    local part of the first batch. (Keras builds nothing here without a strategy.)
    """
    if iterator is None:
        return iterator, data_batch
    dataset = getattr(getattr(iterator, "data_adapter", None), "_dataset", None)  # Keras' TFDatasetAdapter
    if isinstance(dataset, tf.data.Dataset):
        return None, dataset.element_spec
    if not _multi_worker(strategy):
        return iterator, data_batch
    for _, _, batches in iterator:
        batch = next(batches)
        local = tf.nest.map_structure(
            lambda v: (
                strategy.experimental_local_results(v)[0] if isinstance(v, tf.distribute.DistributedValues) else v
            ),
            batch,
        )
        return None, local
    return iterator, data_batch


class MultiWorkerFit:
    """Mixin (before `keras.Model`) that lets Keras 3's `fit`/`evaluate` run under any strategy, MWMS included.

    Keras 3 (up to 3.15 at least) reduces each replica's scalar logs with `strategy.reduce("MEAN", v,
    axis=0)` under MWMS, which fails for scalars ("Invalid reduction dimension 0 for input with 0
    dimensions", tensorflow/tensorflow#72388): under multi-worker MWMS the logs are given a length-1
    axis (the reduce then averages over replicas). Under every strategy the model is built from the
    input's spec (`local_build_batch`), so the first epoch sees the shuffle order one process sees.
    Nothing changes without a strategy.
    """

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        return super()._maybe_symbolic_build(*local_build_batch(self.distribute_strategy, iterator, data_batch))

    def _one_axis(self, logs):
        if not _multi_worker(tf.distribute.get_strategy()):
            return logs
        return {
            key: tf.reshape(value, [1]) if tf.is_tensor(value) and value.shape.rank == 0 else value
            for key, value in logs.items()
        }

    def train_step(self, data):
        return self._one_axis(super().train_step(data))

    def test_step(self, data):
        return self._one_axis(super().test_step(data))


def fit_view(model):
    """`model` for `compile`/`fit` under any strategy: itself without one; under a strategy (its scope
    active) a `MultiWorkerFit` functional view sharing its layers and weights (train the view, save
    `model`: the saved format is unchanged)."""
    if not tf.distribute.has_strategy():
        return model
    import keras

    class _View(MultiWorkerFit, keras.Model):
        pass

    return _View(inputs=model.inputs, outputs=model.outputs, name=model.name)
