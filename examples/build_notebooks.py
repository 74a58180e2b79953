"""Builds the example notebooks from the plain scripts beside them, so the two never drift.

Each `examples/NN_*.py` script is written in the "percent" format (as jupytext reads it):

    # %% [markdown]
    # # A title
    # Some text.

    # %%
    print("a code cell")

A `# %% [markdown]` cell's lines lose their leading `# `; a `# %%` cell is code. Text before the
first marker (a module docstring, say) goes into a first markdown cell. The notebook gets no
outputs, so a rebuild is deterministic.

Usage:
    python examples/build_notebooks.py            # rewrite every NN_*.ipynb from its NN_*.py
    python examples/build_notebooks.py --check    # exit 1 if a notebook is stale (the test suite runs this)
"""

import argparse
import re
import sys
from pathlib import Path

import nbformat

EXAMPLES = Path(__file__).resolve().parent
CELL_MARKER = re.compile(r"^# %%(?P<markdown>\s*\[markdown\])?\s*$")


def scripts(folder=EXAMPLES):
    """The example scripts, in order: files named like `01_something.py`."""
    return sorted(p for p in Path(folder).glob("[0-9][0-9]_*.py"))


def _markdown(lines):
    text = []
    for line in lines:
        if line.startswith("# "):
            text.append(line[2:])
        elif line.rstrip() == "#":
            text.append("")
        elif not line.strip():
            text.append("")
        else:
            raise ValueError(f"markdown cell line does not start with '# ': {line!r}")
    return "\n".join(text).strip("\n")


def _docstring_markdown(lines):
    """The module docstring of a script (before the first marker) as markdown."""
    text = "\n".join(lines).strip()
    if not text:
        return ""
    if text.startswith('"""') and text.endswith('"""'):
        return text[3:-3].strip()
    raise ValueError("only a module docstring may come before the first '# %%' marker")


def notebook_from_script(source):
    """An `nbformat` v4 notebook (no outputs) from a percent-format script's text."""
    cells, kind, lines, head = [], None, [], []
    for line in source.splitlines():
        match = CELL_MARKER.match(line)
        if match:
            if kind is not None:
                cells.append((kind, lines))
            kind, lines = ("markdown" if match.group("markdown") else "code"), []
        elif kind is None:
            head.append(line)
        else:
            lines.append(line)
    if kind is not None:
        cells.append((kind, lines))
    notebook = nbformat.v4.new_notebook()
    intro = _docstring_markdown(head)
    if intro:
        notebook.cells.append(nbformat.v4.new_markdown_cell(intro))
    for kind, lines in cells:
        if kind == "markdown":
            text = _markdown(lines)
            if text:
                notebook.cells.append(nbformat.v4.new_markdown_cell(text))
        else:
            code = "\n".join(lines).strip("\n")
            if code:
                notebook.cells.append(nbformat.v4.new_code_cell(code))
    for i, cell in enumerate(notebook.cells):
        cell["id"] = f"cell-{i:02d}"  # stable ids: rebuilding gives the same file
    notebook.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    return notebook


def render(script):
    return nbformat.writes(notebook_from_script(Path(script).read_text(encoding="utf-8"))) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check that every notebook is up to date")
    args = parser.parse_args(argv)
    stale = []
    for script in scripts():
        notebook = script.with_suffix(".ipynb")
        text = render(script)
        current = notebook.read_text(encoding="utf-8") if notebook.exists() else None
        if current == text:
            continue
        if args.check:
            stale.append(notebook.name)
        else:
            temporary = notebook.with_name(f".{notebook.name}.tmp")
            temporary.write_text(text, encoding="utf-8")
            temporary.replace(notebook)
            print(f"wrote {notebook.relative_to(EXAMPLES.parent)}")
    if stale:
        print(f"stale notebooks (run `python examples/build_notebooks.py`): {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
