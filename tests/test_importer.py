"""End-to-end: modules imported through PyCache look exactly as CPython makes them.

Each test runs the same script on a generated tree twice or more, in fresh
interpreters: once as plain CPython, then with PyCache (cold store, then warm
store), and compares what the script prints.
"""

from __future__ import annotations

import importlib.util
import json
import os
import py_compile
import shutil
import sys
import time
import zipfile
from pathlib import Path

import pytest

from conftest import PYTHON, other_interpreters
from pycache.index import GRANULARITY_NS

PROBE = """\
import importlib, importlib.machinery, json, sys

report = {"sys.path": sys.path}
for name in sys.argv[1:]:
    module = importlib.import_module(name)
    spec = module.__spec__
    locations = spec.submodule_search_locations
    report[name] = {
        "__name__": module.__name__,
        "__file__": getattr(module, "__file__", None),
        "__cached__": getattr(module, "__cached__", None),
        "__package__": module.__package__,
        "__path__": list(module.__path__) if hasattr(module, "__path__") else None,
        "__doc__": module.__doc__,
        "spec.name": spec.name,
        "spec.origin": spec.origin,
        "spec.cached": spec.cached,
        "spec.parent": spec.parent,
        "spec.has_location": spec.has_location,
        "spec.submodule_search_locations": None if locations is None else list(locations),
        "loader is spec.loader": module.__loader__ is spec.loader,
        "source loader": isinstance(module.__loader__, importlib.machinery.SourceFileLoader),
        "globals": sorted(key for key in vars(module) if not key.startswith("__")),
        "VALUE": getattr(module, "VALUE", None),
        "where": module.where() if hasattr(module, "where") else None,
    }
print(json.dumps(report, indent=1, sort_keys=True))
print("loaders", sorted({type(sys.modules[n].__loader__).__name__ for n in sys.argv[1:]}))
"""

APP_TREE = {
    "app/__init__.py": '''\
        """The app package."""
        from . import util
        from .sub import leaf

        VALUE = "app:" + util.VALUE + ":" + leaf.VALUE
        ''',
    "app/util.py": """\
        VALUE = "util"


        def where():
            return where.__code__.co_filename
        """,
    "app/sub/__init__.py": 'VALUE = "sub"\n',
    "app/sub/leaf.py": """\
        from .. import util
        from . import VALUE as SUB

        VALUE = "leaf<" + util.VALUE + "," + SUB + ">"


        def where():
            return where.__code__.co_filename
        """,
    "app/__main__.py": """\
        import sys

        print("main", __name__, __file__, __spec__.name, __spec__.parent, __package__)
        print("main cached", __cached__ if "__cached__" in globals() else "<unset>")
        print("main code", sys._getframe().f_code.co_filename)
        """,
    "portion1/nspkg/one.py": 'VALUE = "one"\n',
    "portion2/nspkg/two.py": 'VALUE = "two"\n',
    "portion2/nspkg/deeper/three.py": "from .. import one\n\nVALUE = one.VALUE + '+three'\n",
}
APP_MODULES = [
    "app",
    "app.util",
    "app.sub",
    "app.sub.leaf",
    "nspkg",
    "nspkg.one",
    "nspkg.two",
    "nspkg.deeper",
    "nspkg.deeper.three",
]


def _app_pythonpath(tree: Path) -> list[Path]:
    return [tree, tree / "portion1", tree / "portion2"]


def _probe_lines(run) -> tuple[str, str]:
    body, _, loaders = run.stdout.rpartition("loaders ")
    return body, loaders.strip()


def _trace_for(run, path: Path) -> list[str]:
    return [line for line in run.trace if line.split(" (")[0].endswith(" " + str(path))]


