"""Describe the machine and render results: a plain-text table and BENCHMARKS.md.

Every figure comes from a ``ScenarioResult``; nothing here measures anything.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from compile_bench import KEYS as COMPILE_KEYS
from compile_bench import MIN_FILES, pinned_compile_requirements
from scenarios import Row, ScenarioResult
from workload import REPO_ROOT, pinned_requirements


@dataclass
class RunInfo:
    """What a reader needs to judge the figures: when, where, what code, how many reps."""

    date: str
    duration_s: float
    command: str
    reps: int
    activation_reps: int
    quick: bool
    python_version: str
    pycache_version: str
    machine: list[tuple[str, str]]
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError:
        return ""


def cpu_model() -> str:
    for line in _read("/proc/cpuinfo").splitlines():
        if line.lower().startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def memory_total() -> str:
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            kib = int(line.split()[1])
            return f"{kib / 1024 / 1024:.1f} GiB"
    return "unknown"


def filesystem_of(path: Path) -> str:
    """Return the type, device and options of the mount holding ``path``."""
    target = os.path.realpath(path)
    best: list[str] | None = None
    for line in _read("/proc/self/mounts").splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        point = fields[1].encode().decode("unicode_escape")
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and (best is None or len(point) >= len(best[1])):
            best = [fields[0], point, fields[2], fields[3]]
    if best is None:
        return "unknown"
    device, point, fstype, options = best
    return f"{fstype} on {device}, mounted at {point} ({options})"


def git_revision() -> str:
    """Return the repository's commit, and whether the package sources differ from it."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--", "src", "pyproject.toml"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (no git)"
    return f"{commit}" + (" with uncommitted changes under src/" if dirty else "")


def machine_details(work_dir: Path) -> list[tuple[str, str]]:
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    return [
        ("CPU", cpu_model()),
        ("CPUs", f"{usable} usable (nproc), {os.cpu_count()} online"),
        ("Memory", memory_total()),
        ("Kernel", f"{platform.system()} {platform.release()} ({platform.machine()})"),
        ("Filesystem", filesystem_of(work_dir)),
        ("Repository commit", git_revision()),
    ]


# -- formatting --------------------------------------------------------------------------------


def _seconds(value: float) -> str:
    return f"{value:.3f} s"


def _ms(value: float) -> str:
    return f"{value * 1000:.1f} ms"


def _target(row: Row, ascii_only: bool) -> str:
    if row.target is None:
        return "-"
    if row.kind == "ratio":
        return f"{'>=' if ascii_only else '≥'} {row.target:g}x"
    return f"{'<=' if ascii_only else '≤'} {row.target:g} ms"


def _figures(row: Row) -> tuple[str, str, str]:
    """Return (baseline median, candidate median, headline with its quartiles)."""
    summary = row.summary
    if row.kind == "ratio":
        return (
            _seconds(summary["baseline_median"]),
            _seconds(summary["candidate_median"]),
            f"{summary['ratio_median']:.3f}x ({summary['ratio_q1']:.3f}-{summary['ratio_q3']:.3f})",
        )
    return (
        _ms(summary["baseline_median"]),
        _ms(summary["candidate_median"]),
        f"{summary['diff_median'] * 1000:+.2f} ms "
        f"({summary['diff_q1'] * 1000:+.2f} to {summary['diff_q3'] * 1000:+.2f})",
    )


def _verdict(result: ScenarioResult, row: Row | None) -> str:
    if result.failures:
        return "FAIL (check)"
    if row is None or row.passed is None:
        return "info"
    return "PASS" if row.passed else "FAIL"


def _row_label(result: ScenarioResult, row: Row) -> str:
    if len(result.rows) == 1:
        return f"({result.key}) {result.title}"
    return f"({result.key}) {row.label}"


def _counters(counts: dict[str, int]) -> str:
    if not counts:
        return "-"
    text = (
        f"hits {counts.get('hits', 0)} (by stat {counts.get('hits_by_stat', 0)}, "
        f"by content {counts.get('hits_by_content', 0)}), misses {counts.get('misses', 0)}, "
        f"compiles {counts.get('compiles', 0)}"
    )
    if counts.get("hits_remote"):
        text += (
            f"; from the remote {counts['hits_remote']} "
            f"({counts.get('hits_remote_bundle', 0)} of them from the program's bundle), "
            f"copied into the local store after exit {counts.get('remote_backfills', 0)}"
        )
    return text


