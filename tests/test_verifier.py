"""`pycache verify` and `pycache clean` on real trees with real pycs."""

from __future__ import annotations

import glob
import json
import os
import py_compile
import subprocess
import sys
from pathlib import Path

import pytest

from pycache import verifier
from pycache.cli import main

# A CPython other than the running one, to write a foreign pyc.
_FOREIGN = "3.9" if sys.version_info[:2] != (3, 9) else "3.10"
OTHER = sorted(
    glob.glob(os.path.expanduser(f"~/.pyenv/versions/{_FOREIGN}.*/bin/python{_FOREIGN}"))
)


def _tree(tmp_path: Path) -> Path:
    """A package whose pycs cover every verdict."""
    pkg = tmp_path / "tree" / "pkg"
    pkg.mkdir(parents=True)
    for name, text in {
        "fresh": "A = 1\n",
        "edited": "B = 1\n",
        "resized": "C = 1\n",
        "arrival": "D = 1\n",
        "hashed": "E = 1\n",
        "corrupt": "F = 1\n",
        "gone": "G = 1\n",
    }.items():
        (pkg / f"{name}.py").write_text(text)
    for name in ("fresh", "edited", "resized", "arrival", "corrupt", "gone"):
        py_compile.compile(str(pkg / f"{name}.py"), doraise=True)
    mode = py_compile.PycInvalidationMode.CHECKED_HASH
    py_compile.compile(str(pkg / "hashed.py"), doraise=True, invalidation_mode=mode)
    (pkg / "edited.py").write_text("B = 2\n")
    os.utime(pkg / "edited.py", (1_000_000, 1_000_000))  # other mtime, same size
    (pkg / "resized.py").write_text("C = 1000\n")
    os.utime(pkg / "arrival.py", (315532800, 315532800))  # a zip's 1980 clamp, same bytes
    (pkg / "hashed.py").write_text("E = 2\n")
    cache = pkg / "__pycache__"
    next(cache.glob("corrupt.*.pyc")).write_bytes(next(cache.glob("fresh.*.pyc")).read_bytes()[:20])
    (pkg / "gone.py").unlink()
    legacy = pkg / "shipped.pyc"
    legacy.write_bytes(next(cache.glob("fresh.*.pyc")).read_bytes())
    return pkg.parent


def _by_name(reports):
    return {Path(report.path).name.split(".")[0]: report for report in reports}


class TestVerdicts:
    def test_every_verdict(self, tmp_path):
        reports = _by_name(verifier.verify_paths([str(_tree(tmp_path))]))
        assert {name: report.status for name, report in reports.items()} == {
            "fresh": "fresh",
            "edited": "stale",
            "resized": "stale",
            "arrival": "stale-on-arrival",
            "hashed": "stale",
            "corrupt": "corrupt",
            "gone": "orphaned",
            "shipped": "sourceless",
        }
        assert "mtime mismatch" in reports["edited"].reason
        assert "size mismatch" in reports["resized"].reason
        assert "hash mismatch" in reports["hashed"].reason
        assert "recompiles it on every start" in reports["arrival"].reason

    @pytest.mark.skipif(not OTHER, reason=f"no CPython {_FOREIGN} under ~/.pyenv")
    def test_another_interpreters_pyc_is_stale(self, tmp_path):
        (tmp_path / "m.py").write_text("X = 1\n")
        subprocess.run([OTHER[-1], "-m", "py_compile", str(tmp_path / "m.py")], check=True)
        (report,) = verifier.verify_paths([str(tmp_path)])
        assert report.status == "stale" and "another interpreter" in report.reason

    def test_garbage_is_corrupt_not_a_crash(self):
        for data in (b"", b"\x00" * 3, b"PK\x03\x04zip", os.urandom(64)):
            status, _ = verifier.verdict(data, level=0, source=b"x = 1\n", mtime=0, size=6)
            assert status in ("corrupt", "stale")


