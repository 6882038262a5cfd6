"""``pycache compile`` and ``pycache.compiler`` on real trees.

In-tree pycs are compared byte for byte with what ``py_compile`` and
``compileall`` of the same interpreter write for the same tree at the same path
(they run in subprocesses with an explicit environment); CPython must then
import them without recompiling. Store compiles are checked by importing the
tree with PyCache active: every module must be a hit, none compiled.
"""

from __future__ import annotations

import json
import marshal
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pycache import _format, compiler, index
from pycache.cli import main
from pycache.keys import compile_context

MODES = ("timestamp", "checked-hash", "unchecked-hash")

TREE = {
    "pkg/__init__.py": '"""Package docstring."""\nVALUE = 1\n',
    "pkg/mod.py": '''
        """Module docstring."""

        def check(x):
            """Function docstring."""
            assert x > 0, "positive"
            return x * 2

        if __debug__:
            MODE = "debug"
        else:
            MODE = "optimized"
        ''',
    "pkg/sub/__init__.py": "SUB = True\n",
    "pkg/sub/deep.py": "from .. import mod\nDEEP = mod.check(2)\n",
    "pkg/sub/deeper/__init__.py": "",
    "pkg/sub/deeper/leaf.py": "LEAF = 'leaf'\n",
    "pkg/data.txt": "not python\n",
    "top.py": "import pkg.mod, pkg.sub.deep, pkg.sub.deeper.leaf\nprint(pkg.mod.MODE)\n",
}
SOURCES = sorted(name for name in TREE if name.endswith(".py"))
IMPORT_TREE = "import top, pkg.sub.deep\nprint(pkg.sub.deep.DEEP, top.pkg.mod.check.__doc__)\n"


@pytest.fixture
def tree(make_tree):
    return make_tree(TREE)


def compile_cli(sandbox, *args, env=None, cwd=None, check_code=None):
    result = sandbox.cli("compile", *args, env=env, cwd=cwd)
    if check_code is not None:
        assert result.returncode == check_code, result
    return result


def summary_of(result):
    data = json.loads(result.stdout)
    assert set(data) == {"files", "compiled", "up_to_date", "failed", "seconds"}, data
    return data


def pycs(root: Path) -> dict[str, bytes]:
    """Every pyc under ``root``: relative path -> bytes."""
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*.pyc"))}


def remove_pycs(root: Path) -> None:
    for directory in list(root.rglob("__pycache__")):
        shutil.rmtree(directory)
    for path in root.rglob("*.pyc"):
        path.unlink()


def _die(batch):
    """A worker that is killed (picklable by name, unlike a lambda)."""
    os._exit(3)


def compileall(sandbox, *args, cwd):
    return sandbox.command([sys.executable, "-m", "compileall", "-q", *args], cwd=cwd)


SPLIT_TREE = {f"d{d}/m{m}.py": f"X = {d * 10 + m}\n" for d in range(4) for m in range(10)}

# Run in a fresh single-threaded interpreter (a pytest-xdist worker has
# threads, and compile does not fork then): compile the tree, then, with
# SPLIT_MIN_SOURCES lowered to 8, edit the files named and compile again with
# two jobs, logging which process checked which range of sources.
_SPLIT_DRIVER = """
import json, os, sys
from pycache import compiler, index

tree, store, log, mode = sys.argv[1:5]
if mode == "fork":
    child = compiler._fork(lambda: {"value": [1, 2, 3]})
    answer = compiler._child_result(child)
    try:
        os.waitpid(child[0], os.WNOHANG)
        reaped = False
    except ChildProcessError:
        reaped = True
    failed = compiler._child_result(compiler._fork(lambda: 1 / 0))
    print(json.dumps({"answer": answer, "reaped": reaped, "failed": failed}))
    raise SystemExit(0)
if mode == "threads":  # another thread runs: no fork
    import threading

    stop = threading.Event()
    threading.Thread(target=stop.wait, daemon=True).start()
if mode == "sigchld-ignored":  # the child is reaped by the kernel: its answer still counts
    import signal

    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
options = compiler.Options(store_dir=store)
sources = compiler.find_sources([tree], options=options)
compiler.compile_tree(sources, options, jobs=1)
index.GRANULARITY_NS = -(10**12)  # every record is old enough to trust
compiler.SPLIT_MIN_SOURCES = 8
parent = os.getpid()
real_check = compiler._check_sources

def spy(sources, start, stop, *args):
    if mode == "child-fails" and os.getpid() != parent:
        raise MemoryError("the child fails")
    with open(log, "a") as handle:
        handle.write(f"{os.getpid()} {start} {stop}\\n")
    return real_check(sources, start, stop, *args)

compiler._check_sources = spy
for path in sys.argv[5:]:
    with open(path, "w") as handle:
        handle.write(f"EDITED = {path!r}\\n")  # each edit its own content
summary = compiler.compile_tree(sources, options, jobs=2)
with open(log) as handle:
    checks = sorted([int(word) for word in line.split()] for line in handle)
print(json.dumps({
    "parent": parent,
    "counts": [summary.compiled, summary.up_to_date, summary.failed],
    "checks": sorted(checks, key=lambda check: check[1]),
}))
"""