class TestModuleAttributes:
    @pytest.mark.parametrize("pycache_prefix", [False, True], ids=["in-tree", "pycache-prefix"])
    def test_file_spec_cached_and_packages_match_cpython(
        self, sandbox, make_tree, run_py, read_stats, pycache_prefix
    ):
        tree = make_tree(APP_TREE)
        probe = make_tree({"probe.py": PROBE}, root="scripts") / "probe.py"
        path = _app_pythonpath(tree)
        env = {"PYTHONPYCACHEPREFIX": str(sandbox.root / "prefix") if pycache_prefix else None}
        args = [probe, *APP_MODULES]

        cpython = run_py(args, pycache=False, pythonpath=path, env=env)
        traced = {**env, "PYCACHE_DEBUG": "1"}  # (tracing imports logging before activation)
        cold = run_py(args, pythonpath=path, env=traced)
        after_cold = read_stats()
        warm = run_py(args, pythonpath=path, env=traced, via="cli")
        used = sandbox.delta(after_cold, read_stats())
        quiet = run_py(args, pythonpath=path, env=env)

        expected, cpython_loaders = _probe_lines(cpython)
        assert "SourceFileLoader" in cpython_loaders and "PyCache" not in cpython_loaders
        for run in (cold, warm, quiet):
            body, loaders = _probe_lines(run)
            assert body == expected, (run, cpython)
            assert "PyCacheLoader" in loaders and "SourceFileLoader" not in loaders, run
        assert quiet.stderr == ""
        sources = sorted(tree.rglob("*.py"))
        assert len(sources) == 8  # app/__main__.py is not imported here
        for source in sources:
            if source.name == "__main__.py":
                assert _trace_for(cold, source) == _trace_for(warm, source) == []
            else:
                assert _trace_for(cold, source) == [f"miss {source} (miss_new)"], cold
                assert _trace_for(warm, source)[0].startswith(f"hit {source} ("), warm
        assert used["compiles"] == 0 and used["misses"] == 0, used
        assert used["hits"] == after_cold["misses"] >= 7, (used, after_cold)

        report = json.loads(expected)
        assert report["app"]["VALUE"] == "app:util:leaf<util,sub>"
        assert report["nspkg.deeper.three"]["VALUE"] == "one+three"
        assert report["nspkg"]["__file__"] is None
        assert sorted(report["nspkg"]["__path__"]) == sorted(
            [str(tree / "portion1" / "nspkg"), str(tree / "portion2" / "nspkg")]
        )
        util = report["app.util"]
        assert util["where"] == util["__file__"] == str(tree / "app" / "util.py")
        assert util["__cached__"] == util["spec.cached"]
        if pycache_prefix:
            assert util["__cached__"].startswith(str(sandbox.root / "prefix"))
        else:
            assert util["__cached__"] == importlib.util.cache_from_source(util["__file__"])
        # PyCache keeps CPython's __cached__ but never writes the file it names.
        assert not os.path.exists(util["__cached__"])

    def test_python_dash_m_package_main(self, make_tree, run_py):
        tree = make_tree(APP_TREE)
        cpython = run_py(["-m", "app"], pycache=False, pythonpath=[tree])
        cold = run_py(["-m", "app"], pythonpath=[tree], env={"PYCACHE_DEBUG": "1"})
        warm = run_py(["-m", "app"], pythonpath=[tree])
        assert cold.stdout == warm.stdout == cpython.stdout
        assert f"main code {tree / 'app' / '__main__.py'}" in cpython.stdout
        assert _trace_for(cold, tree / "app" / "__main__.py") == [
            f"miss {tree / 'app' / '__main__.py'} (miss_new)"
        ]

    def test_pycache_writes_no_pycache_directories_even_when_bytecode_writing_is_on(
        self, make_tree, run_py
    ):
        tree = make_tree(APP_TREE)
        run_py(
            ["-c", "import app, nspkg.deeper.three"],
            pythonpath=_app_pythonpath(tree),
            write_bytecode=True,
        )
        assert sorted(p.name for p in tree.rglob("__pycache__")) == []
        # ...where CPython, in the same environment, writes them.
        run_py(["-c", "import app"], pycache=False, pythonpath=[tree], write_bytecode=True)
        assert (tree / "app" / "__pycache__").is_dir()


class TestReload:
    SCRIPT = """\
        import importlib, os, sys
        import hot

        seen = [(hot.X, hot.double())]
        for new in (42, 43, 17, 99):
            before = os.stat(hot.__file__)
            with open(hot.__file__, "w") as handle:
                handle.write("X = %d\\ndef double():\\n    return X * 2\\n" % new)
            if new == 17:  # same size and the old mtime: only ctime tells
                os.utime(hot.__file__, ns=(before.st_atime_ns, before.st_mtime_ns))
            importlib.reload(hot)
            seen.append((hot.X, hot.double()))
        print(seen)
        """

    def test_reload_after_same_size_edits_picks_up_new_code(self, make_tree, run_py):
        files = {"hot.py": "X = 41\ndef double():\n    return X * 2\n", "reloader.py": self.SCRIPT}
        expected = "[(41, 82), (42, 84), (43, 86), (17, 34), (99, 198)]\n"
        for pycache in (False, True, True):
            tree = make_tree(files)  # rewritten each time: every run starts from X = 41
            run = run_py([tree / "reloader.py"], pycache=pycache, env={"PYCACHE_DEBUG": "1"})
            assert run.stdout == expected, run
            if pycache:
                assert len(_trace_for(run, tree / "hot.py")) == 5, run


