"""End-to-end: where PyCache is on, and where it is off.

``pycache run`` must reach every Python process the command starts (children,
spawn workers, pytest-xdist workers) and keep the environment's own
``sitecustomize``; ``pycache enable`` / ``disable`` switch a virtual
environment; ``PYCACHE_DISABLE`` switches it off.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

# Prints whether PyCache serves imports in this process, and who loaded a tree module.
REPORT_ACTIVE = (
    "import os, sys\n"
    "state = sys.modules.get('pycache._activate')\n"
    "import treemod\n"
    "print('pid=%d active=%s loader=%s value=%s' % (os.getpid(),"
    " bool(state and state.is_active()), type(treemod.__loader__).__name__, treemod.VALUE))\n"
)
TREE = {"treemod.py": "VALUE = 'tree'\n"}


def _parse(line: str) -> dict[str, str]:
    return dict(field.split("=", 1) for field in line.split())


class TestPycacheRunPropagation:
    def test_run_activates_the_command_and_its_subprocess_children(
        self, sandbox, make_tree, run_py
    ):
        tree = make_tree(TREE)
        scripts = make_tree(
            {
                "report.py": REPORT_ACTIVE,
                "parent.py": """\
                    import os, subprocess, sys
                    here = os.path.dirname(os.path.abspath(__file__))
                    exec(open(os.path.join(here, "report.py")).read())
                    child = [sys.executable, os.path.join(here, "report.py")]
                    subprocess.run(child, check=True)
                    grandchild = (
                        "import subprocess, sys; "
                        "subprocess.run([sys.executable, %r], check=True)" % child[1]
                    )
                    subprocess.run([sys.executable, "-c", grandchild], check=True)
                    """,
            },
            root="scripts",
        )
        run = run_py([scripts / "parent.py"], via="cli", pythonpath=[tree])
        lines = [_parse(line) for line in run.stdout.splitlines()]
        assert len(lines) == 3, run
        assert len({line["pid"] for line in lines}) == 3
        for line in lines:
            assert line == {**line, "active": "True", "loader": "PyCacheLoader", "value": "tree"}
        # The same program without PyCache: nobody is active.
        plain = run_py([scripts / "parent.py"], pycache=False, pythonpath=[tree])
        for line in plain.stdout.splitlines():
            assert _parse(line)["active"] == "False"
            assert _parse(line)["loader"] == "SourceFileLoader"

    def test_run_propagates_to_multiprocessing_spawn_workers(
        self, sandbox, make_tree, run_py, read_stats
    ):
        tree = make_tree({"workmod.py": "import os\n\ndef square(n):\n    return n * n\n", **TREE})
        script = make_tree(
            {
                "pool.py": """\
                    import json, multiprocessing, os, sys


                    def probe(n):
                        import workmod
                        state = sys.modules.get("pycache._activate")
                        return [
                            os.getpid(),
                            bool(state and state.is_active()),
                            type(workmod.__loader__).__name__,
                            workmod.square(n),
                        ]


                    if __name__ == "__main__":
                        pool = multiprocessing.get_context("spawn").Pool(2)
                        try:
                            results = pool.map(probe, range(8), chunksize=1)
                        finally:
                            pool.close()
                            pool.join()
                        print(json.dumps({"parent": os.getpid(), "results": results}))
                    """
            },
            root="scripts",
        )
        run = run_py([script / "pool.py"], via="cli", pythonpath=[tree], env={"PYCACHE_DEBUG": "1"})
        report = json.loads(run.stdout)
        results = report["results"]
        assert [square for _, _, _, square in results] == [n * n for n in range(8)]
        workers = {pid for pid, _, _, _ in results}
        assert report["parent"] not in workers and 1 <= len(workers) <= 2
        assert all(active and loader == "PyCacheLoader" for _, active, loader, _ in results)
        workmod = tree / "workmod.py"
        served = [line for line in run.trace if line.split(" (")[0].endswith(str(workmod))]
        assert len(served) == len(workers), run  # one import per worker process
        assert read_stats()["compiles"] >= 1  # the workers' counters reached the store

        plain = run_py([script / "pool.py"], pycache=False, pythonpath=[tree])
        plain_results = json.loads(plain.stdout)["results"]
        assert not any(active for _, active, _, _ in plain_results)
        assert {loader for _, _, loader, _ in plain_results} == {"SourceFileLoader"}

    def test_run_propagates_to_pytest_xdist_workers(self, sandbox, make_tree, run_py, read_stats):
        pytest.importorskip("xdist")
        records = sandbox.root / "records"
        records.mkdir()
        suite = make_tree(
            {
                "pytest.ini": "[pytest]\naddopts = -p no:cacheprovider\n",
                "helper_mod.py": "VALUE = 7\n",
                "test_workers.py": """\
                    import json, os, sys

                    import pytest

                    import helper_mod


                    @pytest.mark.parametrize("n", range(6))
                    def test_worker(n):
                        state = sys.modules.get("pycache._activate")
                        record = {
                            "pid": os.getpid(),
                            "worker": os.environ.get("PYTEST_XDIST_WORKER"),
                            "active": bool(state and state.is_active()),
                            "loader": type(helper_mod.__loader__).__name__,
                        }
                        path = os.path.join(os.environ["RECORDS"], "%d.json" % n)
                        with open(path, "w") as handle:
                            json.dump(record, handle)
                        assert record["active"]
                        assert helper_mod.VALUE == 7
                    """,
            },
            root="suite",
        )
        run = run_py(
            ["-m", "pytest", "-n", "2", "-q", str(suite)],
            via="cli",
            cwd=suite,
            env={"RECORDS": str(records)},
            check=False,
        )
        assert run.returncode == 0, run
        assert "6 passed" in run.stdout, run
        found = [json.loads(path.read_text()) for path in sorted(records.glob("*.json"))]
        assert len(found) == 6
        assert {record["worker"] for record in found} <= {"gw0", "gw1"}
        assert all(record["worker"] for record in found)
        assert all(record["active"] and record["loader"] == "PyCacheLoader" for record in found)
        assert read_stats()["entries"] > 0

    def test_environment_sitecustomize_still_runs(self, sandbox, make_tree, run_py):
        site = make_tree(
            {
                "sitecustomize.py": """\
                    import sys
                    state = sys.modules.get("pycache._activate")
                    print("env sitecustomize: pycache active =", bool(state and state.is_active()))
                    MARK = "env"
                    """
            },
            root="envsite",
        )
        script = (
            "import sitecustomize, sys\n"
            "print(sitecustomize.__file__, getattr(sitecustomize, 'MARK', None))\n"
            "print(any(p.endswith('_boot') for p in sys.path))\n"
        )
        run = run_py(["-c", script], pythonpath=[site])
        assert run.stdout == (
            f"env sitecustomize: pycache active = True\n{site / 'sitecustomize.py'} env\nFalse\n"
        )
        plain = run_py(["-c", script], pycache=False, pythonpath=[site])
        assert plain.stdout == run.stdout.replace("= True", "= False")
        # Through the real CLI: `python -m pycache` runs it too, without PyCache, then
        # the command it starts runs it with PyCache.
        cli = run_py(["-c", script], via="cli", pythonpath=[site])
        assert cli.stdout == plain.stdout.replace(
            "= False\n", "= False\nenv sitecustomize: pycache active = True\n", 1
        )

    def test_broken_environment_sitecustomize_reports_like_cpython(
        self, sandbox, make_tree, run_py
    ):
        site = make_tree({"sitecustomize.py": "import no_such_module_xyz\n"}, root="envsite")
        script = "print('main ran')"
        run = run_py(["-c", script], pythonpath=[site], check=False)
        plain = run_py(["-c", script], pycache=False, pythonpath=[site], check=False)
        assert run.returncode == plain.returncode == 0
        assert run.stdout == plain.stdout == "main ran\n"
        assert "Error in sitecustomize" in plain.stderr
        assert run.stderr == plain.stderr

    def test_fork_child_counts_only_its_own_imports(self, sandbox, make_tree, run_py, read_stats):
        if not hasattr(os, "fork"):
            pytest.skip("needs os.fork")
        tree = make_tree({"before_fork.py": "A = 1\n", "in_child.py": "B = 2\n"})
        script = sandbox.script(
            "import os, sys\n"
            "import before_fork\n"
            "pid = os.fork()\n"
            "if pid == 0:\n"
            "    import in_child\n"
            "    sys.exit(0)\n"
            "_, status = os.waitpid(pid, 0)\n"
            "print(status)\n"
        )
        run = run_py([script], pythonpath=[tree])
        assert run.stdout == "0\n"
        totals = read_stats()
        # Two imports in all: the child must not flush the parent's counters again.
        assert totals["misses"] == totals["compiles"] == 2, totals


class TestRunCommandErrors:
    def test_missing_command_exits_127(self, pycache_cli):
        run = pycache_cli("run", "--", "no-such-command-pycache-test")
        assert run.returncode == 127
        assert run.stderr == "pycache run: no-such-command-pycache-test: command not found\n"

    def test_non_executable_command_exits_126(self, sandbox, pycache_cli):
        script = sandbox.root / "not-executable"
        script.write_text("#!/bin/sh\necho hi\n")
        script.chmod(0o644)
        run = pycache_cli("run", "--", str(script))
        assert run.returncode == 126
        assert "permission denied" in run.stderr

    @pytest.mark.parametrize("args", [["run"], ["run", "--"]], ids=["bare", "dashdash"])
    def test_no_command_exits_2(self, pycache_cli, args):
        run = pycache_cli(*args)
        assert run.returncode == 2
        assert "no command given" in run.stderr

    def test_exit_code_and_streams_of_the_command_pass_through(self, run_py):
        script = "import sys; print('out'); print('err', file=sys.stderr); sys.exit(7)"
        run = run_py(["-c", script], via="cli", check=False)
        assert (run.returncode, run.stdout, run.stderr) == (7, "out\n", "err\n")

    def test_existing_pythonpath_is_kept_after_the_boot_directory(self, sandbox, run_py):
        script = "import os; print(os.environ['PYTHONPATH'])"
        run = run_py(["-c", script], via="cli", pythonpath=["/some/where", "/else"])
        assert run.stdout == os.pathsep.join([str(sandbox.boot_dir), "/some/where", "/else"]) + (
            "\n"
        )


class TestDisable:
    @pytest.mark.parametrize("via", ["boot", "cli"])
    def test_pycache_disable_turns_it_off(self, sandbox, make_tree, run_py, via):
        tree = make_tree(TREE)
        run = run_py(
            ["-c", REPORT_ACTIVE],
            via=via,
            pythonpath=[tree],
            env={"PYCACHE_DISABLE": "1", "PYCACHE_DEBUG": "1"},
        )
        fields = _parse(run.stdout)
        assert fields["active"] == "False" and fields["loader"] == "SourceFileLoader"
        assert run.trace == ["disabled by PYCACHE_DISABLE"]
        assert not sandbox.store.exists()

    def test_pycache_disable_0_leaves_it_on(self, sandbox, make_tree, run_py):
        tree = make_tree(TREE)
        run = run_py(["-c", REPORT_ACTIVE], pythonpath=[tree], env={"PYCACHE_DISABLE": "0"})
        assert _parse(run.stdout)["active"] == "True"
        assert len(sandbox.entry_files()) >= 1

    def test_bad_boolean_warns_once_and_still_runs(self, sandbox, make_tree, run_py):
        tree = make_tree({**TREE, "other.py": "X = 1\n"})
        run = run_py(
            ["-c", "import other\n" + REPORT_ACTIVE],
            pythonpath=[tree],
            env={"PYCACHE_READONLY": "maybe"},
        )
        assert _parse(run.stdout)["active"] == "True"
        assert run.stderr.count("PYCACHE_READONLY='maybe' is not a boolean") == 1, run

    def test_isolated_mode_is_not_activated(self, sandbox, make_tree, run_py):
        run = run_py(["-I", "-c", "import sys; print('pycache._activate' in sys.modules)"])
        assert run.stdout == "False\n"


class TestOwnImports:
    def test_pycache_never_serves_its_own_modules(self, sandbox, make_tree, run_py):
        tree = make_tree(TREE)
        for _ in range(2):
            run = run_py(["-c", "import treemod"], pythonpath=[tree], env={"PYCACHE_DEBUG": "1"})
            assert any("treemod.py" in line for line in run.trace), run
            own = [line for line in run.trace if str(sandbox.package_dir) in line]
            assert own == [], run

    def test_a_module_pycache_itself_may_need_is_cached_too(self, sandbox, make_tree, run_py):
        # ``__future__`` is usually a program's first source import. It is still
        # being loaded while the engine is built and while it computes keys, so
        # nothing PyCache imports on the way may import it, or the import fails,
        # the engine is never built and PyCache stays off for the whole process.
        tree = make_tree(TREE)
        main = sandbox.script("from __future__ import annotations\nimport treemod\n")
        env = {"PYCACHE_DEBUG": "1", "PYTHONNOUSERSITE": "1"}
        cold = run_py([main], pythonpath=[tree], env=env)
        assert not [line for line in cold.trace if "fail" in line], cold
        future = [line for line in cold.trace if line.endswith("__future__.py (miss_new)")]
        assert len(future) == 1, cold
        warm = run_py([main], pythonpath=[tree], env=env)
        hits = [line.split(" (")[0] for line in warm.trace if line.startswith("hit ")]
        assert hits == [
            future[0].replace("miss ", "hit ").split(" (")[0],
            f"hit {tree / 'treemod.py'}",
        ]
        assert not [line for line in warm.trace if line.startswith("miss ")], warm


@pytest.fixture
def venv(sandbox):
    """A throwaway venv (no pip) that finds this checkout's PyCache through a .pth line."""
    root = sandbox.root / "venv"
    sandbox.command([sys.executable, "-m", "venv", "--without-pip", str(root)])
    python = root / "bin" / "python"
    purelib = sandbox.command(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]
    ).stdout.strip()
    # "_" sorts before "pycache-enable.pth", so the path is there when that line runs.
    Path(purelib, "_pycache_src.pth").write_text(str(sandbox.src_dir) + "\n")
    return python, Path(purelib)