def _split_run(run_py, sandbox, tmp_path, tree, mode, *edits):
    driver = tmp_path / "split_driver.py"
    driver.write_text(_SPLIT_DRIVER)
    args = [driver, tree, tmp_path / "split-store", tmp_path / "checks.log", mode, *edits]
    result = run_py(args, pycache=False, pythonpath=[sandbox.src_dir])
    return json.loads(result.stdout)


class TestStoreDestination:
    def test_imports_are_hits_with_no_compiles(self, sandbox, tree, run_py, read_stats):
        result = compile_cli(sandbox, tree, "--json", check_code=0)
        assert summary_of(result)["compiled"] == len(SOURCES)
        assert result.stderr == ""
        before = read_stats()
        script = sandbox.script(IMPORT_TREE)
        run = run_py([script], pythonpath=[tree], env={"PYCACHE_DEBUG": "1"})
        delta = sandbox.delta(before, read_stats())
        assert delta["compiles"] == 0 and delta["misses"] == 0, (delta, run.trace)
        assert delta["hits"] >= len(SOURCES), delta
        for name in SOURCES:
            assert any(line.startswith(f"hit {tree / name}") for line in run.trace), run.trace
        assert run.stdout == "debug\n4 Function docstring.\n"

    def test_optimization_level_keys_match_the_engine(self, sandbox, tree, run_py, read_stats):
        compile_cli(sandbox, tree, "-O", "2", "--json", check_code=0)
        before = read_stats()
        run = run_py(["-OO", sandbox.script(IMPORT_TREE)], pythonpath=[tree])
        delta = sandbox.delta(before, read_stats())
        assert delta["compiles"] == 0 and delta["misses"] == 0, delta
        assert run.stdout == "optimized\n4 None\n"  # the -OO code: no docstrings, no asserts

    def test_every_level_is_indexed_for_its_own_imports(self, sandbox, tree, run_py):
        # Settled sources: index records are trusted on stat alone, so each
        # level's import must find its own record (never another level's key).
        time.sleep(index.GRANULARITY_NS / 1e9 + 0.2)
        compile_cli(sandbox, tree, "-O", "0,1,2", "--json", check_code=0)
        again = summary_of(compile_cli(sandbox, tree, "-O", "0,1,2", "--json", check_code=0))
        assert again["compiled"] == 0 and again["up_to_date"] == len(SOURCES), again
        script = sandbox.script(IMPORT_TREE)
        for flags, expected in (
            ([], "debug\n4 Function docstring.\n"),
            (["-O"], "optimized\n4 Function docstring.\n"),
            (["-OO"], "optimized\n4 None\n"),
        ):
            run = run_py([*flags, script], pythonpath=[tree], env={"PYCACHE_DEBUG": "1"})
            assert run.stdout == expected, (flags, run)
            events = [line for line in run.trace if str(tree) in line]
            assert events and all(line.endswith("(index)") for line in events), (flags, run)

    def test_entries_are_signed_with_the_configured_key(self, sandbox, tree, run_py, read_stats):
        key = {"PYCACHE_KEY": "team secret"}
        compile_cli(sandbox, tree, "--json", check_code=0)  # unsigned first
        signed = summary_of(compile_cli(sandbox, tree, "--json", env=key, check_code=0))
        assert signed["compiled"] == len(SOURCES), signed  # unsigned entries are redone
        again = summary_of(compile_cli(sandbox, tree, "--json", env=key, check_code=0))
        assert again["compiled"] == 0, again
        before = read_stats()
        run = run_py([sandbox.script(IMPORT_TREE)], pythonpath=[tree], env=key)
        delta = sandbox.delta(before, read_stats())
        assert run.stdout == "debug\n4 Function docstring.\n"
        assert delta["compiles"] == delta["miss_unsigned"] == 0 and delta["hits"] >= len(SOURCES)

    def test_several_levels_in_one_pass(self, sandbox, tree):
        result = compile_cli(sandbox, tree, "-O", "0,1", "-O", "2", "--json", check_code=0)
        assert summary_of(result)["compiled"] == len(SOURCES)
        assert len(sandbox.entry_files()) == 3 * len(SOURCES)

    def test_second_run_compiles_nothing_and_an_edit_compiles_one(self, sandbox, tree):
        compile_cli(sandbox, tree, "--json", check_code=0)
        again = summary_of(compile_cli(sandbox, tree, "--json", check_code=0))
        assert again["compiled"] == 0 and again["up_to_date"] == len(SOURCES), again
        (tree / "pkg" / "mod.py").write_text("CHANGED = 1\n")
        edited = summary_of(compile_cli(sandbox, tree, "--json", check_code=0))
        assert (edited["compiled"], edited["up_to_date"]) == (1, len(SOURCES) - 1), edited

    def test_force_compiles_everything(self, sandbox, tree):
        compile_cli(sandbox, tree, "--json", check_code=0)
        forced = summary_of(compile_cli(sandbox, tree, "-f", "--json", check_code=0))
        assert forced["compiled"] == len(SOURCES), forced

    def test_same_content_at_a_new_path_is_up_to_date(self, sandbox, tree, tmp_path):
        compile_cli(sandbox, tree, "--json", check_code=0)
        copy = shutil.copytree(tree, tmp_path / "other-venv")
        result = summary_of(compile_cli(sandbox, copy, "--json", check_code=0))
        assert result["compiled"] == 0 and result["up_to_date"] == len(SOURCES), result

    def test_no_op_rerun_trusts_the_path_index(self, tree, tmp_path, monkeypatch):
        """A trusted index record and a present entry settle a file with one stat:
        no worker runs (the worker is replaced by one that fails)."""
        options = compiler.Options(store_dir=str(tmp_path / "store"))
        sources = compiler.find_sources([str(tree)], options=options)
        first = compiler.compile_tree(sources, options, jobs=1)
        assert first.compiled == len(SOURCES)
        monkeypatch.setattr(index, "GRANULARITY_NS", -(10**12))  # every record is old enough

        def no_work(*args, **kwargs):
            raise AssertionError("a worker ran on a no-op rerun")

        monkeypatch.setattr(compiler._Worker, "compile_one", no_work)
        second = compiler.compile_tree(sources, options, jobs=1)
        assert (second.up_to_date, second.compiled, second.failed) == (len(SOURCES), 0, 0)

    def test_each_directory_index_is_written_as_its_sources_come_back(
        self, make_tree, tmp_path, monkeypatch
    ):
        """Not all at the end: a directory's index file is written once, when its
        last source is done, while other directories are still being compiled."""
        files = {
            f"d{d}/m{m}.py": f"X = {d * 100 + m}\n" * (m + 1) for d in range(8) for m in range(40)
        }
        big = make_tree(files)
        options = compiler.Options(store_dir=str(tmp_path / "store"))
        sources = compiler.find_sources([str(big)], options=options)
        flushed: list[list[str] | None] = []
        real_flush = index.PathIndex.flush

        def spy(self, directories=None):
            flushed.append(None if directories is None else list(directories))
            return real_flush(self, directories)

        monkeypatch.setattr(index.PathIndex, "flush", spy)
        summary = compiler.compile_tree(sources, options, jobs=1)
        assert summary.compiled == len(files)
        *during, last = flushed
        assert last is None  # the safety net, with nothing left for it
        written = [directory for call in during for directory in call or ()]
        assert sorted(written) == sorted(str(big / f"d{d}") for d in range(8))
        assert len(during) > 1  # in several goes, not one at the end
        fresh = index.PathIndex(
            os.path.join(options.store_dir, "index"), context=compile_context(0)
        )
        assert all(fresh.lookup(source.dfile) is not None for source in sources)

    def test_a_large_tree_is_checked_in_two_halves(self, sandbox, make_tree):
        """Through the command line, above SPLIT_MIN_SOURCES (where a child checks
        the second half): once the path index is trusted, an edit in either
        half is compiled and every other file is up to date by its record."""
        count = compiler.SPLIT_MIN_SOURCES + 104
        files = {f"d{i // 100:03}/m{i % 100:03}.py": f"X = {i}\n" for i in range(count)}
        big = make_tree(files)
        # Records of sources changed within GRANULARITY_NS of the compile are
        # racy (rehashed next time); these are trusted.
        time.sleep(index.GRANULARITY_NS / 1e9 + 0.1)
        cold = summary_of(compile_cli(sandbox, big, "-j", "2", "--json", check_code=0))
        assert (cold["compiled"], cold["up_to_date"]) == (count, 0), cold
        (big / "d000" / "m001.py").write_text("EDITED = 'first half'\n")
        (big / f"d{(count - 1) // 100:03}" / f"m{(count - 1) % 100:03}.py").write_text("E = 2\n")
        edited = summary_of(compile_cli(sandbox, big, "-j", "2", "--json", check_code=0))
        assert (edited["compiled"], edited["up_to_date"], edited["failed"]) == (
            2,
            count - 2,
            0,
        ), edited

    def test_the_second_half_is_checked_by_a_child(self, make_tree, run_py, sandbox, tmp_path):
        big = make_tree(SPLIT_TREE)
        answer = _split_run(run_py, sandbox, tmp_path, big, "split", big / "d3" / "m9.py")
        assert answer["counts"] == [1, 39, 0]  # the edit in the second half was found
        by_range = {(start, stop): pid for pid, start, stop in answer["checks"]}
        assert by_range.keys() == {(0, 20), (20, 40)}, answer
        assert by_range[(0, 20)] == answer["parent"] != by_range[(20, 40)]

    def test_no_fork_while_another_thread_runs(self, make_tree, run_py, sandbox, tmp_path):
        big = make_tree(SPLIT_TREE)
        answer = _split_run(run_py, sandbox, tmp_path, big, "threads", big / "d3" / "m9.py")
        assert answer["counts"] == [1, 39, 0]
        assert answer["checks"] == [[answer["parent"], 0, 40]]

    def test_the_childs_answer_counts_with_sigchld_ignored(
        self, make_tree, run_py, sandbox, tmp_path
    ):
        big = make_tree(SPLIT_TREE)
        answer = _split_run(run_py, sandbox, tmp_path, big, "sigchld-ignored", big / "d3" / "m9.py")
        assert answer["counts"] == [1, 39, 0]
        by_range = {(start, stop): pid for pid, start, stop in answer["checks"]}
        assert by_range.keys() == {(0, 20), (20, 40)}, answer  # not redone by the parent
        assert by_range[(20, 40)] != answer["parent"]

    def test_a_failed_child_leaves_its_half_to_the_parent(
        self, make_tree, run_py, sandbox, tmp_path
    ):
        big = make_tree(SPLIT_TREE)
        edits = (big / "d0" / "m0.py", big / "d3" / "m9.py")
        answer = _split_run(run_py, sandbox, tmp_path, big, "child-fails", *edits)
        assert answer["counts"] == [2, 38, 0]
        parent = answer["parent"]
        assert answer["checks"] == [[parent, 0, 20], [parent, 20, 40]]  # the child's half too

    def test_fork_returns_the_childs_answer_and_reaps_it(self, run_py, sandbox, tmp_path):
        answer = _split_run(run_py, sandbox, tmp_path, tmp_path, "fork")
        assert answer == {"answer": {"value": [1, 2, 3]}, "reaped": True, "failed": None}

    def test_parallel_and_serial_store_the_same_entries(self, sandbox, make_tree, tmp_path):
        many = make_tree({f"m{i:03}.py": f"X = {i}\ndef f():\n    return {i}\n" for i in range(60)})
        serial, parallel = tmp_path / "serial", tmp_path / "parallel"
        compile_cli(sandbox, many, "-j", "1", env={"PYCACHE_DIR": str(serial)}, check_code=0)
        compile_cli(sandbox, many, "-j", "2", env={"PYCACHE_DIR": str(parallel)}, check_code=0)
        assert sandbox.snapshot(serial / "entries") == sandbox.snapshot(parallel / "entries")
        assert len(sandbox.entry_files(serial)) == 60


