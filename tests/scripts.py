"""The scripts of `benchmarks/`, imported by path for their tests (`benchmarks/` is not a package)."""

import importlib.util
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def benchmark_script(name):
    """`benchmarks/<name>.py` as a module, run afresh (its `main(argv)` and helpers are what tests call)."""
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
