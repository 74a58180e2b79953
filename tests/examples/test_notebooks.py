"""The example notebooks are built from their scripts and run top to bottom (small settings)."""

import os
import sys
from pathlib import Path

import nbformat
import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
sys.path.insert(0, str(EXAMPLES))
import build_notebooks  # noqa: E402  (examples/ is not a package)

NOTEBOOKS = sorted(p.name for p in EXAMPLES.glob("[0-9][0-9]_*.ipynb"))


def test_every_script_has_its_notebook_and_they_match():
    scripts = [p.stem for p in build_notebooks.scripts()]
    assert scripts == [Path(n).stem for n in NOTEBOOKS] and len(scripts) >= 3
    for script in build_notebooks.scripts():
        assert script.with_suffix(".ipynb").read_text(encoding="utf-8") == build_notebooks.render(script), (
            f"{script.name} changed after its notebook was built; run `python examples/build_notebooks.py`."
        )


def test_notebook_builder_splits_cells():
    notebook = build_notebooks.notebook_from_script(
        '"""Intro."""\n\n# %% [markdown]\n# # Title\n#\n# Text.\n\n# %%\nx = 1\n\n\n# %%\nprint(x)\n'
    )
    kinds = [(cell.cell_type, cell.source) for cell in notebook.cells]
    assert kinds == [("markdown", "Intro."), ("markdown", "# Title\n\nText."), ("code", "x = 1"), ("code", "print(x)")]
    with pytest.raises(ValueError, match="markdown"):
        build_notebooks.notebook_from_script("# %% [markdown]\nnot a comment\n")


@pytest.fixture(scope="module")
def kernel_spec_manager(tmp_path_factory):
    """A kernelspec for this very interpreter (the venv), whatever kernels the machine has."""
    from ipykernel.kernelspec import install
    from jupyter_client.kernelspec import KernelSpecManager

    prefix = tmp_path_factory.mktemp("kernels")
    install(kernel_name="libkd-examples", display_name="libkd examples", prefix=str(prefix))
    return KernelSpecManager(kernel_dirs=[str(prefix / "share" / "jupyter" / "kernels")])


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_top_to_bottom(name, tmp_path, kernel_spec_manager):
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient

    notebook = nbformat.read(EXAMPLES / name, as_version=4)
    manager = KernelManager(kernel_name="libkd-examples", kernel_spec_manager=kernel_spec_manager)
    env = {
        **os.environ,
        "LIBKD_EXAMPLES_SMALL": "1",
        "LIBKD_EXAMPLES_OUT": str(tmp_path),
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "CUDA_VISIBLE_DEVICES": "",
    }
    env.pop("LIBKD_CIFAR10", None)  # the small synthetic setting, whatever the machine holds
    client = NotebookClient(notebook, km=manager, timeout=300, resources={"metadata": {"path": str(tmp_path)}})
    client.execute(env=env)  # raises CellExecutionError, with the failing cell, on any error
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(cell.execution_count for cell in code)
    assert not [o for cell in code for o in cell.outputs if o.output_type == "error"]
