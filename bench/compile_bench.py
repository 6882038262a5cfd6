"""Scenarios (g), (h), (i): ``pycache compile`` against ``python -m compileall -q -j0``.

The tree is a copy of a real site-packages: ``bench/.venvs/compile-<tag>``,
made with ``pip install --no-compile --no-deps -r bench/compile-requirements.txt``
(pinned; at least ``MIN_FILES`` ``.py`` files), copied without ``__pycache__``.

Each round makes hard-linked copies of that tree (one per command that
compiles it cold, see ``_Round.TREES``) and runs, in alternating order:

  (g) cold: ``compileall -q -j0 A`` vs ``pycache compile -q B`` (a new store);
      also ``pycache compile --in-tree`` on a third copy (info), and the run
      is compared with the CPU limit (see ``cpu_limit``), measured on two more
      copies just before and just after it;
  (h) no-op rerun: the same two commands again on the same trees;
  (i) another tree with the same contents at a new path (another venv):
      ``pycache compile`` of a fourth copy with the store of (g), against
      that round's cold ``compileall``.

Every ``pycache compile`` prints its ``--json`` summary and is checked: the
cold run compiles or finds every file, the no-op rerun and the new path
compile nothing.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from measure import Pairs, order_for, run_timed
from scenarios import Row, ScenarioResult
from workload import (
    BENCH_DIR,
    BenchError,
    Venv,
    ensure_venv,
    install_pycache,
    interpreter_tag,
    log,
)

COMPILE_REQUIREMENTS = BENCH_DIR / "compile-requirements.txt"
MIN_FILES = 10_000
KEYS = "ghi"
COLD_TARGET = 1.1
NOOP_TARGET = 10.0
NEW_PATH_TARGET = 20.0
#: Cold wall time may exceed the CPU limit by this factor (10%).
CPU_LIMIT_SLACK = 1.1
#: Disk a round takes, rounded up: the pycs of compileall, --in-tree and the
#: two CPU-limit passes, and the store (about 0.25 GB each), and the
#: directories of its six trees; and its inodes (6 x 4,200 directories, and
#: 5 x 10,643 pycs or entries, with the store's index files).
ROUND_BYTES = 2 << 30
ROUND_INODES = 100_000

# Compiles SHARD of SHARDS of the .py files under a tree in this one process,
# the way py_compile does, and sums each file's CPU time twice: reading,
# compiling and marshalling it ("compile"); and that plus writing its pyc into
# the tree's __pycache__ ("pyc"), as py_compile.compile does (timestamp mode;
# header layout from PEP 552; importlib's own atomic write). With WRITE 0,
# nothing is written and both sums are the first.
_CPU_LIMIT_SCRIPT = r"""
import json, marshal, os, sys, time
from importlib.util import MAGIC_NUMBER, cache_from_source
from importlib._bootstrap_external import _write_atomic
tree, shard, shards, write = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
paths = []
for directory, dirs, names in os.walk(tree):
    dirs[:] = sorted(d for d in dirs if d != "__pycache__")
    paths.extend(os.path.join(directory, name) for name in sorted(names) if name.endswith(".py"))
compiling = writing = 0.0
files = 0
clock = time.process_time
for path in paths[shard::shards]:
    start = clock()
    with open(path, "rb") as handle:
        source = handle.read()
    try:
        data = marshal.dumps(compile(source, path, "exec", dont_inherit=True))
    except (SyntaxError, ValueError):
        data = None
    compiled = clock()
    compiling += compiled - start
    files += 1
    if write and data is not None:
        st = os.stat(path)
        pyc = cache_from_source(path)
        os.makedirs(os.path.dirname(pyc), exist_ok=True)
        header = MAGIC_NUMBER + bytes(4) + (int(st.st_mtime) & 0xFFFFFFFF).to_bytes(4, "little")
        header += (st.st_size & 0xFFFFFFFF).to_bytes(4, "little")
        _write_atomic(pyc, header + data, (st.st_mode | 0o200) & 0o666)
        writing += clock() - compiled
