"""Planning an ablation: the experiments of Table 4 and Figure 11, from the stored teacher names.

An `Experiment` names a set of stored teachers and the `StudentRecipe` it trains with (the one
type of a [student] section and a [[students]] entry): its distillation type (`none` = the student
baseline, `hard`, `soft` at a temperature), named recipe (`baseline`, or `superior` with
MixUp/CutMix and friends), alpha and every other setting. Families are matched by the name prefixes `resnet` /
`rednet` (`resnet26_s0`, `rednet26_s1`, ...):

- `table4_experiments(names)`: no teacher, single ResNet, single RedNet, 1 RedNet + 1 ResNet (ours,
  not in the paper), 2 ResNets, 3 RedNets, 3 ResNets, 2 RedNets + 1 ResNet, 2 ResNets + 1 RedNet,
  4 ResNets; each with the `baseline` and the `superior` recipe. A set the store cannot provide
  is kept, marked skipped, with a note saying which teachers it lacks.
- `figure11_experiments(names)`: hard vs soft distillation and a temperature sweep of soft
  distillation, from one teacher set.

Example:
>>> [e.name for e in table4_experiments(["resnet26_s0", "rednet26_s0"], recipes=("baseline",))][:3]
['baseline', 't4-single-resnet', 't4-single-rednet']
"""

import dataclasses
import re

from libkd_keras import choices
from libkd_keras.recipes import StudentRecipe, baseline

FAMILIES = choices.TEACHER_FAMILIES

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
    """One student to train from the store: a name, its teachers, and its `StudentRecipe`.

    - `name`: unique, used for the result file (letters, digits, `_ . + -`).
    - `teachers`: stored teacher names whose ensemble is the target; `()` for the baseline.
    - `student`: the `StudentRecipe` it trains with (the [student] section, or `baseline(...)`, with
      `.replace(...)` for what this experiment changes); its `distillation` is "none" (the student
      baseline, no distillation token), "hard" or "soft".
    - `teacher_set`: the label in the table (e.g. "2 RedNets + 1 ResNet").
    - `group`: which figure or table it belongs to ("table4", "figure11", ...).
    - `skip`: why it cannot run on this store ("" when it can).

    Example:
    >>> Experiment("f11-soft-t4", teachers=("resnet26_s0",), student=baseline(distillation="soft", temperature=4.0))
    """

    name: str
    teachers: tuple = ()
    teacher_set: str = ""
    group: str = "custom"
    skip: str = ""
    student: StudentRecipe = dataclasses.field(default_factory=baseline)

    def __post_init__(self):
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ValueError(
                f"experiment name {self.name!r} must start with a letter or digit and hold only letters, "
                "digits and `_ . + -` (it names the result file)."
            )
        object.__setattr__(self, "teachers", tuple(self.teachers))
        if not isinstance(self.student, StudentRecipe):
            raise TypeError(f"experiment {self.name!r}: `student` must be a StudentRecipe; got {self.student!r}.")
        if not self.skip and (self.distillation == "none") != (not self.teachers):
            raise ValueError(
                f"experiment {self.name!r}: distillation='none' goes with no teachers and 'hard'/'soft' with "
                f"at least one; got distillation={self.distillation!r} and teachers={self.teachers}."
            )
        if not self.teacher_set:
            object.__setattr__(self, "teacher_set", describe_teacher_set(self.teachers))

    # The student's settings the tables show, read from the one recipe.
    distillation = property(lambda self: self.student.distillation)
    recipe = property(lambda self: self.student.recipe)
    alpha = property(lambda self: self.student.alpha)
    temperature = property(lambda self: self.student.temperature)
    ensemble = property(lambda self: self.student.ensemble)

    @property
    def is_baseline(self):
        return self.distillation == "none"

    def settings(self):
        """What determines the result (a stored result with other settings is recomputed)."""
        return {"teachers": self.teachers, **dataclasses.asdict(self.student)}


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
            missing.append(
                f"{count} {word}{'s' if count > 1 else ''} (the store has {len(have)}"
                + (f": {', '.join(have)}" if have else "")
                + ")"
            )
    if missing:
        return None, "needs " + " and ".join(missing)
    return tuple(families["resnet"][:resnets] + families["rednet"][:rednets]), ""


def baseline_experiment(student=None):
    """The student alone (no distillation token, no teacher) with `student`'s recipe; gains are measured against it."""
    student = (student or baseline()).replace(distillation="none")
    return Experiment(
        name="baseline" if student.recipe == "baseline" else f"baseline-{student.recipe}",
        teachers=(),
        teacher_set="none",
        group="baseline",
        student=student,
    )


