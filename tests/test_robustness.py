"""End-to-end: a damaged, missing, unwritable or full store never changes a program.

Every test compares a run with PyCache to the same run as plain CPython: same
stdout, exit code 0, nothing on stderr (unless ``PYCACHE_DEBUG=1``, whose trace
must then say what happened and why).
"""

from __future__ import annotations

import json
import os
import py_compile
import random
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pycache.index import PathIndex
from pycache.keys import compile_context

SEED = 1234
MODULES = 12
HALF = MODULES // 2


def _tree_files() -> dict[str, str]:
    """Twelve modules in two directories (so two path-index files)."""
    files = {
        "pkg/__init__.py": "from . import helpers\n",
        "pkg/helpers.py": "def total(values):\n    return sum(values) * 3\n",
        "pkg/sub/__init__.py": "",
    }
    for i in range(MODULES - 3):
        package = "pkg" if i < 5 else "pkg/sub"
        files[f"{package}/mod{i}.py"] = (
            f'"""Module {i}."""\n'
            "from pkg.helpers import total\n\n"
            f"VALUES = {list(range(i, i + 20))}\n\n\n"
            "def result():\n"
            f"    return total(VALUES) + {i}\n"
        )
    return files


NAMES = ["pkg", "pkg.helpers", "pkg.sub"] + [
    f"pkg.mod{i}" if i < 5 else f"pkg.sub.mod{i}" for i in range(MODULES - 3)
]
MAIN = (
    "import sys\n"
    f"names = sys.argv[1:] or {NAMES!r}\n"
    "for name in names:\n"
    "    __import__(name)\n"
    "print([sys.modules[name].result() for name in names"
    " if hasattr(sys.modules[name], 'result')])\n"
)


@pytest.fixture
def tree(make_tree):
    return make_tree(_tree_files())


@pytest.fixture
def main(sandbox):
    return sandbox.script(MAIN)


@pytest.fixture
def expected(run_py, tree, main):
    """What plain CPython prints for MAIN on the tree."""
    cpython = run_py([main], pycache=False, pythonpath=[tree])
    assert cpython.stdout.startswith("[570, ") and cpython.stderr == ""
    return cpython


def _flip_a_byte(path: Path, rng: random.Random) -> bytes:
    data = bytearray(path.read_bytes())
    position = rng.randrange(len(data))
    data[position] ^= 1 << rng.randrange(8)
    path.write_bytes(bytes(data))
    return bytes(data)


def _truncate(path: Path, rng: random.Random) -> bytes:
    data = path.read_bytes()[: rng.randrange(path.stat().st_size)]
    path.write_bytes(data)
    return data


def _rotate(paths: list[Path]) -> dict[Path, bytes]:
    """Give each file the next one's content (an entry in another key's place)."""
    contents = [path.read_bytes() for path in paths]
    result = {}
    for path, data in zip(paths, contents[1:] + contents[:1]):
        path.write_bytes(data)
        result[path] = data
    return result


def _damage(paths: list[Path], how: str) -> dict[Path, bytes]:
    rng = random.Random(SEED)
    if how == "rotate":
        return _rotate(paths)
    damage = _flip_a_byte if how == "flip" else _truncate
    return {path: damage(path, rng) for path in paths}