class TestFailures:
    def test_syntax_error_is_listed_and_the_rest_compiled(self, sandbox, tree):
        (tree / "broken.py").write_text("x = 1\ndef (:\n")
        (tree / "pkg" / "nul.py").write_bytes(b"x = 1\0\n")
        result = compile_cli(sandbox, tree, "--json", check_code=1)
        data = summary_of(result)
        assert (data["failed"], data["compiled"]) == (2, len(SOURCES)), data
        lines = result.stderr.splitlines()
        assert lines[0] == f"{tree / 'broken.py'}:2: SyntaxError: invalid syntax", lines
        assert lines[1].startswith(f"{tree / 'pkg' / 'nul.py'}"), lines
        assert "null bytes" in lines[1], lines

    def test_in_tree_syntax_error(self, sandbox, tree):
        (tree / "broken.py").write_text("def (:\n")
        result = compile_cli(sandbox, "--in-tree", tree, check_code=1)
        assert result.stderr == f"{tree / 'broken.py'}:1: SyntaxError: invalid syntax\n"
        assert len(pycs(tree)) == len(SOURCES)

    def test_unwritable_destination_is_a_failure(self, sandbox, tree, tmp_path):
        blocker = tmp_path / "file"
        blocker.write_text("a regular file where the prefix directory should be")
        result = compile_cli(sandbox, "--prefix", blocker / "sub", tree, "--json", check_code=1)
        assert summary_of(result)["failed"] == len(SOURCES)
        assert "cannot write" in result.stderr and "Not a directory" in result.stderr

    def test_an_unexpected_error_fails_that_file_only(self, tree, monkeypatch):
        options = compiler.Options(destination=compiler.IN_TREE)
        sources = compiler.find_sources([str(tree)], options=options)
        real = compiler._Worker._to_tree

        def flaky(self, index, source, *args):
            if source.path.endswith("leaf.py"):
                raise RuntimeError("surprise")
            return real(self, index, source, *args)

        monkeypatch.setattr(compiler._Worker, "_to_tree", flaky)
        summary = compiler.compile_tree(sources, options, jobs=1)
        assert (summary.compiled, summary.failed) == (len(SOURCES) - 1, 1)
        assert str(summary.failures[0]).endswith("leaf.py: RuntimeError('surprise')")

    # pytest-xdist's own threads make 3.12+ warn about fork; the command forks before any.
    @pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
    def test_a_dead_worker_fails_its_files(self, make_tree, monkeypatch):
        many = make_tree({f"m{i:03}.py": f"X = {i}\n" for i in range(40)}, root="many")
        options = compiler.Options(destination=compiler.IN_TREE)
        sources = compiler.find_sources([str(many)], options=options)
        monkeypatch.setattr(compiler, "compile_batch", _die)
        summary = compiler.compile_tree(sources, options, jobs=2)
        assert summary.failed == 40 and summary.compiled == 0
        assert all("BrokenProcessPool" in failure.message for failure in summary.failures)

    def test_broken_symlink_argument_is_a_failure(self, sandbox, tree):
        link = tree / "dangling.py"
        link.symlink_to(tree / "missing.py")
        result = compile_cli(sandbox, "--in-tree", link, tree / "top.py", check_code=1)
        assert result.stderr == f"{link}: not a regular file or directory\n"

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            ((), "no PATH given"),
            (("{tree}/nope",), "nope: no such file or directory"),
            (("{tree}/top.py/x.py",), "no such file or directory"),
            (("-d", "x", "-s", "y", "--in-tree", "{tree}"), "-d cannot be used with -s or -p"),
            (("-d", "x", "{tree}"), "apply to --in-tree and --legacy"),
            (("--invalidation-mode", "checked-hash", "{tree}"), "apply to --in-tree"),
            (("--prefix", "p", "--legacy", "{tree}"), "--prefix cannot be used with --legacy"),
            (("--legacy", "-O", "0,1", "{tree}"), "give one -O level"),
            (("--in-tree", "--hardlink-dupes", "{tree}"), "more than one -O level"),
            (("--hardlink-dupes", "-O", "0,1", "{tree}"), "applies to --in-tree"),
            (("-x", "(", "{tree}"), "bad -x pattern"),
            (("-i", "{tree}/no-list", "{tree}"), "cannot read"),
            (("-O", "3", "{tree}"), "levels are 0, 1 or 2"),
            (("-j", "-1", "{tree}"), "must be 0 or more"),
            (("-r", "x", "{tree}"), "not a number"),
            (("--in-tree", "--legacy", "{tree}"), "not allowed with argument"),
        ],
    )
    def test_bad_usage_exits_2(self, sandbox, tree, args, message):
        argv = [arg.format(tree=tree) for arg in args]
        result = compile_cli(sandbox, *argv, check_code=2)
        assert message in result.stderr, result
        assert "Traceback" not in result.stderr
        assert not list(tree.rglob("*.pyc")) and not sandbox.store.exists()

    def test_readonly_store_exits_2(self, sandbox, tree):
        result = compile_cli(sandbox, tree, env={"PYCACHE_READONLY": "1"}, check_code=2)
        assert result.stderr == (
            "pycache: compile: PYCACHE_READONLY is set; the store cannot be written\n"
        )

    def test_bad_setting_exits_2(self, sandbox, tree):
        result = compile_cli(sandbox, tree, env={"PYCACHE_DEBUG": "maybe"}, check_code=2)
        assert "PYCACHE_DEBUG" in result.stderr