def render_table(results: Sequence[ScenarioResult]) -> str:
    """Return the results as a fixed-width text table, with counters and problems below."""
    header = ("Scenario", "CPython", "PyCache", "Median ratio / diff (IQR)", "Target", "Result")
    lines = []
    for result in results:
        if not result.rows:
            lines.append((f"({result.key}) {result.title}", "-", "-", "-", "-", "ERROR"))
        for row in result.rows:
            baseline, candidate, headline = _figures(row)
            lines.append(
                (
                    _row_label(result, row),
                    baseline,
                    candidate,
                    headline,
                    _target(row, ascii_only=True),
                    _verdict(result, row),
                )
            )
    widths = [max(len(line[i]) for line in [header, *lines]) for i in range(len(header))]
    out = []
    for index, line in enumerate([header, *lines]):
        out.append("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip())
        if index == 0:
            out.append("  ".join("-" * width for width in widths))
    out.append("")
    out.append("Ratios are CPython time / PyCache time per interleaved pair (>1: PyCache faster);")
    out.append("diffs are PyCache minus plain start-up per pair. IQR = interquartile range.")
    for result in results:
        if result.stats_one_run:
            out.append(
                f"({result.key}) PyCache counters, one run: {_counters(result.stats_one_run)}"
            )
        for note in result.notes:
            out.append(f"({result.key}) note: {note}")
        for failure in result.failures:
            out.append(f"({result.key}) PROBLEM: {failure}")
    return "\n".join(out)


def render_json(results: Sequence[ScenarioResult], info: RunInfo) -> str:
    """Return every sample, summary and counter of the run as JSON, for re-analysis."""
    scenarios = []
    for result in results:
        entry = dataclasses.asdict(result)
        for row, row_entry in zip(result.rows, entry["rows"]):
            row_entry["summary"] = row.summary
            row_entry["passed"] = row.passed
        entry["passed"] = result.passed
        scenarios.append(entry)
    return json.dumps({"run": dataclasses.asdict(info), "scenarios": scenarios}, indent=1)


def render_markdown(results: Sequence[ScenarioResult], info: RunInfo) -> str:
    """Return the whole of BENCHMARKS.md."""
    workload_report = next((r.program_report for r in results if r.program_report), {})
    md: list[str] = [
        "# PyCache benchmarks",
        "",
        f"Written by `bench/run.py` on {info.date} (the run took {info.duration_s / 60:.1f} "
        "minutes). Every figure here comes from that run: do not edit them by hand; run "
        "`make bench` again instead.",
        "",
    ]
    if info.quick:
        md += [
            f"**This was a `--quick` smoke run ({info.reps} pairs per scenario, "
            f"{info.activation_reps} for start-up): read its figures as rough.**",
            "",
        ]
    md += ["## Summary", ""]
    md += [
        "| Scenario | CPython (median) | PyCache (median) | Median ratio CPython/PyCache "
        "or start-up difference (IQR) | Target | Result |",
        "| --- | ---: | ---: | ---: | --- | --- |",
    ]
    for result in results:
        if not result.rows:
            md.append(f"| ({result.key}) {result.title} | - | - | - | - | ERROR |")
        for row in result.rows:
            baseline, candidate, headline = _figures(row)
            md.append(
                f"| {_row_label(result, row)} | {baseline} | {candidate} | {headline} | "
                f"{_target(row, ascii_only=False)} | {_verdict(result, row)} |"
            )
    md += ["", "## Machine", "", "| | |", "| --- | --- |"]
    md += [f"| {name} | {value} |" for name, value in info.machine]
    md += [
        f"| Python | {info.python_version} |",
        f"| PyCache version | {info.pycache_version} |",
        f"| Load average (1/5/15 min) | before {_load(info.load_before)}; "
        f"after {_load(info.load_after)} |",
        "",
        "## Workload",
        "",
        "Installed from PyPI into `bench/.venvs/workload-<python>` with "
        "`pip install --no-compile --no-deps -r bench/workload-requirements.txt`, so none of "
        "it has pycs; PyCache's own wheel is installed into the same venv and compiled by "
        "pip as usual (it runs at every start-up). Pinned versions:",
        "",
    ]
    md += [f"- `{requirement}`" for requirement in pinned_requirements()]
    md += [
        "",
        "The program, `bench/workload_prog.py`, imports docutils, jinja2, pygments, requests, "
        "rich and sympy, uses each a little, and prints a digest of the results (checked to "
        "be identical in every run on both sides). "
        f"It loads {workload_report.get('modules', '?')} modules in all, "
        f"{workload_report.get('workload_modules', '?')} of them from the workload tree (the "
        "rest are the standard library and built-ins).",
        "",
    ]
    if any(result.key in COMPILE_KEYS for result in results):
        md += [
            "Scenarios (g) to (i) compile another tree: a copy of the site-packages of "
            "`bench/.venvs/compile-<python>`, installed the same way from "
            f"`bench/compile-requirements.txt` (at least {MIN_FILES} `.py` files). Pinned "
            "versions:",
            "",
        ]
        md += [f"- `{requirement}`" for requirement in pinned_compile_requirements()]
        md += [""]
    md += [
        "## Method",
        "",
        "- Each scenario copies the installed workload packages into a tree of its own, "
        "without `__pycache__`, and puts it first on `PYTHONPATH`; both sides run the same "
        "venv interpreter on the same program, in a subprocess, and the time is the wall "
        "time of that subprocess (interpreter start-up to exit).",
        "- PyCache is switched on the way `pycache run` does it: the benchmark asks "
        "`pycache run` once which variables it sets (it prepends its `sitecustomize` "
        "directory to `PYTHONPATH`) and sets them itself, so the `pycache run` process's "
        "own start-up is not in every figure; scenario (f) measures it separately.",
        "- Every subprocess gets an explicit environment: variables starting with "
        "`PYTHON`, `PYCACHE_` or `VIRTUAL_ENV` are removed from the benchmark's own "
        "environment, then each scenario sets what it needs.",
        f"- {info.reps} interleaved pairs per scenario (CPython, PyCache) after one untimed "
        "run of each side; the order inside a pair alternates (AB, BA, AB, ...). Start-up "
        f"uses {info.activation_reps} pairs after three untimed runs of each side.",
        "- Reported: the median wall time of each side, and the median of the per-pair "
        "ratios CPython/PyCache (above 1 means PyCache is faster) with its interquartile "
        "range; for start-up, the median of the per-pair differences.",
        "- Checks on every run: the workload came from the scenario's tree and printed the "
        "same digest and module count. PyCache's counters (`pycache stats --json`) are read "
        "after every run: a CPython run must leave them unchanged, a PyCache run must add "
        "hits, and across the timed PyCache runs there must be no compiles and no misses "
        "(the store was warmed first). Scenarios (d) and (e) must also show hits by content.",
        "- Scenarios (g) to (i) time `python -m compileall -q -j0 TREE` and "
        "`pycache compile -q --json TREE` (the store destination, and `--in-tree` for "
        "information) on fresh copies of the compile tree (new directories, the sources "
        "hard-linked), in rounds whose order alternates; "
        "each round runs the cold compiles, then the no-op reruns on the same trees, then "
        "`pycache compile` of another copy (a new path) with the same store. The CPU limit "
        "is the per-file CPU time of compiling every file as `py_compile` does (read, "
        "`compile`, `marshal.dumps`, write the pyc) with one process per usable core on a "
        "fresh copy of the tree, summed and divided by the cores; it is measured "
        "in every round just before and just after the cold `pycache compile` it is "
        "compared with, and the two are averaged (a row for information leaves out the "
        "write). Where the disk has room (the notes say), every round's files are kept "
        "until the last round has run (deleting them would slow the next round's file "
        "creation on ext4 without a journal), and each timed command starts after a `sync`, "
        "so that "
        "none pays for writing back the 0.25 GB the one before wrote. Every "
        "`pycache compile` summary is checked: no failures, every file compiled or up to "
        "date when cold, nothing compiled on a rerun or at the new path.",
        "- A scenario passes when its median ratio (or difference) meets its target and "
        "every check held.",
        "",
        "## Scenarios",
        "",
    ]
    for result in results:
        md += _scenario_markdown(result, info)
    md += [
        "## Reproducing",
        "",
        "```",
        info.command,
        "```",
        "",
        "`bench/run.py --help` lists the options (`--reps`, `--activation-reps`, "
        "`--compile-rounds`, `--quick`, "
        "`--scenarios`, `--python`, `--no-write`, `--json`).",
        "",
    ]
    return "\n".join(md)


def _load(values: tuple[float, float, float]) -> str:
    return " / ".join(f"{value:.2f}" for value in values)


def _scenario_markdown(result: ScenarioResult, info: RunInfo) -> list[str]:
    md = [f"### ({result.key}) {result.title}", "", result.description, ""]
    if len(result.rows) == 1 and result.key not in COMPILE_KEYS:  # compiles have no counters
        row = result.rows[0]
        summary = row.summary
        runs = len(row.pairs.baseline)
        md += [
            "| Measure | Value |",
            "| --- | --- |",
            f"| CPython, median of {runs} | {_seconds(summary['baseline_median'])} |",
            f"| PyCache, median of {runs} | {_seconds(summary['candidate_median'])} |",
            f"| Median ratio CPython/PyCache (IQR) | {_figures(row)[2]} |",
            f"| Target | {_target(row, ascii_only=False)} |",
            f"| Result | {_verdict(result, row)} |",
            f"| PyCache counters, one timed run | {_counters(result.stats_one_run)} |",
            f"| PyCache counters, all {runs} timed runs | {_counters(result.stats_all_runs)} |",
        ]
    elif result.rows:
        if all(row.kind == "ratio" for row in result.rows):
            columns = "Baseline (median) | PyCache (median) | Median ratio baseline/PyCache (IQR)"
        else:
            columns = "Plain (median) | PyCache (median) | Median difference (IQR)"
        md += [
            f"| Comparison | {columns} | Target | Result |",
            "| --- | ---: | ---: | ---: | --- | --- |",
        ]
        for row in result.rows:
            baseline, candidate, headline = _figures(row)
            md.append(
                f"| {row.label}: {row.baseline} vs {row.candidate} | {baseline} | {candidate} "
                f"| {headline} | {_target(row, ascii_only=False)} | {_verdict(result, row)} |"
            )
    md.append("")
    for note in result.notes:
        md += [f"Note: {note}", ""]
    for failure in result.failures:
        md += [f"**Problem:** {failure}", ""]
    return md