class TestVerifyCommand:
    def test_exit_code_and_json(self, tmp_path, capsys):
        tree = _tree(tmp_path)
        assert main(["verify", "--json", str(tree)]) == 1
        report = json.loads(capsys.readouterr().out)
        assert report["counts"]["stale"] == 3 and report["counts"]["fresh"] == 1
        assert {entry["status"] for entry in report["files"]} >= {"orphaned", "sourceless"}

    def test_a_clean_tree_exits_0(self, tmp_path, capsys):
        (tmp_path / "m.py").write_text("X = 1\n")
        py_compile.compile(str(tmp_path / "m.py"), doraise=True)
        assert main(["verify", str(tmp_path)]) == 0
        assert capsys.readouterr().out == "1 pycs found: 1 fresh\n"

    def test_missing_path_exits_2(self, tmp_path, capsys):
        assert main(["verify", str(tmp_path / "nope")]) == 2
        assert "No such file or directory" in capsys.readouterr().err

    def test_store_check_and_repair(self, sandbox, make_tree, run_py):
        tree = make_tree({"a.py": "A = 1\n", "b.py": "B = 2\n", "pkg/__init__.py": ""})
        run_py(["-c", "import a, b, pkg"], pythonpath=[tree])
        assert sandbox.cli("verify", "--store").returncode == 0
        entry = sandbox.entry_files()[0]
        entry.write_bytes(entry.read_bytes()[:-3])
        index = sandbox.index_files()[0]
        index.write_bytes(b"PYCI" + os.urandom(40))
        found = sandbox.cli("verify", "--store", "--json")
        assert found.returncode == 1, found
        bad = {Path(entry["path"]) for entry in json.loads(found.stdout)["files"]}
        assert bad == {entry, index}
        repaired = sandbox.cli("verify", "--store", "--repair")
        assert repaired.returncode == 0 and not entry.exists() and not index.exists()
        assert sandbox.cli("verify", "--store").returncode == 0
        assert run_py(["-c", "import a, b; print(a.A + b.B)"], pythonpath=[tree]).stdout == "3\n"


class TestClean:
    def test_removes_caches_legacy_and_orphans_but_not_sourceless(self, tmp_path, capsys):
        tree = _tree(tmp_path)
        pkg = tree / "pkg"
        (pkg / "fresh.pyc").write_bytes(b"legacy")  # legacy pyc beside its source
        (pkg / "__pycache__" / "notes.txt").write_text("keep me")
        assert main(["clean", str(tree)]) == 0
        out = capsys.readouterr().out
        assert "removed 8 files" in out
        assert sorted(path.name for path in (pkg / "__pycache__").iterdir()) == ["notes.txt"]
        assert (pkg / "shipped.pyc").exists() and not (pkg / "fresh.pyc").exists()
        assert main(["clean", "--include-sourceless", "-q", str(tree)]) == 0
        assert not (pkg / "shipped.pyc").exists()

    def test_empty_pycache_directories_go(self, tmp_path):
        (tmp_path / "m.py").write_text("X = 1\n")
        py_compile.compile(str(tmp_path / "m.py"), doraise=True)
        assert main(["clean", "-q", str(tmp_path)]) == 0
        assert sorted(os.listdir(tmp_path)) == ["m.py"]

    def test_dry_run_and_orphans_only(self, tmp_path, capsys):
        tree = _tree(tmp_path)
        before = sorted(str(path) for path in tree.rglob("*.pyc"))
        assert main(["clean", "--dry-run", "--json", str(tree)]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["dry_run"] and report["files"] == 7 and report["bytes"] > 0
        assert sorted(str(path) for path in tree.rglob("*.pyc")) == before
        assert main(["clean", "--orphans-only", "-q", str(tree)]) == 0
        after = sorted(str(path) for path in tree.rglob("*.pyc"))
        assert [path for path in before if path not in after] == [
            path for path in before if "/gone." in path
        ]

    def test_symlinked_directories_are_not_entered(self, tmp_path):
        outside = tmp_path / "outside"
        outside.mkdir()
        (outside / "m.py").write_text("X = 1\n")
        py_compile.compile(str(outside / "m.py"), doraise=True)
        tree = tmp_path / "tree"
        tree.mkdir()
        (tree / "link").symlink_to(outside, target_is_directory=True)
        assert main(["clean", "-q", str(tree)]) == 0
        assert list((outside / "__pycache__").iterdir())

    def test_real_console_script_and_bad_path(self, tmp_path):
        run = subprocess.run(
            [sys.executable, "-m", "pycache", "clean", str(tmp_path / "missing")],
            capture_output=True,
            text=True,
        )
        assert run.returncode == 2 and "pycache: clean:" in run.stderr
        assert "Traceback" not in run.stderr