def py_compile_all(sandbox, tree, sources, *, mode, level, cwd, dfile_prefix=None):
    """Run py_compile on ``sources`` (paths as given, relative to ``cwd``)."""
    program = textwrap.dedent(
        """
        import py_compile, sys
        mode = py_compile.PycInvalidationMode[sys.argv[1].upper().replace("-", "_")]
        for path in sys.argv[3:]:
            py_compile.compile(path, doraise=True, invalidation_mode=mode,
                               optimize=int(sys.argv[2]))
        """
    )
    sandbox.command([sys.executable, "-c", program, mode, str(level), *sources], cwd=cwd)


class TestInTreeMatchesCPython:
    @pytest.mark.parametrize("mode", MODES)
    def test_byte_identical_to_py_compile(self, sandbox, tree, mode):
        relative = [os.path.join("tree", name) for name in SOURCES]
        for level in (0, 1, 2):
            py_compile_all(sandbox, tree, relative, mode=mode, level=level, cwd=tree.parent)
        expected = pycs(tree)
        assert len(expected) == 3 * len(SOURCES)
        remove_pycs(tree)
        args = ("--in-tree", "--invalidation-mode", mode, "-O", "0,1,2", "tree")
        compile_cli(sandbox, *args, cwd=tree.parent, check_code=0)
        ours = pycs(tree)
        if sys.version_info >= (3, 11):
            assert ours == expected
            return
        # Before 3.11, marshal marks a string for back-references only when its
        # reference count is above one, which depends on what else the compiling
        # process holds: the bytes can differ in those flags alone. (compileall
        # matches exactly below.) Same header, same code.
        assert ours.keys() == expected.keys()
        for name, data in expected.items():
            assert ours[name][:16] == data[:16], name
            assert marshal.loads(ours[name][16:]) == marshal.loads(data[16:]), name

    @pytest.mark.parametrize("mode", MODES)
    @pytest.mark.parametrize(
        ("ours", "theirs", "target"),
        [
            ((), (), "tree"),
            (("-d", "/installed/here"), ("-d", "/installed/here"), "tree"),
            (("-d", "/installed/here"), ("-d", "/installed/here"), "{tree}/pkg/mod.py"),
            (("-s", "{parent}", "-p", "/opt/app"), ("-s", "{parent}", "-p", "/opt/app"), "{tree}"),
            (("-s", "{parent}"), ("-s", "{parent}"), "{tree}"),
            (("-p", "/prefix"), ("-p", "/prefix"), "tree"),
            (("--legacy",), ("-b",), "tree"),
            (
                ("-O", "0,1,2", "--hardlink-dupes"),
                ("-o0", "-o1", "-o2", "--hardlink-dupes"),
                "tree",
            ),
        ],
    )
    def test_byte_identical_to_compileall(self, sandbox, tree, mode, ours, theirs, target):
        parent = str(tree.parent)
        theirs = [arg.format(parent=parent) for arg in theirs]
        ours = [arg.format(parent=parent) for arg in ours]
        target = target.format(tree=tree)
        compileall(sandbox, "--invalidation-mode", mode, *theirs, target, cwd=parent)
        expected = pycs(tree)
        expected_inodes = {name: (tree / name).stat().st_ino for name in expected}
        remove_pycs(tree)
        where = () if "--legacy" in ours else ("--in-tree",)
        compile_cli(sandbox, *where, "--invalidation-mode", mode, *ours, target, cwd=parent)
        assert expected and pycs(tree) == expected
        linked = {name for name in expected if (tree / name).stat().st_nlink > 1}
        expected_linked = {
            name
            for name in expected
            if list(expected_inodes.values()).count(expected_inodes[name]) > 1
        }
        assert linked == expected_linked

    def test_hardlink_dupes_links_identical_levels(self, sandbox, tree):
        compile_cli(sandbox, "--in-tree", "-O", "0,1,2", "--hardlink-dupes", tree, check_code=0)
        cache = tree / "pkg" / "sub" / "deeper" / "__pycache__"
        tag = sys.implementation.cache_tag
        inodes = {
            (cache / f"leaf.{tag}{opt}.pyc").stat().st_ino for opt in ("", ".opt-1", ".opt-2")
        }
        assert len(inodes) == 1  # no docstring, no assert: the three levels are the same bytes
        mod = tree / "pkg" / "__pycache__"
        assert (mod / f"mod.{tag}.pyc").stat().st_ino != (
            mod / f"mod.{tag}.opt-1.pyc"
        ).stat().st_ino

    def test_source_date_epoch_defaults_to_checked_hash(self, sandbox, tree):
        compile_cli(sandbox, "--in-tree", tree, env={"SOURCE_DATE_EPOCH": "1"}, check_code=0)
        headers = {_format.decode_header(data).mode for data in pycs(tree).values()}
        assert headers == {"checked-hash"}
        remove_pycs(tree)
        compile_cli(sandbox, "--in-tree", tree, env={"SOURCE_DATE_EPOCH": None}, check_code=0)
        assert {_format.decode_header(data).mode for data in pycs(tree).values()} == {"timestamp"}

    def test_output_is_deterministic(self, sandbox, tree):
        compile_cli(sandbox, "--in-tree", "-O", "0,1,2", "-j", "1", tree, check_code=0)
        first = pycs(tree)
        remove_pycs(tree)
        compile_cli(sandbox, "--in-tree", "-O", "0,1,2", "-j", "2", tree, check_code=0)
        assert pycs(tree) == first


