"""Joins the per-part benchmark sections in benchmarks/results/*.md into benchmarks/RESULTS.md.

python benchmarks/assemble_results.py
"""

from pathlib import Path

HERE = Path(__file__).parent
ORDER = [
    "models",
    "store",
    "distill",
    "export",
    "pipeline",
    "cifar-scale",
    "budget-200-epochs-2026-12-03",
    "budget-100-epochs-2026-12-02",
    "budget-cifar-2026-12-02",
    "budget-study-2026-12-02",
    "budget-longer-teachers-2026-12-02",
    "views",
    "augmentation",
    "test-suite",
    "analysis",
    "precision",
    "teacher_ab",
    "cifar10-2026-12-01",
    "cifar10",
    "involution-fused",
    "precompute-shards",
    "multi-worker",
    "xla",
    "online",
    "deit-profile",
    "training",
]

HEADER = """# Measured results

Every number below was measured on one of this project's development machines: 2 CPU cores
(x86_64), no GPU, 24 GiB, Python 3.11.7, TensorFlow 2.21.0, Keras 3.15.1. Each section gives its
date and, where it matters, its CPU: on 2026-11-21/22 a CPU without bf16 instructions, on
2026-12-01 an Intel Xeon with AMX-BF16, on 2026-12-02 AMD EPYCs (one without bf16 instructions, a
later one with AVX512-BF16 but no AMX). Machines shared with other jobs run several times slower
than idle ones, so **the goals are ratios measured within one run**, where the load hits every
configuration alike. Each section names the command that reproduces it; each script writes its
own section into `benchmarks/results/`, and `python benchmarks/assemble_results.py` rebuilds this
file from them (edit those files, not this one).
"""


def assemble():
    """The text of RESULTS.md, from the sections in benchmarks/results/ (in ORDER, then by name)."""
    parts = {p.stem: p for p in (HERE / "results").glob("*.md")}
    names = [n for n in ORDER if n in parts] + sorted(set(parts) - set(ORDER))
    return HEADER + "\n" + "\n\n".join(parts[n].read_text().strip() for n in names) + "\n", names


def main():
    text, names = assemble()
    (HERE / "RESULTS.md").write_text(text)
    print(f"wrote {HERE / 'RESULTS.md'} from {', '.join(names)}")


if __name__ == "__main__":
    main()
