"""Show PyCache at work: the benchmark workload run cold, then warm, against plain CPython.

Usage, from the repository root: ``python bench/demo.py`` (``make demo``).
Standard library only. It reuses the benchmark's workload venv
(``bench/.venvs/workload-<python>``, created from PyPI on first use), puts the
PyCache built from this working tree into it, and uses a store in a fresh
temporary directory. Every run sets ``PYTHONDONTWRITEBYTECODE=1`` and the
workload has no pycs, so plain CPython compiles every module on every run.

Exit codes: 0 the demo ran; 1 a step failed; 2 bad usage.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Sequence

from measure import parse_report, read_json, run_timed, stats_delta
from workload import (
    REPO_ROOT,
    VENVS_DIR,
    BenchError,
    build_pycache_wheel,
    clean_environ,
    ensure_venv,
    install_program,
    install_pycache,
    interpreter_tag,
    log,
    pinned_requirements,
    run_checked,
    strip_pycs,
    workload_top_levels,
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench/demo.py",
        description="Run the benchmark workload with plain CPython and under `pycache run`.",
        epilog="Exit codes: 0 ok; 1 a step failed; 2 usage.",
    )
    parser.add_argument(
        "--python",
        default=sys.executable,
        help="interpreter to build the workload venv from (default: this one)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary store and print where it is"
    )
    return parser


def _show(argv: Sequence[str | Path]) -> str:
    words = []
    for arg in argv:
        text = str(arg)
        try:
            text = str(Path(text).relative_to(REPO_ROOT))
        except ValueError:
            pass
        words.append(text)
    return shlex.join(words)


def demo(python: str, tmp: Path) -> None:
    tag, version = interpreter_tag(python)
    venv, _ = ensure_venv(python, f"workload-{tag}", requirements=True)
    log("building PyCache from the working tree and installing it")
    install_pycache(venv, build_pycache_wheel(venv, VENVS_DIR / "wheel"))
    for top in workload_top_levels(venv):
        if (venv.site_packages / top).is_dir():
            strip_pycs(venv.site_packages / top)

    store = tmp / "store"
    program = install_program(tmp / "program")
    env = clean_environ()
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYCACHE_DIR"] = str(store)
    plain: list[str | Path] = [venv.python, program]
    cached: list[str | Path] = [venv.pycache, "run", "--", venv.python, program]
    steps: list[tuple[str, list[str | Path], bool]] = [
        ("plain CPython", plain, False),
        ("pycache run, cold (empty store)", cached, True),
        ("pycache run, warm", cached, True),
        ("pycache run, warm", cached, True),
        ("plain CPython", plain, False),
    ]

    def stats() -> dict[str, int]:
        out = run_checked([venv.pycache, "stats", "--json"], env=env, what="pycache stats")
        return read_json(out, "pycache stats --json")

    print(f"PyCache demo on Python {version.split()[0]}")
    print(f"  workload: {', '.join(pinned_requirements())}")
    print(f"  store:    {store} (empty)")
    print("  every run: PYTHONDONTWRITEBYTECODE=1, workload installed without pycs")
    print(f"  plain:    {_show(plain)}")
    print(f"  PyCache:  PYCACHE_DIR=<store> {_show(cached)}")
    print()
    header = f"  {'run':<34}{'time':>9}{'hits':>8}{'misses':>8}{'compiles':>10}  modules"
    print(header)
    print("  " + "-" * (len(header) - 2))
    before = stats()
    times: dict[str, list[float]] = {}
    for label, argv, uses_pycache in steps:
        timed = run_timed(argv, env, tmp)
        report = parse_report(timed.stdout)
        after = stats()
        delta, before = stats_delta(before, after), after
        if uses_pycache and not delta.get("hits", 0) + delta.get("misses", 0):
            raise BenchError(f"PyCache counted nothing during `{label}`: it was not active")
        if not uses_pycache and any(delta.values()):
            raise BenchError(f"PyCache counted imports during `{label}`: {delta}")
        counters = (
            f"{delta.get('hits', 0):>8}{delta.get('misses', 0):>8}{delta.get('compiles', 0):>10}"
            if uses_pycache
            else f"{'-':>8}{'-':>8}{'-':>10}"
        )
        print(
            f"  {label:<34}{timed.seconds:>7.2f} s{counters}  "
            f"{report['modules']} ({report['workload_modules']} from site-packages)"
        )
        times.setdefault(label, []).append(timed.seconds)

    plain_time = min(times["plain CPython"])
    warm_time = min(times["pycache run, warm"])
    cold_time = times["pycache run, cold (empty store)"][0]
    print()
    print(
        f"  warm PyCache: {plain_time / warm_time:.1f}x faster than plain CPython "
        f"(best of each); the cold run cost {cold_time / plain_time:.2f}x plain."
    )
    print()
    print("$ PYCACHE_DIR=<store> pycache stats")
    sys.stdout.write(run_checked([venv.pycache, "stats"], env=env, what="pycache stats"))


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="pycache-demo-"))
    try:
        demo(args.python, tmp)
    except BenchError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(f"\nkept {tmp}")
        else:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