class TestCPythonUsesTheInTreePycs:
    @pytest.mark.parametrize("mode", MODES)
    def test_imported_without_recompiling(self, sandbox, tree, run_py, mode):
        compile_cli(sandbox, "--in-tree", "--invalidation-mode", mode, tree, check_code=0)
        before = {name: (tree / name).stat().st_mtime_ns for name in pycs(tree)}
        run = run_py(
            ["-v", sandbox.script(IMPORT_TREE)],
            pycache=False,
            write_bytecode=True,
            pythonpath=[tree],
        )
        for name in SOURCES:
            source = tree / name
            assert f"matches {source}" in run.stderr, name
            assert f"code object from {source}\n" not in run.stderr, name
        assert "# wrote" not in run.stderr
        assert {name: (tree / name).stat().st_mtime_ns for name in pycs(tree)} == before

    def test_prefix_layout_is_what_cpython_reads(self, sandbox, tree, run_py, tmp_path):
        prefix = tmp_path / "prefix"
        compile_cli(sandbox, "--prefix", prefix, tree, check_code=0)
        assert not list(tree.rglob("*.pyc"))
        assert len(pycs(prefix)) == len(SOURCES)
        run = run_py(
            ["-v", sandbox.script(IMPORT_TREE)],
            pycache=False,
            write_bytecode=True,
            pythonpath=[tree],
            env={"PYTHONPYCACHEPREFIX": str(prefix)},
        )
        for name in SOURCES:
            assert f"matches {tree / name}" in run.stderr, name
        assert "# wrote" not in run.stderr


