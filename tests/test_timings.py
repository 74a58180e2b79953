"""benchmarks/timings.py: the README's time figures come from one generated place, and it records honestly."""

import json
import sys
from pathlib import Path

import pytest

from tests.scripts import benchmark_script

ROOT = Path(__file__).resolve().parent.parent
timings = benchmark_script("timings")


def test_the_readme_table_is_the_generated_one_and_no_time_figure_stands_outside_it():
    text = (ROOT / "README.md").read_text()
    entries = timings.read()
    assert timings.render(text, entries) == text, "stale: run `python benchmarks/timings.py render`"
    for key in ("quick", "tests", "api"):  # the two README commands and the API block each have a measured row
        assert key in entries and f"**{timings.duration(entries[key]['seconds'])}**" in text
    outside = text.split(timings.BEGIN)[0] + text.split(timings.END)[1]
    assert timings.TIME_FIGURE.findall(outside) == []


@pytest.mark.parametrize(
    "seconds, shown", [(44.6, "45 s"), (60, "1 min"), (315.2, "5 min 15 s"), (3600, "1 h"), (5778.3, "1 h 36 min")]
)
def test_duration_wording(seconds, shown):
    assert timings.duration(seconds) == shown


def test_time_figures_in_prose_are_found():
    found = timings.TIME_FIGURE.findall("about 10 minutes, 96 min, 1.5 h; but not 30 epochs or 5,000 images")
    assert found == ["10 minutes", "96 min", "1.5 h"]


def test_render_replaces_only_the_block_and_refuses_a_readme_without_one():
    entries = {
        "tests": timings.entry(70, what="the tests", command="pytest", machine="m", date="2026-12-07", others=0.0),
        "quick": timings.entry(315, what="the job", command="libkd", machine="m", date="2026-12-07", others=1.3),
        "unshown": timings.entry(5, what="x", command="x", machine="m", date="2026-12-07"),
    }
    text = f"head\n{timings.BEGIN}\nold table\n{timings.END}\ntail\n"
    out = timings.render(text, entries)
    assert out.startswith("head\n") and out.endswith("\ntail\n") and "old table" not in out
    rows = [line for line in out.splitlines() if line.startswith("| the")]
    assert rows[0].startswith("| the job | **5 min 15 s** | `libkd` | m, 1.3 cores busy with other work")
    assert rows[1].startswith("| the tests | **1 min 10 s** | `pytest` | m, idle")  # README_ROWS order
    assert "x" not in [line.split(" | ")[0].strip("| ") for line in rows]
    assert timings.render(out, entries) == out  # idempotent
    with pytest.raises(ValueError, match="exactly one"):
        timings.render("no markers here", entries)


def test_entry_rejects_a_non_positive_time_and_a_malformed_date():
    with pytest.raises(ValueError, match="positive"):
        timings.entry(0, what="w", command="c", machine="m", date="2026-12-07")
    with pytest.raises(ValueError):
        timings.entry(3, what="w", command="c", machine="m", date="7 Dec")


def test_measure_records_a_command_that_succeeds_and_nothing_for_one_that_fails(tmp_path):
    path = tmp_path / "timings.json"
    ok = [sys.executable, "-c", "import time; time.sleep(0.2)"]
    assert timings.main(["--timings", str(path), "measure", "nap", "--what", "a nap", "--", *ok]) == 0
    recorded = json.loads(path.read_text())["nap"]
    assert recorded["seconds"] >= 0.2 and recorded["command"] == " ".join(ok)
    assert recorded["machine"] == timings.machine() and recorded["other_cores_busy"] is not None
    failing = [sys.executable, "-c", "raise SystemExit(3)"]
    assert timings.main(["--timings", str(path), "measure", "bad", "--what", "w", "--", *failing]) == 3
    assert set(json.loads(path.read_text())) == {"nap"}  # the failed run left no figure


def test_render_check_reports_a_stale_readme_without_changing_it(tmp_path, monkeypatch):
    readme = tmp_path / "README.md"
    readme.write_text(f"{timings.BEGIN}\n{timings.END}\n")
    path = tmp_path / "timings.json"
    path.write_text(json.dumps({"tests": timings.entry(9, what="t", command="c", machine="m", date="2026-12-07")}))
    monkeypatch.setattr(timings, "README", readme)
    before = readme.read_text()
    assert timings.main(["--timings", str(path), "render", "--check"]) == 1
    assert readme.read_text() == before
    assert timings.main(["--timings", str(path), "render"]) == 0
    assert timings.main(["--timings", str(path), "render", "--check"]) == 0
