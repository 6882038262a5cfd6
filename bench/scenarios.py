"""The benchmark scenarios, and the loop that runs CPython and PyCache side by side.

Each of scenarios (a) to (e) prepares a workload tree and a PyCache store, then
runs the workload program as plain CPython and with PyCache active, in
interleaved pairs. Scenario (f) times interpreter start-up alone.

Every run is checked: the program must report the same digest and module
count on both sides, and must have imported the workload from the tree the
scenario prepared. PyCache's counters are read after every run: a plain
CPython run must not change them (PyCache was off) and a PyCache run must
show hits (PyCache was on).
"""

from __future__ import annotations

import errno
import os
import shutil
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from measure import (
    Pairs,
    order_for,
    parse_report,
    read_json,
    run_timed,
    stats_delta,
    summarise_difference,
    summarise_ratio,
)
from workload import (
    BenchError,
    Venv,
    copy_tree,
    log,
    pycache_dirs,
    run_checked,
    source_files,
    with_pythonpath,
)

BASELINE, CANDIDATE = 0, 1
SIDE_NAMES = ("CPython", "PyCache")
# The workload imports several hundred modules; far fewer means a broken install.
MIN_WORKLOAD_MODULES = 300
#: Seconds a fresh-runner run's backfill helper may take after the program exits.
BACKFILL_WAIT = 60
BRANCH_B_SUFFIX = b"\n# pycache-bench: branch B\n"


@dataclass
class Context:
    """What every scenario needs: the environments, the workload and the knobs."""

    workload: Venv
    plain: Venv
    enabled: Venv
    tops: list[str]
    program: Path
    run_environ: dict[str, str]
    base_environ: dict[str, str]
    work: Path
    reps: int
    activation_reps: int

    def cpython_env(self, tree: Path, *, dont_write: bool) -> dict[str, str]:
        """Environment for plain CPython with ``tree`` first on ``sys.path``."""
        env = with_pythonpath(self.base_environ, tree)
        if dont_write:
            env["PYTHONDONTWRITEBYTECODE"] = "1"
        return env

    def pycache_env(self, tree: Path, store: Path, *, dont_write: bool) -> dict[str, str]:
        """Environment for the same run with PyCache active, as ``pycache run`` sets it up."""
        env = dict(self.base_environ)
        env.update(self.run_environ)
        env["PYCACHE_DIR"] = str(store)
        env = with_pythonpath(env, tree)
        if dont_write:
            env["PYTHONDONTWRITEBYTECODE"] = "1"
        return env

    def argv(self) -> list[str | Path]:
        return [self.workload.python, self.program]

    def stats(self, store: Path, *, reset: bool = False) -> dict[str, int]:
        env = dict(self.base_environ, PYCACHE_DIR=str(store))
        if reset:
            run_checked([self.workload.pycache, "stats", "--reset"], env=env, what="stats reset")
        out = run_checked([self.workload.pycache, "stats", "--json"], env=env, what="stats")
        return read_json(out, "pycache stats --json")

    def copy(self, dest: Path, *, keep_mtimes: bool) -> Path:
        return copy_tree(self.workload, self.tops, dest, keep_mtimes=keep_mtimes)

    def warm_store(self, tree: Path, store: Path) -> dict[str, int]:
        """Run the workload twice with PyCache on ``tree``; return the second run's counters.

        ``PYTHONDONTWRITEBYTECODE`` is set so that nothing can leave pycs in
        the tree; PyCache writes its store regardless.
        """
        env = self.pycache_env(tree, store, dont_write=True)
        run_timed(self.argv(), env, self.work)
        middle = self.stats(store)
        run_timed(self.argv(), env, self.work)
        return stats_delta(middle, self.stats(store))


@dataclass
class Invocation:
    """One side's run: its environment, the tree it must import from, and what to undo."""

    env: dict[str, str]
    tree: Path
    cleanup: Callable[[], None] | None = None


@dataclass
class Row:
    """One measured comparison: a scenario has one, start-up has several."""

    label: str
    baseline: str
    candidate: str
    pairs: Pairs
    target: float | None  # a ratio to reach, or milliseconds not to exceed
    kind: str  # "ratio" or "difference"

    @property
    def summary(self) -> dict[str, float]:
        if self.kind == "ratio":
            return summarise_ratio(self.pairs)
        return summarise_difference(self.pairs)

    @property
    def passed(self) -> bool | None:
        if self.target is None:
            return None
        if self.kind == "ratio":
            return self.summary["ratio_median"] >= self.target
        return self.summary["diff_median"] * 1000 <= self.target