class TestInTreeIncremental:
    @pytest.mark.parametrize("mode", MODES)
    def test_second_run_compiles_nothing_and_an_edit_compiles_one(self, sandbox, tree, mode):
        args = ("--in-tree", "--invalidation-mode", mode, "-O", "0,1", "--json", tree)
        first = summary_of(compile_cli(sandbox, *args, check_code=0))
        assert first["compiled"] == len(SOURCES)
        again = summary_of(compile_cli(sandbox, *args, check_code=0))
        assert (again["compiled"], again["up_to_date"]) == (0, len(SOURCES)), again
        mod = tree / "pkg" / "mod.py"
        mod.write_text(mod.read_text() + "# edited, 12 bytes longer\n")
        edited = summary_of(compile_cli(sandbox, *args, check_code=0))
        assert (edited["compiled"], edited["up_to_date"]) == (1, len(SOURCES) - 1), edited

    def test_a_pyc_in_another_mode_is_converted(self, sandbox, tree):
        compile_cli(sandbox, "--in-tree", tree, check_code=0)
        args = ("--in-tree", "--invalidation-mode", "checked-hash", "--json", tree)
        converted = summary_of(compile_cli(sandbox, *args, check_code=0))
        assert converted["compiled"] == len(SOURCES)
        assert {_format.decode_header(data).mode for data in pycs(tree).values()} == {
            "checked-hash"
        }

    def test_a_missing_level_is_compiled(self, sandbox, tree):
        compile_cli(sandbox, "--in-tree", "-O", "0", tree, check_code=0)
        more = summary_of(compile_cli(sandbox, "--in-tree", "-O", "0,2", "--json", tree))
        assert more["compiled"] == len(SOURCES)
        assert len(pycs(tree)) == 2 * len(SOURCES)

    def test_force(self, sandbox, tree):
        compile_cli(sandbox, "--in-tree", tree, check_code=0)
        forced = summary_of(compile_cli(sandbox, "--in-tree", "-f", "--json", tree))
        assert forced["compiled"] == len(SOURCES)


