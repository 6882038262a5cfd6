"""End-to-end: PyCache never runs bytecode that does not match the current source.

The torture test runs one long-lived driver process that makes hundreds of
seeded random edits designed to defeat stat-based freshness checks (same
second and same size, mtime restored or set far back, rename-replace, in-place
overwrite without truncation, reverting to earlier content) and, after every
edit, starts a fresh interpreter that imports every module and prints what it
got; the driver also ``importlib.reload``s the edited module in its own
process. Both must always see the current source. The driver waits out the
racy window (``index.GRANULARITY_NS``) twice, so that many edits land on
modules whose path-index records are trusted on stat alone.

The same driver under plain CPython with a writable ``__pycache__`` is the
control: CPython does run stale bytecode there, and that test is a strict xfail.
"""

from __future__ import annotations

import importlib.util
import json
import marshal
import os
import py_compile
import random
import shutil
import time
from pathlib import Path

import pytest

SEED = 20240611
TRUSTED_ROUNDS = 2
RAPID_STEPS = 120
MODULE_COUNT = 32  # must match DRIVER
EXPECTED_EDITS = TRUSTED_ROUNDS * (MODULE_COUNT + RAPID_STEPS)

CHILD = """\
import sys

sys.path.insert(0, sys.argv[1])
for name in sys.argv[2:]:
    __import__(name)
print(" ".join("%s=%s" % (name, sys.modules[name].X) for name in sys.argv[2:]))
"""

DRIVER = r'''"""Edit modules under TREE at random; after each edit check a child and a reload."""
import importlib
import json
import os
import random
import subprocess
import sys
import time

tree = sys.argv[1]
rng = random.Random(int(sys.argv[2]))
trusted_rounds = int(sys.argv[3])
rapid_steps = int(sys.argv[4])
child = os.path.join(os.path.dirname(os.path.abspath(__file__)), "child.py")
names = ["m%03d" % i for i in range(32)]
kinds = ("same_size", "backdate", "in_place", "replace", "old_mtime", "double")
current = {}
history = {name: [] for name in names}
modules = {}
results = {"edits": 0, "checks": 0, "reloads": 0, "kinds": {}, "stale": [], "reload_stale": []}


def path_of(name):
    return os.path.join(tree, name + ".py")


def text(value):
    return "X = %d\n" % value  # two-digit values: every version has the same size


def write(path, value):
    with open(path, "w") as handle:
        handle.write(text(value))


def new_value(name):
    earlier = [value for value in history[name] if value != current[name]]
    if earlier and rng.random() < 0.2:  # back to content the store has seen
        return rng.choice(earlier)
    while True:
        value = rng.randrange(10, 100)
        if value != current[name]:
            return value


def edit(name, kind):
    path = path_of(name)
    before = os.stat(path)
    keep = (before.st_atime_ns, before.st_mtime_ns)
    value = new_value(name)
    if kind == "same_size":
        write(path, value)
    elif kind == "backdate":  # same size and the very same mtime as before
        write(path, value)
        os.utime(path, ns=keep)
    elif kind == "in_place":  # no truncation: the size never changes, not even briefly
        fd = os.open(path, os.O_WRONLY)
        try:
            os.write(fd, text(value).encode())
        finally:
            os.close(fd)
    elif kind == "replace":  # a new inode, with the old mtime
        tmp = path + ".tmp"
        write(tmp, value)
        os.utime(tmp, ns=keep)
        os.replace(tmp, path)
    elif kind == "old_mtime":  # mtime set far back
        write(path, value)
        old = time.time() - rng.randrange(3600, 10 ** 8)
        os.utime(path, (old, old))
    elif kind == "double":  # an intermediate version nobody imports
        write(path, rng.choice([v for v in range(10, 100) if v not in (value, current[name])]))
        write(path, value)
    history[name].append(current[name])
    current[name] = value
    results["edits"] += 1
    results["kinds"][kind] = results["kinds"].get(kind, 0) + 1


def check(label):
    out = subprocess.run(
        [sys.executable, child, tree] + names, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    if out.returncode != 0 or out.stderr:
        raise SystemExit("child failed after %s: %r" % (label, out))
    seen = dict(item.split("=") for item in out.stdout.decode().split())
    for name in names:
        if int(seen[name]) != current[name]:
            results["stale"].append([label, name, int(seen[name]), current[name]])
    results["checks"] += 1


def reload_check(name, label):
    module = importlib.reload(modules[name])
    results["reloads"] += 1
    if module.X != current[name]:
        results["reload_stale"].append([label, name, module.X, current[name]])


def edit_and_check(name, phase):
    kind = rng.choice(kinds)
    edit(name, kind)
    label = "%s:%s:%s#%d" % (phase, kind, name, results["edits"])
    check(label)
    reload_check(name, label)


for name in names:
    current[name] = rng.randrange(10, 100)
    write(path_of(name), current[name])
check("initial")
sys.path.insert(0, tree)
for name in names:
    modules[name] = importlib.import_module(name)

for round_number in range(trusted_rounds):
    # Wait out the racy window: the records made next are trusted on stat alone.
    time.sleep(2.2)
    check("renew%d" % round_number)
    for name in names:
        reload_check(name, "renew%d" % round_number)
    order = list(names)
    rng.shuffle(order)
    for name in order:  # every module edited once from a trusted record
        edit_and_check(name, "trusted%d" % round_number)
    hot = rng.sample(names, 4)
    for _ in range(rapid_steps):  # the same few modules, many times a second
        name = rng.choice(hot) if rng.random() < 0.75 else rng.choice(names)
        edit_and_check(name, "rapid%d" % round_number)

print(json.dumps(results))
'''