class TestEnableDisable:
    def test_enable_and_disable_a_virtual_environment(self, sandbox, make_tree, venv):
        python, purelib = venv
        tree = make_tree(TREE)
        pth = purelib / "pycache-enable.pth"
        probe = [python, "-c", REPORT_ACTIVE]
        env = {"PYTHONPATH": str(tree)}

        assert _parse(sandbox.command(probe, env=env).stdout)["active"] == "False"

        enabled = sandbox.cli("enable", python=str(python))
        assert enabled.returncode == 0, enabled
        assert enabled.stdout == f"PyCache enabled for {python.parent.parent} ({pth})\n"
        assert pth.read_text().startswith("import ") and "activate()" in pth.read_text()
        fields = _parse(sandbox.command(probe, env=env).stdout)
        assert fields["active"] == "True" and fields["loader"] == "PyCacheLoader"
        assert len(sandbox.entry_files()) >= 1

        status = sandbox.cli("status", "--json", python=str(python))
        report = json.loads(status.stdout)
        assert report["enabled_for_environment"] is True
        assert report["pth_file"] == str(pth)
        assert report["active"] is True and report["under_pycache_run"] is False

        off = sandbox.command(probe, env={**env, "PYCACHE_DISABLE": "1"})
        assert _parse(off.stdout)["active"] == "False"

        # A .pth left behind by an uninstalled PyCache must not break or taint start-up.
        (purelib / "_pycache_src.pth").rename(purelib / "_pycache_src.off")
        orphan = sandbox.command(probe, env=env)
        assert orphan.stderr == ""
        assert _parse(orphan.stdout)["active"] == "False"
        (purelib / "_pycache_src.off").rename(purelib / "_pycache_src.pth")

        disabled = sandbox.cli("disable", python=str(python))
        assert disabled.returncode == 0, disabled
        assert disabled.stdout == f"PyCache disabled for {python.parent.parent}\n"
        assert not pth.exists()
        assert _parse(sandbox.command(probe, env=env).stdout)["active"] == "False"
        again = sandbox.cli("disable", python=str(python))
        assert again.returncode == 0
        assert "was not enabled" in again.stdout

    def test_enable_outside_a_virtual_environment_needs_system(self, sandbox):
        version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
        base = Path(sys.base_prefix) / "bin" / version
        if not base.exists():
            pytest.skip(f"no base interpreter at {base}")
        query = sandbox.command(
            [
                base,
                "-c",
                "import sys, sysconfig; print(sys.prefix == sys.base_prefix);"
                "print(sysconfig.get_paths()['purelib'])",
            ]
        )
        not_venv, purelib = query.stdout.split("\n")[:2]
        assert not_venv == "True"
        pth = Path(purelib) / "pycache-enable.pth"
        if pth.exists():
            pytest.skip("PyCache is already enabled for the base interpreter")
        run = sandbox.cli("enable", python=str(base), pythonpath=[sandbox.src_dir])
        assert run.returncode == 2
        assert "is not a virtual environment; use --system" in run.stderr
        assert not pth.exists()