@dataclass
class ScenarioResult:
    key: str
    title: str
    description: str
    rows: list[Row]
    stats_one_run: dict[str, int] = field(default_factory=dict)
    stats_all_runs: dict[str, int] = field(default_factory=dict)
    #: The workload program's report from the first run (a plain CPython one).
    program_report: dict[str, object] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures and all(row.passed is not False for row in self.rows)


class RatioScenario:
    """A scenario timed as CPython time over PyCache time; subclasses prepare the trees."""

    key = ""
    title = ""
    description = ""
    target = 3.0
    #: Warm runs may need to hash sources (new path, changed file) but never compile.
    expect_content_hits = False
    #: The local store starts empty every run: hits come from a remote (``_check_remote``).
    cold_local = False

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.dir = ctx.work / self.key
        self.store = self.dir / "store"
        self.notes: list[str] = []
        self.runs = 0

    def setup(self) -> None:
        raise NotImplementedError

    def invocation(self, side: int) -> Invocation:
        raise NotImplementedError

    def verify(self) -> list[str]:
        """Return what went wrong with the trees during the timed runs."""
        return []

    def teardown(self) -> None:
        """Undo what ``setup`` did outside the work directory. Must not raise."""

    def _no_pycs(self, tree: Path) -> list[str]:
        found = pycache_dirs(tree)
        if found:
            return [f"{len(found)} __pycache__ directories appeared in {tree} (e.g. {found[0]})"]
        return []


class Warm(RatioScenario):
    key = "a"
    title = "Warm: writable __pycache__ vs warm store"
    description = (
        "The tree has the pycs CPython wrote on a first run (PYTHONDONTWRITEBYTECODE unset); "
        "PyCache's store is warm. Both sides run with the default environment."
    )
    target = 1.0

    def setup(self) -> None:
        self.tree = self.ctx.copy(self.dir / "tree", keep_mtimes=True)
        run_timed(self.ctx.argv(), self.ctx.cpython_env(self.tree, dont_write=False), self.dir)
        if not pycache_dirs(self.tree):
            raise BenchError(f"CPython wrote no pycs into {self.tree}")
        self.ctx.warm_store(self.tree, self.store)

    def invocation(self, side: int) -> Invocation:
        if side == BASELINE:
            return Invocation(self.ctx.cpython_env(self.tree, dont_write=False), self.tree)
        return Invocation(self.ctx.pycache_env(self.tree, self.store, dont_write=False), self.tree)


class ReadOnly(RatioScenario):
    key = "b"
    title = "Read-only tree, no pycs"
    description = (
        "A tree without pycs is bind-mounted read-only onto itself, so CPython (as root, "
        "which ignores file modes) cannot write pycs and compiles every module on every "
        "run; PyCache's store (elsewhere, writable) is warm. PYTHONDONTWRITEBYTECODE is unset."
    )

    def setup(self) -> None:
        self.tree = self.ctx.copy(self.dir / "tree", keep_mtimes=True)
        reason = _mount_readonly(self.tree)
        self.mounted = reason is None
        if self.mounted:
            self.notes.append(f"{self.tree} was a read-only bind mount during the runs")
        else:
            self.notes.append(
                f"FALLBACK: a read-only bind mount was not possible ({reason}); both sides "
                "ran with PYTHONDONTWRITEBYTECODE=1 instead, so this equals scenario (c)"
            )
            log(self.notes[-1])
        self.ctx.warm_store(self.tree, self.store)

    def invocation(self, side: int) -> Invocation:
        dont_write = not self.mounted
        if side == BASELINE:
            return Invocation(self.ctx.cpython_env(self.tree, dont_write=dont_write), self.tree)
        env = self.ctx.pycache_env(self.tree, self.store, dont_write=dont_write)
        return Invocation(env, self.tree)

    def verify(self) -> list[str]:
        return self._no_pycs(self.tree)

    def teardown(self) -> None:
        if getattr(self, "mounted", False):
            _unmount(self.tree)


class DontWriteBytecode(RatioScenario):
    key = "c"
    title = "PYTHONDONTWRITEBYTECODE=1, no pycs"
    description = (
        "A tree without pycs; both sides run with PYTHONDONTWRITEBYTECODE=1, so CPython "
        "compiles every module on every run. PyCache's store is warm."
    )

    def setup(self) -> None:
        self.tree = self.ctx.copy(self.dir / "tree", keep_mtimes=True)
        self.ctx.warm_store(self.tree, self.store)

    def invocation(self, side: int) -> Invocation:
        if side == BASELINE:
            return Invocation(self.ctx.cpython_env(self.tree, dont_write=True), self.tree)
        return Invocation(self.ctx.pycache_env(self.tree, self.store, dont_write=True), self.tree)

    def verify(self) -> list[str]:
        return self._no_pycs(self.tree)