class TestSourceAndTracebacks:
    BOOM = """\
        def fail(depth):
            if depth > 2:
                raise ValueError("boom at depth %d" % depth)
            return fail(depth + 1)


        def where():
            return fail.__code__.co_filename
        """

    def test_inspect_getsource_and_linecache(self, make_tree, run_py):
        tree = make_tree({"boom.py": self.BOOM})
        script = (
            "import inspect, linecache, boom\n"
            "print(inspect.getsource(boom.fail))\n"
            "print(inspect.getsourcefile(boom.fail))\n"
            "print(inspect.getsourcelines(boom.where)[1])\n"
            "print(linecache.getline(boom.fail.__code__.co_filename, 3))\n"
        )
        cpython = run_py(["-c", script], pycache=False, pythonpath=[tree])
        for _ in range(2):  # cold, then from the store
            run = run_py(["-c", script], pythonpath=[tree])
            assert run.stdout == cpython.stdout
        assert cpython.stdout.startswith("def fail(depth):\n    if depth > 2:\n")
        assert f"\n{tree / 'boom.py'}\n7\n" in cpython.stdout

    def test_traceback_names_the_importing_path_not_the_path_that_filled_the_store(
        self, sandbox, make_tree, run_py, read_stats
    ):
        original = make_tree({"boom.py": self.BOOM}, root="original")
        script = sandbox.script("import boom\nprint(boom.where())\nboom.fail(0)\n")
        first = run_py([script], pythonpath=[original], check=False)
        assert first.returncode == 1 and str(original / "boom.py") in first.stderr
        moved = sandbox.root / "moved"
        shutil.copytree(str(original), str(moved))
        before = read_stats()

        with_pycache = run_py([script], pythonpath=[moved], check=False)
        used = sandbox.delta(before, read_stats())
        cpython = run_py([script], pycache=False, pythonpath=[moved], check=False)

        # boom.py is the one new path (printing the traceback may import more, from 3.13).
        assert used["compiles"] == 0 and used["misses"] == 0, used
        assert used["hits_by_content"] == 1, used
        assert with_pycache.returncode == cpython.returncode == 1
        assert with_pycache.stdout == cpython.stdout == f"{moved / 'boom.py'}\n"
        assert with_pycache.stderr == cpython.stderr, (with_pycache, cpython)
        assert f'File "{moved / "boom.py"}", line 3, in fail' in with_pycache.stderr
        assert 'raise ValueError("boom at depth %d" % depth)' in with_pycache.stderr
        assert str(original) not in with_pycache.stderr

    def test_formatted_traceback_frames_match_cpython(self, make_tree, run_py):
        tree = make_tree({"boom.py": self.BOOM})
        script = (
            "import traceback, boom\n"
            "try:\n    boom.fail(0)\nexcept ValueError as exc:\n"
            "    for frame in traceback.extract_tb(exc.__traceback__):\n"
            "        print(frame.filename, frame.lineno, frame.name, frame.line)\n"
        )
        cpython = run_py(["-c", script], pycache=False, pythonpath=[tree])
        cold = run_py(["-c", script], pythonpath=[tree])
        warm = run_py(["-c", script], pythonpath=[tree])
        assert cold.stdout == warm.stdout == cpython.stdout
        assert cpython.stdout.count(f"{tree / 'boom.py'} 4 fail return fail(depth + 1)") == 3