class TestSelection:
    def compiled(self, tree):
        return sorted(
            str(path.relative_to(tree)).replace(f".{sys.implementation.cache_tag}", "")
            for path in tree.rglob("*.pyc")
        )

    def test_exclude(self, sandbox, tree):
        compile_cli(sandbox, "--in-tree", "-x", r"sub[/\\]", tree, check_code=0)
        assert self.compiled(tree) == [
            "__pycache__/top.pyc",
            "pkg/__pycache__/__init__.pyc",
            "pkg/__pycache__/mod.pyc",
        ]

    def test_no_recursion(self, sandbox, tree):
        compile_cli(sandbox, "--in-tree", "-l", tree / "pkg", check_code=0)
        assert self.compiled(tree) == ["pkg/__pycache__/__init__.pyc", "pkg/__pycache__/mod.pyc"]

    def test_max_depth(self, sandbox, tree):
        compile_cli(sandbox, "--in-tree", "-r", "1", tree / "pkg", check_code=0)
        assert "pkg/sub/__pycache__/deep.pyc" in self.compiled(tree)
        assert "pkg/sub/deeper/__pycache__/leaf.pyc" not in self.compiled(tree)
        compile_cli(sandbox, "--in-tree", "-r", "2", "-l", tree / "pkg", check_code=0)
        assert "pkg/sub/deeper/__pycache__/leaf.pyc" in self.compiled(tree)  # -r wins over -l

    @pytest.mark.parametrize("from_stdin", [False, True])
    def test_list_of_files(self, sandbox, tree, from_stdin):
        listing = f"{tree / 'top.py'}\n\n{tree / 'pkg' / 'sub' / 'deep.py'}\n"
        if from_stdin:
            environ = sandbox.environ(boot=False, disable=False)
            argv = [sys.executable, "-m", "pycache", "compile", "--in-tree", "-i", "-"]
            done = subprocess.run(argv, input=listing, env=environ, capture_output=True, text=True)
            assert done.returncode == 0, done
        else:
            (sandbox.root / "list.txt").write_text(listing)
            compile_cli(sandbox, "--in-tree", "-i", sandbox.root / "list.txt", check_code=0)
        assert self.compiled(tree) == ["__pycache__/top.pyc", "pkg/sub/__pycache__/deep.pyc"]

    def test_symlinks_outside_the_limit_are_skipped(self, sandbox, tree, tmp_path):
        outside = tmp_path / "outside.py"
        outside.write_text("OUT = 1\n")
        (tree / "inside_link.py").symlink_to(tree / "top.py")
        (tree / "outside_link.py").symlink_to(outside)
        compile_cli(sandbox, "--in-tree", "-l", "-e", tree, tree, check_code=0)
        assert self.compiled(tree) == ["__pycache__/inside_link.pyc", "__pycache__/top.pyc"]
        remove_pycs(tree)
        compile_cli(sandbox, "--in-tree", "-l", tree, check_code=0)
        assert "__pycache__/outside_link.pyc" in self.compiled(tree)

    def test_site_packages_of_the_running_interpreter(self, sandbox, tmp_path):
        venv = tmp_path / "venv"
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
        python = venv / "bin" / "python"
        purelib = subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        Path(purelib, "installed_mod.py").write_text("X = 1\n")
        result = sandbox.cli(
            "compile",
            "--site-packages",
            "--in-tree",
            "--json",
            python=str(python),
            pythonpath=[sandbox.src_dir],
        )
        assert result.returncode == 0, result
        assert summary_of(result)["files"] == 1
        assert list(Path(purelib, "__pycache__").glob("installed_mod.*.pyc"))

    def test_stdlib_is_added(self, monkeypatch, tmp_path, capsys):
        fake = tmp_path / "fake-stdlib"
        (fake / "json").mkdir(parents=True)
        (fake / "json" / "__init__.py").write_text("X = 1\n")
        import sysconfig

        monkeypatch.setattr(sysconfig, "get_paths", lambda: {"stdlib": str(fake)})
        monkeypatch.setenv("PYCACHE_DIR", str(tmp_path / "store"))
        monkeypatch.delenv("PYCACHE_READONLY", raising=False)
        assert main(["compile", "--stdlib", "--json", "-j", "1"]) == 0
        assert json.loads(capsys.readouterr().out)["compiled"] == 1