def table4_experiments(teacher_names, recipes=choices.TABLE4_RECIPES, student=None):
    """Table 4's teacher sets (rows in the paper's order), once per recipe.

    Every experiment's student is `student` (a `StudentRecipe`; default `baseline()`: hard
    distillation, alpha 0.5) with `recipe` replaced by each of `recipes` (the fields set in
    `student` itself stay as set).

    Teachers are the first stored names of each family (natural order: `resnet26_s0`,
    `resnet26_s1`, ...). Sets needing more teachers of a family than the store holds come back
    with `skip` set to a note such as "needs 3 RedNets (the store has 1: rednet26_s0)". Stored
    teachers of no family (the user's own, `[[teachers.models]]`) add a row each ("single NAME",
    `t4-own-NAME`) and one with every stored teacher ("all N teachers", `t4-all-teachers`).

    Example:
    >>> [e.name for e in table4_experiments(["resnet26_s0", "rednet26_s0"], recipes=("baseline",))][:3]
    ['baseline', 't4-single-resnet', 't4-single-rednet']
    """
    families = teacher_families(teacher_names)
    base = student or baseline()
    experiments = []
    for recipe in recipes:
        kd = base.replace(recipe=recipe)
        suffix = "" if recipe == "baseline" else f"-{recipe}"
        for label, resnets, rednets in TABLE4_SETS:
            if not resnets and not rednets:
                experiments.append(dataclasses.replace(baseline_experiment(kd), group="table4"))
                continue
            teachers, skip = _pick(families, resnets, rednets)
            experiments.append(
                Experiment(
                    name=f"t4-{_slug(label)}{suffix}",
                    teachers=teachers or (),
                    teacher_set=label,
                    group="table4",
                    skip=skip,
                    student=kd,
                )
            )
        experiments += _own_teacher_rows(teacher_names, families, suffix, kd)
    return experiments


def _own_teacher_rows(teacher_names, families, suffix, student):
    """Table 4 rows of the stored teachers outside the ResNet/RedNet families: each alone, then all teachers."""
    in_families = {name for members in families.values() for name in members}
    own = [name for name in sorted(teacher_names, key=_natural_key) if name not in in_families]
    sets = [(f"t4-own-{name}", (name,), f"single {name}") for name in own]
    if own and len(teacher_names) > 1:
        every = tuple(sum(families.values(), [])) + tuple(own)
        sets.append(("t4-all-teachers", every, f"all {len(every)} teachers"))
    return [
        Experiment(name=name + suffix, teachers=teachers, teacher_set=label, group="table4", student=student)
        for name, teachers, label in sets
    ]


def figure11_experiments(
    teacher_names, teachers=None, temperatures=FIGURE11_TEMPERATURES, student=None, include_baseline=True
):
    """Figure 11: hard vs soft distillation, and soft distillation across `temperatures`.

    All from one teacher set: `teachers` (names) or, by default, every stored teacher (the
    complementary ResNet + RedNet ensemble), each with `student` (a `StudentRecipe`; default
    `baseline()`) at that distillation and temperature. Every trained student is evaluated with the
    class head, the distillation head and both (Figure 11b-c) by `run_ablation` itself. With
    `include_baseline`, the student baseline of that recipe is added so gains can be computed.

    Example:
    >>> [e.name for e in figure11_experiments(["resnet26_s0", "rednet26_s0"], temperatures=(1, 4))]
    ['baseline', 'f11-hard', 'f11-soft-t1', 'f11-soft-t4']
    """
    stored = list(teacher_names)
    chosen = tuple(stored if teachers is None else teachers)
    unknown = [t for t in chosen if t not in stored]
    if unknown or not chosen:
        raise ValueError(
            f"figure 11 teachers {list(chosen) or '[]'} are not all in the store; stored teachers: {stored}."
        )
    student = student or baseline()
    label = describe_teacher_set(chosen)
    experiments = [dataclasses.replace(baseline_experiment(student), group="figure11")] if include_baseline else []
    suffix = "" if student.recipe == "baseline" else f"-{student.recipe}"
    common = dict(teachers=chosen, teacher_set=label, group="figure11")
    experiments.append(Experiment(name=f"f11-hard{suffix}", student=student.replace(distillation="hard"), **common))
    for temperature in temperatures:
        soft = student.replace(distillation="soft", temperature=float(temperature))
        experiments.append(Experiment(name=f"f11-soft-t{float(temperature):g}{suffix}", student=soft, **common))
    return experiments


def unique_experiments(experiments):
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
