"""TensorFlow's start-up noise hidden unless `--verbose` (Python warnings and the C++ log on fd 2)."""

import contextlib
import io
import logging
import os
import sys
import warnings


def quiet_tensorflow(verbose):
    """Hides TensorFlow's Python-side start-up noise (call before importing it)."""
    if verbose:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module=r"(tensorflow|keras|tensorflow_datasets|absl|google)(\.|$)")
    try:
        import absl.logging

        absl.logging.set_verbosity(absl.logging.ERROR)
    except ImportError:  # pragma: no cover - absl comes with TensorFlow
        pass


@contextlib.contextmanager
def native_stderr_silenced(enabled=True):
    """Sends file descriptor 2 to /dev/null while Python's `sys.stderr` keeps writing to the terminal.

    TensorFlow's C++ logging (start-up banners, CUDA probing, oneDNN notes) writes to fd 2 and
    ignores TF_CPP_MIN_LOG_LEVEL in recent releases; libkd's own messages, warnings and
    tracebacks go through `sys.stderr` and still show. Skipped when stderr is not the process's
    fd 2 (e.g. captured by pytest).
    """
    try:
        real = enabled and sys.stderr.fileno() == 2
    except (AttributeError, ValueError, io.UnsupportedOperation):
        real = False
    if not real:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    python_stderr = sys.stderr
    sys.stderr = open(
        saved, "w", buffering=1, closefd=False, encoding=python_stderr.encoding, errors="backslashreplace"
    )
    try:
        yield
    finally:
        sys.stderr.flush()
        sys.stderr = python_stderr
        os.dup2(saved, 2)
        os.close(saved)


def import_pipeline(verbose):
    """The `libkd_keras.pipeline.runner` module (TensorFlow imported, its logger quietened)."""
    from libkd_keras.pipeline import runner

    if not verbose:
        import tensorflow

        tensorflow.get_logger().setLevel("ERROR")
    return runner