def _run_driver(sandbox, run_py, pycache: bool):
    scripts = sandbox.root / "scripts"
    scripts.mkdir()
    (scripts / "child.py").write_text(CHILD)
    (scripts / "driver.py").write_text(DRIVER)
    tree = sandbox.root / "tree"
    tree.mkdir()
    run = run_py(
        [scripts / "driver.py", tree, SEED, TRUSTED_ROUNDS, RAPID_STEPS],
        pycache=pycache,
        write_bytecode=True,
        check=False,
        timeout=300,
    )
    if run.returncode != 0 or run.stderr:
        raise RuntimeError(f"the driver failed: {run!r}")  # not an AssertionError: see xfail
    results = json.loads(run.stdout)
    if results["edits"] != EXPECTED_EDITS or results["checks"] != EXPECTED_EDITS + 3:
        raise RuntimeError(f"the driver did not do what it should: {results}")
    return tree, results


@pytest.mark.slow
class TestRandomEdits:
    def test_pycache_never_runs_stale_code(self, sandbox, run_py, read_stats):
        tree, results = _run_driver(sandbox, run_py, pycache=True)
        assert results["edits"] >= 300
        assert set(results["kinds"]) == {
            "same_size",
            "backdate",
            "in_place",
            "replace",
            "old_mtime",
            "double",
        }
        assert min(results["kinds"].values()) >= 20, results["kinds"]
        assert results["stale"] == []
        assert results["reload_stale"] == []
        assert results["reloads"] == EXPECTED_EDITS + TRUSTED_ROUNDS * MODULE_COUNT
        # PyCache never wrote into the tree, even with bytecode writing on.
        assert not (tree / "__pycache__").exists()
        totals = read_stats()
        # The trusted path really was under test: in each trusted round the i-th check
        # finds 32 - i modules unedited since their records were renewed.
        rounds_floor = TRUSTED_ROUNDS * sum(MODULE_COUNT - i for i in range(1, MODULE_COUNT + 1))
        assert totals["hits_by_stat"] >= rounds_floor, totals
        assert totals["hits_by_content"] > 0 and totals["miss_changed"] > 0, totals

    @pytest.mark.xfail(
        strict=True,
        raises=AssertionError,
        reason="CPython runs stale bytecode after a same-second same-size edit",
    )
    def test_cpython_with_writable_pycache_runs_stale_code(self, sandbox, run_py):
        tree, results = _run_driver(sandbox, run_py, pycache=False)
        if not (tree / "__pycache__").is_dir():  # not an AssertionError: see xfail
            raise RuntimeError("the control did not write pycs, so it proves nothing")
        assert results["stale"] == [] and results["reload_stale"] == [], (
            f"{len(results['stale'])} stale child imports, "
            f"{len(results['reload_stale'])} stale reloads; first: {results['stale'][:3]}"
        )


@pytest.fixture
def git(sandbox):
    executable = shutil.which("git")
    if executable is None:
        pytest.skip("git is not installed")

    def git(*args: str, cwd: Path):
        return sandbox.command(
            [
                executable,
                "-c",
                "user.name=PyCache Tests",
                "-c",
                "user.email=tests@example.invalid",
                "-c",
                "core.autocrlf=false",
                *args,
            ],
            cwd=cwd,
            env={"GIT_CONFIG_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0"},
        )

    return git