class TestOptimizationLevels:
    MODULE = '''\
        """Module doc."""


        def check(value):
            """Function doc."""
            assert value > 0, "value must be positive"
            return __debug__
        '''
    SCRIPT = (
        "import json, opt\n"
        "try:\n    opt.check(-1)\n    outcome = 'assert stripped'\n"
        "except AssertionError:\n    outcome = 'assert raised'\n"
        "print(json.dumps([outcome, opt.check(1), opt.__doc__, opt.check.__doc__,"
        " opt.__cached__]))\n"
    )

    @pytest.mark.parametrize("settled", [False, True], ids=["fresh", "settled"])
    def test_optimized_code_has_its_own_entries(self, make_tree, run_py, settled):
        tree = make_tree({"opt.py": self.MODULE})
        module = tree / "opt.py"
        if settled:
            # Older than the racy window, so index records are trusted on stat
            # alone: a record made at one level must not serve another.
            time.sleep(GRANULARITY_NS / 1e9 + 0.2)
        expected = {
            (): ["assert raised", True, "Module doc.", "Function doc."],
            ("-O",): ["assert stripped", False, "Module doc.", "Function doc."],
            ("-OO",): ["assert stripped", False, None, None],
        }
        cached_suffix = {(): ".pyc", ("-O",): ".opt-1.pyc", ("-OO",): ".opt-2.pyc"}
        cpython = {
            flags: run_py([*flags, "-c", self.SCRIPT], pycache=False, pythonpath=[tree])
            for flags in expected
        }
        # Cold for each level in turn, then each level again: every run must give
        # that level's result, so no level may reuse another level's entry.
        order = [(), ("-O",), ("-OO",), (), ("-OO",), ("-O",), ()]
        seen_levels = set()
        for flags in order:
            run = run_py([*flags, "-c", self.SCRIPT], pythonpath=[tree], env={"PYCACHE_DEBUG": "1"})
            result = json.loads(run.stdout)
            assert result[:4] == expected[flags], (flags, run)
            assert result[4].endswith(cached_suffix[flags])
            assert run.stdout == cpython[flags].stdout
            (event,) = _trace_for(run, module)
            if flags in seen_levels:
                assert event.startswith(f"hit {module}"), (flags, run)
            else:
                assert event.startswith(f"miss {module}"), (flags, run)
            seen_levels.add(flags)


class TestInterpreterVersions:
    def test_interpreters_sharing_a_store_and_a_tree_get_their_own_code(self, make_tree, run_py):
        others = other_interpreters()
        if not others:
            pytest.skip("no other CPython 3.9-3.13 found under pyenv")
        tree = make_tree(
            {"calc.py": "def calc(n):\n    return sum(i * i for i in range(n)) // 3\n"}
        )
        module = tree / "calc.py"
        time.sleep(GRANULARITY_NS / 1e9 + 0.2)  # trusted on stat alone from the start
        script = "import calc, sys; print(calc.calc(10), sys.version_info[:2])"
        pythons = [PYTHON, *others]
        expected = {
            python: run_py(["-c", script], pycache=False, pythonpath=[tree], python=python).stdout
            for python in pythons
        }
        # Each interpreter once cold, then each again: the second round must be
        # served from that interpreter's own entry, never another version's.
        for round_ in ("cold", "warm"):
            for python in pythons:
                run = run_py(
                    ["-c", script],
                    pythonpath=[tree],
                    python=python,
                    env={"PYCACHE_DEBUG": "1"},
                    check=False,
                )
                assert (run.returncode, run.stdout) == (0, expected[python]), (python, run)
                assert not [line for line in run.trace if "corrupt" in line], (python, run)
                (event,) = _trace_for(run, module)
                wanted = "miss" if round_ == "cold" else "hit"
                assert event.startswith(f"{wanted} {module}"), (python, round_, run)


