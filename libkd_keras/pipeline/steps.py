"""The run protocol, written once: a `Step` of a run, and `StepRunner.run_step`, which runs one.

A step (a teacher trained, a split's store, a student, its evaluation, its export) is a `Step`:

    name     its marker key, `steps/<name>.json`: "teacher/resnet26_s0", "store/train", "student/ensemble"
    needs    the steps that must be finished first; one that is not is a `StepOrderError` naming the
             command that makes it (`STEP_COMMANDS`)
    makes    its outputs (paths in the run folder); its marker lists them and records the size and
             sha256 of its model files (`RunFolder.finish`)
    run      the work: `run(announce)` returns a `Made`, or None when it did not finish here (a
             precompute worker whose share did not complete the store); `announce(text)` prints its
             `[....]` line when the work starts

`StepRunner.run_step(step)` is the protocol every step follows:

    1. finished (its marker, every output it lists, its model files as written): "[skip] <title>  (...)"
    2. a marker whose model file changed or went missing: one notice, and the step runs again
    3. its needs, else StepOrderError: "Not finished yet: ... Run 'libkd <command>' ... first"
    4. `run`, timed (wall and CPU seconds) from its `[....]` line
    5. its marker, written last, so a step that fails leaves none: "[done] <title>  <seconds> s  <detail>"

Example:
>>> step = Step("store/analysis", run=analyze, needs=("store/test",), makes=("store/analysis.json",))
>>> pipeline.run_step(step)  # [skip] store analysis  (finished earlier in 0.4 s)
"""

import contextlib
import dataclasses
import time
from typing import Callable

from libkd_keras.distribute import same_on_every_worker

# The command that makes each kind of step ("teacher/<name>" -> libkd train-teacher); the pipeline's
# stages, in order (`runner.STAGES`), are these kinds.
STEP_COMMANDS = {
    "teacher": "train-teacher",
    "store": "precompute",
    "student": "distill",
    "evaluate": "evaluate",
    "export": "export",
}


class StepOrderError(ValueError):
    """A step was asked for before the steps it needs (the message names the command to run first)."""


def command_for(step):
    """The `libkd` command that makes `step` ("teacher/x" -> "train-teacher"; "pipeline" when none does alone)."""
    return STEP_COMMANDS.get(step.split("/", 1)[0], "pipeline")


@dataclasses.dataclass(frozen=True)
class Made:
    """What a step's `run` made, for its marker and its `[done]` line.

    Args:
        summary: dict. Recorded in the marker (with the step's CPU seconds).
        detail: str. The end of its `[done]` line, e.g. "top-1 71.2%".
        outputs: paths it wrote beyond the step's `makes` (known only once it ran, e.g. the .tflite files).
        title: str or None. The `[done]` line's name where it says more than the step's, e.g.
            "teacher resnet26_s0 (copied from RUN)".
    """

    summary: dict = dataclasses.field(default_factory=dict)
    detail: str = ""
    outputs: tuple = ()
    title: str = None


@dataclasses.dataclass(frozen=True)
class Step:
    """One step of a run; see the module docstring.

    Args:
        name: str. Its marker key, "<kind>/<what>".
        run: callable. `run(announce) -> Made | None`.
        needs: the names of the steps that must be finished first.
        makes: its outputs, relative to the run folder.
        redo: bool. Run it even when it is finished (`libkd precompute --force`); its old marker
            stays until the new one replaces it.
        marker: bool. False for work that keeps its own records (the ablation) or is cheap (the CKA
            analysis): it runs every time and writes no marker.
    """

    name: str
    run: Callable
    needs: tuple = ()
    makes: tuple = ()
    redo: bool = False
    marker: bool = True

    @property
    def title(self):
        """How the progress lines name it: "teacher/resnet26_s0" -> "teacher resnet26_s0"."""
        return self.name.replace("/", " ", 1)


class StepRunner:
    """Runs `Step`s in one run folder (`folder`, a locked `RunFolder`); `say` receives every progress line."""

    def __init__(self, folder, say=print):
        self.folder, self.say = folder, say
        self.noticed = set()  # steps whose damaged model files were already named

    def finished(self, step):
        """Whether `step` is finished; under multi-worker training, the same answer on every worker or an error."""
        return same_on_every_worker(
            self.folder.done(step),
            f"whether step {step} is finished",
            fix="Copy the run folder of a worker that finished it (the chief's) over the others' and rerun.",
        )

    def require(self, needs):
        """A `StepOrderError` naming the steps of `needs` not finished, and the command that makes them."""
        missing = [s for s in needs if not self.folder.done(s)]
        if missing:
            commands = " then ".join(f"'libkd {c}'" for c in dict.fromkeys(map(command_for, missing)))
            raise StepOrderError(
                f"Not finished yet: {', '.join(missing)}. Run {commands} with the same options first "
                "(or 'libkd pipeline' for every step)."
            )

    def notice_damaged(self, steps=None):
        """One notice per finished step whose model files were damaged since: it runs again, and how.

        `steps`: the step names to look at (default: every marker of the run folder); each step is named once.
        """
        found = self.folder.damaged_steps() if steps is None else {s: self.folder.damaged(s) for s in steps}
        for step, problems in found.items():
            if problems and step not in self.noticed:
                self.noticed.add(step)
                self.say(
                    f"libkd: notice: {'; '.join(problems)}. Step {step} counts as not finished: "
                    f"'libkd {command_for(step)}' (or 'libkd pipeline') makes it again."
                )

    def nothing_to_do(self, what, why):
        """The line of a stage with no step to run, e.g. "[skip] store  (no teachers configured)"."""
        self.say(f"[skip] {what}  ({why})")

    def run_step(self, step):
        """Runs `step` unless it is finished (see the module docstring); returns its `Made`, or None."""
        if step.marker and not step.redo and self.finished(step.name):
            seconds = self.folder.finished(step.name)["seconds"]
            self.say(f"[skip] {step.title}  (finished earlier in {seconds:.1f} s)")
            return None
        if step.marker:
            self.notice_damaged([step.name])
        self.require(step.needs)
        started = [time.perf_counter(), time.process_time()]

        def announce(text):
            self.say(f"[....] {step.title}{text}")
            started[:] = time.perf_counter(), time.process_time()

        made = step.run(announce)
        if made is None:
            return None
        seconds, cpu_seconds = time.perf_counter() - started[0], time.process_time() - started[1]
        removed = self._finish(step, made, seconds, cpu_seconds) if step.marker else []
        self.say(f"[done] {made.title or step.title}  {seconds:.1f} s{'  ' + made.detail if made.detail else ''}")
        for aside, kept in removed or ():
            self.say(
                f"libkd: deleted the run that --overwrite moved aside to {str(aside)!r}"
                + (" (the folder stays: it also holds files libkd did not write)" if kept else "")
            )
        return made

    def run_steps(self, steps):
        """`run_step` of each step of `steps` (an iterable: a stage's steps are made as it reaches them)."""
        for step in steps:
            self.run_step(step)

    def _finish(self, step, made, seconds, cpu_seconds):
        """Writes the step's marker (after its outputs); returns the runs --overwrite moved aside, now deleted."""
        summary = {**(made.summary or {}), "cpu_seconds": cpu_seconds}
        removed = self.folder.finish(step.name, seconds, outputs=[*step.makes, *made.outputs], summary=summary)
        with contextlib.suppress(OSError):  # empty once no training is in progress (saved_models/README.md)
            self.folder.checkpoints.rmdir()
        return removed
