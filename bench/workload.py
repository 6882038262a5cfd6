"""Build the benchmark environments and lay out copies of the workload tree.

Everything that runs pip or writes outside the work directory lives here, so
``run.py`` and ``demo.py`` share one install:

- ``bench/.venvs/workload-<tag>``: the pinned workload (installed with
  ``--no-compile``, so it has no pycs) plus PyCache itself (compiled by pip).
- ``bench/.venvs/plain-<tag>`` and ``bench/.venvs/enabled-<tag>``: PyCache
  only, the second with ``pycache enable``; used to time start-up.

PyCache is built into a wheel from a copy of the repository (pip would
otherwise build inside ``src/`` and leave ``build/`` and ``*.egg-info``
behind) and reinstalled on every run, so the figures are for the code as it
is now.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
VENVS_DIR = BENCH_DIR / ".venvs"
WORK_DIR = BENCH_DIR / ".work"
REQUIREMENTS = BENCH_DIR / "workload-requirements.txt"
PROGRAM = BENCH_DIR / "workload_prog.py"

# Variables that change how an interpreter imports: every run sets the ones it needs.
_SCRUBBED_PREFIXES = ("PYTHON", "PYCACHE_", "VIRTUAL_ENV", "__PYVENV")
# Repository paths that never belong in the wheel build.
_BUILD_IGNORE = shutil.ignore_patterns(
    ".git",
    ".venv",
    ".venvs",
    ".work",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".*_cache",
    ".hypothesis",
)


class BenchError(Exception):
    """A benchmark step failed; the message says which and why."""


def log(message: str) -> None:
    """Report progress on stderr, so stdout stays the result table."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def clean_environ() -> dict[str, str]:
    """Return this process's environment without any variable that steers Python or PyCache."""
    return {
        name: value for name, value in os.environ.items() if not name.startswith(_SCRUBBED_PREFIXES)
    }


def run_checked(
    argv: Sequence[str | Path],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    what: str,
) -> str:
    """Run ``argv`` to completion and return its stdout; raise ``BenchError`` if it fails."""
    proc = subprocess.run(
        [str(arg) for arg in argv],
        env=dict(env) if env is not None else clean_environ(),
        cwd=str(cwd) if cwd else None,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-25:])
        raise BenchError(f"{what} failed (exit {proc.returncode}):\n{tail}")
    return proc.stdout