class FreshCopy(RatioScenario):
    key = "d"
    title = "Fresh copy at a new path"
    description = (
        "PyCache's store is warmed from one copy of the tree only. Every run, on either "
        "side, then gets its own brand-new copy (new path, new mtimes, no pycs), made "
        "before the timer starts and deleted after it stops, like a fresh clone. Neither "
        "side has seen the path before: CPython compiles (and writes pycs, as it would), "
        "PyCache must hash each source to find its entry. PYTHONDONTWRITEBYTECODE is unset."
    )
    expect_content_hits = True

    def setup(self) -> None:
        first = self.ctx.copy(self.dir / "first", keep_mtimes=False)
        self.ctx.warm_store(first, self.store)
        self.notes.append(
            "each run used a new directory "
            f"{self.dir}/fresh-NNNN-<side>, copied before and deleted after the run"
        )

    def invocation(self, side: int) -> Invocation:
        self.runs += 1
        tree = self.ctx.copy(
            self.dir / f"fresh-{self.runs:04d}-{SIDE_NAMES[side].lower()}", keep_mtimes=False
        )
        cleanup = lambda: shutil.rmtree(tree)  # noqa: E731
        if side == BASELINE:
            return Invocation(self.ctx.cpython_env(tree, dont_write=False), tree, cleanup)
        return Invocation(self.ctx.pycache_env(tree, self.store, dont_write=False), tree, cleanup)


class BranchSwitch(RatioScenario):
    key = "e"
    title = "Branch switch in place"
    description = (
        "Two versions of the tree: A as installed, and B with a comment appended to every "
        "module. Before every run, on either side, every .py file is overwritten in place "
        "with the other version (new mtimes, like git checkout), so each run is the first "
        "after a switch. CPython has a writable __pycache__ and recompiles what changed; "
        "PyCache's store already holds both versions. PYTHONDONTWRITEBYTECODE is unset."
    )
    expect_content_hits = True

    def setup(self) -> None:
        self.tree = self.ctx.copy(self.dir / "tree", keep_mtimes=True)
        self.files = source_files(self.tree)
        self.versions = (
            [path.read_bytes() for path in self.files],
            [path.read_bytes() + BRANCH_B_SUFFIX for path in self.files],
        )
        self.current = 0
        for version in (1, 0):
            self._switch_to(version)
            self.ctx.warm_store(self.tree, self.store)
            run_timed(self.ctx.argv(), self.ctx.cpython_env(self.tree, dont_write=False), self.dir)
        self.notes.append(f"each switch rewrote {len(self.files)} .py files")

    def _switch_to(self, version: int) -> None:
        for path, data in zip(self.files, self.versions[version]):
            with open(path, "wb") as handle:
                handle.write(data)
        self.current = version

    def invocation(self, side: int) -> Invocation:
        self._switch_to(1 - self.current)
        if side == BASELINE:
            return Invocation(self.ctx.cpython_env(self.tree, dont_write=False), self.tree)
        return Invocation(self.ctx.pycache_env(self.tree, self.store, dont_write=False), self.tree)


