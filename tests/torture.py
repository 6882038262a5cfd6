"""The fault-injection and torture suite: PyCache under load, crashes, faults and fuzzing.

Each trial counts what it did and every failure it saw, and returns a
``Trial``. ``tests/test_torture.py`` runs every trial at the ``ci`` scale and
fails on any failure; ``make torture`` runs the ``full`` scale (the counts
issue 4 asks for) and rewrites ``docs/RELIABILITY.md`` with the figures::

    python tests/torture.py [--scale ci|full] [--only NAME,...] [--write FILE]

Every interpreter started here gets an environment built from nothing (no
``PYTHON*`` or ``PYCACHE_*`` variable leaks in from the machine), with PyCache
active the way ``pycache run`` activates it (``src/pycache/_boot`` first on
``PYTHONPATH``) or plainly disabled. Exit codes: 0 no failures, 1 failures,
2 bad usage.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path
from typing import Callable, Sequence

import pycache

PYTHON = sys.executable
PACKAGE_DIR = Path(pycache.__file__).resolve().parent
BOOT_DIR = PACKAGE_DIR / "_boot"
SRC_DIR = PACKAGE_DIR.parent


@dataclasses.dataclass(frozen=True)
class Scale:
    name: str
    workers: int  # concurrency: importing processes at once
    rounds: int  # ... runs of each
    tree_modules: int  # ... modules in the generated tree
    crash_trials: int
    stale_rounds: int  # staleness: rounds of trusted edits, each then rapid edits
    stale_rapid: int
    stale_child_every: int  # a fresh interpreter checks every module after every n-th edit
    fuzz_inputs: int  # per decoder
    hostile_runs: int  # per hostile surrounding


SCALES = {
    "ci": Scale("ci", 8, 4, 300, 25, 2, 150, 10, 8_000, 2),
    "full": Scale("full", 8, 200, 300, 500, 10, 970, 10, 340_000, 10),
}


@dataclasses.dataclass
class Trial:
    """What one trial did: counted figures, failures seen, or why it could not run."""

    name: str
    title: str
    figures: dict[str, object] = dataclasses.field(default_factory=dict)
    failures: list[str] = dataclasses.field(default_factory=list)
    skipped: str | None = None
    seconds: float = 0.0

    def fail(self, message: str) -> None:
        self.failures.append(message)


# --- interpreters and environments -------------------------------------------------


def environ(
    root: Path,
    store: Path | None,
    *,
    active: bool = True,
    extra: dict[str, str | None] | None = None,
) -> dict[str, str]:
    """A complete environment for a child interpreter under ``root``."""
    home = root / "home"
    home.mkdir(parents=True, exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", os.defpath),
        "HOME": str(home),
        "TMPDIR": tempfile.gettempdir(),
        "PYTHONIOENCODING": "utf-8",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    if store is not None:
        env["PYCACHE_DIR"] = str(store)
    if active:
        env["PYTHONPATH"] = os.pathsep.join([str(BOOT_DIR), str(SRC_DIR)])
    else:
        env["PYCACHE_DISABLE"] = "1"
    for name, value in (extra or {}).items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def pycache_cli(
    args: list[str], env: dict[str, str], timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-m", "pycache", *args],
        env={**env, "PYTHONPATH": str(SRC_DIR)},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def verify_store(env: dict[str, str], *, repair: bool = False) -> tuple[int, str]:
    run = pycache_cli(["verify", "--store", *(["--repair"] if repair else [])], env)
    return run.returncode, (run.stdout + run.stderr).strip()


# --- a generated tree of modules whose results can be checked ------------------------

CHECKER = """\
import json, sys
sys.path.insert(0, sys.argv[1])
expected = json.loads(open(sys.argv[2]).read())
hot = json.loads(sys.argv[3]) if len(sys.argv) > 3 else []
before = {}
for name in hot:  # the versions on disk before importing: an import may see newer, never older
    path = sys.argv[1] + "/" + name.replace(".", "/") + ".py"
    before[name] = int(open(path).read().split("VERSION = ")[1].split()[0])
