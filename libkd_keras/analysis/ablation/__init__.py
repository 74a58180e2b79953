"""Ablations from ONE teacher store: Table 4's teacher sets and Figure 11, never running a teacher.

Every experiment reads its teacher targets from the store (the logits were computed once by
`precompute`); the runner builds no teacher and calls none. Three files, read in this order:

- `experiments.py`: what to run: `Experiment`, `table4_experiments(names)` (the paper's teacher
  sets, once per recipe) and `figure11_experiments(names)` (hard vs soft, temperature sweep).
- `runner.py`: `run_ablation(...)` trains them (several seeds if asked), evaluates the class head,
  the distillation head and their average; each run is a `train_student` record (resumable).
- `tables.py`: `summarize` and `ablation_table`: Table 4's columns plus the gain over the student
  baseline of the same recipe (mean, and its std over seeds), written to `ablation.md`/`.json`.

Example:
>>> store = TeacherStore.open("saved_models/budget/store/train")
>>> experiments = table4_experiments(store.teacher_names) + figure11_experiments(store.teacher_names)
>>> rows = run_ablation(store, test_split, experiments, "saved_models/budget/ablation",
...                     make_student=lambda distillation: deit_tiny(distillation=distillation),
...                     epochs=50, seeds=(0, 1))
"""

from libkd_keras.analysis.ablation.experiments import (
    FAMILIES,
    FIGURE11_TEMPERATURES,
    TABLE4_SETS,
    Experiment,
    baseline_experiment,
    describe_teacher_set,
    figure11_experiments,
    table4_experiments,
    teacher_families,
)
from libkd_keras.analysis.ablation.runner import RECORD_VERSION, run_ablation
from libkd_keras.analysis.ablation.tables import ablation_table, summarize

__all__ = [
    "FAMILIES",
    "FIGURE11_TEMPERATURES",
    "RECORD_VERSION",
    "TABLE4_SETS",
    "Experiment",
    "ablation_table",
    "baseline_experiment",
    "describe_teacher_set",
    "figure11_experiments",
    "run_ablation",
    "summarize",
    "table4_experiments",
    "teacher_families",
]
