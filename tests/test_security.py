"""End-to-end: PyCache trusts only a store that is its user's alone (cache poisoning).

Whatever the store serves is executed. A store root, entry or index file that
another user owns, or that others can write, is ignored with one warning, and
the program runs exactly as under CPython. Ownership tests chown files to
another uid, which needs root; the mode tests run as any user.
"""

from __future__ import annotations

import marshal
import os
from pathlib import Path

import pytest

from pycache import _entry, _fs
from pycache.keys import cache_key, compile_context

OTHER_UID = 54321
needs_root = pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0, reason="chown to another uid needs root"
)
TREE = {
    "pkg/__init__.py": "",
    "pkg/one.py": "VALUE = 1\n",
    "pkg/two.py": "from pkg.one import VALUE\nDOUBLE = VALUE * 2\n",
}
MAIN = "import pkg.two\nprint(pkg.two.DOUBLE)\n"


@pytest.fixture
def tree(make_tree):
    return make_tree(TREE)


@pytest.fixture
def main(sandbox):
    return sandbox.script(MAIN)


def _warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "RuntimeWarning: pycache:" in line]


def _owners(paths: list[Path]) -> set[int]:
    return {path.stat().st_uid for path in paths}


class TestUntrustedReason:
    @pytest.mark.parametrize(
        ("uid", "mode", "trusted"),
        [
            (os.geteuid(), 0o100600, True),
            (os.geteuid(), 0o100644, True),
            (0, 0o100644, True),  # root's files: root can replace our code anyway
            (OTHER_UID, 0o100600, False),
            (os.geteuid(), 0o100666, False),
            (os.geteuid(), 0o100620, False),
            (os.geteuid(), 0o040777, False),
        ],
    )
    def test_rule(self, uid, mode, trusted):
        st = os.stat_result((mode, 1, 1, 1, uid, 0, 10, 0, 0, 0))
        if os.geteuid() == 0 and uid == OTHER_UID:
            assert "owned by uid 54321" in (_fs.untrusted_reason(st) or "")
        assert (_fs.untrusted_reason(st) is None) == trusted


class TestUntrustedEntries:
    def test_a_world_writable_entry_is_ignored_and_replaced(
        self, sandbox, tree, main, run_py, read_stats
    ):
        expected = run_py([main], pycache=False, pythonpath=[tree])
        run_py([main], pythonpath=[tree])
        entries = sandbox.entry_files()
        for path in entries:
            path.chmod(0o666)
        run = run_py([main], pythonpath=[tree], check=False)
        assert (run.returncode, run.stdout) == (0, expected.stdout), run
        assert len(_warnings(run.stderr)) == 1, run
        assert "writable by others" in run.stderr
        assert read_stats()["compiles"] == 2 * len(entries)
        # Replaced by private entries, which the next run trusts silently.
        assert all(path.stat().st_mode & 0o777 == 0o600 for path in sandbox.entry_files())
        again = run_py([main], pythonpath=[tree])
        assert again.stdout == expected.stdout and again.stderr == ""

    @needs_root
    def test_a_planted_entry_of_another_user_never_runs(
        self, sandbox, tree, main, run_py, read_stats
    ):
        # The attacker writes the entry PyCache would look up for pkg/one.py,
        # with a valid checksum, holding their own code.
        source = (tree / "pkg" / "one.py").read_bytes()
        key = cache_key(source, compile_context())
        evil = compile("VALUE = 1\nprint('PWNED')\n", str(tree / "pkg" / "one.py"), "exec")
        planted = sandbox.store / "entries" / key.hex()[:2] / key.hex()[2:]
        planted.parent.mkdir(parents=True)
        planted.write_bytes(_entry.encode_entry(key, marshal.dumps(evil)))
        os.chown(planted, OTHER_UID, OTHER_UID)
        run = run_py([main], pythonpath=[tree], check=False)
        assert (run.returncode, run.stdout) == (0, "2\n"), run
        assert "PWNED" not in run.stdout + run.stderr
        assert len(_warnings(run.stderr)) == 1 and "owned by uid 54321" in run.stderr, run
        assert _owners(sandbox.entry_files()) == {os.geteuid()}

    @needs_root
    def test_index_files_of_another_user_cost_a_rehash(
        self, sandbox, tree, main, run_py, read_stats
    ):
        run_py([main], pythonpath=[tree])
        run_py([main], pythonpath=[tree])  # records renewed: trusted from now on
        for path in sandbox.index_files():
            os.chown(path, OTHER_UID, OTHER_UID)
        before = read_stats()
        run = run_py([main], pythonpath=[tree], check=False)
        used = sandbox.delta(before, read_stats())
        assert (run.returncode, run.stdout) == (0, "2\n"), run
        assert len(_warnings(run.stderr)) == 1 and "ignoring index file" in run.stderr, run
        assert used["hits_by_content"] == used["hits"] == 3 and used["compiles"] == 0, used