bad = []
import importlib
for name, value in expected.items():
    module = importlib.import_module(name)
    if name in before:
        if module.VERSION < before[name] or module.CHECK != module.VERSION * 7 + 3:
            bad.append("%s: version %s check %s, file had %s" % (
                name, module.VERSION, module.CHECK, before[name]))
    elif module.VALUE != value or module.twice() != 2 * value:
        bad.append("%s: %r, expected %r" % (name, module.VALUE, value))
print(json.dumps({"modules": len(expected), "bad": bad}))
"""


def hot_source(version: int) -> str:
    return f"VERSION = {10**7 + version}\nCHECK = VERSION * 7 + 3\n"  # always the same size


def make_tree(root: Path, modules: int, seed: int, hot: int = 0) -> tuple[Path, Path, list[str]]:
    """Write a package tree of ``modules`` modules; return (tree, expected.json, hot names).

    Ten packages, each module importing its package's previous module, with a
    docstring, a class and a function, so that every module is a real compile.
    """
    rng = random.Random(seed)
    tree = root / "tree"
    expected: dict[str, int] = {}
    for p in range(10):
        package = tree / f"pkg{p}"
        package.mkdir(parents=True, exist_ok=True)
        (package / "__init__.py").write_text(f'"""Package {p}."""\n')
    for i in range(modules):
        name = f"pkg{i % 10}.mod{i:04d}"
        value = rng.randrange(10**6)
        previous = f"from . import mod{i - 10:04d}\n" if i >= 10 else ""
        body = textwrap.dedent(
            f'''\
            """Module {i}: a little of everything a real module has."""
            {previous}
            VALUE = {value}


            class Thing{i}:
                """A class."""

                def __init__(self, x):
                    self.x = x

                def scaled(self, factor=2):
                    return [self.x * factor for _ in range(1)][0]


            def twice():
                return Thing{i}(VALUE).scaled()
            '''
        )
        (tree / name.replace(".", "/")).with_suffix(".py").write_text(body)
        expected[name] = value
    hot_names = []
    for h in range(hot):
        name = f"pkg{h % 10}.hot{h:02d}"
        (tree / name.replace(".", "/")).with_suffix(".py").write_text(hot_source(1))
        hot_names.append(name)
        expected[name] = -1
    expected_file = root / "expected.json"
    expected_file.write_text(json.dumps(expected))
    (root / "checker.py").write_text(CHECKER)
    return tree, expected_file, hot_names


def check_run(
    root: Path,
    tree: Path,
    expected: Path,
    env: dict[str, str],
    hot: Sequence[str] = (),
    timeout: float = 300,
    script: str = "checker.py",
) -> list[str]:
    """Run the checker (or another ``script`` under ``root`` printing the same report) once;
    return what went wrong (empty: every result right)."""
    args = [PYTHON, str(root / script), str(tree), str(expected)]
    if hot:
        args.append(json.dumps(list(hot)))
    run = subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout)
    if run.returncode != 0:
        return [f"exit {run.returncode}: {run.stderr.strip()[-500:]}"]
    if run.stderr.strip():
        return [f"unexpected stderr: {run.stderr.strip()[-500:]}"]
    try:
        report = json.loads(run.stdout)
    except ValueError:
        return [f"unreadable output: {run.stdout[-300:]!r}"]
    return list(report["bad"])


# --- trials -----------------------------------------------------------------------------


def concurrency(scale: Scale, work: Path) -> Trial:
    trial = Trial(
        "concurrency", "Concurrency: importers, gc with a tiny limit and an editor at once"
    )
    tree, expected, hot = make_tree(work, scale.tree_modules, seed=1, hot=4)
    store = work / "store"
    env = environ(work, store)
    stop = threading.Event()
    counts = {
        "runs": 0,
        "failed_runs": 0,
        "wrong_results": 0,
        "gc_runs": 0,
        "gc_errors": 0,
        "edits": 0,
    }
    lock = threading.Lock()

    def importer() -> None:
        for _ in range(scale.rounds):
            bad = check_run(work, tree, expected, env, hot)
            with lock:
                counts["runs"] += 1
                if bad:
                    counts["failed_runs"] += 1
                    counts["wrong_results"] += sum(
                        not b.startswith(("exit", "unexpected", "unreadable")) for b in bad
                    )
                    trial.fail(bad[0])

    def collector() -> None:
        while not stop.is_set():
            run = pycache_cli(["gc", "--max-size", "64K"], env)
            counts["gc_runs"] += 1
            if run.returncode != 0:
                counts["gc_errors"] += 1
                trial.fail(f"gc exited {run.returncode}: {run.stderr.strip()[-300:]}")
            stop.wait(0.05)

    def editor() -> None:
        rng = random.Random(2)
        version = 1
        while not stop.is_set():
            version += 1
            name = rng.choice(hot)
            path = (tree / name.replace(".", "/")).with_suffix(".py")
            if rng.random() < 0.5:  # in place, no truncation: the size never changes
                fd = os.open(path, os.O_WRONLY)
                try:
                    os.write(fd, hot_source(version).encode())
                finally:
                    os.close(fd)
            else:
                tmp = path.with_suffix(".tmp")
                tmp.write_text(hot_source(version))
                os.replace(tmp, path)  # rename-replace
            counts["edits"] += 1
            stop.wait(rng.uniform(0.001, 0.02))

    helpers = [threading.Thread(target=collector), threading.Thread(target=editor)]
    workers = [threading.Thread(target=importer) for _ in range(scale.workers)]
    for thread in helpers + workers:
        thread.start()
    for thread in workers:
        thread.join()
    stop.set()
    for thread in helpers:
        thread.join()
    code, output = verify_store(env)
    trial.figures.update(
        processes=scale.workers,
        rounds_each=scale.rounds,
        modules=scale.tree_modules + len(hot),
        **counts,
        store_check=f"clean (exit {code})" if code == 0 else f"exit {code}",
    )
    if code != 0:
        trial.fail(f"pycache verify --store exited {code}: {output[-500:]}")
    return trial


def crash(scale: Scale, work: Path) -> Trial:
    trial = Trial("crash", "Crash consistency: writers killed with SIGKILL at random points")
    rng = random.Random(3)
    store = work / "store"
    env = environ(work, store)
    counts = {"trials": 0, "killed_mid_run": 0, "wrong_results": 0, "failed_runs": 0,
              "store_unclean_after_kill": 0, "repaired": 0, "unrepaired": 0,
              "temp_files_left": 0}  # fmt: skip
    temps_seen: set[Path] = set()
    durations = [0.3, 0.3]  # seconds a whole run of each kind of writer takes
    for n in range(scale.crash_trials):
        root = work / f"t{n % 2}"
        if root.exists():
            shutil.rmtree(root)
        root.mkdir()
        # New content every trial: the writer writes new entries and index records.
        tree, expected, _ = make_tree(root, 120, seed=1000 + n)
        if n % 2 == 0:
            argv = [PYTHON, str(root / "checker.py"), str(tree), str(expected)]
            child_env = env
        else:
            argv = [PYTHON, "-m", "pycache", "compile", "-q", "-j", "1", str(tree)]
            child_env = {**env, "PYTHONPATH": str(SRC_DIR)}
        started = time.monotonic()
        process = subprocess.Popen(
            argv, env=child_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        # A random point of the run: most writers are killed, a few finish (how
        # long a whole run takes is learnt from the writers of its kind that finished).
        time.sleep(rng.uniform(0.0, 1.1 * durations[n % 2]))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            counts["killed_mid_run"] += 1
            process.wait()
        else:
            durations[n % 2] = time.monotonic() - started
        counts["trials"] += 1
        left = set(store.rglob("*.tmp"))  # a write cut short: gc removes them once an hour old
        counts["temp_files_left"] += len(left - temps_seen)
        temps_seen |= left
        code, _ = verify_store(env)  # what the kill left, before anything repairs it
        bad = check_run(root, tree, expected, env)  # a later run, on that store: every result right
        if bad:
            counts["failed_runs"] += 1
            counts["wrong_results"] += len(bad)
            trial.fail(f"trial {n}: {bad[0]}")
        if code != 0:
            counts["store_unclean_after_kill"] += 1
            verify_store(env, repair=True)
            code, output = verify_store(env)
            if code == 0:
                counts["repaired"] += 1
            else:
                counts["unrepaired"] += 1
                trial.fail(f"trial {n}: store still unclean after --repair: {output[-300:]}")
    stats = json.loads(pycache_cli(["stats", "--json"], env).stdout or "{}")
    counts["damaged_entries_caught_as_misses"] = stats.get("miss_corrupt", 0)
    trial.figures.update(counts)
    return trial


def _mount_tmpfs(point: Path, size: str) -> str | None:
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "mounting a tmpfs needs root"
    if shutil.which("mount") is None:
        return "mount(8) not found"
    point.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)],
                          capture_output=True, text=True)  # fmt: skip
    return None if done.returncode == 0 else f"cannot mount a tmpfs: {done.stderr.strip()}"


def _unmount(point: Path) -> None:
    subprocess.run(["umount", "-l", str(point)], capture_output=True)


def disk_full(scale: Scale, work: Path) -> Trial:
    trial = Trial("disk_full", "Disk full: the store on a 256 KiB tmpfs")
    point = work / "tiny"
    why = _mount_tmpfs(point, "256k")
    if why is not None:
        trial.skipped = why
        return trial
    try:
        tree, expected, _ = make_tree(work, scale.tree_modules, seed=4)
        env = environ(work, point / "store")
        runs = max(3, scale.hostile_runs)
        failed = 0
        for _ in range(runs):
            bad = check_run(work, tree, expected, env)
            if bad:
                failed += 1
                trial.fail(bad[0])
        # Counted on the filesystem: the stats file itself may not fit on a full disk.
        entries = sum(1 for path in (point / "store" / "entries").rglob("*") if path.is_file())
        free = os.statvfs(point)
        code, output = verify_store(env)
        trial.figures.update(
            runs=runs,
            modules_per_run=scale.tree_modules,
            failed_runs=failed,
            entries_that_fit=entries,
            free_bytes_left=free.f_bavail * free.f_frsize,
            store_check="clean" if code == 0 else f"exit {code}",
        )
        if entries >= scale.tree_modules:
            trial.fail("the store never filled up: the trial proved nothing")
        if code != 0:
            trial.fail(f"verify --store exited {code}: {output[-300:]}")
    finally:
        _unmount(point)
    return trial


STORE_DELETER = """\
import json, os, shutil, sys
sys.path.insert(0, sys.argv[1])
expected = json.loads(open(sys.argv[2]).read())
names = list(expected)
bad = []
import importlib
for i, name in enumerate(names):
    if i == len(names) // 2:
        shutil.rmtree(os.environ["PYCACHE_DIR"])  # the store goes away mid-run
    module = importlib.import_module(name)
    if module.VALUE != expected[name]:
        bad.append(name)
