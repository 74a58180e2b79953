"""The README's and the guide's Python blocks compile, and every libkd name they import exists."""

import ast
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ["README.md", "docs/GUIDE.md"]


def python_blocks(path):
    return re.findall(r"```python\n(.*?)```", (ROOT / path).read_text(), flags=re.S)


@pytest.mark.parametrize("path", DOCS)
def test_python_blocks_compile_and_import_names_that_exist(path):
    blocks = python_blocks(path)
    assert blocks, f"{path} has no Python block"
    for block in blocks:
        tree = ast.parse(block)  # a syntax error fails here
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module.startswith("libkd_keras"):
                module = importlib.import_module(node.module)
                missing = [a.name for a in node.names if not hasattr(module, a.name)]
                assert not missing, f"{path}: {node.module} has no {missing}"


def test_readme_starts_with_the_install_and_test_commands():
    text = (ROOT / "README.md").read_text()
    first = re.search(r"```bash\n(.*?)```", text, flags=re.S).group(1).splitlines()
    assert first[0].startswith("python3 -m venv .venv") and 'pip install -e ".[dev]"' in first[0]
    assert first[0].endswith("libkd pipeline --preset quick")
    assert first[1] == "python -m pytest -q -n 2"
    ci = (ROOT / ".ci" / "run").read_text()
    assert 'pip install -q -e ".[dev]"' in ci and "python -m pytest -q -n 2" in ci  # CI runs the README's commands


def test_links_to_docs_resolve():
    for path in DOCS:
        for target in re.findall(
            r"`((?:docs|benchmarks|examples|libkd_keras)/[\w./-]+\.(?:md|toml|py))`", (ROOT / path).read_text()
        ):
            assert (ROOT / target).exists(), f"{path} names {target}, which does not exist"
