"""`pycache inspect` and the magic-number table, on real pycs from every CPython here."""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pycache import _magic, inspector
from pycache.cli import main

PYENV = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
INTERPRETERS = {
    f"{major}.{minor}": sorted(
        glob.glob(str(PYENV / f"versions/{major}.{minor}.*/bin/python{major}.{minor}"))
    )
    for major, minor in [(2, 7), (3, 6), (3, 7), (3, 8), (3, 9), (3, 10), (3, 11), (3, 12), (3, 13)]
}
FOUND = {version: paths[-1] for version, paths in INTERPRETERS.items() if paths}
needs = {
    version: pytest.mark.skipif(version not in FOUND, reason=f"CPython {version} not under pyenv")
    for version in INTERPRETERS
}
SOURCE = 'def f(x):\n    """Doc."""\n    assert x\n    return x + 1\n'

COMPILE = """\
import py_compile, sys
path, mode = sys.argv[1], sys.argv[2]
if mode == "timestamp":
    print(py_compile.compile(path, doraise=True) or path + "c")  # 2.7 returns None
else:
    kind = getattr(py_compile.PycInvalidationMode, mode)
    print(py_compile.compile(path, doraise=True, invalidation_mode=kind))
"""


@pytest.fixture(scope="module")
def real_pycs(tmp_path_factory):
    """version -> {mode: pyc path}, each written by that version's own py_compile."""
    made: dict[str, dict[str, Path]] = {}
    for version, python in FOUND.items():
        root = tmp_path_factory.mktemp(f"py{version}")
        source = root / "mod.py"
        source.write_text(SOURCE)
        modes = (
            ["timestamp"]
            if version < "3.7" and version != "3.10"
            else [
                "timestamp",
                "CHECKED_HASH",
                "UNCHECKED_HASH",
            ]
        )
        made[version] = {}
        for mode in modes:
            out = subprocess.run(
                [python, "-c", COMPILE, str(source), mode],
                capture_output=True,
                text=True,
                check=True,
                env={"PATH": os.environ["PATH"]},
            ).stdout.strip()
            copy = root / f"{mode}-{Path(out).name}"
            copy.write_bytes(Path(out).read_bytes())
            made[version][mode] = copy
        if version == "2.7":  # a legacy .pyo
            subprocess.run([python, "-O", "-m", "py_compile", str(source)], check=True)
            made[version]["pyo"] = root / "mod.pyo"
    return made


class TestMagicTable:
    @pytest.mark.parametrize("version", sorted(INTERPRETERS))
    def test_each_installed_interpreter_is_recognised(self, version, real_pycs):
        if version not in real_pycs:
            pytest.skip(f"CPython {version} not under pyenv")
        for mode, path in real_pycs[version].items():
            info = inspector.describe(path.read_bytes())
            assert info["version"] == version, (mode, info)
            assert info["header_size"] == _magic.header_size(version)
            if mode in ("CHECKED_HASH", "UNCHECKED_HASH"):
                assert info["mode"] == mode.lower().replace("_", "-")
                assert len(info["source_hash"]) == 16
            else:
                assert info["mode"] == "timestamp" and info["source_mtime"] > 0

    def test_the_running_interpreter(self):
        import importlib.util

        magic = _magic.magic_of(importlib.util.MAGIC_NUMBER)
        assert _magic.version_of(magic) == f"{sys.version_info[0]}.{sys.version_info[1]}"

    @pytest.mark.parametrize(
        ("magic", "version"),
        [
            (20121, "1.5"),
            (50428, "1.6"),
            (62211, "2.7"),
            (3131, "3.0"),
            (3379, "3.6"),
            (3413, "3.8"),
            (3495, "3.11"),
            (3531, "3.12"),
            (3571, "3.13"),
            (3627, "3.14"),
        ],
    )
    def test_known_numbers(self, magic, version):
        assert _magic.version_of(magic) == version

    @pytest.mark.parametrize("magic", [0, 1, 2999, 3650, 9999, 62212, 65535])
    def test_unknown_numbers(self, magic):
        assert _magic.version_of(magic) is None

    @pytest.mark.parametrize("version", sorted(FOUND))
    def test_every_pyc_of_each_interpreters_stdlib(self, version):
        root = Path(FOUND[version]).parent.parent / "lib" / f"python{version}"
        pycs = sorted(root.glob("**/*.pyc"))[:400]
        if not pycs:
            pytest.skip(f"no pycs in {root}")
        for path in pycs:
            assert inspector.describe(path.read_bytes())["version"] == version, path


class TestDescribe:
    @given(data=st.binary(max_size=64))
    @settings(max_examples=500, deadline=None)
    def test_arbitrary_bytes(self, data):
        try:
            info = inspector.describe(data)
        except inspector.InspectError:
            return
        assert info["version"] is not None

    @pytest.mark.parametrize(
        ("data", "message"),
        [
            (b"", "no magic number"),
            (b"PK\x03\x04", "no magic number"),
            (b"\x00\x00\r\n", "unknown magic number"),
            (b"\xa7\x0d\r\n\x00\x00", "truncated"),
            (b"\xa7\x0d\r\n\x02\x00\x00\x00" + bytes(8), "invalid flags"),
        ],
    )
    def test_malformed(self, data, message):
        with pytest.raises(inspector.InspectError, match=message):
            inspector.describe(data)


class TestCommand:
    def test_own_pyc_with_code_and_dis(self, tmp_path, capsys):
        source = tmp_path / "mod.py"
        source.write_text(SOURCE)
        import py_compile

        pyc = py_compile.compile(str(source), doraise=True)
        assert main(["inspect", "--dis", pyc]) == 0
        out = capsys.readouterr().out
        assert "fresh (mtime and size match)" in out
        assert "f (line 1)" in out and "RETURN" in out
        assert main(["inspect", "--json", pyc]) == 0
        info = json.loads(capsys.readouterr().out)
        assert info["loadable_here"] and info["source"] == str(source)
        source.write_text(SOURCE + "\n")
        assert main(["inspect", pyc]) == 0
        assert "stale: " in capsys.readouterr().out

    @needs["3.9"]
    def test_another_versions_pyc(self, real_pycs, capsys):
        running = f"{sys.version_info[0]}.{sys.version_info[1]}"
        foreign = [
            version for version in real_pycs if version.startswith("3.") and version != running
        ]
        if not foreign:
            pytest.skip("no other CPython 3 under pyenv")
        version = foreign[-1]
        pyc = real_pycs[version]["timestamp"]
        assert main(["inspect", str(pyc)]) == 0
        out = capsys.readouterr().out
        assert f"CPython {version} pyc" in out and f"needs CPython {version} to load" in out

    def test_bad_files_exit_2_and_the_others_are_still_shown(self, tmp_path, capsys):
        good = tmp_path / "mod.py"
        good.write_text("X = 1\n")
        import py_compile

        pyc = py_compile.compile(str(good), doraise=True)
        garbage = tmp_path / "garbage.pyc"
        garbage.write_bytes(b"garbage")
        assert main(["inspect", str(garbage), str(tmp_path / "missing.pyc"), pyc]) == 2
        captured = capsys.readouterr()
        assert "garbage.pyc: not a pyc" in captured.err
        assert "missing.pyc: No such file" in captured.err
        assert f"{pyc}: CPython" in captured.out
        run = subprocess.run(
            [sys.executable, "-m", "pycache", "inspect", str(garbage)],
            capture_output=True,
            text=True,
        )
        assert run.returncode == 2 and "Traceback" not in run.stderr