print(json.dumps({"modules": len(names), "bad": bad}))
"""


def _bind_readonly(path: Path) -> str | None:
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "a read-only bind mount needs root"
    first = subprocess.run(
        ["mount", "--bind", str(path), str(path)], capture_output=True, text=True
    )
    if first.returncode != 0:
        return f"mount --bind: {first.stderr.strip()}"
    second = subprocess.run(
        ["mount", "-o", "remount,ro,bind", str(path)], capture_output=True, text=True
    )
    if second.returncode != 0:
        _unmount(path)
        return f"remount ro: {second.stderr.strip()}"
    return None


def hostile(scale: Scale, work: Path) -> Trial:
    trial = Trial("hostile", "Read-only and hostile surroundings")
    tree, expected, _ = make_tree(work, 60, seed=5)
    runs = scale.hostile_runs
    cases: dict[str, str] = {}

    (work / "deleter.py").write_text(STORE_DELETER)

    def run_case(name: str, env: dict[str, str], *, script: str = "checker.py") -> None:
        failed = 0
        for _ in range(runs):
            bad = check_run(work, tree, expected, env, script=script)
            if bad:
                failed += 1
                trial.fail(f"{name}: {bad[0]}")
        cases[name] = f"{runs - failed}/{runs} runs right"

    # A read-only store (filled first, then bind-mounted read-only).
    store = work / "ro-store"
    check_run(work, tree, expected, environ(work, store))

    def mounted_case(name: str, why: str | None, point: Path, env: dict[str, str]) -> None:
        """``run_case`` on the mount at ``point`` (``why`` not: it could not be mounted)."""
        if why is not None:
            cases[name] = f"skipped: {why}"
            return
        try:
            run_case(name, env)
        finally:
            _unmount(point)

    mounted_case(
        "read-only store (ro bind mount)", _bind_readonly(store), store, environ(work, store)
    )
    # The store deleted halfway through a run's imports.
    deleted = work / "deleted-store"
    run_case("store deleted mid-run", environ(work, deleted), script="deleter.py")
    # The store on another filesystem (a tmpfs) than the sources.
    point = work / "other-fs"
    why = _mount_tmpfs(point, "64m")
    mounted_case("store on another filesystem (tmpfs)", why, point, environ(work, point / "store"))
    # No HOME and no PYCACHE_DIR (the store comes from XDG_CACHE_HOME, so that
    # nothing is written to the real user's home from the password database).
    no_home = environ(work, None, extra={"HOME": None, "XDG_CACHE_HOME": str(work / "xdg")})
    run_case("HOME unset", no_home)
    # The source tree read-only: chmod -w, then a read-only bind mount.
    for path in [tree, *tree.rglob("*")]:
        path.chmod(path.stat().st_mode & ~0o222)
    try:
        run_case("source tree chmod -w", environ(work, work / "store-w"))
        why = _bind_readonly(tree)
        mounted_case("source tree on a ro bind mount", why, tree, environ(work, work / "store-ro"))
    finally:
        for path in [tree, *tree.rglob("*")]:
            path.chmod(path.stat().st_mode | 0o200)
    trial.figures.update(cases)
    return trial


STALE_DRIVER = r"""
import importlib, json, os, random, subprocess, sys, time