class TestReporting:
    def test_quiet_off_a_terminal(self, sandbox, tree):
        result = compile_cli(sandbox, tree, check_code=0)
        assert (result.stdout, result.stderr) == ("", "")

    def test_progress_bar_on_a_terminal(self, sandbox, tree):
        primary, secondary = os.openpty()
        environ = sandbox.environ(boot=False, disable=False)
        argv = [sys.executable, "-m", "pycache", "compile", str(tree)]
        with subprocess.Popen(argv, env=environ, stderr=secondary, stdout=subprocess.PIPE) as proc:
            os.close(secondary)
            output = b""
            while True:
                try:
                    chunk = os.read(primary, 4096)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                output += chunk
            assert proc.wait() == 0
        os.close(primary)
        text = output.decode()
        assert f"] {len(SOURCES)}/{len(SOURCES)} files" in text and "/s" in text, text
        assert "ETA" in text and text.startswith("\r[")
        assert f"{len(SOURCES)} files: {len(SOURCES)} compiled, 0 up to date" in text

    def test_quiet_flag_on_a_terminal(self, sandbox, tree):
        primary, secondary = os.openpty()
        environ = sandbox.environ(boot=False, disable=False)
        argv = [sys.executable, "-m", "pycache", "compile", "-q", str(tree)]
        done = subprocess.run(argv, env=environ, stderr=secondary, capture_output=False)
        os.close(secondary)
        os.set_blocking(primary, False)
        try:
            written = os.read(primary, 4096)
        except (BlockingIOError, OSError):
            written = b""
        os.close(primary)
        assert done.returncode == 0 and written == b""


class TestPlanning:
    def test_prefix_path_is_cpythons(self, sandbox, tmp_path):
        source = str(tmp_path / "a" / "b.py")
        options = compiler.Options(destination=compiler.IN_TREE, prefix="/pfx")
        program = (
            "import importlib.util, sys; "
            "print(importlib.util.cache_from_source(sys.argv[1], optimization=sys.argv[2]))"
        )
        for level in (0, 1):
            expected = sandbox.command(
                [
                    sys.executable,
                    "-X",
                    "pycache_prefix=/pfx",
                    "-c",
                    program,
                    source,
                    str(level or ""),
                ]
            ).stdout.strip()
            assert compiler.pyc_path(source, level, options) == expected

    def test_code_filename(self):
        tree = compiler.Options(destination=compiler.IN_TREE, ddir="/d")
        assert compiler.code_filename("t/a/b.py", "a/b.py", tree) == "/d/a/b.py"
        strip = compiler.Options(destination=compiler.IN_TREE, stripdir="/x/y", prependdir="/p")
        assert compiler.code_filename("/x/y/z/m.py", "z/m.py", strip) == "/p/z/m.py"
        store = compiler.Options()
        assert compiler.code_filename("rel.py", "rel.py", store) == os.path.abspath("rel.py")

    def test_batches_cover_every_item_once(self):
        items = [(number, f"d{number // 10}", number % 7 + 1) for number in range(1000)]
        for jobs in (1, 2, 7, 64):
            chunks = compiler.batches(items, jobs)
            assert sorted(item for chunk in chunks for item in chunk) == list(range(1000))
            assert len(chunks) >= min(jobs, 1000)
            assert max(len(chunk) for chunk in chunks) <= 64
        assert compiler.batches([], 4) == []

    def test_batches_keep_directories_together_heaviest_first(self):
        # 400 directories of 10 files of 100 bytes, one of them with a 50,000-byte file.
        items = [
            (f"d{d}/f{f}", f"d{d}", 50_000 if (d, f) == (7, 3) else 100)
            for d in range(400)
            for f in range(10)
        ]
        chunks = compiler.batches(items, 2)
        where = {item: number for number, chunk in enumerate(chunks) for item in chunk}
        for d in range(400):  # every directory fits one batch, so it is in one
            if d != 7:
                assert len({where[f"d{d}/f{f}"] for f in range(10)}) == 1
        size = {item: item_size for item, _, item_size in items}
        weights = [sum(size[item] for item in chunk) for chunk in chunks]
        assert weights == sorted(weights, reverse=True)
        assert chunks[0] == ["d7/f3"]  # bigger than a batch's share of the bytes: alone

    def test_default_invalidation_mode(self):
        assert compiler.default_invalidation_mode({}) == "timestamp"
        assert compiler.default_invalidation_mode({"SOURCE_DATE_EPOCH": "0"}) == "checked-hash"