class FreshRunner(RatioScenario):
    """A fresh CI runner: an empty local store in front of a remote that CI has filled."""

    backend = ""
    target = 2.5
    cold_local = True

    def start_server(self) -> tuple[object, str]:
        raise NotImplementedError

    def setup(self) -> None:
        self.backfill_seconds: list[float] = []
        self.tree = self.ctx.copy(self.dir / "tree", keep_mtimes=True)
        try:
            self.server, self.url = self.start_server()
        except (OSError, RuntimeError) as exc:
            raise BenchError(f"cannot start the {self.backend}: {exc}") from exc
        filler = self.ctx.pycache_env(self.tree, self.dir / "ci-store", dont_write=True)
        filler.update(PYCACHE_REMOTE=self.url, PYCACHE_REMOTE_MODE="rw")
        filler["PYCACHE_REMOTE_FLUSH_TIMEOUT"] = "60"  # the filling run waits for every upload
        run_timed(self.ctx.argv(), filler, self.dir)
        self.notes.append(
            f"a {self.backend} on loopback was filled by one PyCache run with "
            "PYCACHE_REMOTE_MODE=rw and its own store; before every PyCache run the local "
            "store's entries and index were deleted (its counters kept), and that run read "
            "the remote (PYCACHE_REMOTE_MODE=ro). CPython ran with PYTHONDONTWRITEBYTECODE=1 "
            "on a tree without pycs, compiling every module."
        )

    def _empty_local_store(self) -> None:
        for name in ("entries", "index"):
            shutil.rmtree(self.store / name, ignore_errors=True)
        (self.store / "gc-state").unlink(missing_ok=True)

    def invocation(self, side: int) -> Invocation:
        if side == BASELINE:
            return Invocation(self.ctx.cpython_env(self.tree, dont_write=True), self.tree)
        self._empty_local_store()
        env = self.ctx.pycache_env(self.tree, self.store, dont_write=True)
        env.update(PYCACHE_REMOTE=self.url, PYCACHE_REMOTE_MODE="ro")
        return Invocation(env, self.tree, cleanup=self._wait_for_backfill)

    def _wait_for_backfill(self) -> None:
        """Wait, untimed, for the helper that copies remote hits into the local store.

        So that it never runs during the next timed run (or into the store
        the next run empties). Its time after the program exited is reported.
        """
        spool = self.store / "spool"
        started = time.monotonic()
        while spool.is_dir() and any(spool.iterdir()):
            if time.monotonic() - started > BACKFILL_WAIT:
                raise BenchError(f"the backfill helper did not finish in {BACKFILL_WAIT} s")
            time.sleep(0.005)
        self.backfill_seconds.append(time.monotonic() - started)

    def verify(self) -> list[str]:
        if self.backfill_seconds:
            self.notes.append(
                "after each PyCache run the benchmark waited, untimed, for the helper process "
                "that copies the remote hits into the local store after the program exits: "
                f"median {statistics.median(self.backfill_seconds):.2f} s"
            )
        return self._no_pycs(self.tree)

    def teardown(self) -> None:
        server = getattr(self, "server", None)
        if server is not None:
            server.stop()  # type: ignore[attr-defined]


def _server_binary(name: str) -> str:
    from servers import find_binary

    binary = find_binary(name)
    if binary is None:
        raise BenchError(f"{name} is not installed (Debian package {name}; .ci/run installs it)")
    return binary


class FreshRunnerRedis(FreshRunner):
    key = "j"
    backend = "redis-server"
    title = "Fresh CI runner: empty local store, warm Redis"
    description = (
        "A new runner or container: nothing compiled locally, a Redis remote that CI "
        "filled. CPython compiles every module (no pycs, PYTHONDONTWRITEBYTECODE=1)."
    )

    def start_server(self) -> tuple[object, str]:
        from servers import start_redis

        server = start_redis(self.dir / "server", _server_binary("redis-server"))
        return server, server.url


class FreshRunnerHTTP(FreshRunner):
    key = "k"
    backend = "nginx (WebDAV PUT)"
    title = "Fresh CI runner: empty local store, warm HTTP cache"
    description = (
        "As (j), with an HTTP remote: nginx serving GET and accepting WebDAV PUT "
        "(ccache's subdirs layout)."
    )

    def start_server(self) -> tuple[object, str]:
        from servers import start_nginx

        server = start_nginx(self.dir / "server", binary=_server_binary("nginx"))
        return server, server.url + "?layout=subdirs"


RATIO_SCENARIOS: tuple[type[RatioScenario], ...] = (
    Warm,
    ReadOnly,
    DontWriteBytecode,
    FreshCopy,
    BranchSwitch,
    FreshRunnerRedis,
    FreshRunnerHTTP,
)