tree = sys.argv[1]
seed, rounds, rapid, child_every = (int(arg) for arg in sys.argv[2:6])
rng = random.Random(seed)
names = ["m%03d" % i for i in range(32)]
kinds = ("same_second_same_size", "mtime_backwards", "rename_replace", "checkout")
current, modules = {}, {}
res = {"edits": 0, "checks": 0, "kinds": {}, "stale": 0, "examples": []}
# Two branches: each module has its content on "main" and on "feature" (same sizes).
branches = {"main": {}, "feature": {}}
on_branch = "main"

def path_of(name):
    return os.path.join(tree, name + ".py")

def text(value):
    return "X = %d\n" % value  # six digits: every version has the same size

def write(path, value, *, keep_ns=None, rename=False):
    target = path + ".tmp" if rename else path
    with open(target, "w") as handle:
        handle.write(text(value))
    if keep_ns is not None:
        os.utime(target, ns=keep_ns)
    if rename:
        os.replace(target, path)

def edit(name, kind):
    global on_branch
    path = path_of(name)
    st = os.stat(path)
    keep = (st.st_atime_ns, st.st_mtime_ns)
    if kind == "checkout":  # git checkout: every module rewritten in one burst, as new files
        on_branch = "feature" if on_branch == "main" else "main"
        for other in names:
            if rng.random() < 0.5:  # a commit on this branch since the last checkout
                branches[on_branch][other] = rng.randrange(10 ** 5, 10 ** 6)
            write(path_of(other), branches[on_branch][other], rename=True)
            current[other] = branches[on_branch][other]
        return names
    value = rng.randrange(10 ** 5, 10 ** 6)
    if kind == "same_second_same_size":
        write(path, value, keep_ns=keep)
    elif kind == "mtime_backwards":
        old = time.time_ns() - rng.randrange(3600, 10 ** 8) * 10 ** 9
        write(path, value, keep_ns=(old, old))
    else:  # rename_replace, with the old mtime
        write(path, value, keep_ns=keep, rename=True)
    current[name] = value
    branches[on_branch][name] = value
    return [name]