@pytest.mark.slow
class TestBranchCheckouts:
    def test_switching_branches_never_runs_the_other_branchs_code(
        self, sandbox, make_tree, run_py, read_stats, git
    ):
        rng = random.Random(SEED)
        names = [f"g{i:02d}" for i in range(12)]
        branch_values = {
            "one": {name: rng.randrange(10, 100) for name in names},
        }
        branch_values["two"] = {
            # Four modules are the same on both branches, the others differ in
            # content but not in size.
            name: value if i < 4 else (value - 10 + rng.randrange(1, 90)) % 90 + 10
            for i, (name, value) in enumerate(branch_values["one"].items())
        }
        repo = sandbox.root / "repo"
        repo.mkdir()
        git("init", "-q", cwd=repo)
        git("checkout", "-q", "-b", "one", cwd=repo)
        make_tree({f"{name}.py": f"X = {branch_values['one'][name]}\n" for name in names}, "repo")
        git("add", ".", cwd=repo)
        git("commit", "-q", "-m", "one", cwd=repo)
        git("checkout", "-q", "-b", "two", cwd=repo)
        make_tree({f"{name}.py": f"X = {branch_values['two'][name]}\n" for name in names}, "repo")
        git("commit", "-q", "-a", "-m", "two", cwd=repo)
        sizes = {(repo / f"{name}.py").stat().st_size for name in names}
        assert sizes == {7}
        child = make_tree({"child.py": CHILD}, root="scripts") / "child.py"

        def check(branch: str) -> list[tuple[str, str, str]]:
            run = run_py([child, repo, *names], write_bytecode=True)
            seen = dict(item.split("=") for item in run.stdout.split())
            return [
                (branch, name, seen[name])
                for name in names
                if int(seen[name]) != branch_values[branch][name]
            ]

        stale = check("two")
        current = "two"
        checkouts = 0
        both_seen = None
        for _ in range(2):
            time.sleep(2.2)  # trusted records for the branch checked out now
            stale += check(current)
            for _ in range(20):
                current = "one" if current == "two" or rng.random() < 0.3 else "two"
                git("checkout", "-q", current, cwd=repo)
                checkouts += 1
                stale += check(current)
                if both_seen is None:
                    both_seen = read_stats()
        assert checkouts == 40
        assert stale == []
        assert git("status", "--porcelain", cwd=repo).stdout == ""
        totals = read_stats()
        assert totals["hits_by_stat"] >= len(names), totals
        # Once both branches have been imported, switching costs no compiles at all.
        assert sandbox.delta(both_seen, totals)["compiles"] == 0, totals
        assert sandbox.delta(both_seen, totals)["hits"] == 40 * len(names), totals


def _pyc_for(source: bytes, path: Path, st: os.stat_result) -> bytes:
    """The timestamp pyc CPython writes for ``source`` read when the file's stat was ``st``."""
    code = compile(source, str(path), "exec", dont_inherit=True)
    header = importlib.util.MAGIC_NUMBER + (0).to_bytes(4, "little")
    header += (int(st.st_mtime) & 0xFFFFFFFF).to_bytes(4, "little")
    header += (st.st_size & 0xFFFFFFFF).to_bytes(4, "little")
    return header + marshal.dumps(code)


def _wait_for_a_fresh_second() -> None:
    fraction = time.time() % 1
    if fraction > 0.5:
        time.sleep(1.02 - fraction)


def _plant_pyc(module: Path, *, written_after_edit: bool) -> Path:
    """Edit ``X = 41`` to ``X = 42`` within one second and leave a pyc of the old code.

    The pyc's header (mtime in seconds, size) matches the *new* source. It is
    written before the edit (CPython's usual stale case: the pyc file is older
    than the source) or after it (a CPython process that read the old source,
    then wrote its pyc once the edit had landed).
    """
    pyc = Path(importlib.util.cache_from_source(str(module)))
    for _ in range(5):
        _wait_for_a_fresh_second()
        module.write_bytes(b"X = 41\n")
        old = os.stat(module)
        data = _pyc_for(b"X = 41\n", module, old)
        pyc.parent.mkdir(exist_ok=True)
        if not written_after_edit:
            pyc.write_bytes(data)
            time.sleep(0.02)
        module.write_bytes(b"X = 42\n")
        new = os.stat(module)
        if written_after_edit:
            time.sleep(0.02)
            pyc.write_bytes(data)
        pyc_mtime = os.stat(pyc).st_mtime_ns
        newest_source = max(new.st_mtime_ns, new.st_ctime_ns)
        if int(old.st_mtime) == int(new.st_mtime) and (
            (pyc_mtime > newest_source) == written_after_edit
        ):
            return pyc
    pytest.fail("could not make a same-second edit")


@pytest.fixture
def main(sandbox):
    return sandbox.script("import mod\nprint(mod.X)\n")