def run_ratio_scenario(scenario: RatioScenario) -> ScenarioResult:
    """Set up ``scenario``, time its interleaved pairs, check every run, tear it down."""
    ctx = scenario.ctx
    result = ScenarioResult(
        scenario.key, scenario.title, scenario.description, rows=[], notes=scenario.notes
    )
    scenario.dir.mkdir(parents=True)
    try:
        scenario.setup()
        reference: dict[str, object] = {}

        def one_run(side: int) -> float:
            invocation = scenario.invocation(side)
            timed = run_timed(ctx.argv(), invocation.env, ctx.work)
            if invocation.cleanup is not None:
                invocation.cleanup()
            _check_report(parse_report(timed.stdout), invocation.tree, side, reference)
            return timed.seconds

        for side in (BASELINE, CANDIDATE):  # untimed: settle caches after setup
            one_run(side)
        before = ctx.stats(scenario.store, reset=True)
        times: tuple[list[float], list[float]] = ([], [])
        for pair in range(ctx.reps):
            for side in order_for(pair):
                times[side].append(one_run(side))
                after = ctx.stats(scenario.store)
                delta, before = stats_delta(before, after), after
                _check_counters(delta, side)
                if side == CANDIDATE:
                    if not result.stats_one_run:
                        result.stats_one_run = delta
                    for name, value in delta.items():
                        result.stats_all_runs[name] = result.stats_all_runs.get(name, 0) + value
        result.program_report = dict(reference)
        result.failures.extend(scenario.verify())
        if scenario.cold_local:
            result.failures.extend(_check_remote(result.stats_all_runs, ctx.reps))
        else:
            result.failures.extend(_check_warm(result.stats_all_runs, scenario.expect_content_hits))
    finally:
        scenario.teardown()
    pairs = Pairs(baseline=times[BASELINE], candidate=times[CANDIDATE])
    result.rows.append(
        Row(scenario.title, "CPython", "PyCache", pairs, scenario.target, kind="ratio")
    )
    return result


def _check_report(
    report: dict[str, object], tree: Path, side: int, reference: dict[str, object]
) -> None:
    root = os.path.realpath(str(report.get("root")))
    if root != os.path.realpath(tree):
        raise BenchError(f"{SIDE_NAMES[side]} imported the workload from {root}, not {tree}")
    modules = report.get("workload_modules")
    if not isinstance(modules, int) or modules < MIN_WORKLOAD_MODULES:
        raise BenchError(f"the workload loaded only {modules} modules from its tree")
    if not reference:
        reference.update(report)
    for name in ("workload_modules", "digest"):
        if report[name] != reference[name]:
            raise BenchError(
                f"{SIDE_NAMES[side]} run reported {name}={report[name]!r}, "
                f"another run reported {reference[name]!r}: the program changed behaviour"
            )


def _check_counters(delta: dict[str, int], side: int) -> None:
    if side == BASELINE and any(delta.values()):
        raise BenchError(f"PyCache counted work during a plain CPython run: {delta}")
    if side == CANDIDATE and delta.get("hits", 0) == 0:
        raise BenchError(f"PyCache served nothing from its store in a PyCache run: {delta}")


def _check_warm(totals: dict[str, int], expect_content_hits: bool) -> list[str]:
    failures = []
    for name in ("compiles", "misses"):
        if totals.get(name, 0):
            failures.append(
                f"the store was warm, yet the timed PyCache runs had {name}={totals[name]}"
            )
    if expect_content_hits and not totals.get("hits_by_content", 0):
        failures.append("no hit by content: the new or changed sources were never hashed")
    return failures


def _check_remote(totals: dict[str, int], runs: int) -> list[str]:
    """A fresh runner's PyCache runs must have been served mostly by the remote."""
    served = totals.get("hits_remote", 0)
    compiled = totals.get("compiles", 0)
    if served == 0 or compiled > served / 10:
        return [f"the remote served {served} modules in {runs} runs, {compiled} were compiled"]
    if totals.get("remote_errors", 0):
        return [f"the remote failed {totals['remote_errors']} times"]
    copied = totals.get("remote_backfills", 0)
    if copied < served * 0.9:
        return [f"only {copied} of the {served} remote hits were copied into the local store"]
    return []


def _mount_readonly(path: Path) -> str | None:
    """Bind-mount ``path`` read-only onto itself; return why not, or ``None`` on success."""
    try:
        run_checked(["mount", "--bind", path, path], what="mount --bind")
    except (BenchError, OSError) as exc:
        return str(exc).splitlines()[-1] if str(exc) else repr(exc)
    try:
        run_checked(["mount", "-o", "remount,ro,bind", path], what="mount -o remount,ro,bind")
        probe = path / ".bench-write-probe"
        try:
            probe.write_bytes(b"")
        except OSError as exc:
            if exc.errno == errno.EROFS:
                return None
            raise BenchError(f"probing {path} gave {exc}") from exc
        probe.unlink()
        raise BenchError(f"{path} is still writable after remounting it read-only")
    except (BenchError, OSError) as exc:
        _unmount(path)
        return str(exc).splitlines()[-1] if str(exc) else repr(exc)


