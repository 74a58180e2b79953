"""The LIB-KD pipeline as a library: config, run folder, the run protocol, and the steps.

    config.py, checks.py, schema.py, settings.py, config_text.py   the run configuration (no TensorFlow)
    run_folder.py                                   the run folder: layout, step markers, lock
    steps.py                                        `Step` and the protocol every step follows, written once
    teachers.py, own_teachers.py                    the teacher steps (TensorFlow from here on)
    store.py                                        the store steps: one process, a worker's share, --finalize
    students.py                                     a student's steps: trained, evaluated, exported; the ablation
    runner.py                                       `Pipeline`: the run's data and its stages in order, resumable

Example:
>>> from libkd_keras.pipeline import Pipeline, RunFolder, resolve_config
>>> config = resolve_config(preset="quick")
>>> with RunFolder.open("saved_models/quick", config) as folder:
...     Pipeline(folder, config).run_all()
"""

from libkd_keras.pipeline.config import resolve_config
from libkd_keras.pipeline.run_folder import RunFolder
from libkd_keras.pipeline.schema import ConfigError
from libkd_keras.pipeline.settings import Config


def __getattr__(name):  # the steps import TensorFlow: only when asked for
    if name in ("Pipeline", "StepOrderError"):
        from libkd_keras.pipeline import runner

        return getattr(runner, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Config", "ConfigError", "Pipeline", "RunFolder", "StepOrderError", "resolve_config"]