print(json.dumps({"compile": compiling, "pyc": compiling + writing, "files": files}))
"""


@dataclass
class CompileSetup:
    venv: Venv
    tree: Path
    files: int
    cores: int
    base_environ: dict[str, str]
    work: Path
    rounds: int


def pinned_compile_requirements() -> list[str]:
    """Return the ``name==version`` lines of the compile-benchmark requirements."""
    lines = (
        line.split("#", 1)[0].strip() for line in COMPILE_REQUIREMENTS.read_text().splitlines()
    )
    return [line for line in lines if line]


def count_sources(root: Path) -> int:
    return sum(
        1
        for directory, dirs, names in os.walk(root)
        if "__pycache__" not in Path(directory).parts
        for name in names
        if name.endswith(".py")
    )


def prepare(
    python: str, wheel: Path, base_environ: dict[str, str], work: Path, rounds: int
) -> CompileSetup:
    """Build (or reuse) the compile venv, install PyCache, copy its site-packages."""
    tag, _ = interpreter_tag(python)
    venv, _ = ensure_venv(python, f"compile-{tag}", requirements_file=COMPILE_REQUIREMENTS)
    install_pycache(venv, wheel)
    tree = work / "compile" / "site-packages"
    shutil.copytree(venv.site_packages, tree, ignore=shutil.ignore_patterns("__pycache__"))
    files = count_sources(tree)
    if files < MIN_FILES:
        raise BenchError(f"the compile tree has {files} .py files, fewer than {MIN_FILES}")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return CompileSetup(venv, tree, files, cores or 1, base_environ, work / "compile", rounds)


@dataclass
class Limit:
    """The CPU limit of one pass, in seconds per core."""

    compile: float  # read, compile, marshal
    pyc: float  # and write the pyc, as py_compile does


def cpu_limit(setup: CompileSetup, processes: int, tree: Path | None = None) -> Limit:
    """Return the per-file compile CPU time summed over the tree, per core.

    ``processes`` processes each compile a share of the files at the same
    time: with one, nothing else runs; with one per core, every core is busy,
    as in a parallel compile (cores that share caches or are SMT siblings
    then run each compile more slowly, whoever the compiler is). With
    ``tree``, a fresh copy of the tree, each pyc is also written there.
    """
    argv = [setup.venv.python, "-c", _CPU_LIMIT_SCRIPT, tree or setup.tree]
    os.sync()  # see _Round.compileall
    running = [
        subprocess.Popen(
            [*map(str, argv), str(shard), str(processes), "0" if tree is None else "1"],
            env=setup.base_environ,
            stdout=subprocess.PIPE,
            text=True,
        )
        for shard in range(processes)
    ]
    compiling = pyc = 0.0
    files = 0
    for process in running:
        out, _ = process.communicate()
        if process.returncode != 0:
            raise BenchError(f"the CPU-limit pass failed (exit {process.returncode})")
        data = json.loads(out)
        compiling += data["compile"]
        pyc += data["pyc"]
        files += data["files"]
    if files != setup.files:
        raise BenchError(f"the CPU-limit pass saw {files} files, not {setup.files}")
    return Limit(compiling / setup.cores, pyc / setup.cores)


class _Round:
    """One round's trees, store and commands."""

    TREES = ("compileall", "pycache", "in-tree", "new-path", "limit-0", "limit-1")

    def __init__(self, setup: CompileSetup, number: int) -> None:
        self.setup = setup
        self.dir = setup.work / f"round-{number}"
        self.store = self.dir / "store"
        self.cpu_seconds = (0.0, 0.0)  # (user, system) of the last pycache command
        self.trees = {}
        for name in self.TREES:
            self.trees[name] = self.dir / name
            # New directories at a new path, with the sources hard-linked: the
            # compilers only read them. Copying 4 x 400 MB every round made this
            # VM slower at writing files round after round (the same cold
            # compile used 26 s of CPU in the first of five rounds, 43 s in the
            # last, while the CPU limit, which writes nothing, held steady).
            shutil.copytree(setup.tree, self.trees[name], copy_function=os.link)
        os.sync()  # what the round's start wrote goes out before the timed compiles

    def compileall(self) -> float:
        # Before every timed command, what the one before wrote (up to 0.25 GB of
        # pycs or entries) goes to disk: no command pays for another's writeback.
        os.sync()
        argv = [self.setup.venv.python, "-m", "compileall", "-q", "-j0", self.trees["compileall"]]
        return run_timed(argv, self.setup.base_environ, self.dir).seconds

    def pycache(self, tree: str, *extra: str) -> tuple[float, dict[str, int]]:
        os.sync()  # see compileall
        env = dict(self.setup.base_environ, PYCACHE_DIR=str(self.store))
        argv = [self.setup.venv.pycache, "compile", "-q", "--json", *extra, self.trees[tree]]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        timed = run_timed(argv, env, self.dir)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        # CPU time of the command and its workers (they are waited for before it exits).
        self.cpu_seconds = (after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime)
        try:
            summary: dict[str, int] = json.loads(timed.stdout)
        except ValueError as exc:
            raise BenchError(f"pycache compile printed no JSON: {timed.stdout!r}") from exc
        return timed.seconds, summary

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def _check(summary: dict[str, int], files: int, what: str, *, compiled: bool) -> list[str]:
    problems = []
    if summary.get("files") != files or summary.get("failed"):
        problems.append(f"{what}: {summary} (expected {files} files, none failed)")
    if compiled and summary.get("compiled", 0) + summary.get("up_to_date", 0) != files:
        problems.append(f"{what}: {summary} does not account for every file")
    if not compiled and summary.get("compiled"):
        problems.append(f"{what} compiled {summary['compiled']} files; expected none")
    return problems


