"""`libkd precompute`'s own flags: the splits, `--force`, and sharded precompute over several workers. No TensorFlow.

    libkd precompute --out RUN_DIR --worker-index 0 --num-workers 2   # on host (or process) 0
    libkd precompute --out RUN_DIR --worker-index 1 --num-workers 2   # on host 1; the last one finalizes
    libkd precompute --out RUN_DIR --finalize                         # only if a worker stopped after its share

The workers and `--finalize` work in the run folder together, without its lock
(`libkd_keras.pipeline.store`).
"""

from libkd_keras.pipeline.schema import ConfigError

WORKERS = "--worker-index/--num-workers"


def add_arguments(p):
    """The precompute subcommand's flags, on its parser `p`."""
    p.add_argument(
        "--split",
        choices=("train", "test"),
        action="append",
        default=[],
        help="store only this split; repeatable (default: train and test)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="rebuild the store from the trained teachers even if it is finished, e.g. when it "
        "was damaged on disk (default: off)",
    )
    sharded = p.add_argument_group("sharded precompute (several workers sharing the run folder; README 'Scaling out')")
    sharded.add_argument(
        "--worker-index",
        type=int,
        metavar="I",
        help="with --num-workers: this worker's number, 0 .. N-1; it writes only its share of each split's "
        "store, and the worker that writes the last share finalizes the store (default: one process, all)",
    )
    sharded.add_argument(
        "--num-workers",
        type=int,
        metavar="N",
        help="with --worker-index: how many workers share the precompute, the same N on every worker (default: 1)",
    )
    sharded.add_argument(
        "--finalize",
        action="store_true",
        help="write the manifest of a store whose shares are all written (e.g. a worker stopped after its "
        "share), or name the missing or duplicated share; marks the step done (default: off)",
    )


def check_args(args):
    """Raises `ConfigError` (exit 2) for a bad combination of the precompute flags."""
    index, count = args.worker_index, args.num_workers
    if (index is None) != (count is None):
        given, absent = ("--worker-index", "--num-workers") if count is None else ("--num-workers", "--worker-index")
        raise ConfigError(
            f"{given} needs {absent}: pass both (--worker-index I --num-workers N on each of the N workers, "
            "I = 0 .. N-1) or neither (one process computes the whole store)."
        )
    sharded = count is not None
    if sharded and count < 1:
        raise ConfigError(f"--num-workers must be >= 1; got {count}.")
    if sharded and not 0 <= index < count:
        raise ConfigError(
            f"--worker-index must be in [0, {count}) for --num-workers {count} (workers are numbered 0 .. "
            f"{count - 1}); got {index}."
        )
    if args.force and (sharded or args.finalize):
        raise ConfigError(
            f"--force cannot be combined with {WORKERS if sharded else '--finalize'}: workers write shares only "
            "into an unfinished store. Rebuild a damaged store with one process ('libkd precompute --force'), "
            "or delete the run's store/<split> folder and run the workers again."
        )
    if sharded and args.finalize:
        raise ConfigError(
            f"--finalize cannot be combined with {WORKERS}: the worker that writes the last share finalizes the "
            "store itself; run 'libkd precompute --finalize' alone, once every share is written."
        )
    if args.overwrite and (sharded or args.finalize):
        raise ConfigError(
            f"--overwrite cannot be combined with {WORKERS if sharded else '--finalize'}: workers share an "
            "existing run folder (the one the teachers were trained in) and never delete it."
        )


def is_shared(args):
    """Whether the command works in the run folder beside other workers (no lock): a worker or `--finalize`."""
    return args.num_workers is not None or args.finalize


def run_step(pipeline, args):
    """The precompute step the flags ask for."""
    splits = args.split or ("train", "test")
    if args.finalize:
        pipeline.finalize_store(splits)
    else:
        pipeline.precompute(splits, force=args.force, worker_index=args.worker_index, num_workers=args.num_workers)