class TestStatus:
    def test_status_json_outside_and_inside_pycache_run(self, sandbox, make_tree, run_py):
        tree = make_tree({f"m{i}.py": f"X = {i}\n" for i in range(5)})
        run_py(["-c", "import m0, m1, m2, m3, m4"], pythonpath=[tree])
        entries = len(sandbox.entry_files())
        assert entries >= 5

        outside = sandbox.cli("status", "--json")
        report = json.loads(outside.stdout)
        assert report["active"] is False
        assert report["under_pycache_run"] is False
        assert report["store"] == str(sandbox.store)
        assert report["entries"] == entries and report["size_bytes"] > 0
        assert report["disabled_by_env"] is False and report["readonly"] is False

        inside = run_py(["-m", "pycache", "status", "--json"], via="cli")
        report = json.loads(inside.stdout)
        assert report["active"] is True and report["under_pycache_run"] is True
        assert report["entries"] >= entries

    def test_status_text(self, sandbox, run_py):
        outside = sandbox.cli("status")
        assert outside.returncode == 0
        assert outside.stdout.startswith("PyCache 0.1.0: off (run `pycache enable`")
        assert f"  store:       {sandbox.store}\n" in outside.stdout
        assert "  entries:     0\n" in outside.stdout

        inside = run_py(["-m", "pycache", "status"], via="cli")
        assert inside.stdout.startswith("PyCache 0.1.0: on in this process\n")
        assert "  pycache run: yes\n" in inside.stdout

        disabled = sandbox.cli("status", env={"PYCACHE_DISABLE": "1", "PYCACHE_READONLY": "1"})
        assert disabled.stdout.startswith("PyCache 0.1.0: off (PYCACHE_DISABLE is set)\n")
        assert "  mode:        read-only (PYCACHE_READONLY)\n" in disabled.stdout

    def test_status_counts_entries_after_a_run_subprocess(self, sandbox, run_py):
        # `pycache status` run under `pycache run` reads the same store as the command.
        run_py(["-c", "import json"], via="cli")
        report = json.loads(sandbox.cli("status", "--json").stdout)
        assert report["entries"] == len(sandbox.entry_files()) > 0