def run_compile_scenarios(setup: CompileSetup, selected: str) -> list[ScenarioResult]:
    """Run the rounds; return the results of the selected scenarios among g, h and i."""
    serial = cpu_limit(setup, 1)
    # The CPU limit is measured again in every round, right before and right
    # after that round's cold pycache compile, and the two are averaged: this
    # machine's speed drifts by more than the 10% the target allows, between
    # rounds and even between one 13-second pass and the next.
    limits: list[float] = []  # (pyc) per round: the mean of the passes before and after
    compile_limits: list[float] = []  # the same without writing
    limit_pairs: list[tuple[Limit, Limit]] = []
    cold: tuple[list[float], list[float]] = ([], [])  # (compileall, pycache)
    in_tree_cold: list[float] = []
    noop: tuple[list[float], list[float]] = ([], [])
    in_tree_noop: list[float] = []
    new_path: list[float] = []
    cold_cpu: list[tuple[float, float]] = []
    failures: list[str] = []
    counters: dict[str, dict[str, int]] = {}
    # Every round's files stay until the last round is done. This VM's ext4 has
    # no journal, and there a new file skips every inode deleted in the last
    # minutes (ext4's ``recently_deleted`` check in its inode allocator, up to
    # six minutes while the inode table block is dirty): right after a round's
    # 40,000 files were deleted, each file the next round created scanned
    # thousands of them, 4 to 9 s of system CPU in one cold pycache compile.
    room = os.statvfs(setup.work)
    keep = (
        room.f_bavail * room.f_frsize >= (setup.rounds + 2) * ROUND_BYTES
        and room.f_favail >= (setup.rounds + 2) * ROUND_INODES
    )
    if not keep:
        log("(g-i) too little free disk to keep every round: each is deleted after it runs")
    kept: list[_Round] = []
    try:
        for number in range(setup.rounds):
            copies = f"{setup.files} files x{len(_Round.TREES)}"
            log(f"(g-i) round {number + 1} of {setup.rounds}: linking {copies}")
            round_ = _Round(setup, number)
            kept.append(round_)
            for label, pair, in_tree, fresh in (
                ("cold", cold, in_tree_cold, True),
                ("no-op", noop, in_tree_noop, False),
            ):
                for side in order_for(number):
                    if side == 0:
                        pair[0].append(round_.compileall())
                    else:
                        if fresh:
                            before = cpu_limit(setup, setup.cores, round_.trees["limit-0"])
                        seconds, summary = round_.pycache("pycache")
                        pair[1].append(seconds)
                        if fresh:
                            cold_cpu.append(round_.cpu_seconds)
                            after = cpu_limit(setup, setup.cores, round_.trees["limit-1"])
                            limits.append((before.pyc + after.pyc) / 2)
                            compile_limits.append((before.compile + after.compile) / 2)
                            log(
                                f"(g-i) round {number + 1}: CPU limit {before.pyc:.2f} s "
                                f"before, {after.pyc:.2f} s after the cold pycache compile "
                                f"({seconds:.2f} s); without writing "
                                f"{compile_limits[-1]:.2f} s"
                            )
                            limit_pairs.append((before, after))
                        failures += _check(summary, setup.files, label, compiled=fresh)
                        counters.setdefault(label, summary)
                seconds, summary = round_.pycache("in-tree", "--in-tree")
                in_tree.append(seconds)
                failures += _check(summary, setup.files, f"{label} --in-tree", compiled=fresh)
            seconds, summary = round_.pycache("new-path")
            new_path.append(seconds)
            failures += _check(summary, setup.files, "new path", compiled=False)
            counters.setdefault("new path", summary)
            if not keep:
                kept.pop().remove()
    finally:
        for round_ in kept:
            round_.remove()

    notes = [
        f"tree: a copy of a site-packages with {setup.files} .py files "
        f"(bench/compile-requirements.txt); {setup.rounds} rounds",
        "CPU limit: the per-file CPU time of compiling each file as py_compile does (read, "
        "compile, marshal, write the pyc into the tree's `__pycache__`), measured with "
        f"{setup.cores} processes compiling at once on a fresh copy of the tree, summed, then "
        f"divided by {setup.cores} cores; measured in every round just before and just after "
        "that round's cold `pycache compile`, and the mean of the two paired with it. Before "
        "and after, per round: "
        + "; ".join(f"{b.pyc:.2f} s and {a.pyc:.2f} s" for b, a in limit_pairs)
        + ". The fourth row leaves out writing the pyc (read, compile, marshal only): "
        + "; ".join(f"{b.compile:.2f} s and {a.compile:.2f} s" for b, a in limit_pairs)
        + ". That compile-only sum measured once in one process alone is "
        f"{serial.compile * setup.cores:.2f} s ({serial.compile:.2f} s per core): the "
        "difference is what busy neighbouring cores cost every compile",
    ]
    notes += [f"`pycache compile --json`, {what}: {json.dumps(s)}" for what, s in counters.items()]
    notes.append(
        "every round's trees and store were kept until the last round had run"
        if keep
        else "each round's trees and store were deleted after it ran (too little free disk to "
        "keep them): on ext4 without a journal, the next round's new files then cost more"
    )
    notes += [
        f"cold `pycache compile`, round {number + 1}: {user + system:.2f} s of CPU "
        f"({user:.2f} s user, {system:.2f} s system; all its processes: reading, hashing, "
        f"compiling, writing the store and index), {(user + system) / setup.cores:.2f} s per "
        f"core, in {wall:.2f} s of wall time: "
        f"{(user + system) / setup.cores / wall:.0%} of the cores busy"
        for number, ((user, system), wall) in enumerate(zip(cold_cpu, cold[1]))
    ]
    compileall_label = "compileall -q -j0"
    scenarios = {
        "g": (
            "Compile a site-packages cold",
            "Both tools compile a fresh copy of the tree; PyCache writes a new store. "
            "The third row compares the PyCache run with the CPU limit: a ratio of "
            f"{1 / CPU_LIMIT_SLACK:.3f} or more means within 10% of it. The fourth, for "
            "information, uses a limit that leaves out writing each file's output.",
            [
                Row("pycache compile (store)", compileall_label, "pycache compile",
                    Pairs(cold[0], cold[1]), COLD_TARGET, "ratio"),
                Row("pycache compile --in-tree", compileall_label, "pycache compile --in-tree",
                    Pairs(cold[0], in_tree_cold), None, "ratio"),
                Row("CPU limit / pycache compile (store)", "CPU limit", "pycache compile",
                    Pairs(limits, cold[1]), round(1 / CPU_LIMIT_SLACK, 3),
                    "ratio"),
                Row("CPU limit without writing / pycache compile (store)",
                    "CPU limit, no write", "pycache compile", Pairs(compile_limits, cold[1]),
                    None, "ratio"),
            ],
        ),
        "h": (
            "No-op rerun of the compile",
            "The same commands again on the trees they just compiled.",
            [
                Row("pycache compile (store)", compileall_label, "pycache compile",
                    Pairs(noop[0], noop[1]), NOOP_TARGET, "ratio"),
                Row("pycache compile --in-tree", compileall_label, "pycache compile --in-tree",
                    Pairs(noop[0], in_tree_noop), None, "ratio"),
            ],
        ),
        "i": (
            "A second tree with the same contents at a new path",
            "Another copy of the tree (another venv) compiled with the store of (g), "
            "against the cold compileall of the same round.",
            [
                Row("same contents at a new path", f"{compileall_label} (cold)",
                    "pycache compile (new path)", Pairs(cold[0], new_path), NEW_PATH_TARGET,
                    "ratio"),
            ],
        ),
    }  # fmt: skip
    return [
        ScenarioResult(key, title, description, rows, notes=list(notes), failures=list(failures))
        for key, (title, description, rows) in scenarios.items()
        if key in selected
    ]
