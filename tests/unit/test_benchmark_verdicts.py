"""``python -m benchmarks.verdicts`` counts each goal's verdicts over several runs."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import verdicts


def _run(stamp: str, *rows: tuple[str, float, float, str]) -> dict[str, object]:
    goals = [{"goal": g, "geossh": v, "limit": lim, "result": r} for g, v, lim, r in rows]
    return {"timestamp": stamp, "goals": goals}


def test_tally_counts_met_over_judged_runs_in_time_order(tmp_path: Path) -> None:
    later = _run("20261122T2", ("cpu", 1.5, 1.1, "MISSED"), ("mem", 23.0, 25.0, "met"))
    earlier = _run("20261122T1", ("cpu", 1.3, 1.4, "met"), ("workers", 0.0, 1.7, "n/a"))
    paths = []
    for name, doc in (("b.json", later), ("a.json", earlier)):
        (tmp_path / name).write_text(json.dumps(doc))
        paths.append(tmp_path / name)
    runs = verdicts.load(paths)
    assert [r["timestamp"] for r in runs] == ["20261122T1", "20261122T2"]
    rows = {row["goal"]: row for row in verdicts.tally(runs)}
    assert (rows["cpu"]["met"], rows["cpu"]["judged"]) == (1, 2)
    assert (rows["mem"]["met"], rows["mem"]["judged"]) == (1, 1)  # absent from the first run
    assert (rows["workers"]["met"], rows["workers"]["judged"]) == (0, 0)  # n/a is not judged
    text = verdicts.render(runs)
    cpu_line = next(line for line in text.splitlines() if line.startswith("cpu"))
    assert "1/2" in cpu_line and "1.30/1.40" in cpu_line and "1.50/1.10 !" in cpu_line
    mem_line = next(line for line in text.splitlines() if line.startswith("mem"))
    assert "n/a" in mem_line and "23.0/25.0" in mem_line


def test_committed_history_renders() -> None:
    history = sorted((Path(__file__).parents[2] / "benchmarks/results/history").glob("*.json"))
    assert history, "benchmarks/results/history holds the full runs the README cites"
    runs = verdicts.load(history)
    lines = verdicts.render(runs).splitlines()
    for row in verdicts.tally(runs):
        line = next(line for line in lines if line.startswith(row["goal"]))
        assert f"{row['met']}/{row['judged']}" in line
        assert line.count("!") == row["judged"] - row["met"]
