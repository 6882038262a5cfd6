"""Fixtures for the end-to-end tests: generated package trees and real interpreters.

Every interpreter these fixtures start gets an environment built from nothing:
``PATH``, a private ``HOME`` and ``TMPDIR``, ``PYCACHE_DIR`` pointing at the
test's own store, ``PYTHONIOENCODING``, and ``PYTHONDONTWRITEBYTECODE`` set or
left out as the test asks (the machine's environment sets it). No other
``PYTHON*`` or ``PYCACHE_*`` variable leaks in from the machine.

``run_py(args, pycache=True)`` starts ``sys.executable`` with PyCache active
the way ``pycache run`` activates it: ``src/pycache/_boot`` first on
``PYTHONPATH``. ``via="cli"`` goes through the real ``python -m pycache run --``
instead. ``pycache=False`` is plain CPython (with ``PYCACHE_DISABLE=1`` as
well, so an enabled environment cannot turn it on behind the test's back).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Callable, Mapping, Optional, Sequence, Union

import pytest

import pycache

PYTHON = sys.executable
PACKAGE_DIR = Path(pycache.__file__).resolve().parent
BOOT_DIR = PACKAGE_DIR / "_boot"
SRC_DIR = PACKAGE_DIR.parent
TRACE_PREFIX = "pycache: "


def other_interpreters() -> list[str]:
    """The supported CPythons (3.9-3.13) other than this one that pyenv has here."""
    root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    found = []
    for minor in range(9, 14):
        if minor == sys.version_info[1]:
            continue
        candidates = sorted(root.glob(f"versions/3.{minor}.*/bin/python3.{minor}"))
        if candidates and os.access(candidates[-1], os.X_OK):
            found.append(str(candidates[-1]))
    return found


PathLike = Union[str, "os.PathLike[str]"]
EnvChanges = Optional[Mapping[str, Optional[str]]]


class Run:
    """What one subprocess did: its argv, exit code, stdout and stderr."""

    def __init__(self, argv: Sequence[str], returncode: int, stdout: str, stderr: str) -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr

    @property
    def trace(self) -> list[str]:
        """The ``PYCACHE_DEBUG`` lines on stderr, without their ``pycache: `` prefix."""
        return [
            line[len(TRACE_PREFIX) :]
            for line in self.stderr.splitlines()
            if line.startswith(TRACE_PREFIX)
        ]

    def json(self) -> object:
        return json.loads(self.stdout)

    def __repr__(self) -> str:
        return (
            f"Run({' '.join(self.argv)!r})\n"
            f"--- exit code: {self.returncode}\n"
            f"--- stdout:\n{self.stdout[-3000:]}\n"
            f"--- stderr:\n{self.stderr[-6000:]}"
        )


class Sandbox:
    """One test's store, home directory and interpreters."""

    python = PYTHON
    boot_dir = BOOT_DIR
    src_dir = SRC_DIR
    package_dir = PACKAGE_DIR

    def __init__(self, root: Path) -> None:
        self.root = root
        self.store = root / "store"
        self.home = root / "home"
        self.tmp = root / "tmp"
        self.home.mkdir(exist_ok=True)
        self.tmp.mkdir(exist_ok=True)

    def environ(
        self,
        *,
        boot: bool,
        disable: bool,
        write_bytecode: bool = False,
        env: EnvChanges = None,
        pythonpath: Sequence[PathLike] = (),
    ) -> dict[str, str]:
        """Return a complete environment; ``env`` adds variables (``None`` removes one)."""
        environ = {
            "PATH": os.environ.get("PATH", os.defpath),
            "HOME": str(self.home),
            "TMPDIR": str(self.tmp),
            "PYTHONIOENCODING": "utf-8",
            "PYCACHE_DIR": str(self.store),
        }
        if not write_bytecode:
            environ["PYTHONDONTWRITEBYTECODE"] = "1"
        if disable:
            environ["PYCACHE_DISABLE"] = "1"
        path = [str(entry) for entry in pythonpath]
        if boot:
            path.insert(0, str(BOOT_DIR))
        if path:
            environ["PYTHONPATH"] = os.pathsep.join(path)
        for name, value in (env or {}).items():
            if value is None:
                environ.pop(name, None)
            else:
                environ[name] = value
        return environ

    def _execute(
        self,
        argv: Sequence[str],
        environ: Mapping[str, str],
        cwd: PathLike | None,
        check: bool,
        timeout: float,
        input: str | None = None,
    ) -> Run:
        completed = subprocess.run(
            list(argv),
            env=dict(environ),
            cwd=str(cwd if cwd is not None else self.root),
            input=input,
            capture_output=True,
            text=True,
            encoding="utf-8",
            errors="replace",
            timeout=timeout,
        )
        result = Run(argv, completed.returncode, completed.stdout, completed.stderr)
        if check:
            assert result.returncode == 0, result
        return result

    def run(
        self,
        args: Sequence[PathLike],
        *,
        pycache: bool = True,
        via: str = "boot",
        cwd: PathLike | None = None,
        write_bytecode: bool = False,
        env: EnvChanges = None,
        pythonpath: Sequence[PathLike] = (),
        python: str = PYTHON,
        check: bool = True,
        timeout: float = 120,
        input: str | None = None,
    ) -> Run:
        """Run ``python ARGS``, with PyCache (``via`` "boot" or "cli") or as plain CPython."""
        args = [str(arg) for arg in args]
        if not pycache:
            argv = [python, *args]
            environ = self.environ(
                boot=False,
                disable=True,
                write_bytecode=write_bytecode,
                env=env,
                pythonpath=pythonpath,
            )
        elif via == "boot":
            argv = [python, *args]
            environ = self.environ(
                boot=True,
                disable=False,
                write_bytecode=write_bytecode,
                env=env,
                pythonpath=pythonpath,
            )
        elif via == "cli":
            argv = [python, "-m", "pycache", "run", "--", python, *args]
            environ = self.environ(
                boot=False,
                disable=False,
                write_bytecode=write_bytecode,
                env=env,
                pythonpath=pythonpath,
            )
        else:
            raise ValueError(f"unknown via={via!r}")
        return self._execute(argv, environ, cwd, check, timeout, input)

    def cli(
        self,
        *args: PathLike,
        env: EnvChanges = None,
        python: str = PYTHON,
        pythonpath: Sequence[PathLike] = (),
        check: bool = False,
        cwd: PathLike | None = None,
    ) -> Run:
        """Run ``python -m pycache ARGS`` (PyCache itself not active in that process)."""
        environ = self.environ(boot=False, disable=False, env=env, pythonpath=pythonpath)
        argv = [python, "-m", "pycache", *[str(arg) for arg in args]]
        return self._execute(argv, environ, cwd, check, 120)

    def command(
        self,
        argv: Sequence[PathLike],
        *,
        env: EnvChanges = None,
        cwd: PathLike | None = None,
        check: bool = True,
    ) -> Run:
        """Run any program (git, a venv's python) in a bare environment."""
        environ = self.environ(boot=False, disable=False, env=env)
        return self._execute([str(arg) for arg in argv], environ, cwd, check, 120)

    def script(self, text: str, name: str = "main.py") -> Path:
        """Write a script (dedented) under ``scripts/`` and return its path.

        Tests that count imports exactly run script files rather than ``-c``:
        from 3.13, ``python -c`` imports ``linecache`` (a source module) after
        ``site``, to keep the command's text for tracebacks.
        """
        path = self.root / "scripts" / name
        path.parent.mkdir(exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    def stats(self, store: PathLike | None = None, env: EnvChanges = None) -> dict[str, int]:
        """Return ``pycache stats --json`` for ``store`` (default: this sandbox's).

        First waits for any backfill helper to finish (it adds its counters).
        """
        wait_for_backfill(store if store is not None else self.store)
        changes = dict(env or {})
        changes["PYCACHE_DIR"] = str(store if store is not None else self.store)
        result = self.cli("stats", "--json", env=changes)
        assert result.returncode == 0, result
        totals = result.json()
        assert isinstance(totals, dict), result
        return totals

    @staticmethod
    def delta(before: Mapping[str, int], after: Mapping[str, int]) -> dict[str, int]:
        """Return ``after - before`` for every counter."""
        return {name: after[name] - before.get(name, 0) for name in after}

    @staticmethod
    def snapshot(root: PathLike) -> dict[str, bytes]:
        """Return every file under ``root`` (relative path -> content)."""
        found = {}
        for directory, _, names in os.walk(root):
            for name in names:
                path = os.path.join(directory, name)
                with open(path, "rb") as handle:
                    found[os.path.relpath(path, root)] = handle.read()
        return found

    def entry_files(self, store: PathLike | None = None) -> list[Path]:
        """Return the store's entry files, sorted."""
        wait_for_backfill(store if store is not None else self.store)
        entries = Path(store if store is not None else self.store) / "entries"
        return sorted(path for path in entries.glob("*/*") if path.is_file())

    def index_files(self, store: PathLike | None = None) -> list[Path]:
        """Return the store's path-index files, sorted."""
        index = Path(store if store is not None else self.store) / "index"
        return sorted(path for path in index.glob("*/*") if path.is_file())

    @staticmethod
    def assert_like_cpython(with_pycache: Run, cpython: Run) -> None:
        """PyCache changed nothing visible: same stdout, exit code 0, empty stderr."""
        assert cpython.returncode == 0, cpython
        assert with_pycache.returncode == 0, with_pycache
        assert with_pycache.stdout == cpython.stdout, (with_pycache, cpython)
        assert with_pycache.stderr == "", with_pycache
        assert cpython.stderr == "", cpython


TreeFiles = Mapping[str, Union[str, bytes]]


def wait_for_backfill(store: PathLike, timeout: float = 60.0) -> None:
    """Wait until the helpers copying remote hits into ``store`` are done (spool/ empty)."""
    spool = Path(store) / "spool"
    deadline = time.monotonic() + timeout
    while spool.is_dir() and any(spool.iterdir()):
        assert time.monotonic() < deadline, f"backfill helper still running after {timeout} s"
        time.sleep(0.01)


def write_tree(root: Path, files: TreeFiles) -> Path:
    """Write ``files`` (relative path -> text or bytes) under ``root``; return ``root``.

    Text is dedented, so tests can write module sources as indented literals.
    A path ending in ``/`` creates an empty directory.
    """
    root.mkdir(parents=True, exist_ok=True)
    for relative, content in files.items():
        path = root / relative
        if relative.endswith("/"):
            path.mkdir(parents=True, exist_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(textwrap.dedent(content), encoding="utf-8")
    return root


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    """This test's store, home and interpreters (see ``Sandbox``)."""
    return Sandbox(tmp_path)


@pytest.fixture
def run_py(sandbox: Sandbox) -> Callable[..., Run]:
    """``run_py(args, pycache=True, via="boot", write_bytecode=False, env=..., ...)``."""
    return sandbox.run


@pytest.fixture
def pycache_cli(sandbox: Sandbox) -> Callable[..., Run]:
    """``pycache_cli("stats", "--json", env=...)``: the real ``python -m pycache``."""
    return sandbox.cli


@pytest.fixture
def read_stats(sandbox: Sandbox) -> Callable[..., dict[str, int]]:
    """``read_stats(store=None)``: the parsed output of ``pycache stats --json``."""
    return sandbox.stats


@pytest.fixture
def make_tree(tmp_path: Path) -> Callable[..., Path]:
    """``make_tree({"pkg/__init__.py": "...", ...}, root="tree")`` -> the tree's root."""

    def make(files: TreeFiles, root: PathLike = "tree") -> Path:
        return write_tree(tmp_path / root, files)

    return make
