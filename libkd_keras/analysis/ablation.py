"""Ablations from ONE teacher store: Table 4's teacher sets and Figure 11, never running a teacher.

Every experiment reads its teacher targets from the store (the logits were computed once by
`precompute`); the runner builds no teacher and calls none. An experiment names a set of
stored teachers, the distillation type (`none` = the student baseline, `hard`, `soft` at a
temperature), the student recipe (`baseline`, or `superior` with MixUp/CutMix and friends) and
alpha. Each trained student is evaluated three ways (paper Figure 11b-c): the class head, the
distillation head, and their average (the inference output, which is the headline top-1).

Helpers build the paper's experiment lists from the stored teacher names (`resnet26_s0`,
`rednet26_s1`, ...; families are matched by the prefixes `resnet` / `rednet`):

- `table4_experiments(names)`: no teacher, single ResNet, single RedNet, 1 RedNet + 1 ResNet (ours,
  not in the paper), 2 ResNets, 3 RedNets, 3 ResNets, 2 RedNets + 1 ResNet, 2 ResNets + 1 RedNet,
  4 ResNets; each with the `baseline`
  and the `superior` recipe. A set the store cannot provide is kept, marked skipped, with a
  note saying which teachers it lacks.
- `figure11_experiments(names)`: hard vs soft distillation and a temperature sweep of soft
  distillation, from one teacher set.

`run_ablation(...)` trains them (several seeds if asked), writes one JSON per finished
experiment and seed under `out_dir/experiments/` (a rerun skips them: resumable), and writes
`out_dir/ablation.md` and `out_dir/ablation.json`: one table with the Table 4 columns plus the
gain over the student baseline of the same recipe (mean, and its std over seeds).

Example:
>>> store = TeacherStore.open("saved_models/budget/store/train")
>>> experiments = table4_experiments(store.teacher_names) + figure11_experiments(store.teacher_names)
>>> rows = run_ablation(store, test_split, experiments, "saved_models/budget/ablation",
...                     make_student=lambda distillation: deit_tiny(distillation=distillation),
...                     epochs=50, seeds=(0, 1))
"""

import dataclasses
import json
import math
import os
import re
import time
from pathlib import Path

import numpy as np

from libkd_keras.atomic_files import json_safe, write_text_atomic

DISTILLATIONS = ("none", "hard", "soft")
RECIPES = ("baseline", "superior")
HEADS = ("cls", "dist", "both")  # Figure 11b-c: class token, distillation token, their average
FAMILIES = ("resnet", "rednet")
RECORD_VERSION = 1

# Table 4 of the paper, in its order: (label, ResNets, RedNets). "1 RedNet + 1 ResNet" is ours, not
# the paper's: the smallest complementary set, the only mixed one a store with one teacher per family can run.
TABLE4_SETS = (
    ("none", 0, 0),
    ("single ResNet", 1, 0),
    ("single RedNet", 0, 1),
    ("1 RedNet + 1 ResNet", 1, 1),
    ("2 ResNets", 2, 0),
    ("3 RedNets", 0, 3),
    ("3 ResNets", 3, 0),
    ("2 RedNets + 1 ResNet", 1, 2),
    ("2 ResNets + 1 RedNet", 2, 1),
    ("4 ResNets", 4, 0),
)
FIGURE11_TEMPERATURES = (1.0, 2.0, 4.0, 8.0, 16.0)

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