class TestSyntaxErrors:
    REPORT = (
        "import importlib, json, sys\n"
        "for name in sys.argv[1:]:\n"
        "    try:\n        importlib.import_module(name)\n"
        "    except (SyntaxError, ValueError) as exc:\n"
        "        print(json.dumps([name, type(exc).__name__, getattr(exc, 'msg', str(exc)),"
        " getattr(exc, 'filename', None), getattr(exc, 'lineno', None),"
        " getattr(exc, 'offset', None), getattr(exc, 'text', None)]))\n"
        "    else:\n        print(json.dumps([name, 'imported']))\n"
    )
    TREE = {
        "bad_paren.py": "x = 1\ny = (2,\nz = [3\n",
        "bad_def.py": "def broken(:\n    pass\n",
        "bad_indent.py": "def f():\n    x = 1\n      y = 2\n",
        "bad_encoding.py": "# -*- coding: no-such-codec -*-\nx = 1\n",
        "bad_null.py": b"x = 1\n\x00\n",
        "good.py": "x = 1\n",
    }
    NAMES = ["bad_paren", "bad_def", "bad_indent", "bad_encoding", "bad_null", "good"]

    def test_syntax_errors_match_cpython(self, sandbox, make_tree, run_py):
        tree = make_tree(self.TREE)
        script = make_tree({"report.py": self.REPORT}, root="scripts") / "report.py"
        cpython = run_py([script, *self.NAMES], pycache=False, pythonpath=[tree])
        cold = run_py([script, *self.NAMES], pythonpath=[tree])
        warm = run_py([script, *self.NAMES], pythonpath=[tree], env={"PYCACHE_DEBUG": "1"})
        assert cold.stdout == warm.stdout == cpython.stdout, (cold, cpython)
        assert cold.stderr == ""
        # Nothing was stored for the modules that do not compile: they miss again.
        assert _trace_for(warm, tree / "bad_def.py") == [f"miss {tree / 'bad_def.py'} (miss_new)"]
        assert _trace_for(warm, tree / "good.py")[0].startswith(f"hit {tree / 'good.py'}")
        lines = [json.loads(line) for line in cpython.stdout.splitlines()]
        by_name = {line[0]: line for line in lines}
        assert by_name["bad_def"][1] == "SyntaxError"
        assert by_name["bad_def"][3:5] == [str(tree / "bad_def.py"), 1]
        assert by_name["bad_indent"][1] == "IndentationError"
        assert by_name["good"] == ["good", "imported"]

    def test_module_broken_by_an_edit_raises_instead_of_running_old_code(self, make_tree, run_py):
        tree = make_tree({"flaky.py": "VALUE = 1\n"})
        script = "import flaky; print(flaky.VALUE)"
        assert run_py(["-c", script], pythonpath=[tree]).stdout == "1\n"
        (tree / "flaky.py").write_text("VALUE = (\n")
        broken = run_py(["-c", script], pythonpath=[tree], check=False)
        cpython = run_py(["-c", script], pycache=False, pythonpath=[tree], check=False)
        assert broken.returncode == cpython.returncode == 1
        assert broken.stdout == cpython.stdout == ""
        # The error itself (its last four lines: location, source, caret, message).
        assert broken.stderr.splitlines()[-4:] == cpython.stderr.splitlines()[-4:]
        assert f'File "{tree / "flaky.py"}", line 1' in broken.stderr
        (tree / "flaky.py").write_text("VALUE = 1\n")
        assert run_py(["-c", script], pythonpath=[tree]).stdout == "1\n"

    def test_uncaught_syntax_error_traceback_is_cpythons(self, make_tree, run_py):
        tree = make_tree({"flaky.py": "VALUE = (\n"})
        broken = run_py(["-c", "import flaky"], pythonpath=[tree], check=False)
        cpython = run_py(["-c", "import flaky"], pycache=False, pythonpath=[tree], check=False)
        assert broken.returncode == cpython.returncode == 1
        assert "SyntaxError: " in cpython.stderr
        assert broken.stderr == cpython.stderr