class TestCorruptStore:
    @pytest.mark.parametrize("how", ["flip", "truncate", "rotate"])
    def test_damaged_entries_are_misses_and_get_rebuilt(
        self, main, sandbox, tree, expected, run_py, read_stats, how
    ):
        run_py([main], pythonpath=[tree])
        entries = sandbox.entry_files()
        assert len(entries) >= MODULES
        damaged = _damage(entries, how)
        before = read_stats()

        run = run_py([main], pythonpath=[tree])
        sandbox.assert_like_cpython(run, expected)
        used = sandbox.delta(before, read_stats())
        assert used["miss_corrupt"] == used["misses"] == MODULES, used
        assert used["compiles"] == MODULES and used["hits"] == 0, used
        rebuilt = sandbox.entry_files()
        assert rebuilt == entries  # same keys, every one rewritten
        assert [path for path in rebuilt if path.read_bytes() == damaged[path]] == []
        # And the rebuilt store serves the next run without compiling.
        before = read_stats()
        sandbox.assert_like_cpython(run_py([main], pythonpath=[tree]), expected)
        used = sandbox.delta(before, read_stats())
        assert used["hits"] == MODULES and used["compiles"] == 0, used

    @pytest.mark.parametrize("how", ["flip", "truncate", "rotate"])
    def test_damaged_index_files_cost_a_rehash_only(
        self, main, sandbox, tree, expected, run_py, read_stats, how
    ):
        run_py([main], pythonpath=[tree])
        index_files = sandbox.index_files()
        assert len(index_files) >= 2  # pkg and pkg/sub
        damaged = _damage(index_files, how)
        before = read_stats()

        run = run_py([main], pythonpath=[tree])
        sandbox.assert_like_cpython(run, expected)
        used = sandbox.delta(before, read_stats())
        assert used["hits"] == MODULES, used
        assert used["compiles"] == 0 and used["misses"] == 0, used
        # The children run this interpreter with default flags: the same compile context.
        index = PathIndex(str(sandbox.store / "index"), context=compile_context())
        for directory in (tree / "pkg", tree / "pkg" / "sub"):
            rewritten = Path(index.file_for(str(directory)))
            assert rewritten in damaged
            assert rewritten.read_bytes()[:4] == b"PYCI"
            assert rewritten.read_bytes() != damaged[rewritten]

    def test_garbage_files_in_the_store_are_ignored(self, main, sandbox, tree, expected, run_py):
        run_py([main], pythonpath=[tree])
        entries = len(sandbox.entry_files())
        (sandbox.store / "entries" / "zz").write_bytes(b"not a directory")
        (sandbox.store / "entries" / "ab").mkdir(exist_ok=True)
        (sandbox.store / "entries" / "ab" / "cd.12.34.tmp").write_bytes(b"half-written")
        (sandbox.store / "index" / "junk").mkdir()
        sandbox.assert_like_cpython(run_py([main], pythonpath=[tree]), expected)
        status = sandbox.cli("status", "--json")
        assert status.returncode == 0, status
        assert json.loads(status.stdout)["entries"] == entries


def _inject(root: Path, source: str) -> Path:
    """A directory whose ``sitecustomize`` applies ``source`` before any PyCache import.

    It is a sourceless ``.pyc``, so loading it neither goes through PyCache nor
    builds PyCache's engine: the fault is in place before the store is touched.
    """
    root.mkdir()
    text = root / "sitecustomize_src.py"
    text.write_text(textwrap.dedent(source))
    py_compile.compile(str(text), cfile=str(root / "sitecustomize.pyc"), doraise=True)
    text.unlink()
    return root


