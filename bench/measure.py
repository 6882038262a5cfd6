"""Timing primitives: one timed run of a command, and summaries of paired samples.

Only the child process is inside the timed region: its start-up, its imports
and its exit. Preparing a tree, switching a branch or reading counters happens
outside it.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from workload import BenchError


@dataclass
class Timed:
    """One run: its wall time and what it printed."""

    seconds: float
    stdout: str
    stderr: str


def run_timed(argv: Sequence[str | Path], env: Mapping[str, str], cwd: Path) -> Timed:
    """Run ``argv`` and return its wall time; raise ``BenchError`` if it fails."""
    args = [str(arg) for arg in argv]
    start = time.perf_counter()
    proc = subprocess.run(args, env=dict(env), cwd=str(cwd), capture_output=True)
    seconds = time.perf_counter() - start
    stdout = proc.stdout.decode(errors="replace")
    stderr = proc.stderr.decode(errors="replace")
    if proc.returncode != 0:
        tail = "\n".join(stderr.strip().splitlines()[-25:])
        raise BenchError(f"{' '.join(args)} failed (exit {proc.returncode}):\n{tail}")
    return Timed(seconds, stdout, stderr)


def parse_report(stdout: str) -> dict[str, object]:
    """Return the workload program's JSON report (its last line of output)."""
    lines = stdout.strip().splitlines()
    try:
        report: dict[str, object] = json.loads(lines[-1])
    except (IndexError, ValueError) as exc:
        raise BenchError(f"the workload printed no report: {stdout!r}") from exc
    return report


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def quartiles(values: Sequence[float]) -> tuple[float, float]:
    """Return the first and third quartiles (both the value itself for one sample)."""
    if len(values) < 2:
        return values[0], values[0]
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q3


@dataclass
class Pairs:
    """Interleaved samples of a baseline (CPython) and a candidate (PyCache)."""

    baseline: list[float]
    candidate: list[float]

    @property
    def ratios(self) -> list[float]:
        """Baseline time over candidate time, per pair: above 1 means the candidate is faster."""
        return [b / c for b, c in zip(self.baseline, self.candidate)]

    @property
    def differences(self) -> list[float]:
        """Candidate time minus baseline time, per pair, in seconds."""
        return [c - b for b, c in zip(self.baseline, self.candidate)]


def summarise_ratio(pairs: Pairs) -> dict[str, float]:
    ratios = pairs.ratios
    q1, q3 = quartiles(ratios)
    return {
        "baseline_median": median(pairs.baseline),
        "candidate_median": median(pairs.candidate),
        "ratio_median": median(ratios),
        "ratio_q1": q1,
        "ratio_q3": q3,
    }


def summarise_difference(pairs: Pairs) -> dict[str, float]:
    diffs = pairs.differences
    q1, q3 = quartiles(diffs)
    return {
        "baseline_median": median(pairs.baseline),
        "candidate_median": median(pairs.candidate),
        "diff_median": median(diffs),
        "diff_q1": q1,
        "diff_q3": q3,
    }


def order_for(pair_index: int) -> tuple[int, int]:
    """Return which side runs first in pair ``pair_index``: 0 is the baseline.

    The order alternates (AB, BA, AB, ...) so that neither side always runs
    right after the other, on a warmer or a busier machine.
    """
    return (0, 1) if pair_index % 2 == 0 else (1, 0)


def stats_delta(before: Mapping[str, int], after: Mapping[str, int]) -> dict[str, int]:
    """Return the counters that changed between two ``pycache stats --json`` readings."""
    return {
        name: after[name] - before.get(name, 0)
        for name in after
        if isinstance(after[name], int) and name not in ("entries", "size_bytes")
    }


def read_json(text: str, what: str) -> dict[str, int]:
    try:
        value: dict[str, int] = json.loads(text)
    except ValueError as exc:
        raise BenchError(f"{what} printed no JSON: {text!r}") from exc
    return value
