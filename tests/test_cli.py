"""End-to-end: the ``pycache`` command line in real subprocesses.

``stats`` is checked against runs whose imports are known exactly; ``run``,
``enable``/``disable`` and ``status`` are covered in ``test_activation``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

COUNTERS = {
    "hits",
    "hits_by_stat",
    "hits_by_content",
    "misses",
    "miss_new",
    "miss_changed",
    "miss_missing",
    "miss_corrupt",
    "miss_unsigned",
    "intree_pyc",
    "compiles",
    "store_writes",
    "store_write_errors",
    "hits_remote",
    "hits_remote_bundle",
    "remote_backfills",
    "remote_backfill_drops",
    "remote_bundles_fetched",
    "remote_bundle_writes",
    "remote_bundle_write_errors",
    "remote_writes",
    "remote_write_errors",
    "remote_write_drops",
    "remote_errors",
}
MODULES = 6
# Imports exactly MODULES source modules and nothing else from source.
IMPORT_ALL = "import " + ", ".join(f"m{i}" for i in range(MODULES)) + "\nprint(m5.X)"


@pytest.fixture
def import_all(sandbox):
    return sandbox.script(IMPORT_ALL)


@pytest.fixture
def tree(make_tree):
    return make_tree({f"m{i}.py": f"X = {i}\n" for i in range(MODULES)})


class TestStats:
    def test_cold_then_warm_counts(self, import_all, sandbox, tree, run_py, read_stats):
        empty = read_stats()
        assert set(empty) == COUNTERS | {"entries", "size_bytes"}
        assert all(type(value) is int and value == 0 for value in empty.values()), empty

        baseline_run = run_py([sandbox.script("", "empty.py")], pythonpath=[tree])
        assert baseline_run.stdout == ""
        baseline = read_stats()  # whatever start-up itself imports through PyCache
        run_py([import_all], pythonpath=[tree])
        cold = read_stats()
        run_py([import_all], pythonpath=[tree])
        warm = read_stats()

        first = sandbox.delta(baseline, cold)
        assert first["misses"] == first["miss_new"] == MODULES, first
        assert first["compiles"] == first["store_writes"] == MODULES, first
        assert first["hits"] == 0 and first["intree_pyc"] == 0
        # (>=: the exit-time import of pycache.stats is stored too; see test_activation's
        # TestOwnImports)
        assert MODULES <= first["entries"] <= MODULES + 1 and first["size_bytes"] > 0
        second = sandbox.delta(cold, warm)
        assert second["hits"] == MODULES and second["misses"] == 0, second
        assert second["compiles"] == 0 and second["store_writes"] == 0
        assert second["hits_by_stat"] + second["hits_by_content"] == MODULES
        assert second["entries"] == 0
        assert warm["entries"] == len(sandbox.entry_files()) >= MODULES
        assert warm["size_bytes"] == sum(p.stat().st_size for p in sandbox.entry_files())

    def test_edit_counts_a_changed_miss(self, import_all, sandbox, tree, run_py, read_stats):
        run_py([import_all], pythonpath=[tree])
        before = read_stats()
        (tree / "m5.py").write_text("X = 55\n")
        assert run_py([import_all], pythonpath=[tree]).stdout == "55\n"
        used = sandbox.delta(before, read_stats())
        assert used["misses"] == used["miss_changed"] == 1, used
        assert used["compiles"] == 1 and used["hits"] == MODULES - 1
        assert used["entries"] == 1

    def test_reset_zeroes_counters_but_keeps_entries(
        self, import_all, sandbox, tree, run_py, pycache_cli
    ):
        run_py([import_all], pythonpath=[tree])
        run_py([import_all], pythonpath=[tree])
        before = sandbox.stats()
        assert before["hits"] >= MODULES and before["misses"] >= MODULES

        reset = pycache_cli("stats", "--reset")
        assert reset.returncode == 0 and reset.stdout == "statistics reset\n"
        after = sandbox.stats()
        assert {name: after[name] for name in COUNTERS} == dict.fromkeys(COUNTERS, 0)
        assert after["entries"] == before["entries"] > 0
        assert after["size_bytes"] == before["size_bytes"] > 0

        run_py([import_all], pythonpath=[tree])
        assert sandbox.stats()["hits"] == MODULES  # counting starts again from zero

    def test_reset_of_a_store_without_stats(self, sandbox, pycache_cli):
        reset = pycache_cli("stats", "--reset")
        assert reset.returncode == 0
        assert not sandbox.store.exists()

    def test_text_report(self, import_all, sandbox, tree, run_py, pycache_cli):
        run_py([import_all], pythonpath=[tree])
        run_py([import_all], pythonpath=[tree])
        totals = sandbox.stats()
        text = pycache_cli("stats")
        assert text.returncode == 0 and text.stderr == ""
        lines = text.stdout.splitlines()
        assert lines[0] == f"store: {sandbox.store}"
        rate = 100 * totals["hits"] / (totals["hits"] + totals["misses"])
        assert f"  hits                {totals['hits']:>10} ({rate:.1f}%)" in lines
        assert f"  misses              {totals['misses']:>10}" in lines
        assert f"  compiles            {totals['compiles']:>10}" in lines
        assert f"  entries             {totals['entries']:>10}" in lines

    def test_damaged_stats_lines_are_skipped(self, import_all, sandbox, tree, run_py):
        run_py([import_all], pythonpath=[tree])
        good = sandbox.stats()
        with open(sandbox.store / "stats", "ab") as handle:
            handle.write(b"pycache-stats-v1 hits=5 misses=oops\n")  # a torn line
            handle.write(b"\x00\xffgarbage\n")
            handle.write(b"pycache-stats-v1 hits=3\n")
        damaged = sandbox.stats()
        assert damaged["hits"] == good["hits"] + 3
        assert damaged["misses"] == good["misses"]

    def test_parallel_processes_all_get_counted(self, import_all, sandbox, tree, run_py):
        import subprocess

        environ = sandbox.environ(boot=True, disable=False, pythonpath=[tree])
        processes = [
            subprocess.Popen(
                [sys.executable, str(import_all)],
                env=environ,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for _ in range(8)
        ]
        outputs = [process.communicate(timeout=120) for process in processes]
        assert [out for out, _ in outputs] == [b"5\n"] * 8
        assert [err for _, err in outputs] == [b""] * 8
        totals = sandbox.stats()
        assert totals["hits"] + totals["misses"] == 8 * MODULES, totals
        assert totals["compiles"] + totals["hits"] == 8 * MODULES


class TestUsage:
    def test_version(self, pycache_cli):
        run = pycache_cli("--version")
        assert (run.returncode, run.stdout) == (0, "pycache 0.1.0\n")

    @pytest.mark.parametrize("args", [[], ["frobnicate"], ["stats", "--bogus"]])
    def test_bad_usage_exits_2(self, pycache_cli, args):
        run = pycache_cli(*args)
        assert run.returncode == 2
        assert "usage: pycache" in run.stderr

    @pytest.mark.parametrize("command", [["stats"], ["status"], ["run", "--", "true"]])
    def test_bad_setting_exits_2(self, pycache_cli, command):
        run = pycache_cli(*command, env={"PYCACHE_DEBUG": "sometimes"})
        assert run.returncode == 2
        assert run.stderr == ("pycache: PYCACHE_DEBUG='sometimes' is not a boolean (use 1 or 0)\n")

    @pytest.mark.parametrize("form", [["run", "--", "X"], ["run", "X"]])
    def test_run_execs_without_loading_argparse(self, sandbox, form):
        # `pycache run` sits in front of every wrapped command: it must go
        # straight to exec, without argparse, json or typing (~10 ms).
        probe = (
            "import os, sys\n"
            "def fake_exec(file, args, env):\n"
            "    heavy = sorted({'argparse', 'json', 'typing'} & set(sys.modules))\n"
            "    print(args, heavy, env['PYTHONPATH'].split(os.pathsep)[0].endswith('_boot'))\n"
            "    sys.stdout.flush()\n"
            "    os._exit(0)\n"
            "os.execvpe = fake_exec\n"
            "from pycache.cli import main\n"
            f"main({[word.replace('X', 'true') for word in form]!r})\n"
        )
        run = sandbox.command(
            [sys.executable, "-c", probe], env={"PYTHONPATH": str(sandbox.src_dir)}
        )
        assert run.stdout == "['true'] [] True\n", run

    def test_stats_without_any_store_location_exits_2(self, sandbox):
        # HOME, XDG_CACHE_HOME and PYCACHE_DIR unset, and no password-database entry.
        script = (
            "import pwd, sys\n"
            "def missing(uid):\n    raise KeyError(uid)\n"
            "pwd.getpwuid = missing\n"
            "from pycache.cli import main\n"
            "sys.exit(main(['stats']))\n"
        )
        run = sandbox.run(
            ["-c", script],
            pycache=False,
            env={"HOME": None, "PYCACHE_DIR": None, "PYCACHE_DISABLE": None},
            check=False,
        )
        assert run.returncode == 2, run
        assert run.stderr == "pycache: no store directory: set PYCACHE_DIR (HOME is unset)\n"

    def test_xdg_cache_home_chooses_the_store(self, sandbox, make_tree, run_py):
        tree = make_tree({"m.py": "X = 1\n"})
        xdg = sandbox.root / "xdg"
        env = {"PYCACHE_DIR": None, "XDG_CACHE_HOME": str(xdg)}
        run_py(["-c", "import m"], pythonpath=[tree], env=env)
        assert len(sandbox.entry_files(xdg / "pycache")) >= 1
        report = json.loads(sandbox.cli("status", "--json", env=env).stdout)
        assert report["store"] == str(xdg / "pycache")
        assert not sandbox.store.exists()

    def test_relative_pycache_dir_is_made_absolute(self, sandbox, make_tree, run_py):
        tree = make_tree({"m.py": "X = 1\n"})
        work = sandbox.root / "work"
        work.mkdir()
        run_py(["-c", "import m"], pythonpath=[tree], env={"PYCACHE_DIR": "rel"}, cwd=work)
        assert len(sandbox.entry_files(work / "rel")) >= 1
        report = json.loads(
            sandbox.cli("status", "--json", env={"PYCACHE_DIR": "rel"}, cwd=work).stdout
        )
        assert report["store"] == str(work / "rel")

    def test_console_script(self, import_all, sandbox, tree):
        script = Path(sys.executable).parent / "pycache"
        if not script.exists():
            pytest.skip("the pycache console script is not installed next to this interpreter")
        version = sandbox.command([script, "--version"])
        assert version.stdout == "pycache 0.1.0\n"
        run = sandbox.command(
            [script, "run", "--", sys.executable, import_all],
            env={"PYTHONPATH": str(tree)},
        )
        assert run.stdout == "5\n"
        assert sandbox.stats()["compiles"] == MODULES
        assert os.access(str(script), os.X_OK)