class TestUntrustedStoreRoot:
    @pytest.mark.parametrize("how", ["world-writable", pytest.param("chown", marks=needs_root)])
    def test_the_store_is_neither_read_nor_written(self, sandbox, tree, main, run_py, how):
        run_py([main], pythonpath=[tree])
        before = {path: path.read_bytes() for path in sandbox.store.rglob("*") if path.is_file()}
        if how == "chown":
            os.chown(sandbox.store, OTHER_UID, OTHER_UID)
        else:
            sandbox.store.chmod(0o777)
        (tree / "pkg" / "one.py").write_text("VALUE = 21\n")
        run = run_py([main], pythonpath=[tree], env={"PYCACHE_DEBUG": "1"}, check=False)
        assert (run.returncode, run.stdout) == (0, "42\n"), run
        assert len(_warnings(run.stderr)) == 1 and "not using the store" in run.stderr, run
        assert not [line for line in run.trace if line.startswith("hit ")], run
        after = {path: path.read_bytes() for path in sandbox.store.rglob("*") if path.is_file()}
        assert after == before  # nothing written: no entry, no index, no stats


class TestSignedEntries:
    SECRET = "correct horse battery staple"

    def _plant(self, sandbox, tree, secret):
        """Replace pkg/one.py's entry with the attacker's code, checksum and all."""
        source = (tree / "pkg" / "one.py").read_bytes()
        key = cache_key(source, compile_context())
        evil = compile("VALUE = 1\nprint('PWNED')\n", str(tree / "pkg" / "one.py"), "exec")
        entry = sandbox.store / "entries" / key.hex()[:2] / key.hex()[2:]
        entry.write_bytes(_entry.encode_entry(key, marshal.dumps(evil), secret))
        return entry

    @pytest.mark.parametrize("forgery", ["unsigned", "other-secret"])
    def test_a_tampered_entry_never_runs(self, sandbox, tree, main, run_py, read_stats, forgery):
        env = {"PYCACHE_KEY": self.SECRET}
        assert run_py([main], pythonpath=[tree], env=env).stdout == "2\n"
        entry = self._plant(sandbox, tree, None if forgery == "unsigned" else b"guess")
        before = read_stats()
        run = run_py([main], pythonpath=[tree], env={**env, "PYCACHE_DEBUG": "1"})
        assert run.stdout == "2\n" and "PWNED" not in run.stdout + run.stderr, run
        used = sandbox.delta(before, read_stats())
        assert used["miss_unsigned"] == 1 and used["compiles"] == 1, used
        # The rejected entry was replaced by a properly signed one.
        source = (tree / "pkg" / "one.py").read_bytes()
        key = cache_key(source, compile_context())
        _entry.decode_entry(key, entry.read_bytes(), self.SECRET.encode())
        # Without the secret the planted code would have run: the MAC is what stops it.
        self._plant(sandbox, tree, None)
        assert "PWNED" in run_py([main], pythonpath=[tree]).stdout

    def test_signed_and_unsigned_processes_share_a_store(
        self, sandbox, tree, main, run_py, read_stats
    ):
        env = {"PYCACHE_KEY": self.SECRET}
        run_py([main], pythonpath=[tree])  # unsigned entries
        before = read_stats()
        assert run_py([main], pythonpath=[tree], env=env).stdout == "2\n"
        used = sandbox.delta(before, read_stats())
        assert used["miss_unsigned"] == used["compiles"] == 3, used  # re-signed
        before = read_stats()
        assert run_py([main], pythonpath=[tree]).stdout == "2\n"  # keyless: reads signed ones
        used = sandbox.delta(before, read_stats())
        assert used["hits"] == 3 and used["compiles"] == 0, used

    def test_an_unreadable_key_file_leaves_the_store_alone(self, sandbox, tree, main, run_py):
        run_py([main], pythonpath=[tree])
        before = {path: path.read_bytes() for path in sandbox.store.rglob("*") if path.is_file()}
        env = {"PYCACHE_KEY_FILE": str(sandbox.root / "no-such-key"), "PYCACHE_DEBUG": "1"}
        run = run_py([main], pythonpath=[tree], env=env, check=False)
        assert (run.returncode, run.stdout) == (0, "2\n"), run
        assert len(_warnings(run.stderr)) == 1 and "cannot read PYCACHE_KEY_FILE" in run.stderr
        assert not [line for line in run.trace if line.startswith("hit ")], run
        after = {path: path.read_bytes() for path in sandbox.store.rglob("*") if path.is_file()}
        assert after == before
        cli = sandbox.cli("stats", env={"PYCACHE_KEY_FILE": str(sandbox.root / "no-such-key")})
        assert cli.returncode == 2 and "cannot read PYCACHE_KEY_FILE" in cli.stderr, cli
        assert "Traceback" not in cli.stderr
