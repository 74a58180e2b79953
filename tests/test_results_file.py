"""benchmarks/RESULTS.md is exactly what benchmarks/assemble_results.py builds from benchmarks/results/."""

import importlib.util
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def test_results_md_is_assembled_from_the_section_files():
    spec = importlib.util.spec_from_file_location("assemble_results", BENCHMARKS / "assemble_results.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text, names = module.assemble()
    assert "precision" in names and "cifar-scale" in names
    assert (BENCHMARKS / "RESULTS.md").read_text() == text, (
        "benchmarks/RESULTS.md differs from its sections: edit benchmarks/results/*.md, then run "
        "`python benchmarks/assemble_results.py`"
    )
