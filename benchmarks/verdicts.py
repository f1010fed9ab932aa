"""Goal verdicts across several runs: ``python -m benchmarks.verdicts RESULT.json ...``.

One run's verdict on a goal whose margin is smaller than the machine's
run-to-run spread is a coin toss (see README "Caveats"). This reads the
JSON of several runs and prints, per goal, how many runs met it and
geossh's value against the target in each, oldest run first.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from benchmarks.report import format_value

_JUDGED = ("met", "MISSED")  # other results ("n/a") are not verdicts


def load(paths: list[Path]) -> list[dict[str, Any]]:
    """The runs' documents, oldest first (by their ``timestamp``)."""
    runs = [json.loads(path.read_text()) for path in paths]
    return sorted(runs, key=lambda run: str(run.get("timestamp", "")))


def tally(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per goal (in first-seen order): met count, runs judged, and each run's row or None."""
    names = list(dict.fromkeys(row["goal"] for run in runs for row in run.get("goals", [])))
    rows = []
    for name in names:
        per_run = [
            next((row for row in run.get("goals", []) if row["goal"] == name), None) for run in runs
        ]
        judged = [row for row in per_run if row is not None and row["result"] in _JUDGED]
        met = sum(row["result"] == "met" for row in judged)
        rows.append({"goal": name, "met": met, "judged": len(judged), "runs": per_run})
    return rows


def _cell(row: dict[str, Any] | None) -> str:
    if row is None or row["result"] not in _JUDGED:
        return "n/a"
    mark = "" if row["result"] == "met" else " !"
    return f"{format_value(row['geossh'])}/{format_value(row['limit'])}{mark}"


def render(runs: list[dict[str, Any]]) -> str:
    """A text table: goal, met k/n, then geossh/target per run ('!' = missed)."""
    rows = tally(runs)
    stamps = [str(run.get("timestamp", "?")) for run in runs]
    width = max([len("goal"), *(len(row["goal"]) for row in rows)])
    cells = [[_cell(r) for r in row["runs"]] for row in rows]
    col = max([len(s) for s in stamps] + [len(c) for line in cells for c in line])
    lines = [
        f"{'goal':<{width}}  met   " + "  ".join(f"{s:>{col}}" for s in stamps),
        "-" * (width + 8 + (col + 2) * len(stamps)),
    ]
    for row, line in zip(rows, cells, strict=True):
        count = f"{row['met']}/{row['judged']}"
        values = "  ".join(f"{cell:>{col}}" for cell in line)
        lines.append(f"{row['goal']:<{width}}  {count:<4}  {values}")
    lines.append("cells: geossh / target ('!' = missed in that run)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.verdicts", description=__doc__)
    parser.add_argument("results", nargs="+", type=Path, help="result JSON files of full runs")
    args = parser.parse_args(argv)
    print(render(load(args.results)))


if __name__ == "__main__":
    main()