class TestUnwritableStore:
    def test_store_below_a_regular_file(self, main, sandbox, tree, expected, run_py):
        blocker = sandbox.root / "blocker"
        blocker.write_bytes(b"a file, not a directory")
        env = {"PYCACHE_DIR": str(blocker / "store")}
        run = run_py([main], pythonpath=[tree], env=env)
        sandbox.assert_like_cpython(run, expected)
        assert blocker.read_bytes() == b"a file, not a directory"
        traced = run_py([main], pythonpath=[tree], env={**env, "PYCACHE_DEBUG": "1"})
        assert traced.stdout == expected.stdout
        assert any(line.startswith("cannot write entry") for line in traced.trace), traced

    def test_store_below_a_regular_file_gives_up_after_one_failure(
        self, main, sandbox, tree, run_py
    ):
        blocker = sandbox.root / "blocker"
        blocker.write_bytes(b"a file, not a directory")
        env = {"PYCACHE_DIR": str(blocker / "store"), "PYCACHE_DEBUG": "1"}
        traced = run_py([main], pythonpath=[tree], env=env)
        failures = [line for line in traced.trace if line.startswith("cannot write entry")]
        assert len(failures) == 1, traced
        assert any("is not writable; carrying on without writing" in t for t in traced.trace)

    def test_store_that_is_a_regular_file(self, main, sandbox, tree, expected, run_py):
        sandbox.store.write_bytes(b"not a store")
        run = run_py([main], pythonpath=[tree])
        sandbox.assert_like_cpython(run, expected)
        assert sandbox.store.read_bytes() == b"not a store"
        status = sandbox.cli("status", "--json")
        assert status.returncode == 0, status
        assert json.loads(status.stdout)["entries"] == 0

    def test_readonly_store_is_read_but_never_written(
        self, main, sandbox, tree, expected, run_py, read_stats
    ):
        run_py([main], pythonpath=[tree])
        (tree / "pkg" / "mod0.py").write_text("def result():\n    return 'edited'\n")
        (tree / "pkg" / "extra.py").write_text("def result():\n    return 'new'\n")
        names = [*NAMES, "pkg.extra"]
        snapshot = sandbox.snapshot(sandbox.store)

        env = {"PYCACHE_READONLY": "1"}
        run = run_py([main, *names], pythonpath=[tree], env=env)
        cpython = run_py([main, *names], pycache=False, pythonpath=[tree])
        sandbox.assert_like_cpython(run, cpython)
        assert run.stdout.startswith("['edited', ") and run.stdout.endswith(", 'new']\n")
        assert sandbox.snapshot(sandbox.store) == snapshot
        traced = run_py([main, *names], pythonpath=[tree], env={**env, "PYCACHE_DEBUG": "1"})
        assert f"store {sandbox.store} (read-only)" in traced.trace
        assert any(line.startswith(f"hit {tree / 'pkg' / 'mod1.py'}") for line in traced.trace)
        assert sandbox.snapshot(sandbox.store) == snapshot

    def test_readonly_without_a_store_creates_nothing(self, main, sandbox, tree, expected, run_py):
        run = run_py([main], pythonpath=[tree], env={"PYCACHE_READONLY": "1"})
        sandbox.assert_like_cpython(run, expected)
        assert not sandbox.store.exists()

    INJECT_DENIED = """\
        import errno, os

        _store = os.environ["PYCACHE_DIR"]
        _real_open, _real_mkdir = os.open, os.mkdir


        def _denied(path):
            return os.path.abspath(os.fsdecode(path)).startswith(_store)


        def _open(path, flags, mode=0o777, *, dir_fd=None):
            if flags & (os.O_WRONLY | os.O_RDWR) and _denied(path):
                raise PermissionError(errno.EACCES, "Permission denied (injected)", path)
            return _real_open(path, flags, mode, dir_fd=dir_fd)


        def _mkdir(path, mode=0o777, *, dir_fd=None):
            if _denied(path):
                raise PermissionError(errno.EACCES, "Permission denied (injected)", path)
            return _real_mkdir(path, mode, dir_fd=dir_fd)


        os.open, os.mkdir = _open, _mkdir
        """

    @pytest.mark.parametrize("store_state", ["cold", "warm"])
    def test_permission_denied(self, main, sandbox, tree, expected, run_py, store_state):
        if store_state == "warm":
            run_py([main], pythonpath=[tree])
            (tree / "pkg" / "mod3.py").write_text("def result():\n    return 'edited'\n")
        snapshot = sandbox.snapshot(sandbox.store) if sandbox.store.exists() else None
        inject = _inject(sandbox.root / "inject", self.INJECT_DENIED)
        cpython = run_py([main], pycache=False, pythonpath=[tree])
        run = run_py([main], pythonpath=[inject, tree])
        sandbox.assert_like_cpython(run, cpython)
        traced = run_py([main], pythonpath=[inject, tree], env={"PYCACHE_DEBUG": "1"})
        assert traced.stdout == cpython.stdout
        denied = [line for line in traced.trace if "Permission denied (injected)" in line]
        assert denied, traced
        assert f"store {sandbox.store} is not writable; carrying on without writing" in (
            traced.trace
        ), traced
        if snapshot is None:
            assert not sandbox.store.exists()
        else:
            assert sandbox.snapshot(sandbox.store) == snapshot

    INJECT_REPLACE_FAILS = """\
        import errno, os

        _real_replace = os.replace


        def _replace(src, dst, **kwargs):
            if os.fsdecode(src).startswith(os.environ["PYCACHE_DIR"]):
                raise OSError(errno.EIO, "I/O error (injected)", src)
            return _real_replace(src, dst, **kwargs)


        os.replace = _replace
        """

    def test_failing_rename_leaves_no_temp_files(self, main, sandbox, tree, expected, run_py):
        inject = _inject(sandbox.root / "inject", self.INJECT_REPLACE_FAILS)
        run = run_py([main], pythonpath=[inject, tree])
        sandbox.assert_like_cpython(run, expected)
        assert sandbox.entry_files() == [] and sandbox.index_files() == []
        leftovers = [p for p in sandbox.store.rglob("*") if p.is_file() and p.name != "stats"]
        assert leftovers == [], leftovers
        traced = run_py([main], pythonpath=[inject, tree], env={"PYCACHE_DEBUG": "1"})
        assert sum("I/O error (injected)" in line for line in traced.trace) >= MODULES


