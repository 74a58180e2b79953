"""A run folder: claimed for one configuration, with one marker per finished step.

`RunFolder.open(path, config, overwrite)` creates the folder or reopens it for the same run.
A folder holding a different run's `config.toml` is refused (the message lists what differs)
unless `overwrite=True`, which deletes that run first; a run that finished no step yet (e.g. it
stopped at a data error) holds nothing to lose and is replaced. A non-empty folder that is not a run
folder is never touched.

A step is finished when its marker `steps/<step>.json` exists and every output it lists still
exists; markers are written last, atomically, so an interrupted step is simply run again.

Example:
>>> folder = RunFolder.open("saved_models/quick", config, overwrite=False)
>>> if not folder.done("teacher/resnet26_s0"):
...     folder.finish("teacher/resnet26_s0", seconds=73.1, outputs=["teachers/resnet26_s0.keras"])
"""

import shutil
import time
from pathlib import Path

from libkd_keras.analysis.artifacts import RunLayout
from libkd_keras.atomic_files import read_json, write_json_atomic, write_text_atomic
from libkd_keras.cli.config import ConfigError, config_differences, parse_config_text, to_toml

RUN_ENTRIES = {"config.toml", "steps", "teachers", "store", "students", "exports", "checkpoints", "logs",
               "plots", "report.md", "ablation", "cka"}


class RunFolder(RunLayout):
    """The run folder of one configuration; see the module docstring."""

    def __init__(self, root, config):
        super().__init__(root)
        self.run_config = config

    @classmethod
    def open(cls, root, config, overwrite=False):
        root = Path(root)
        if root.exists() and not root.is_dir():
            raise ConfigError(f"Output path {str(root)!r} is a file; pass a folder to --out.")
        stored = load_run_config(root)
        if stored is not None:
            differences = config_differences(stored, config)
            if differences and not overwrite and _holds_work(root):
                raise ConfigError(
                    f"Output folder {str(root)!r} holds a different run (its config.toml differs: "
                    + "; ".join(differences[:8]) + ("; ..." if len(differences) > 8 else "")
                    + "). Choose another folder with --out or --name, rerun with the same settings to "
                    "resume it, or pass --overwrite to delete it and start again."
                )
            if differences:
                _delete_run(root)
        elif root.exists() and any(root.iterdir()):
            raise ConfigError(
                f"Output folder {str(root)!r} is not empty and is not a libkd run folder (it has no "
                f"config.toml and holds {', '.join(sorted(p.name for p in root.iterdir())[:5])}); "
                "pass an empty or new folder to --out."
            )
        folder = cls(root, config)
        folder.root.mkdir(parents=True, exist_ok=True)
        if load_run_config(root) is None:
            write_text_atomic(folder.config, to_toml(config))
        return folder

    def done(self, step):
        """Whether `step` finished and its outputs are all still there."""
        marker = read_json(self.marker(step))
        if marker is None:
            return False
        return all((self.root / output).exists() for output in marker.get("outputs", []))

    def finished(self, step):
        """The marker of a finished step (None if it has not finished)."""
        return read_json(self.marker(step)) if self.done(step) else None

    def finish(self, step, seconds, outputs=(), summary=None):
        """Records `step` as finished (call after its outputs are in place)."""
        missing = [o for o in outputs if not (self.root / o).exists()]
        if missing:
            raise RuntimeError(f"Step {step!r} claims outputs that do not exist: {missing}.")
        write_json_atomic(self.marker(step), {
            "step": step,
            "seconds": round(float(seconds), 2),
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "outputs": [str(o) for o in outputs],
            "summary": summary or {},
        })

    def forget(self, step):
        """Removes a step's marker so it runs again."""
        self.marker(step).unlink(missing_ok=True)

    def relative(self, path):
        return str(Path(path).relative_to(self.root))


def load_run_config(root):
    """The resolved config stored in a run folder, or None when it holds none."""
    path = Path(root) / "config.toml"
    if not path.is_file():
        return None
    return parse_config_text(path.read_text(encoding="utf-8"), f"{str(path)!r}")


def _holds_work(root):
    """Whether a run folder holds anything beyond its config: finished steps, checkpoints, logs."""
    return any(p.is_file() and p.name != "config.toml" for p in Path(root).rglob("*"))


def _delete_run(root):
    """Deletes a run folder's entries (only the ones libkd writes)."""
    for entry in Path(root).iterdir():
        if entry.name in RUN_ENTRIES:
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
