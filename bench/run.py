"""Benchmark PyCache against plain CPython; print a table and rewrite BENCHMARKS.md.

Usage: ``python bench/run.py [--quick] [--reps N] [--scenarios abcdef] ...``
(``make bench`` runs it with the project's venv). Standard library only.

It builds what it needs under ``bench/.venvs/`` (pip, from PyPI, pinned),
works in ``bench/.work/`` (deleted at the end), and leaves everything else
alone. Scenarios:

  (a) warm __pycache__ vs warm store          target: ratio >= 1
  (b) read-only tree, no pycs                 target: ratio >= 3
  (c) PYTHONDONTWRITEBYTECODE=1, no pycs      target: ratio >= 3
  (d) fresh copy at a new path                target: ratio >= 3
  (e) branch switch in place                  target: ratio >= 3
  (f) start-up overhead of python -c pass     target: <= 2 ms
  (g) pycache compile, cold site-packages     target: >= 1.1x compileall -j0, within
                                              10% of the CPU limit
  (h) pycache compile, no-op rerun            target: >= 10x compileall's rerun
  (i) pycache compile, same tree, new path    target: >= 20x compileall cold
  (j) fresh CI runner, warm Redis remote      target: ratio >= 2.5 (CPython cold)
  (k) fresh CI runner, warm HTTP remote       target: ratio >= 2.5 (CPython cold)

(j) and (k) start a redis-server and an nginx from tests/servers.py (the
Debian packages redis-server and nginx must be installed).

Exit codes: 0 every scenario met its target and every check held; 1 a target
was missed, a check failed or a step could not run; 2 bad usage.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Sequence

sys.path.append(str(Path(__file__).resolve().parent.parent / "tests"))  # servers.py

from compile_bench import KEYS as COMPILE_KEYS  # noqa: E402
from compile_bench import prepare as prepare_compile
from compile_bench import run_compile_scenarios
from report import RunInfo, machine_details, render_json, render_markdown, render_table
from scenarios import (
    RATIO_SCENARIOS,
    Context,
    ScenarioResult,
    run_activation,
    run_ratio_scenario,
    unmount_all_under,
)
from workload import (
    REPO_ROOT,
    VENVS_DIR,
    WORK_DIR,
    BenchError,
    build_pycache_wheel,
    clean_environ,
    ensure_venv,
    install_program,
    install_pycache,
    interpreter_tag,
    log,
    pycache_run_environ,
    run_checked,
    workload_top_levels,
)

ALL_SCENARIOS = "abcdefghijk"
#: redis-py for scenario (j), pinned like the workload.
REDIS_PIN = "redis==5.2.1"
DEFAULT_REPS = 15
DEFAULT_ACTIVATION_REPS = 60
QUICK_REPS = 5
QUICK_ACTIVATION_REPS = 40
#: Five rounds: the compile targets leave 10% of slack, and this machine's speed
#: moves by more than that from one round to the next; a median of three was the
#: one middle round.
DEFAULT_COMPILE_ROUNDS = 5
QUICK_COMPILE_ROUNDS = 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench/run.py",
        description="Benchmark PyCache against plain CPython on an import-heavy workload.",
        epilog="Exit codes: 0 all targets met; 1 a target missed or a step failed; 2 usage.",
    )
    parser.add_argument(
        "--reps", type=int, help=f"interleaved pairs per scenario (default {DEFAULT_REPS})"
    )
    parser.add_argument(
        "--activation-reps",
        type=int,
        help=f"pairs for the start-up scenario (default {DEFAULT_ACTIVATION_REPS})",
    )
    parser.add_argument(
        "--compile-rounds",
        type=int,
        help=f"rounds of the compile scenarios g-i (default {DEFAULT_COMPILE_ROUNDS})",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke run: {QUICK_REPS} pairs, {QUICK_ACTIVATION_REPS} for start-up, "
        f"{QUICK_COMPILE_ROUNDS} compile round",
    )
    parser.add_argument(
        "--scenarios",
        default=ALL_SCENARIOS,
        help=f"which scenarios to run, e.g. 'ac' (default all: {ALL_SCENARIOS}); "
        "BENCHMARKS.md is only rewritten when all run",
    )
    parser.add_argument(
        "--python",
        default=sys.executable,
        help="interpreter to build the benchmark venvs from (default: this one)",
    )
    parser.add_argument(
        "--no-write", action="store_true", help="print the table only; leave BENCHMARKS.md alone"
    )
    parser.add_argument(
        "--json", metavar="FILE", help="also write every sample and counter to FILE as JSON"
    )
    parser.add_argument(
        "--keep-work", action="store_true", help="keep bench/.work/ (trees and stores) afterwards"
    )
    return parser


def _prepare(args: argparse.Namespace, reps: int, activation_reps: int) -> tuple[Context, Path]:
    tag, _ = interpreter_tag(args.python)
    workload, _ = ensure_venv(args.python, f"workload-{tag}", requirements=True)
    plain, _ = ensure_venv(args.python, f"plain-{tag}", requirements=False)
    enabled, _ = ensure_venv(args.python, f"enabled-{tag}", requirements=False)
    log("building PyCache from the working tree and installing it into the bench venvs")
    wheel = build_pycache_wheel(workload, VENVS_DIR / "wheel")
    for venv in (workload, plain, enabled):
        install_pycache(venv, wheel)
    # The [redis] extra, for the fresh-runner scenario with a Redis remote.
    workload.pip("install", "--quiet", REDIS_PIN, what="installing redis-py into the workload venv")
    base = clean_environ()
    run_checked([plain.pycache, "disable"], env=base, what="pycache disable")
    run_checked([enabled.pycache, "enable"], env=base, what="pycache enable")

    _reset_work_dir()
    context = Context(
        workload=workload,
        plain=plain,
        enabled=enabled,
        tops=workload_top_levels(workload),
        program=install_program(WORK_DIR / "program"),
        run_environ=pycache_run_environ(workload, base),
        base_environ=base,
        work=WORK_DIR,
        reps=reps,
        activation_reps=activation_reps,
    )
    return context, wheel


def _reset_work_dir() -> None:
    unmount_all_under(WORK_DIR)
    if WORK_DIR.exists():
        shutil.rmtree(WORK_DIR)
    WORK_DIR.mkdir(parents=True)


def _error_result(key: str, title: str, exc: BaseException) -> ScenarioResult:
    return ScenarioResult(key, title, "", rows=[], failures=[f"could not run: {exc}"])


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    reps = args.reps or (QUICK_REPS if args.quick else DEFAULT_REPS)
    activation_reps = args.activation_reps or (
        QUICK_ACTIVATION_REPS if args.quick else DEFAULT_ACTIVATION_REPS
    )
    compile_rounds = args.compile_rounds or (
        QUICK_COMPILE_ROUNDS if args.quick else DEFAULT_COMPILE_ROUNDS
    )
    selected = args.scenarios.lower()
    if (
        min(reps, activation_reps, compile_rounds) < 1
        or not selected
        or set(selected) - set(ALL_SCENARIOS)
    ):
        parser.print_usage(sys.stderr)
        print(
            f"{parser.prog}: --reps, --activation-reps and --compile-rounds must be positive and "
            f"--scenarios letters from {ALL_SCENARIOS}",
            file=sys.stderr,
        )
        return 2

    started = time.time()
    load_before = os.getloadavg()
    machine = machine_details(WORK_DIR.parent)  # before the run: the commit it built
    results: list[ScenarioResult] = []
    try:
        ctx, wheel = _prepare(args, reps, activation_reps)
        for scenario_class in RATIO_SCENARIOS:
            if scenario_class.key not in selected:
                continue
            scenario = scenario_class(ctx)
            log(f"({scenario.key}) {scenario.title}: {reps} pairs")
            begun = time.time()
            try:
                results.append(run_ratio_scenario(scenario))
            except BenchError as exc:
                log(f"({scenario.key}) could not run: {exc}")
                results.append(_error_result(scenario.key, scenario.title, exc))
            log(f"({scenario.key}) done in {time.time() - begun:.0f} s")
        if "f" in selected:
            log(f"(f) start-up overhead: {activation_reps} pairs per comparison")
            try:
                results.append(run_activation(ctx))
            except BenchError as exc:
                log(f"(f) could not run: {exc}")
                results.append(_error_result("f", "Start-up overhead", exc))
        compile_selected = "".join(key for key in COMPILE_KEYS if key in selected)
        if compile_selected:
            log(f"({compile_selected}) pycache compile vs compileall: {compile_rounds} rounds")
            begun = time.time()
            try:
                setup = prepare_compile(
                    args.python, wheel, ctx.base_environ, ctx.work, compile_rounds
                )
                results.extend(run_compile_scenarios(setup, compile_selected))
            except BenchError as exc:
                log(f"({compile_selected}) could not run: {exc}")
                for key in compile_selected:
                    results.append(_error_result(key, "pycache compile", exc))
            log(f"({compile_selected}) done in {time.time() - begun:.0f} s")
        pycache_version = run_checked(
            [ctx.workload.pycache, "--version"], env=ctx.base_environ, what="pycache --version"
        ).strip()
        python_version = interpreter_tag(str(ctx.workload.python))[1]
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    finally:
        unmount_all_under(WORK_DIR)
        if not args.keep_work and WORK_DIR.exists():
            shutil.rmtree(WORK_DIR, ignore_errors=True)

    print(render_table(results))
    info = RunInfo(
        date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started)),
        duration_s=time.time() - started,
        command=_command_line(argv),
        reps=reps,
        activation_reps=activation_reps,
        quick=args.quick and args.reps is None,
        python_version=python_version,
        pycache_version=pycache_version,
        machine=machine,
        load_before=load_before,
        load_after=os.getloadavg(),
    )
    if args.json:
        Path(args.json).write_text(render_json(results, info), encoding="utf-8")
        log(f"wrote {args.json}")
    if args.no_write:
        pass
    elif set(selected) != set(ALL_SCENARIOS):
        log("not rewriting BENCHMARKS.md: only some scenarios ran")
    else:
        target = REPO_ROOT / "BENCHMARKS.md"
        target.write_text(render_markdown(results, info), encoding="utf-8")
        log(f"wrote {target}")
    return 0 if all(result.passed for result in results) else 1


def _command_line(argv: Sequence[str] | None) -> str:
    words = list(sys.argv[1:] if argv is None else argv)
    return shlex.join(["python", "bench/run.py", *words])


if __name__ == "__main__":
    sys.exit(main())