def _unmount(path: Path) -> None:
    subprocess.run(["umount", str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def mounts_under(root: Path) -> list[Path]:
    """Return the mount points below ``root``, deepest first (left by an interrupted run)."""
    found = []
    prefix = str(root) + os.sep
    try:
        with open("/proc/self/mounts", encoding="utf-8") as handle:
            for line in handle:
                fields = line.split()
                if len(fields) < 2:
                    continue
                point = fields[1].encode().decode("unicode_escape")  # \040 for spaces
                if point.startswith(prefix):
                    found.append(Path(point))
    except OSError:
        return []
    return sorted(found, key=lambda path: len(path.parts), reverse=True)


def unmount_all_under(root: Path) -> None:
    for point in mounts_under(root):
        _unmount(point)


# -- (f) start-up ------------------------------------------------------------------------------

STARTUP_TARGET_MS = 2.0


@dataclass
class _Launch:
    label: str
    argv: list[str | Path]
    env: dict[str, str]


@dataclass
class _Comparison:
    label: str
    baseline: _Launch
    candidate: _Launch
    target: float | None


def run_activation(ctx: Context) -> ScenarioResult:
    """Time ``python -c pass`` with and without PyCache, three ways of switching it on."""
    store = ctx.work / "f" / "store"
    store.mkdir(parents=True)
    base = dict(ctx.base_environ, PYCACHE_DIR=str(store))
    run_env = dict(base)
    run_env.update(ctx.run_environ)
    tiny = ["-c", "pass"]
    comparisons = [
        _Comparison(
            ".pth from `pycache enable`",
            _Launch("venv without .pth", [ctx.plain.python, *tiny], base),
            _Launch("venv with .pth", [ctx.enabled.python, *tiny], base),
            STARTUP_TARGET_MS,
        ),
        _Comparison(
            "sitecustomize of `pycache run`",
            _Launch("plain", [ctx.workload.python, *tiny], base),
            _Launch("PYTHONPATH as pycache run sets it", [ctx.workload.python, *tiny], run_env),
            STARTUP_TARGET_MS,
        ),
        _Comparison(
            "`pycache run --` command, wrapper included",
            _Launch("python -c pass", [ctx.workload.python, *tiny], base),
            _Launch(
                "pycache run -- python -c pass",
                [ctx.workload.pycache, "run", "--", ctx.workload.python, *tiny],
                base,
            ),
            None,
        ),
    ]
    result = ScenarioResult(
        "f",
        "Start-up overhead",
        "`python -c pass`, with and without PyCache switched on, in interleaved pairs; the "
        "figure is the median of the per-pair differences (PyCache minus plain). The .pth "
        "pair uses two venvs made the same way from the same interpreter, one of them with "
        "`pycache enable`. The sitecustomize pair runs one venv's python with and without "
        "the PYTHONPATH entry `pycache run` adds. The last pair includes the `pycache run` "
        "process itself (an extra interpreter start before the exec) and has no target.",
        rows=[],
    )
    _check_activation(ctx, base, run_env)
    result.notes.append(
        "before timing, `python -m pycache status --json` reported PyCache active in each "
        "PyCache configuration and inactive in each plain one"
    )
    for comparison in comparisons:
        sides = (comparison.baseline, comparison.candidate)
        for launch in sides * 3:  # untimed warm-up
            run_timed(launch.argv, launch.env, ctx.work)
        times: tuple[list[float], list[float]] = ([], [])
        for pair in range(ctx.activation_reps):
            for side in order_for(pair):
                launch = sides[side]
                times[side].append(run_timed(launch.argv, launch.env, ctx.work).seconds)
        pairs = Pairs(baseline=times[BASELINE], candidate=times[CANDIDATE])
        result.rows.append(
            Row(
                comparison.label,
                comparison.baseline.label,
                comparison.candidate.label,
                pairs,
                comparison.target,
                kind="difference",
            )
        )
    return result


def _check_activation(ctx: Context, base: dict[str, str], run_env: dict[str, str]) -> None:
    """Fail unless PyCache is on exactly where the start-up comparison expects it."""
    expectations = (
        (ctx.plain, base, False),
        (ctx.enabled, base, True),
        (ctx.workload, base, False),
        (ctx.workload, run_env, True),
    )
    for venv, env, expected in expectations:
        out = run_checked(
            [venv.python, "-m", "pycache", "status", "--json"], env=env, what="pycache status"
        )
        active = read_json(out, "pycache status --json").get("active")
        if active is not expected:
            raise BenchError(
                f"PyCache active={active} in {venv.path} "
                f"(PYTHONPATH={env.get('PYTHONPATH', '')!r}); expected {expected}"
            )