def check_child(label):
    script = ("import sys; sys.path.insert(0, sys.argv[1]); "
              "print(' '.join(str(__import__(n).X) for n in sys.argv[2:]))")
    out = subprocess.run([sys.executable, "-c", script, tree] + names,
                         capture_output=True, text=True)
    if out.returncode != 0 or out.stderr:
        raise SystemExit("child failed: %r" % (out,))
    for name, seen in zip(names, out.stdout.split()):
        res["checks"] += 1
        if int(seen) != current[name]:
            res["stale"] += 1
            if len(res["examples"]) < 5:
                res["examples"].append([label, name, int(seen), current[name]])

def check_reload(name, label):
    module = importlib.reload(modules[name])
    res["checks"] += 1
    if module.X != current[name]:
        res["stale"] += 1
        if len(res["examples"]) < 5:
            res["examples"].append([label, name, module.X, current[name]])

for name in names:
    for branch in branches.values():
        branch[name] = rng.randrange(10 ** 5, 10 ** 6)
    current[name] = branches["main"][name]
    write(path_of(name), current[name])
sys.path.insert(0, tree)
for name in names:
    modules[name] = importlib.import_module(name)
for round_number in range(rounds):
    time.sleep(2.2)  # past the racy window: the records made next are trusted on stat alone
    check_child("renew")
    for name in names:
        check_reload(name, "renew")
    steps = [(name, "trusted") for name in rng.sample(names, len(names))]
    hot = rng.sample(names, 4)
    for _ in range(rapid):
        steps.append((rng.choice(hot) if rng.random() < 0.75 else rng.choice(names), "rapid"))
    for name, phase in steps:
        kind = "checkout" if rng.random() < 0.05 else rng.choice(kinds[:3])
        edited = edit(name, kind)
        res["edits"] += 1
        res["kinds"][kind] = res["kinds"].get(kind, 0) + 1
        label = "%s:%s:%s" % (phase, kind, name)
        for other in edited:
            check_reload(other, label)
        if res["edits"] % child_every == 0:
            check_child(label)
