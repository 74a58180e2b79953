"""benchmarks/RESULTS.md is a short, hand-written reference that links every dated log in benchmarks/results/."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
MAX_LINES = 320
# A Markdown link target: `[text](target)`, an optional `#anchor` and title dropped.
LINK = re.compile(r"\[[^\]]*\]\(([^)\s#]*)(?:#[^)\s]*)?(?:\s+\"[^\"]*\")?\)")
# Quoted section names right after a mention of RESULTS.md: `RESULTS.md, "X"`, `RESULTS.md` ("X", "Y" and "Z").
QUOTED = re.compile(r"RESULTS\.md`?(?:,\s*|\s*\(\s*)((?:\"[^\"]{1,80}\"(?:,\s*(?:and\s+)?|\s+and\s+)?)+)")


def relative_links(text):
    return [t for t in LINK.findall(text) if t and not re.match(r"[a-z][a-z0-9+.-]*:", t)]


def test_results_md_is_a_short_reference():
    lines = RESULTS.read_text().splitlines()
    assert len(lines) < MAX_LINES, (
        f"benchmarks/RESULTS.md has {len(lines)} lines (at most {MAX_LINES - 1}): keep one headline table per topic "
        "and leave the detail in the dated logs under benchmarks/results/"
    )


def test_every_log_is_linked_from_results_md():
    linked = {(RESULTS.parent / t).resolve() for t in relative_links(RESULTS.read_text())}
    logs = sorted((RESULTS.parent / "results").glob("*.md"))
    assert logs, "no logs found under benchmarks/results/"
    missing = [p.name for p in logs if p.resolve() not in linked]
    assert not missing, f"benchmarks/results/ logs not linked from benchmarks/RESULTS.md: {missing}"


def test_every_relative_link_in_results_md_resolves():
    targets = relative_links(RESULTS.read_text())
    assert targets, "benchmarks/RESULTS.md links no files"
    broken = sorted({t for t in targets if not (RESULTS.parent / t).exists()})
    assert not broken, f"links in benchmarks/RESULTS.md to files that do not exist: {broken}"


def quoting_files():
    for pattern in ("README.md", "docs/**/*.md", "examples/**/*", "benchmarks/**/*.py", "benchmarks/*.toml"):
        yield from (p for p in ROOT.glob(pattern) if p.is_file())
    yield from (p for p in (ROOT / "libkd_keras").rglob("*") if p.suffix in (".py", ".toml", ".md"))


def quoted_section_names(text):
    """The names quoted right after each mention of RESULTS.md, whitespace and comment marks collapsed."""
    flat = " ".join(re.sub(r"^\s*#", "", line) for line in text.splitlines())
    flat = re.sub(r"\s+", " ", flat)
    return [name for group in QUOTED.findall(flat) for name in re.findall(r"\"([^\"]+)\"", group)]


def test_quoted_section_names_parse():
    text = 'see benchmarks/RESULTS.md, "Budget preset", "Budget study" and "function\n# matching".'
    text += ' And `RESULTS.md` ("quick preset"); RESULTS = "benchmarks/RESULTS.md"  # "not a name"'
    assert quoted_section_names(text) == ["Budget preset", "Budget study", "function matching", "quick preset"]


def test_names_quoted_from_results_md_exist():
    reference = re.sub(r"\s+", " ", RESULTS.read_text()).lower()
    absent, quoted = {}, 0
    for path in quoting_files():
        names = quoted_section_names(path.read_text(errors="replace"))
        quoted += len(names)
        missing = [n for n in names if re.sub(r"\s+", " ", n).lower() not in reference]
        if missing:
            absent[str(path.relative_to(ROOT))] = missing
    assert quoted >= 5, f"found only {quoted} names quoted from RESULTS.md: has the way they are quoted changed?"
    assert not absent, f"names quoted from benchmarks/RESULTS.md that it no longer has (file: names): {absent}"
