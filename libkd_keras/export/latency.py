"""Batch-1 latency of exported files with the LiteRT interpreter.

On a shared machine, timings drift with other people's load; `compare_latency` therefore
interleaves the files (one invocation of each per round), so their ratios stay fair even
when the absolute numbers move.
"""

import os
import time

import numpy as np

from libkd_keras.export.runtime import LiteRTModel


def _positive_int(name, value, minimum=1):
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}; got {value!r}.")
    return value


def compare_latency(paths, threads=1, runs=100, warmup=10, seed=0):
    """Batch-1 latency of several files measured in the same interleaved rounds.

    Each file gets the same random raw-pixel image (not zeros: some kernels skip zero rows),
    quantized to its input dtype. Returns one dict per path, as `benchmark_litert`.
    """
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    if not paths:
        raise ValueError("`paths` is empty; give at least one .tflite file.")
    _positive_int("threads", threads)
    _positive_int("runs", runs)
    _positive_int("warmup", warmup, minimum=0)
    runners = [LiteRTModel(p, threads=threads) for p in paths]
    feeds = []
    for runner in runners:
        batch = runner.fixed_batch or 1  # a file with a dynamic batch runs at batch 1
        image = np.random.default_rng(seed).uniform(0, 255, (batch, *runner.image_shape)).astype(np.float32)
        feeds.append(runner.prepare(image))
    for _ in range(warmup):
        for runner, feed in zip(runners, feeds):
            runner.invoke(feed)
    times = [[] for _ in runners]
    for _ in range(runs):
        for runner, feed, spent in zip(runners, feeds, times):
            start = time.perf_counter()
            runner.invoke(feed)
            spent.append((time.perf_counter() - start) * 1000.0)
    return [
        {
            "path": runner.path,
            "median_ms": float(np.median(ms)),
            "p90_ms": float(np.percentile(ms, 90)),
            "mean_ms": float(np.mean(ms)),
            "min_ms": float(np.min(ms)),
            "size_mb": os.path.getsize(runner.path) / 1e6,
            "threads": threads,
            "runs": runs,
            "warmup": warmup,
            "batch": runner.fixed_batch or 1,
            "input_dtype": runner.input_dtype.name,
        }
        for runner, ms in zip(runners, times)
    ]


def benchmark_litert(path, threads=1, runs=100, warmup=10, seed=0):
    """Batch-1 latency (ms, after `warmup` runs) and file size (MB = 10^6 bytes) of one file.

    Example:
    >>> benchmark_litert("student_int8.tflite", threads=2)
    {'median_ms': 11.8, 'p90_ms': 13.1, 'size_mb': 5.7, ...}
    """
    return compare_latency([path], threads=threads, runs=runs, warmup=warmup, seed=seed)[0]