print(json.dumps(res))
"""


def staleness(scale: Scale, work: Path) -> Trial:
    trial = Trial("staleness", "Staleness at scale: randomized edits, PyCache beside CPython")
    driver = work / "driver.py"
    driver.write_text(STALE_DRIVER)
    results = {}
    for side, active in (("pycache", True), ("cpython", False)):
        tree = work / f"tree-{side}"
        tree.mkdir()
        env = environ(work, work / "store", active=active, extra={"PYTHONDONTWRITEBYTECODE": None})
        args = [
            str(tree),
            "7",
            str(scale.stale_rounds),
            str(scale.stale_rapid),
            str(scale.stale_child_every),
        ]
        run = subprocess.run(
            [PYTHON, str(driver), *args], env=env, capture_output=True, text=True, timeout=3600
        )
        if run.returncode != 0 or run.stderr:
            trial.fail(f"the {side} driver failed: {run.stderr[-500:]}")
            return trial
        results[side] = json.loads(run.stdout)
        if side == "cpython" and not (tree / "__pycache__").is_dir():
            trial.fail("the CPython control wrote no pycs: it proves nothing")
    ours, theirs = results["pycache"], results["cpython"]
    trial.figures.update(
        edit_trials=ours["edits"],
        by_kind=ours["kinds"],
        executions_checked=ours["checks"],
        stale_executions_pycache=ours["stale"],
        stale_executions_cpython=theirs["stale"],
        cpython_first_stale=theirs["examples"][:2],
    )
    if ours["stale"]:
        trial.fail(f"PyCache ran stale code {ours['stale']} times: {ours['examples']}")
    return trial


def fuzz(scale: Scale, work: Path) -> Trial:
    import fuzzing

    trial = Trial("fuzz", "Fuzzing the pyc, store-entry and index decoders (Hypothesis)")
    for target in fuzzing.TARGETS:
        inputs, unexpected = fuzzing.run(target, scale.fuzz_inputs)
        trial.figures[f"{target}_inputs"] = inputs
        for message in unexpected:
            trial.fail(f"{target}: {message}")
    trial.figures["documented_exceptions"] = fuzzing.DOCUMENTED
    return trial


TRIALS: dict[str, Callable[[Scale, Path], Trial]] = {
    "concurrency": concurrency,
    "crash": crash,
    "disk_full": disk_full,
    "hostile": hostile,
    "staleness": staleness,
    "fuzz": fuzz,
}


def run_trial(name: str, scale: Scale, work: Path) -> Trial:
    work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    trial = TRIALS[name](scale, work)
    trial.seconds = round(time.monotonic() - started, 1)
    return trial


# --- the report -----------------------------------------------------------------------


MARKER = "<!-- Figures below the marker are written by `make torture`; edit the text above it. -->"


def _machine() -> str:
    return (
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"{platform.system()} {platform.release()} {platform.machine()}, "
        f"{os.cpu_count()} cores, run as {'root' if os.geteuid() == 0 else 'a user'}"
    )


def section(trial: Trial, scale: Scale) -> str:
    """The report section of one trial (its own heading, scale, date and machine)."""
    lines = [f"### {trial.title}", ""]
    when = time.strftime("%Y-%m-%d", time.gmtime())
    if trial.skipped:
        lines += [f"Skipped ({scale.name} scale, {when}): {trial.skipped}.", ""]
        return "\n".join(lines) + "\n"
    verdict = "PASS" if not trial.failures else f"FAIL ({len(trial.failures)} failures)"
    lines += [
        f"Result: **{verdict}**, {scale.name} scale, {trial.seconds:.0f} s, {when}; {_machine()}.",
        "",
        "| figure | value |",
        "|---|---|",
    ]
    for key, value in trial.figures.items():
        shown = json.dumps(value) if isinstance(value, (dict, list)) else str(value)
        lines.append(f"| {key.replace('_', ' ')} | {shown} |")
    lines += [f"- failure: `{failure}`" for failure in trial.failures[:10]]
    return "\n".join(lines) + "\n"


def merge_report(existing: str, sections: dict[str, str]) -> str:
    """``existing`` with the sections of the trials just run replaced, in ``TRIALS`` order.

    The text above ``MARKER`` is kept as it is; so are the sections of trials
    not run this time (``--only``). Each section starts with a comment naming
    its trial.
    """
    intro, found, figures = existing.partition(MARKER)
    if not found:
        intro, figures = existing, ""
    kept: dict[str, str] = {}
    for chunk in figures.split(_SECTION_TAG)[1:]:
        name, _, text = chunk.partition(" -->\n")
        if name in TRIALS:
            kept[name] = text.strip("\n") + "\n"
    kept.update(sections)
    body = "\n".join(f"{_SECTION_TAG}{name} -->\n{kept[name]}" for name in TRIALS if name in kept)
    return f"{intro.rstrip()}\n\n{MARKER}\n\n## Figures\n\n{body}"


_SECTION_TAG = "<!-- trial: "


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=sorted(SCALES), default="full")
    parser.add_argument("--only", default=",".join(TRIALS), help="comma-separated trials")
    parser.add_argument("--write", metavar="FILE", help="rewrite FILE's figures section")
    parser.add_argument("--json", action="store_true", help="print the trials as JSON")
    args = parser.parse_args(argv)
    names = [name for name in args.only.split(",") if name]
    unknown = [name for name in names if name not in TRIALS]
    if unknown:
        parser.error(f"unknown trial(s) {', '.join(unknown)}; known: {', '.join(TRIALS)}")
    scale = SCALES[args.scale]
    trials = []
    with tempfile.TemporaryDirectory(prefix="pycache-torture-") as tmp:
        for name in names:
            print(f"[torture] {name} ({scale.name})...", file=sys.stderr, flush=True)
            trial = run_trial(name, scale, Path(tmp) / name)
            verdict = "skipped" if trial.skipped else "FAIL" if trial.failures else "pass"
            print(f"[torture] {name}: {verdict} in {trial.seconds:.0f} s", file=sys.stderr)
            trials.append(trial)
    sections = {trial.name: section(trial, scale) for trial in trials}
    if args.json:
        print(json.dumps([dataclasses.asdict(t) for t in trials], indent=2))
    else:
        print("\n".join(sections.values()))
    if args.write:
        path = Path(args.write)
        path.write_text(merge_report(path.read_text() if path.exists() else "", sections))
    return 1 if any(t.failures for t in trials) else 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))  # fuzzing.py
    sys.exit(main())