class TestInTreePycs:
    def test_stale_pyc_older_than_the_source_is_ignored(self, main, make_tree, run_py):
        tree = make_tree({"mod.py": "X = 0\n"})
        _plant_pyc(tree / "mod.py", written_after_edit=False)
        cpython = run_py([main], pycache=False, pythonpath=[tree])
        assert cpython.stdout == "41\n"  # CPython's stale case, reproduced
        run = run_py([main], pythonpath=[tree], env={"PYCACHE_DEBUG": "1"})
        assert run.stdout == "42\n"
        assert any("cannot prove it is fresh" in line for line in run.trace), run

    def test_pyc_written_after_a_same_second_edit_is_not_served(self, main, make_tree, run_py):
        tree = make_tree({"mod.py": "X = 0\n"})
        _plant_pyc(tree / "mod.py", written_after_edit=True)
        cpython = run_py([main], pycache=False, pythonpath=[tree])
        assert cpython.stdout == "41\n"
        run = run_py([main], pythonpath=[tree])
        assert run.stdout == "42\n"

    def test_a_stale_pyc_cannot_poison_the_store(self, main, sandbox, make_tree, run_py):
        tree = make_tree({"mod.py": "X = 0\n"})
        pyc = _plant_pyc(tree / "mod.py", written_after_edit=True)
        run_py([main], pythonpath=[tree])
        shutil.rmtree(str(pyc.parent))
        elsewhere = make_tree({"mod.py": "X = 42\n"}, root="elsewhere")
        assert run_py([main], pythonpath=[tree]).stdout == "42\n"
        assert run_py([main], pythonpath=[elsewhere]).stdout == "42\n"

    def test_timestamp_pyc_is_never_used(self, main, make_tree, run_py, read_stats):
        tree = make_tree({"mod.py": "X = 7\n"})
        pyc = Path(importlib.util.cache_from_source(str(tree / "mod.py")))
        time.sleep(0.05)
        run_py([main], pycache=False, pythonpath=[tree], write_bytecode=True)
        assert pyc.exists()
        run = run_py([main], pythonpath=[tree], env={"PYCACHE_DEBUG": "1"})
        assert run.stdout == "7\n"
        assert any("cannot prove it is fresh" in line for line in run.trace), run
        totals = read_stats()
        assert totals["intree_pyc"] == 0 and totals["compiles"] == 1, totals

    @pytest.mark.parametrize("mode", ["UNCHECKED_HASH", "CHECKED_HASH"])
    def test_matching_hash_pyc_is_used_but_not_stored(
        self, main, make_tree, run_py, read_stats, mode
    ):
        tree = make_tree({"mod.py": "X = 7\n"})
        pyc = Path(importlib.util.cache_from_source(str(tree / "mod.py")))
        py_compile.compile(
            str(tree / "mod.py"), invalidation_mode=getattr(py_compile.PycInvalidationMode, mode)
        )
        run = run_py([main], pythonpath=[tree], env={"PYCACHE_DEBUG": "1"})
        assert run.stdout == "7\n"
        kind = "unchecked" if mode == "UNCHECKED_HASH" else "checked"
        assert f"using {kind} {pyc}" in run.trace, run
        totals = read_stats()
        assert totals["intree_pyc"] == 1 and totals["compiles"] == 0, totals
        # Its code did not go into the store: without the pyc, PyCache compiles.
        shutil.rmtree(str(pyc.parent))
        assert run_py([main], pythonpath=[tree]).stdout == "7\n"
        assert read_stats()["compiles"] == 1

    @pytest.mark.parametrize("policy", [None, "always", "never"])
    @pytest.mark.parametrize("mode", ["UNCHECKED_HASH", "CHECKED_HASH"])
    def test_hash_pyc_for_other_source_is_honoured_as_cpython_does(
        self, main, make_tree, run_py, mode, policy
    ):
        # PEP 552: a checked-hash pyc is checked, an unchecked one is not (that is
        # its point), and --check-hash-based-pycs overrides both, for PyCache too.
        tree = make_tree({"mod.py": "X = 1\n"})
        py_compile.compile(
            str(tree / "mod.py"), invalidation_mode=getattr(py_compile.PycInvalidationMode, mode)
        )
        (tree / "mod.py").write_text("X = 2222\n")
        flags = [] if policy is None else ["--check-hash-based-pycs", policy]
        checked = policy == "always" or (policy is None and mode == "CHECKED_HASH")
        cpython = run_py([*flags, main], pycache=False, pythonpath=[tree])
        assert cpython.stdout == ("2222\n" if checked else "1\n")
        run = run_py([*flags, main], pythonpath=[tree], env={"PYCACHE_DEBUG": "1"})
        assert run.stdout == cpython.stdout
        if checked:
            assert any(line.startswith("ignoring stale") for line in run.trace), run

    def test_intree_0_ignores_a_fresh_pyc(self, main, make_tree, run_py, read_stats):
        tree = make_tree({"mod.py": "X = 3\n"})
        mode = py_compile.PycInvalidationMode.CHECKED_HASH
        py_compile.compile(str(tree / "mod.py"), invalidation_mode=mode)
        run = run_py([main], pythonpath=[tree], env={"PYCACHE_INTREE": "0"})
        assert run.stdout == "3\n"
        totals = read_stats()
        assert totals["intree_pyc"] == 0 and totals["compiles"] == 1, totals