@pytest.fixture
def tiny_tmpfs(sandbox):
    """A 64 KiB tmpfs mounted under the test's directory (root only)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = shutil.which("mount")
    umount = shutil.which("umount")
    if mount is None or umount is None:
        pytest.skip("mount/umount not found")
    point = sandbox.root / "tiny"
    point.mkdir()
    done = subprocess.run(
        [mount, "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(point)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield point
    finally:
        subprocess.run([umount, "-l", str(point)], capture_output=True)


class TestFullDisk:
    def test_full_disk_store(self, sandbox, make_tree, run_py, read_stats, tiny_tmpfs):
        files = {"big/__init__.py": ""}
        for i in range(30):  # each entry takes a few KiB: far more than 64 KiB in all
            body = "\n".join(f"    v{j} = {i * 1000 + j} * x" for j in range(150))
            files[f"big/m{i}.py"] = f"def f(x):\n{body}\n    return v149 + {i}\n"
        tree = make_tree(files)
        script = (
            "import sys\n"
            "for i in range(30):\n    __import__('big.m%d' % i)\n"
            "print(sum(sys.modules['big.m%d' % i].f(1) for i in range(30)))\n"
        )
        store = tiny_tmpfs / "store"
        env = {"PYCACHE_DIR": str(store)}
        cpython = run_py(["-c", script], pycache=False, pythonpath=[tree])
        run = run_py(["-c", script], pythonpath=[tree], env=env)
        sandbox.assert_like_cpython(run, cpython)
        stored = len(sandbox.entry_files(store))
        assert 0 < stored < 30, stored  # some entries fit, most did not
        traced = run_py(["-c", script], pythonpath=[tree], env={**env, "PYCACHE_DEBUG": "1"})
        assert traced.stdout == cpython.stdout
        assert any("No space left on device" in line for line in traced.trace), traced
        assert any("is not writable; carrying on without writing" in t for t in traced.trace)
        assert list(store.rglob("*.tmp")) == []


class TestStoreDeletedMidRun:
    SCRIPT = (
        "import os, shutil, sys\n"
        f"names = {NAMES!r}\n"
        f"for name in names[:{HALF}]:\n    __import__(name)\n"
        "shutil.rmtree(os.environ['PYCACHE_DIR'])\n"
        f"for name in names[{HALF}:]:\n    __import__(name)\n"
        "print([sys.modules[name].result() for name in names"
        " if hasattr(sys.modules[name], 'result')])\n"
    )

    @pytest.mark.parametrize("store_state", ["cold", "warm"])
    def test_store_deleted_while_importing(
        self, main, sandbox, tree, expected, run_py, read_stats, store_state
    ):
        if store_state == "warm":
            run_py([main], pythonpath=[tree])
        run = run_py([sandbox.script(self.SCRIPT, "delete.py")], pythonpath=[tree])
        sandbox.assert_like_cpython(run, expected)
        # Written after the deletion: the second half is stored again (and counted).
        assert len(sandbox.entry_files()) >= MODULES - HALF
        before = read_stats()
        sandbox.assert_like_cpython(run_py([main], pythonpath=[tree]), expected)
        used = sandbox.delta(before, read_stats())
        assert used["compiles"] == HALF and used["hits"] == MODULES - HALF, used


class TestNoStoreLocation:
    # HOME, XDG_CACHE_HOME and PYCACHE_DIR are unset, and the password database is
    # replaced by a sourceless sitecustomize, before PyCache reads its settings.
    FAKE_PWD = """\
        import pwd


        class _Entry:
            pw_dir = %r


        def _getpwuid(uid):
            if _Entry.pw_dir is None:
                raise KeyError(uid)
            return _Entry


        pwd.getpwuid = _getpwuid
        """
    UNSET = {"HOME": None, "PYCACHE_DIR": None, "XDG_CACHE_HOME": None}

    def _inject_fake_pwd(self, sandbox, run_py, pw_dir):
        """Inject the fake database, and prove it works with the store still pinned.

        Only then may a test unset PYCACHE_DIR and HOME: a failed injection
        must not let PyCache fall back to the real home directory.
        """
        inject = _inject(sandbox.root / "inject", self.FAKE_PWD % (pw_dir,))
        probe = sandbox.script(
            "import os, pwd, sys\n"
            "print(type(sys.modules['sitecustomize'].__loader__).__name__)\n"
            "try:\n    print(pwd.getpwuid(os.getuid()).pw_dir)\n"
            "except KeyError:\n    print('no entry')\n",
            "probe_pwd.py",
        )
        preflight = run_py([probe], pythonpath=[inject])  # PYCACHE_DIR is still set here
        expected = "no entry" if pw_dir is None else pw_dir
        assert preflight.stdout == f"SourcelessFileLoader\n{expected}\n", preflight
        return inject

    def test_no_home_at_all_compiles_in_memory(self, sandbox, tree, expected, main, run_py):
        inject = self._inject_fake_pwd(sandbox, run_py, None)
        traced = run_py([main], pythonpath=[inject, tree], env={**self.UNSET, "PYCACHE_DEBUG": "1"})
        assert traced.stdout == expected.stdout
        assert "no store directory (HOME and PYCACHE_DIR unset); compiling in memory" in (
            traced.trace
        ), traced  # (checked first: it proves the fake password database is in place)
        assert any(line.startswith("miss ") for line in traced.trace)
        run = run_py([main], pythonpath=[inject, tree], env=self.UNSET)
        sandbox.assert_like_cpython(run, expected)
        assert sandbox.snapshot(sandbox.root / "home") == {}
        assert not sandbox.store.exists()

    def test_home_from_the_password_database(self, sandbox, tree, expected, main, run_py):
        home = sandbox.root / "pwhome"
        home.mkdir()
        store = home / ".cache" / "pycache"
        inject = self._inject_fake_pwd(sandbox, run_py, str(home))
        traced = run_py([main], pythonpath=[inject, tree], env={**self.UNSET, "PYCACHE_DEBUG": "1"})
        assert f"store {store}" in traced.trace, traced
        run = run_py([main], pythonpath=[inject, tree], env=self.UNSET)
        sandbox.assert_like_cpython(run, expected)
        assert len(sandbox.entry_files(store)) >= MODULES
        assert (
            (store / "CACHEDIR.TAG")
            .read_bytes()
            .startswith(b"Signature: 8a477f597d28d172789f06886806bc55")
        )
        assert oct(store.stat().st_mode & 0o777) == oct(0o700)


class TestDebugTrace:
    def test_quiet_unless_asked(self, main, sandbox, tree, expected, run_py):
        for value in (None, "0", "false", "off", ""):
            run = run_py([main], pythonpath=[tree], env={"PYCACHE_DEBUG": value})
            sandbox.assert_like_cpython(run, expected)

    def test_every_outcome_is_traced_with_its_reason(self, main, sandbox, tree, expected, run_py):
        debug = {"PYCACHE_DEBUG": "1"}
        mod0 = tree / "pkg" / "mod0.py"
        mod1 = tree / "pkg" / "mod1.py"

        cold = run_py([main], pythonpath=[tree], env=debug)
        assert cold.stdout == expected.stdout
        assert cold.trace[:2] == ["active", f"store {sandbox.store}"]
        assert f"miss {mod0} (miss_new)" in cold.trace

        warm = run_py([main], pythonpath=[tree], env=debug)
        assert f"hit {mod0} (content)" in warm.trace or f"hit {mod0} (index)" in warm.trace

        mod0.write_text("def result():\n    return 'changed'\n")
        changed = run_py([main], pythonpath=[tree], env=debug)
        assert changed.stdout.startswith("['changed', ")
        assert f"miss {mod0} (miss_changed)" in changed.trace

        for entry in sandbox.entry_files():
            entry.unlink()
        gone = run_py([main], pythonpath=[tree], env=debug)
        assert f"miss {mod1} (miss_missing)" in gone.trace, gone

        for entry in sandbox.entry_files():
            _flip_a_byte(entry, random.Random(SEED))
        corrupt = run_py([main], pythonpath=[tree], env=debug)
        assert corrupt.stdout == changed.stdout
        assert f"miss {mod1} (miss_corrupt)" in corrupt.trace, corrupt
        assert any(
            line.startswith("corrupt entry ")
            and line.split(" for ")[1].startswith(f"{mod1}: ")
            and line.endswith("; removing it")
            for line in corrupt.trace
        ), corrupt
        # The trace goes to stderr only: stdout is the program's alone.
        assert "pycache" not in corrupt.stdout


class TestConcurrentProcesses:
    def test_many_processes_on_a_cold_store(self, sandbox, tree, expected, main, read_stats):
        environ = sandbox.environ(boot=True, disable=False, pythonpath=[tree])
        processes = [
            subprocess.Popen(
                [sys.executable, str(main)],
                env=environ,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(6)
        ]
        for process in processes:
            out, err = process.communicate(timeout=120)
            assert (process.returncode, out, err) == (0, expected.stdout, "")
        totals = read_stats()
        assert totals["hits"] + totals["misses"] == 6 * MODULES, totals
        assert totals["miss_corrupt"] == 0 and totals["store_write_errors"] == 0, totals
        assert not [p for p in sandbox.store.rglob("*.tmp")]