class Venv:
    """A virtual environment made by this benchmark."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.python = path / "bin" / "python"
        self.pycache = path / "bin" / "pycache"
        self._site_packages: Path | None = None

    @property
    def site_packages(self) -> Path:
        if self._site_packages is None:
            out = run_checked(
                [self.python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                what=f"asking {self.python} for its site-packages",
            )
            self._site_packages = Path(out.strip())
        return self._site_packages

    def pip(self, *args: str | Path, what: str) -> str:
        return run_checked([self.python, "-m", "pip", *args], what=what)


def interpreter_tag(python: str) -> tuple[str, str]:
    """Return (``cp311``-style tag, full version string) for the interpreter ``python``."""
    out = run_checked(
        [
            python,
            "-c",
            "import sys; v = sys.version_info; "
            "print(f'{sys.implementation.name[:2]}{v[0]}{v[1]}'); print(sys.version)",
        ],
        what=f"asking {python} for its version",
    )
    tag, version = out.strip().split("\n", 1)
    return tag, " ".join(version.split())


def _create_venv(python: str, path: Path) -> Venv:
    if path.exists():
        shutil.rmtree(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    run_checked([python, "-m", "venv", path], what=f"creating the venv {path}")
    return Venv(path)


def _build_ignore(directory: str, names: list[str]) -> set[str]:
    ignored = set(_BUILD_IGNORE(directory, names))
    if Path(directory) == REPO_ROOT:
        ignored.update({"bench", "tests", "docs"})  # not part of the wheel; bench/ holds venvs
    return ignored


def build_pycache_wheel(builder: Venv, dest: Path) -> Path:
    """Build PyCache's wheel from a copy of the repository; return the wheel's path."""
    with tempfile.TemporaryDirectory(prefix="pycache-bench-src-") as tmp:
        source = Path(tmp) / "src-copy"
        shutil.copytree(REPO_ROOT, source, ignore=_build_ignore)
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        builder.pip("wheel", "--no-deps", "-w", dest, source, what="building the PyCache wheel")
    wheels = sorted(dest.glob("pycache-*.whl"))
    if len(wheels) != 1:
        raise BenchError(f"expected one PyCache wheel in {dest}, found {wheels}")
    return wheels[0]


def install_pycache(venv: Venv, wheel: Path) -> None:
    """(Re)install PyCache from ``wheel``, letting pip compile its modules as usual."""
    venv.pip(
        "install",
        "--force-reinstall",
        "--no-deps",
        wheel,
        what=f"installing PyCache into {venv.path}",
    )
    if not venv.pycache.exists():
        raise BenchError(f"installing PyCache did not create {venv.pycache}")


def _fingerprint(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def ensure_venv(
    python: str,
    name: str,
    *,
    requirements: bool = False,
    marker_extra: str = "",
    requirements_file: Path | None = None,
) -> tuple[Venv, bool]:
    """Return the venv ``bench/.venvs/<name>``, (re)creating it if its recipe changed.

    With ``requirements`` the workload is installed into it without pycs
    (``requirements_file`` installs that file instead). The second value says
    whether the venv was created by this call.
    """
    path = VENVS_DIR / name
    if requirements_file is None and requirements:
        requirements_file = REQUIREMENTS
    recipe = _fingerprint(
        str(Path(python).resolve()),
        interpreter_tag(python)[1],
        requirements_file.read_text() if requirements_file is not None else "",
        marker_extra,
    )
    marker = path / ".bench-recipe"
    if marker.exists() and marker.read_text() == recipe and (path / "bin" / "python").exists():
        return Venv(path), False
    log(f"creating {path.relative_to(REPO_ROOT)}")
    venv = _create_venv(python, path)
    if requirements_file is not None:
        log(f"installing {requirements_file.name} (pip install --no-compile --no-deps)")
        venv.pip(
            "install",
            "--no-compile",
            "--no-deps",
            "-r",
            requirements_file,
            what=f"installing {requirements_file.name}",
        )
    marker.write_text(recipe)
    return venv, True


def pinned_requirements() -> list[str]:
    """Return the ``name==version`` lines of the workload requirements."""
    lines = []
    for line in REQUIREMENTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            lines.append(line)
    return lines


def workload_top_levels(venv: Venv) -> list[str]:
    """Return the top-level files and directories the pinned distributions installed."""
    names = [req.split("==", 1)[0] for req in pinned_requirements()]
    script = (
        "import importlib.metadata as md, json, sys\n"
        "tops = set()\n"
        "for name in sys.argv[1:]:\n"
        "    dist = md.distribution(name)\n"
        "    for f in dist.files or ():\n"
        "        if f.parts and f.parts[0] != '..':\n"
        "            tops.add(f.parts[0])\n"
        "print(json.dumps(sorted(tops)))\n"
    )
    out = run_checked(
        [venv.python, "-c", script, *names], what="listing the workload's installed files"
    )
    tops: list[str] = json.loads(out)
    missing = [top for top in tops if not (venv.site_packages / top).exists()]
    if missing:
        raise BenchError(f"the workload install is incomplete: {missing} missing")
    return tops


def copy_tree(
    venv: Venv,
    tops: Iterable[str],
    dest: Path,
    *,
    keep_mtimes: bool,
) -> Path:
    """Copy the workload's installed files to ``dest``, without any ``__pycache__``.

    With ``keep_mtimes`` the copies keep the installed files' times (an old
    checkout); without, they get the current time (a fresh clone or checkout).
    """
    copy_function: Callable[[str, str], object] = shutil.copy2 if keep_mtimes else shutil.copyfile
    dest.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__")
    for top in tops:
        source = venv.site_packages / top
        if source.is_dir():
            shutil.copytree(source, dest / top, ignore=ignore, copy_function=copy_function)
        else:
            copy_function(str(source), str(dest / top))
    return dest


def pycache_dirs(root: Path) -> list[Path]:
    """Return every ``__pycache__`` directory under ``root``."""
    return [Path(d) / "__pycache__" for d, dirs, _ in os.walk(root) if "__pycache__" in dirs]


def strip_pycs(root: Path) -> int:
    """Delete every ``__pycache__`` directory under ``root``; return how many there were."""
    found = pycache_dirs(root)
    for path in found:
        shutil.rmtree(path)
    return len(found)


def source_files(root: Path) -> list[Path]:
    """Return every ``.py`` file under ``root``, in a stable order."""
    return sorted(
        Path(d) / name
        for d, _, files in os.walk(root)
        for name in files
        if name.endswith(".py") and "__pycache__" not in Path(d).parts
    )


def install_program(dest_dir: Path) -> Path:
    """Copy the workload program into ``dest_dir`` (alone, so nothing shadows an import)."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / PROGRAM.name
    shutil.copyfile(PROGRAM, dest)
    return dest


def pycache_run_environ(venv: Venv, base: Mapping[str, str]) -> dict[str, str]:
    """Return the variables ``pycache run`` adds to ``base`` for the command it starts.

    The benchmark sets these itself rather than time the ``pycache run``
    wrapper's own interpreter start-up in every run (that cost is measured
    separately).
    """
    env = {name: value for name, value in base.items() if name != "PYTHONPATH"}
    script = "import json, os; print(json.dumps(dict(os.environ)))"
    out = run_checked(
        [venv.pycache, "run", "--", venv.python, "-c", script],
        env=env,
        what="pycache run (to see what it sets)",
    )
    child: dict[str, str] = json.loads(out)
    added = {name: value for name, value in child.items() if env.get(name) != value}
    if "PYTHONPATH" not in added:
        raise BenchError(f"pycache run set no PYTHONPATH; it set {sorted(added)}")
    return added


def with_pythonpath(env: Mapping[str, str], *entries: str | Path) -> dict[str, str]:
    """Return ``env`` with ``entries`` appended to its ``PYTHONPATH``."""
    result = dict(env)
    paths = [result["PYTHONPATH"]] if result.get("PYTHONPATH") else []
    paths.extend(str(entry) for entry in entries)
    result["PYTHONPATH"] = os.pathsep.join(paths)
    return result