class TestWhatGoesThroughPyCache:
    def test_stdlib_modules_are_served(self, sandbox, run_py, read_stats):
        script = (
            "import json, email.mime.text\n"
            "print(json.__file__)\nprint(email.mime.text.__file__)\n"
            "print(type(json.__loader__).__name__)\n"
        )
        cold = run_py(["-c", script], env={"PYCACHE_DEBUG": "1"})
        json_path, text_path, loader = cold.stdout.split()
        assert loader == "PyCacheLoader"
        assert _trace_for(cold, Path(json_path)) and _trace_for(cold, Path(text_path)), cold
        before = read_stats()
        warm = run_py(["-c", script], env={"PYCACHE_DEBUG": "1"})
        used = sandbox.delta(before, read_stats())
        assert warm.stdout == cold.stdout
        assert _trace_for(warm, Path(text_path))[0].startswith(f"hit {text_path}"), warm
        assert used["compiles"] == 0 and used["misses"] == 0, used
        assert used["hits"] >= 10, used  # json and email pull in a dozen modules

    def test_site_packages_modules_are_served(self, sandbox, run_py, read_stats):
        spec = importlib.util.find_spec("iniconfig")
        if spec is None or "site-packages" not in (spec.origin or ""):
            pytest.skip("needs iniconfig (a pytest dependency) installed in site-packages")
        script = "import iniconfig; print(iniconfig.__file__)"
        cold = run_py(["-c", script], env={"PYCACHE_DEBUG": "1"})
        assert cold.stdout.strip() == spec.origin
        assert _trace_for(cold, Path(spec.origin)), cold
        warm = run_py(["-c", script], env={"PYCACHE_DEBUG": "1"})
        assert _trace_for(warm, Path(spec.origin))[0].startswith("hit "), warm

    def test_builtin_extension_frozen_sourceless_and_zip_modules_are_left_alone(
        self, sandbox, make_tree, run_py
    ):
        tree = make_tree({"legacy_src.py": "VALUE = 'sourceless'\n"})
        py_compile.compile(str(tree / "legacy_src.py"), cfile=str(tree / "legacy.pyc"))
        (tree / "legacy_src.py").unlink()
        with zipfile.ZipFile(str(sandbox.root / "bundle.zip"), "w") as bundle:
            bundle.writestr("zipped.py", "VALUE = 'zipped'\n")
        script = (
            "import sys\n"
            "for name in ('sys', 'math', 'array', '_struct', '__hello__', 'legacy', 'zipped'):\n"
            "    __import__(name)\n"
            "    module = sys.modules[name]\n"
            "    loader = module.__spec__.loader\n"
            "    kind = loader.__name__ if isinstance(loader, type) else type(loader).__name__\n"
            "    print(name, kind, getattr(module, 'VALUE', ''))\n"
        )
        path = [tree, sandbox.root / "bundle.zip"]
        cpython = run_py(["-c", script], pycache=False, pythonpath=path)
        run = run_py(["-c", script], pythonpath=path, env={"PYCACHE_DEBUG": "1"})
        assert run.stdout == cpython.stdout
        kinds = {line.split()[1] for line in cpython.stdout.splitlines()}
        assert {"BuiltinImporter", "FrozenImporter", "SourcelessFileLoader", "zipimporter"} <= (
            kinds
        ), cpython.stdout
        assert "legacy SourcelessFileLoader sourceless\n" in run.stdout
        assert "zipped zipimporter zipped\n" in run.stdout
        served = [line for line in run.trace if line.startswith(("hit ", "miss "))]
        assert served == [], run
        assert sandbox.entry_files() == []

    def test_same_content_at_another_path_is_a_hit_without_compiling(
        self, sandbox, make_tree, run_py, read_stats
    ):
        files = {f"lib/mod{i}.py": f"VALUE = {i}\nNAME = __name__\n" for i in range(8)}
        files["lib/__init__.py"] = ""
        first = make_tree(files, root="first")
        script = sandbox.script(
            "import sys, lib\n"
            "names = ['lib.mod%d' % i for i in range(8)]\n"
            "for name in names:\n    __import__(name)\n"
            "print([sys.modules[name].VALUE for name in names], lib.mod3.__file__)\n"
        )
        run_py([script], pythonpath=[first])
        entries = len(sandbox.entry_files())
        second = make_tree(files, root="second")  # fresh files: new inodes and mtimes
        before = read_stats()
        run = run_py([script], pythonpath=[second])
        used = sandbox.delta(before, read_stats())
        assert run.stdout == f"{list(range(8))} {second / 'lib' / 'mod3.py'}\n"
        assert used["compiles"] == 0 and used["misses"] == 0, used
        assert used["hits"] == used["hits_by_content"] == 9, used
        assert len(sandbox.entry_files()) == entries


@pytest.mark.skipif(sys.version_info < (3, 11), reason="column tables exist from 3.11")
class TestDebugRanges:
    @pytest.mark.parametrize("how", ["-X", "env"])
    def test_no_debug_ranges_code_is_kept_apart(self, sandbox, make_tree, run_py, how):
        tree = make_tree({"div.py": "def divide(a, b):\n    return (a + 1) / (b * 1) + 0\n"})
        script = sandbox.script("import div\ndiv.divide(1, 0)\n")
        plain: dict[str, str | None] = {"PYTHONNODEBUGRANGES": None}
        if how == "-X":
            without_ranges = (["-X", "no_debug_ranges"], plain)
        else:
            without_ranges = ([], {"PYTHONNODEBUGRANGES": "1"})
        carets = []
        for flags, env in (([], plain), without_ranges, ([], plain), without_ranges):
            run = run_py([*flags, script], pythonpath=[tree], env=env, check=False)
            cpython = run_py(
                [*flags, script], pycache=False, pythonpath=[tree], env=env, check=False
            )
            assert run.returncode == cpython.returncode == 1
            assert run.stderr == cpython.stderr, (flags, env, run, cpython)
            carets.append("~~~~~~~~^~~~~~~~~" in run.stderr)
        assert carets == [True, False, True, False]