@dataclasses.dataclass(frozen=True)
class Experiment:
    """One student to train from the store.

    - `name`: unique, used for the result file (letters, digits, `_ . + -`).
    - `teachers`: stored teacher names whose ensemble is the target; `()` for the baseline.
    - `teacher_set`: the label in the table (e.g. "2 RedNets + 1 ResNet").
    - `distillation`: "none" (student baseline, no distillation token), "hard" or "soft".
    - `recipe`: "baseline" or "superior" (MixUp/CutMix, RandAugment, ...; Table 4's lower half).
    - `alpha`: weight of the true-label loss; `temperature`: for soft distillation.
    - `ensemble`: how stored teachers are combined, "soft" (averaging) or "vote".
    - `group`: which figure or table it belongs to ("table4", "figure11", ...).
    - `skip`: why it cannot run on this store ("" when it can).
    """

    name: str
    teachers: tuple = ()
    teacher_set: str = ""
    distillation: str = "hard"
    recipe: str = "baseline"
    alpha: float = 0.5
    temperature: float = 1.0
    ensemble: str = "soft"
    group: str = "custom"
    skip: str = ""

    def __post_init__(self):
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ValueError(
                f"experiment name {self.name!r} must start with a letter or digit and hold only letters, "
                "digits and `_ . + -` (it names the result file)."
            )
        object.__setattr__(self, "teachers", tuple(self.teachers))
        if self.distillation not in DISTILLATIONS:
            raise ValueError(f"experiment {self.name!r}: `distillation` must be one of {DISTILLATIONS}; "
                             f"got {self.distillation!r}.")
        if self.recipe not in RECIPES:
            raise ValueError(f"experiment {self.name!r}: `recipe` must be one of {RECIPES}; got {self.recipe!r}.")
        if not self.skip and (self.distillation == "none") != (not self.teachers):
            raise ValueError(
                f"experiment {self.name!r}: distillation='none' goes with no teachers and 'hard'/'soft' with "
                f"at least one; got distillation={self.distillation!r} and teachers={self.teachers}."
            )
        if not 0.0 <= float(self.alpha) <= 1.0:
            raise ValueError(f"experiment {self.name!r}: `alpha` must be in [0, 1]; got {self.alpha!r}.")
        if not float(self.temperature) > 0:
            raise ValueError(f"experiment {self.name!r}: `temperature` must be positive; got {self.temperature!r}.")
        object.__setattr__(self, "alpha", float(self.alpha))
        object.__setattr__(self, "temperature", float(self.temperature))
        if not self.teacher_set:
            object.__setattr__(self, "teacher_set", describe_teacher_set(self.teachers))

    @property
    def is_baseline(self):
        return self.distillation == "none"

    def settings(self):
        """What determines the result (a stored result with other settings is recomputed)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in ("name", "group", "skip", "teacher_set")}


# ---------------------------------------------------------------------------- teacher families


def _natural_key(name):
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def teacher_families(teacher_names):
    """`{"resnet": [...], "rednet": [...]}`: stored names by family prefix, naturally sorted.

    Example:
    >>> teacher_families(["rednet26_s1", "resnet26_s10", "resnet26_s2"])
    {'resnet': ['resnet26_s2', 'resnet26_s10'], 'rednet': ['rednet26_s1']}
    """
    families = {family: [] for family in FAMILIES}
    for name in sorted(teacher_names, key=_natural_key):
        for family in FAMILIES:
            if name.lower().startswith(family):
                families[family].append(name)
    return families


def describe_teacher_set(teachers):
    """A Table 4 style label: "none", "single ResNet", "2 RedNets + 1 ResNet", ..."""
    if not teachers:
        return "none"
    families = teacher_families(teachers)
    others = len(teachers) - sum(len(v) for v in families.values())
    parts = []
    for family, word in (("rednet", "RedNet"), ("resnet", "ResNet")):
        count = len(families[family])
        if count:
            parts.append(f"{count} {word}s" if count > 1 else f"1 {word}")
    if others:
        parts.append(f"{others} other" + ("s" if others > 1 else ""))
    if len(teachers) == 1:
        return "single " + parts[0][2:]
    # The larger family first, as the paper writes "2 RedNets + 1 ResNet".
    return " + ".join(sorted(parts, key=lambda p: -int(p.split()[0])))


def _slug(label):
    return re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")


def _pick(families, resnets, rednets):
    """The first `resnets` ResNets and `rednets` RedNets, or the reason they are not there."""
    missing = []
    for family, word, count in (("resnet", "ResNet", resnets), ("rednet", "RedNet", rednets)):
        have = families[family]
        if count > len(have):
            missing.append(f"{count} {word}{'s' if count > 1 else ''} (the store has {len(have)}"
                           + (f": {', '.join(have)}" if have else "") + ")")
    if missing:
        return None, "needs " + " and ".join(missing)
    return tuple(families["resnet"][:resnets] + families["rednet"][:rednets]), ""


def baseline_experiment(recipe="baseline"):
    """The student alone (no distillation token, no teacher) with `recipe`; gains are measured against it."""
    return Experiment(
        name="baseline" if recipe == "baseline" else f"baseline-{recipe}",
        teachers=(), teacher_set="none", distillation="none", recipe=recipe, group="baseline",
    )


def table4_experiments(teacher_names, recipes=RECIPES, alpha=0.5, distillation="hard", ensemble="soft"):
    """Table 4's teacher sets (rows in the paper's order), once per recipe.

    Teachers are the first stored names of each family (natural order: `resnet26_s0`,
    `resnet26_s1`, ...). Sets needing more teachers of a family than the store holds come back
    with `skip` set to a note such as "needs 3 RedNets (the store has 1: rednet26_s0)".

    Example:
    >>> [e.name for e in table4_experiments(["resnet26_s0", "rednet26_s0"], recipes=("baseline",))][:3]
    ['baseline', 't4-single-resnet', 't4-single-rednet']
    """
    families = teacher_families(teacher_names)
    experiments = []
    for recipe in recipes:
        suffix = "" if recipe == "baseline" else f"-{recipe}"
        for label, resnets, rednets in TABLE4_SETS:
            if not resnets and not rednets:
                experiments.append(dataclasses.replace(baseline_experiment(recipe), group="table4"))
                continue
            teachers, skip = _pick(families, resnets, rednets)
            experiments.append(Experiment(
                name=f"t4-{_slug(label)}{suffix}", teachers=teachers or (), teacher_set=label,
                distillation=distillation, recipe=recipe, alpha=alpha, ensemble=ensemble, group="table4",
                skip=skip,
            ))
    return experiments


def figure11_experiments(teacher_names, teachers=None, temperatures=FIGURE11_TEMPERATURES, alpha=0.5,
                         recipe="baseline", ensemble="soft", include_baseline=True):
    """Figure 11: hard vs soft distillation, and soft distillation across `temperatures`.

    All from one teacher set: `teachers` (names) or, by default, every stored teacher (the
    complementary ResNet + RedNet ensemble). Every trained student is evaluated with the class
    head, the distillation head and both (Figure 11b-c) by `run_ablation` itself. With
    `include_baseline`, the student baseline of `recipe` is added so gains can be computed.

    Example:
    >>> [e.name for e in figure11_experiments(["resnet26_s0", "rednet26_s0"], temperatures=(1, 4))]
    ['baseline', 'f11-hard', 'f11-soft-t1', 'f11-soft-t4']
    """
    stored = list(teacher_names)
    chosen = tuple(stored if teachers is None else teachers)
    unknown = [t for t in chosen if t not in stored]
    if unknown or not chosen:
        raise ValueError(f"figure 11 teachers {list(chosen) or '[]'} are not all in the store; "
                         f"stored teachers: {stored}.")
    label = describe_teacher_set(chosen)
    experiments = [dataclasses.replace(baseline_experiment(recipe), group="figure11")] if include_baseline else []
    suffix = "" if recipe == "baseline" else f"-{recipe}"
    experiments.append(Experiment(name=f"f11-hard{suffix}", teachers=chosen, teacher_set=label,
                                  distillation="hard", recipe=recipe, alpha=alpha, ensemble=ensemble,
                                  group="figure11"))
    for temperature in temperatures:
        experiments.append(Experiment(
            name=f"f11-soft-t{float(temperature):g}{suffix}", teachers=chosen, teacher_set=label,
            distillation="soft", temperature=temperature, recipe=recipe, alpha=alpha, ensemble=ensemble,
            group="figure11",
        ))
    return experiments


def _unique(experiments):
    """Experiments by name, in order; the same name twice must mean the same experiment."""
    seen = {}
    for experiment in experiments:
        if not isinstance(experiment, Experiment):
            raise TypeError(f"`experiments` must hold Experiment objects; got {type(experiment).__name__}.")
        previous = seen.get(experiment.name)
        if previous is not None and previous.settings() != experiment.settings():
            raise ValueError(f"two different experiments are named {experiment.name!r}; rename one.")
        seen.setdefault(experiment.name, experiment)
    return list(seen.values())


# ------------------------------------------------------------------------- files and tables


def _record_path(out_dir, experiment, seed):
    return Path(out_dir) / "experiments" / f"{experiment.name}__seed{seed}.json"


def _load_record(path, experiment, seed, run_settings):
    """A finished result for exactly these settings, or None."""
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    same = (record.get("version") == RECORD_VERSION and record.get("seed") == seed
            and record.get("settings") == json_safe(experiment.settings())
            and record.get("run_settings") == json_safe(run_settings))
    return record if same else None


def _fmt(value, digits=2, signed=False):
    if value is None:
        return "—"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _millions(count):
    if count is None:
        return "—"
    return f"{count / 1e6:.2f}M" if count >= 100_000 else f"{count:,}"


def ablation_table(rows):
    """The rows of `run_ablation` as one Markdown table (Table 4's columns, the heads, the gain)."""
    header = ("| experiment | teacher set | distillation | mixup/cutmix | alpha | params | size MB | "
              "student params | epochs | top-1 | top-5 | cls top-1 | dist top-1 | gain | note |")
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for row in rows:
        distillation = row["distillation"]
        if distillation == "soft":
            distillation = f"soft (T={row['temperature']:g})"
        if row["ensemble"] == "vote" and row["teachers"]:
            distillation += ", vote"
        gain = _fmt(row["gain"], signed=True)
        if row["gain"] is not None and row.get("gain_std") is not None:
            gain += f" ± {row['gain_std']:.2f}"
        if row["status"] != "done":
            cells = [row["experiment"], row["teacher_set"], distillation, "✓" if row["mixup_cutmix"] else "✗",
                     _fmt(row["alpha"]) if row["teachers"] else "—", _millions(row["params"]),
                     _fmt(row["size_mb"], 1), "—", str(row["epochs"]), "—", "—", "—", "—", "—",
                     f"{row['status']}: {row['note']}"]
        else:
            cells = [row["experiment"], row["teacher_set"], distillation, "✓" if row["mixup_cutmix"] else "✗",
                     _fmt(row["alpha"]) if row["teachers"] else "—", _millions(row["params"]),
                     _fmt(row["size_mb"], 1), _millions(row["student_params"]), str(row["epochs"]),
                     _fmt(row["top1"]), _fmt(row["top5"]), _fmt(row["top1_cls"]), _fmt(row["top1_dist"]), gain,
                     row["note"]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# -------------------------------------------------------------------------------- the runner

def _seed_list(seeds):
    seeds = [seeds] if isinstance(seeds, int) else list(seeds)
    if not seeds or any(not isinstance(s, int) or isinstance(s, bool) or s < 0 for s in seeds):
        raise ValueError(f"`seeds` must be non-negative integers, e.g. (0, 1, 2); got {seeds!r}.")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"`seeds` repeats a seed: {seeds}.")
    return seeds


def _as_split(data, what):
    """A `Split` from a `Split`, a `TeacherStore` holding images, or a store's path."""
    from libkd_keras.data import Split
    from libkd_keras.store import TeacherStore

    if isinstance(data, Split):
        return data
    if isinstance(data, (str, os.PathLike)):
        data = TeacherStore.open(data)
    if isinstance(data, TeacherStore):
        return data.to_split()
    raise TypeError(f"`{what}` must be a Split, a TeacherStore or a store path; got {type(data).__name__}.")


def evaluate_heads(student, images, labels, batch_size=256):
    """Top-1 / top-5 (percent) of the class head, the distillation head and their average.

    Returns `{"top1": {"cls", "dist", "both"}, "top5": {...}}`; a student without a
    distillation token has only `"cls"` (its inference output).
    """
    from keras import ops

    heads = HEADS if getattr(student, "distillation", False) else ("cls",)
    labels = np.asarray(labels).reshape(-1)
    k = min(5, int(student.num_classes))
    correct1 = {h: 0 for h in heads}
    correct5 = {h: 0 for h in heads}
    for start in range(0, len(labels), batch_size):
        x = np.asarray(images[start:start + batch_size], dtype=np.float32)
        y = labels[start:start + batch_size]
        cls, dist = (ops.convert_to_numpy(ops.cast(o, "float32")) for o in student.heads(x, training=False))
        outputs = {"cls": cls, "dist": dist, "both": (cls + dist) / 2}
        for head in heads:
            order = np.argsort(-outputs[head], axis=1)
            correct1[head] += int(np.sum(order[:, 0] == y))
            correct5[head] += int(np.sum(np.any(order[:, :k] == y[:, None], axis=1)))
    n = max(len(labels), 1)
    return {"top1": {h: 100.0 * correct1[h] / n for h in heads},
            "top5": {h: 100.0 * correct5[h] / n for h in heads}}


def _train_and_evaluate(experiment, seed, store, train_split, test_split, make_student, epochs, batch_size,
                        recipe_overrides, compile_options, verbose):
    """Train one student from the store (no teacher is built or called) and evaluate its heads."""
    import keras

    from libkd_keras.distill import RECIPES
    from libkd_keras.distill import make_student as make_deit

    recipe = RECIPES[experiment.recipe](
        batch_size=batch_size, distillation=experiment.distillation, alpha=experiment.alpha,
        temperature=experiment.temperature, **recipe_overrides,
    )
    policy = keras.mixed_precision.dtype_policy()
    keras.utils.set_random_seed(seed)
    try:
        recipe.apply_precision()
        token = not experiment.is_baseline
        if make_student is None:
            student = make_deit(recipe, num_classes=store.num_classes, image_size=tuple(store.image_shape[:2]),
                                distillation_token=token)
        else:
            student = make_student(token)
        if int(student.num_classes) != store.num_classes:
            raise ValueError(f"`make_student` built a student with {student.num_classes} classes; the store has "
                             f"{store.num_classes}.")
        distiller = recipe.distiller(student)
        data = store.dataset(
            teachers=list(experiment.teachers) or None, ensemble=experiment.ensemble,
            target="soft" if experiment.distillation == "soft" else "hard", temperature=experiment.temperature,
            batch_size=batch_size, shuffle=True, seed=seed, split=train_split,
        )
        data = recipe.augment(data, store.num_classes, seed=seed)
        steps = math.ceil(len(train_split) / batch_size)
        distiller.compile(optimizer=recipe.optimizer(steps_per_epoch=steps, epochs=epochs), **compile_options)
        start = time.perf_counter()
        history = distiller.fit(data, epochs=epochs, verbose=verbose)
        seconds = time.perf_counter() - start
        scores = evaluate_heads(student, test_split.images, test_split.labels)
        params = int(sum(int(np.prod(w.shape)) for w in student.trainable_weights))
    finally:
        keras.mixed_precision.set_dtype_policy(policy)
    last = {k: float(v[-1]) for k, v in history.history.items() if v}
    return {**scores, "student_params": params, "train_seconds": seconds, "final_logs": last}


def _teacher_columns(store, teachers):
    """Table 4's `#Params` and `Param Size` of a teacher set, from the stored teacher metadata."""
    params = size = 0
    for name in teachers:
        meta = store.teacher_metadata(name)
        count = meta.get("trainable_parameters", meta.get("params"))
        if count is None:
            return None, None
        params += int(count)
        size += float(meta.get("size_mb", int(count) * 4 / 2**20))
    return (params, size) if teachers else (None, None)


def _mean_std(values):
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    return float(np.mean(values)), (float(np.std(values, ddof=1)) if len(values) > 1 else None)


def summarize(experiments, records, epochs, teacher_columns=None):
    """Table rows from per-seed records: `{experiment name: {seed: record}}` (missing = not run).

    Each row's `top1`/`top5` are the mean over seeds of the inference output (both heads'
    average; the class head for the baseline), in percent; `top1_cls`/`top1_dist` the single
    heads. `gain` is the mean over seeds of `top1 - baseline top1` (same seed, the baseline of
    the same recipe), `gain_std` its sample std when there are several seeds.
    """
    baselines = {e.recipe: e.name for e in experiments if e.is_baseline}
    rows = []
    for experiment in experiments:
        runs = records.get(experiment.name, {})
        params, size = (teacher_columns or {}).get(experiment.name, (None, None))
        row = {
            "experiment": experiment.name, "group": experiment.group, "teacher_set": experiment.teacher_set,
            "teachers": list(experiment.teachers), "distillation": experiment.distillation,
            "temperature": experiment.temperature, "ensemble": experiment.ensemble, "recipe": experiment.recipe,
            "mixup_cutmix": experiment.recipe == "superior", "alpha": experiment.alpha, "params": params,
            "size_mb": size, "epochs": epochs, "seeds": sorted(runs), "student_params": None,
            "top1": None, "top5": None, "top1_cls": None, "top1_dist": None, "top1_per_seed": {},
            "gain": None, "gain_std": None, "status": "done", "note": "",
        }
        if experiment.skip:
            row.update(status="skipped", note=experiment.skip)
        elif not runs:
            row.update(status="missing", note="not run")
        else:
            main = "cls" if experiment.is_baseline else "both"
            top1 = {seed: r["top1"][main] for seed, r in runs.items()}
            row["top1_per_seed"] = {str(seed): v for seed, v in sorted(top1.items())}
            row["top1"], _ = _mean_std(list(top1.values()))
            row["top5"], _ = _mean_std([r["top5"][main] for r in runs.values()])
            row["top1_cls"], _ = _mean_std([r["top1"].get("cls") for r in runs.values()])
            row["top1_dist"], _ = _mean_std([r["top1"].get("dist") for r in runs.values()])
            row["student_params"] = next(iter(runs.values())).get("student_params")
            base = records.get(baselines.get(experiment.recipe), {})
            paired = [top1[s] - base[s]["top1"]["cls"] for s in sorted(top1) if s in base]
            row["gain"], row["gain_std"] = _mean_std(paired)
            if experiment.recipe not in baselines:
                row["note"] = f"no {experiment.recipe} baseline in this ablation"
            elif not paired:
                row["note"] = "its baseline has not run for the same seeds"
        rows.append(row)
    return rows


def run_ablation(
    store,
    test,
    experiments,
    out_dir,
    *,
    make_student=None,
    epochs=1,
    batch_size=128,
    seeds=(0,),
    train_split=None,
    recipe_overrides=None,
    compile_options=None,
    verbose=0,
    log=print,
):
    """Train every experiment from ONE store, evaluate it, and write the ablation table.

    Args:
        store: the training split's `TeacherStore` (or its path). Teacher targets are read from
            it; no teacher is built or run.
        test: the test data: a `Split`, or a `TeacherStore`/path holding the test images.
        experiments: `Experiment`s, e.g. `table4_experiments(store.teacher_names)`; skipped ones
            appear in the table with their note. The same name twice must be the same experiment.
        out_dir: results folder: `experiments/<name>__seed<k>.json` per finished run (kept and
            skipped on rerun when its settings match), `ablation.json` and `ablation.md`.
        make_student: `make_student(distillation_token: bool) -> DeiT`, called once per run after
            the seed and the recipe's precision are set; default: DeiT-Tiny (patch 4) with the
            recipe's drop path. Baselines get no distillation token. Changing it between reruns
            is not detected: use a new `out_dir`.
        epochs, batch_size: the same for every student (equal student budget).
        seeds: one run per seed; gains get their std over seeds when there are several.
        train_split: the `Split` the store was computed on (default: the store's own images).
        recipe_overrides: `StudentRecipe` fields changed for every run (e.g. `warmup_epochs=1`).
        compile_options: extra `Distiller.compile` arguments (e.g. `{"jit_compile": False}`).
        log: called with one line per run (`None` for silence).

    Returns the table rows (dicts; accuracies in percent), also in `ablation.json`.
    """
    from libkd_keras.store import TeacherStore

    store = TeacherStore.open(store) if isinstance(store, (str, os.PathLike)) else store
    experiments = _unique(experiments)
    seeds = _seed_list(seeds)
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"`epochs` must be a positive integer; got {epochs!r}.")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive integer; got {batch_size!r}.")
    recipe_overrides = dict(recipe_overrides or {})
    compile_options = dict(compile_options or {})
    if "optimizer" in compile_options:
        raise ValueError("`compile_options` may not set the optimizer: it comes from the experiment's recipe.")
    reserved = {"batch_size", "distillation", "alpha", "temperature"} & set(recipe_overrides)
    if reserved:
        raise ValueError(f"`recipe_overrides` may not set {sorted(reserved)}: they are per experiment "
                         "(`Experiment` fields) or arguments of run_ablation.")
    for experiment in experiments:
        unknown = [t for t in experiment.teachers if t not in store.teacher_names]
        if unknown and not experiment.skip:
            raise ValueError(f"experiment {experiment.name!r} asks for teachers {unknown} that store "
                             f"{store.path!r} does not hold; stored teachers: {store.teacher_names}.")
    log = log or (lambda line: None)
    out_dir = Path(out_dir)
    train_split = store.to_split() if train_split is None else train_split
    store.check_matches(train_split)
    test_split = _as_split(test, "test")
    if test_split.num_classes != store.num_classes:
        raise ValueError(f"the test data has {test_split.num_classes} classes and the store {store.num_classes}.")
    run_settings = {
        "epochs": epochs, "batch_size": batch_size, "recipe_overrides": recipe_overrides,
        "train_fingerprint": store.fingerprint, "test_fingerprint": test_split.fingerprint,
        "default_student": make_student is None,
    }

    records = {}
    runnable = [e for e in experiments if not e.skip]
    total, done = len(runnable) * len(seeds), 0
    for experiment in experiments:
        if experiment.skip:
            log(f"[ablation] {experiment.name}: skipped, {experiment.skip}")
            continue
        for seed in seeds:
            done += 1
            path = _record_path(out_dir, experiment, seed)
            record = _load_record(path, experiment, seed, run_settings)
            if record is None:
                result = _train_and_evaluate(experiment, seed, store, train_split, test_split, make_student,
                                             epochs, batch_size, recipe_overrides, compile_options, verbose)
                record = json_safe({"version": RECORD_VERSION, "experiment": experiment.name, "seed": seed,
                                 "settings": experiment.settings(), "run_settings": run_settings, **result})
                write_text_atomic(path, json.dumps(record, indent=1) + "\n")
                how = f"trained in {record['train_seconds']:.1f}s"
            else:
                how = "already done"
            main = "cls" if experiment.is_baseline else "both"
            log(f"[ablation {done}/{total}] {experiment.name} seed {seed}: top-1 {record['top1'][main]:.2f}% ({how})")
            records.setdefault(experiment.name, {})[seed] = record

    columns = {e.name: _teacher_columns(store, e.teachers) for e in runnable}
    rows = summarize(experiments, records, epochs, columns)
    table = ablation_table(rows)
    summary = {"epochs": epochs, "batch_size": batch_size, "seeds": seeds, "store": store.path,
               "train_examples": len(train_split), "test_examples": len(test_split), "rows": rows}
    write_text_atomic(out_dir / "ablation.json", json.dumps(json_safe(summary), indent=1) + "\n")
    write_text_atomic(out_dir / "ablation.md", "\n".join([
        "## Ablation: teacher sets, distillation type, temperature (one store, no teacher re-run)", "",
        f"{len(train_split)} training and {len(test_split)} test images, {epochs} epochs, batch {batch_size}, "
        f"seeds {seeds}. Top-1/top-5 in %: the inference output (average of the class and distillation "
        "heads; the class head for baselines); cls/dist: each head alone. Params and size: the teachers' "
        "(paper Table 4). Gain: top-1 minus the student baseline of the same recipe, same seed"
        + (" (mean ± std over seeds)." if len(seeds) > 1 else "."), "", table, "",
    ]))
    return rows
