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
    "analysis",
    "precision",
    "teacher_ab",
    "cifar10-2026-12-01",
    "cifar10",
]

HEADER = """# Measured results

Every number below was measured on this project's development machine: 2 CPU cores (x86_64), no
GPU, 24 GiB, Python 3.11.7, TensorFlow 2.21.0, Keras 3.15.1, on 2026-11-21, 2026-11-22 and
2026-12-01 (each section gives its date; the 2026-12-01 machine's CPU has AMX-BF16, the earlier
one had no bf16 instructions). During the 2026-11-21 runs the machine was shared with other jobs (load
average 4-9 on 2 cores), so **their absolute speeds are several times lower than on an idle machine;
the goals are ratios measured within one run**, where the load hits every configuration alike. The
store and main-job sections were rerun on the idle machine on 2026-11-22. Each section names the
command that reproduces it; each script
writes its own section into `benchmarks/results/`, and `python benchmarks/assemble_results.py`
rebuilds this file.

"""


def main():
    parts = {p.stem: p for p in (HERE / "results").glob("*.md")}
    names = [n for n in ORDER if n in parts] + sorted(set(parts) - set(ORDER))
    body = "\n\n".join(parts[n].read_text().strip() for n in names)
    (HERE / "RESULTS.md").write_text(HEADER + body + "\n")
    print(f"wrote {HERE / 'RESULTS.md'} from {', '.join(names)}")


if __name__ == "__main__":
    main()
