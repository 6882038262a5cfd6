"""The tiered store, the shared-directory remote, and remotes end to end."""

from __future__ import annotations

import importlib.machinery
import marshal
import os
import threading
import time
from pathlib import Path

import pytest

from conftest import wait_for_backfill
from pycache import _activate, _entry
from pycache.config import from_environ
from pycache.engine import Engine
from pycache.index import GRANULARITY_NS, PathIndex
from pycache.keys import cache_key, compile_context
from pycache.stats import read_totals
from pycache.stores.local import LocalStore
from pycache.stores.memory import MemoryStore
from pycache.stores.remote import open_remote, redact
from pycache.stores.shared import SharedDirStore
from pycache.stores.tiered import Remote, TieredStore

TREE = {
    "pkg/__init__.py": "",
    "pkg/one.py": "VALUE = 1\n",
    "pkg/two.py": "from pkg.one import VALUE\nDOUBLE = VALUE * 2\n",
}
MAIN = "import pkg.two\nprint(pkg.two.DOUBLE)\n"


class Boom:
    """A remote whose every call raises, counting the calls."""

    writable = True

    def __init__(self) -> None:
        self.calls = 0

    def get(self, key: str) -> bytes | None:
        self.calls += 1
        raise ConnectionError("down")

    def put(self, key: str, data: bytes) -> bool:
        self.calls += 1
        raise ConnectionError("down")

    def delete(self, key: str) -> None:
        raise ConnectionError("down")

    def iterate(self):
        raise ConnectionError("down")

    def close(self) -> None:
        pass


class Blocked(MemoryStore):
    """A remote whose writes wait until ``release`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.started = threading.Event()

    def put(self, key: str, data: bytes) -> bool:
        self.started.set()
        self.release.wait()
        return super().put(key, data)


def _helper_counts(root: Path) -> dict[str, int]:
    """The non-zero counters in the stats file of the store at ``root``."""
    return {name: n for name, n in read_totals(str(root / "stats")).items() if n}


def _payload(entries: list[tuple[str, bytes]], index: object = None) -> bytes:
    """A backfill helper's payload, as ``backfill.spawn`` passes it."""
    from pycache import backfill

    return b"".join(backfill.payload_buffers(entries, index))  # type: ignore[arg-type]


def _tiered(tmp_path: Path, *remotes: tuple[object, bool]) -> TieredStore:
    local = LocalStore(str(tmp_path / "local"))
    return TieredStore(
        local, [Remote(s, f"r{i}", read_write=rw) for i, (s, rw) in enumerate(remotes)]
    )  # type: ignore[arg-type]


class TestSharedDirStore:
    def test_round_trip_with_shared_modes(self, tmp_path):
        store = SharedDirStore(str(tmp_path / "shared"))
        assert store.get("ab" * 20) is None
        assert store.put("ab" * 20, b"data")
        assert store.get("ab" * 20) == b"data"
        path = Path(store.path_for("ab" * 20))
        assert path.stat().st_mode & 0o777 == 0o644
        assert list(store.iterate()) == ["ab" * 20]
        assert not list(path.parent.glob("*.tmp"))
        store.delete("ab" * 20)
        assert store.get("ab" * 20) is None

    def test_read_only_and_broken_directories_never_raise(self, tmp_path):
        (tmp_path / "file").write_text("x")
        broken = SharedDirStore(str(tmp_path / "file"))
        assert broken.put("ab" * 20, b"x") is False  # a file where the directory should be
        assert broken.get("ab" * 20) is None and list(broken.iterate()) == []
        assert SharedDirStore(str(tmp_path / "s"), writable=False).put("ab" * 20, b"x") is False

    def test_open_remote_and_redact(self, tmp_path):
        store = open_remote(f"file://{tmp_path}/a%20b", 0.05, writable=True)
        assert isinstance(store, SharedDirStore) and store.root == f"{tmp_path}/a b"
        assert redact("redis://user:pw@host:6379/0") == "redis://user:***@host:6379/0"
        assert redact("https://u:secret@h/x") == "https://u:***@h/x"
        assert redact("file:///srv/cache") == "file:///srv/cache"
        with pytest.raises(ValueError):
            open_remote("ftp://x/", 0.05, writable=False)


class TestTieredStore:
    def test_read_through_and_backfill_only_when_confirmed(self, tmp_path):
        remote = SharedDirStore(str(tmp_path / "shared"))
        remote.put("ab" * 20, b"entry")
        store = _tiered(tmp_path, (remote, False))
        data = store.get("ab" * 20)
        assert data == b"entry"
        assert store.local.get("ab" * 20) is None  # not before the engine checked it
        store.backfill("ab" * 20, data)
        assert store.local.get("ab" * 20) is None  # kept in memory until exit
        assert store.flush(30)  # the copy is made by a helper process
        wait_for_backfill(tmp_path / "local")
        assert store.local.get("ab" * 20) == b"entry"
        assert store.take_counts() == {"hits_remote": 1}
        assert _helper_counts(tmp_path / "local") == {"remote_backfills": 1}
        assert not list((tmp_path / "local" / "spool").iterdir())
        store.backfill("ab" * 20, store.get("ab" * 20))  # a local hit now: nothing counted
        assert store.take_counts() == {}

    def test_writes_go_to_read_write_remotes_only(self, tmp_path):
        ro, rw = MemoryStore(), MemoryStore()
        store = _tiered(tmp_path, (ro, False), (rw, True))
        assert store.put("cd" * 20, b"x")
        assert store.flush(30)
        assert store.local.get("cd" * 20) == b"x"
        assert rw.entries == {"cd" * 20: b"x"} and ro.entries == {}
        assert store.take_counts() == {"remote_writes": 1}

    def test_no_thread_without_remote_writes(self, tmp_path):
        store = _tiered(tmp_path, (MemoryStore(), False))
        store.put("cd" * 20, b"x")
        store.get("ef" * 20)
        assert store._thread is None
        assert store.flush(30)

    def test_queue_is_bounded_and_exit_flush_gives_up(self, tmp_path):
        blocked = Blocked()
        store = _tiered(tmp_path, (blocked, True))
        store.queue_limit = 3
        store.put("00" * 20, b"x")
        assert blocked.started.wait(30)  # the writer holds entry 0
        for n in range(1, 10):
            store.put(f"{n:02d}" * 20, b"x")
        assert store.take_counts() == {"remote_write_drops": 6}  # 3 queued, 6 dropped
        assert store.flush(0.01) is False  # entry 0 still held: gives up
        assert store.take_counts() == {"remote_write_drops": 3}
        blocked.release.set()
        assert all(store.local.get(f"{n:02d}" * 20) == b"x" for n in range(10))

    def test_backfills_are_bounded_and_never_written_before_exit(self, tmp_path):
        """Remote hits are kept up to the byte limit, the rest dropped; none written inline."""
        source = MemoryStore()
        keys = [f"{n:02d}" * 20 for n in range(6)]
        for key in keys:
            source.put(key, b"entry " + key.encode())
        store = _tiered(tmp_path, (source, False))
        store.backfill_limit = 3 * len(b"entry " + keys[0].encode())
        for key in keys:
            store.backfill(key, store.get(key))
        assert all(store.local.get(key) is None for key in keys)  # nothing copied inline
        assert store.take_counts() == {"hits_remote": 6, "remote_backfill_drops": 3}
        assert store.flush(30)
        wait_for_backfill(tmp_path / "local")
        copied = [key for key in keys if store.local.get(key) == b"entry " + key.encode()]
        assert copied == keys[:3]
        assert _helper_counts(tmp_path / "local") == {"remote_backfills": 3}

    def test_without_a_helper_the_exit_copies_what_time_allows(self, tmp_path, monkeypatch):
        from pycache import backfill

        monkeypatch.setattr(backfill, "spawn", lambda root, entries, index=None: False)
        source = MemoryStore()
        source.put("ab" * 20, b"entry")
        store = _tiered(tmp_path, (source, False))
        store.backfill("ab" * 20, store.get("ab" * 20))
        assert store.flush(30)
        assert store.local.get("ab" * 20) == b"entry"
        assert store.take_counts() == {"hits_remote": 1, "remote_backfills": 1}
        store.backfill("cd" * 20, source.put("cd" * 20, b"x") and store.get("cd" * 20))
        assert store.flush(0)  # no time left: the copy is dropped, not made
        assert store.local.get("cd" * 20) is None
        assert store.take_counts() == {"hits_remote": 1, "remote_backfill_drops": 1}

    def test_the_helper_only_writes_hex_keys_and_removes_its_spool(self, tmp_path):
        from pycache import backfill

        root = tmp_path / "store"
        spool = root / "spool" / "1-x.tmp"
        spool.parent.mkdir(parents=True)
        spool.write_bytes(_payload([("ab" * 20, b"good")]))
        assert backfill.main([str(root), str(spool), "-"]) == 0
        assert (root / "entries" / "ab" / ("ab" * 19)).read_bytes() == b"good"
        assert not spool.exists()
        assert _helper_counts(root) == {"remote_backfills": 1}
        # A key that is not a store key is refused, by the decoder and the writer.
        spool.write_bytes(_payload([("cd" * 20, b"x"), ("../../evil", b"bad")]))
        assert backfill.main([str(root), str(spool), "-"]) == 1
        assert not (root / "entries" / "cd").exists() and not (tmp_path / "evil").exists()
        assert backfill.write_entries(str(root), [("../../evil", b"bad")]) == (0, 0)
        assert not (tmp_path / "evil").exists()
        spool.write_bytes(_payload([])[:4] + b"\x05abc")  # cut short: nothing written,
        assert backfill.main([str(root), str(spool), "-"]) == 1
        assert not spool.exists()  # the spool still removed

    @pytest.mark.parametrize("memory", [True, False], ids=["memory file", "spool file"])
    def test_a_spawned_helper_copies_the_entries_and_index_records(
        self, tmp_path, monkeypatch, memory
    ):
        from pycache import backfill

        if not memory:  # as where there is no memfd_create
            monkeypatch.setattr(backfill, "_memory_file", lambda buffers: None)
        root = tmp_path / "store"
        entries = [(f"{n:040x}", os.urandom(1000 + n)) for n in range(50)]
        index_root = str(root / "index")
        context = compile_context()
        # Records for 3 directories, one of which already has an index file to merge with.
        old = PathIndex(index_root, context=context)
        old.record("/src/a/old.py", (1, 2, 3, 4, 5, 6, b"o" * 20))
        old.flush()
        pending = {
            f"/src/{d}": {
                f"m{n}.py": (1, n, 3, 4, 5, 6, bytes.fromhex(entries[n][0])) for n in range(3)
            }
            for d in "abc"
        }
        assert backfill.spawn(str(root), entries, (index_root, context, pending))
        wait_for_backfill(root)
        assert all(LocalStore(str(root)).get(key) == data for key, data in entries)
        assert _helper_counts(root) == {"remote_backfills": 50}
        assert list((root / "spool").iterdir()) == []
        index = PathIndex(index_root, context=context)
        for d in "abc":
            for n in range(3):
                assert index.lookup(f"/src/{d}/m{n}.py") == pending[f"/src/{d}"][f"m{n}.py"]
        assert index.lookup("/src/a/old.py") == (1, 2, 3, 4, 5, 6, b"o" * 20)

    def test_the_helper_ignores_damaged_index_records(self, tmp_path):
        from pycache import backfill

        root = tmp_path / "store"
        spool = root / "spool" / "1-x.tmp"
        spool.parent.mkdir(parents=True)
        index_root = str(root / "index")
        good = (1, 2, 3, 4, 5, 6, b"k" * 20)
        pending = {"/src": {"good.py": good, "bad.py": (1, 2), 7: good}, 8: {}}
        entries = [("ab" * 20, b"entry")]
        spool.write_bytes(_payload(entries, (index_root, b"ctx", pending)))
        assert backfill.main([str(root), str(spool), "-"]) == 0
        index = PathIndex(index_root, context=b"ctx")
        assert index.lookup("/src/good.py") == good and index.lookup("/src/bad.py") is None
        assert LocalStore(str(root)).get("ab" * 20) == b"entry"
        payload = _payload(entries, (index_root, b"ctx", pending))
        spool.write_bytes(payload[:10])  # the index part cut short: nothing, no error
        assert backfill.main([str(root), str(spool), "-"]) == 0
        assert not spool.exists()
        # Entries cut short: neither they nor the records that name them are written.
        other = {"/other": {"new.py": (1, 2, 3, 4, 5, 6, b"n" * 20)}}
        spool.write_bytes(_payload([("cd" * 20, b"entry")], (index_root, b"ctx", other))[:-1])
        assert backfill.main([str(root), str(spool), "-"]) == 1
        assert index.lookup("/other/new.py") is None
        assert PathIndex(index_root, context=b"ctx").lookup("/other/new.py") is None

    def test_the_helper_keeps_the_store_under_its_size_limit(self, tmp_path, monkeypatch):
        from pycache import backfill

        monkeypatch.setenv("PYCACHE_MAX_SIZE", "64K")
        monkeypatch.delenv("PYCACHE_CONFIG", raising=False)
        root = tmp_path / "store"
        spool = root / "spool" / "1-x.tmp"
        spool.parent.mkdir(parents=True)
        entries = [(f"{n:040x}", os.urandom(8192)) for n in range(32)]  # 256 KiB
        spool.write_bytes(_payload(entries))
        assert backfill.main([str(root), str(spool), "-"]) == 0
        kept = sum(path.stat().st_size for path in (root / "entries").glob("*/*"))
        assert 0 < kept <= 64 * 1024

    def test_a_raising_remote_is_dropped_after_one_failure(self, tmp_path):
        boom = Boom()
        store = _tiered(tmp_path, (boom, True))
        for _ in range(3):
            assert store.get("ab" * 20) is None
        assert boom.calls == 1
        assert store.put("ab" * 20, b"x") and store.local.get("ab" * 20) == b"x"
        assert store.flush(30)
        assert boom.calls == 1 and store.take_counts() == {"remote_errors": 1}

    def test_after_fork_forgets_the_queue(self, tmp_path):
        blocked = Blocked()
        store = _tiered(tmp_path, (blocked, True))
        store.put("00" * 20, b"x")
        store.put("01" * 20, b"x")
        store.after_fork()
        assert store._thread is None and not store._queue and store.counts == {}
        blocked.release.set()


def _engine_over(tmp_path: Path, remote: object, secret: bytes | None) -> Engine:
    store = _tiered(tmp_path, (remote, False))
    return Engine(store, PathIndex("", writable=False), secret=secret)


class TestEngineBackfill:
    @pytest.mark.parametrize("secret", [None, b"k"])
    def test_only_checked_entries_are_backfilled(self, tmp_path, secret):
        source = b"VALUE = 1\n"
        src = tmp_path / "mod.py"
        src.write_bytes(source)
        key = cache_key(source, compile_context())
        remote = MemoryStore()
        code = compile("VALUE = 'remote'\n", str(src), "exec")
        remote.put(key.hex(), _entry.encode_entry(key, marshal.dumps(code)))  # unsigned
        engine = _engine_over(tmp_path, remote, secret)
        found, status = engine._load(key, str(src))
        assert engine.store.flush(30)  # type: ignore[attr-defined]
        wait_for_backfill(tmp_path / "local")
        local = engine.store.local  # type: ignore[attr-defined]
        if secret is None:
            assert found is not None and local.get(key.hex()) is not None
        else:
            assert found is None and status == "unsigned"
            assert local.get(key.hex()) is None
            assert remote.entries  # the remote is not ours to clean


class TestIndexHandOff:
    def _engine(self, tmp_path: Path) -> tuple[Engine, Path]:
        src = tmp_path / "src" / "mod.py"
        src.parent.mkdir()
        src.write_bytes(b"VALUE = 1\n")
        key = cache_key(src.read_bytes(), compile_context())
        remote = MemoryStore()
        code = compile(src.read_bytes(), str(src), "exec")
        remote.put(key.hex(), _entry.encode_entry(key, marshal.dumps(code)))
        store = _tiered(tmp_path, (remote, False))
        index = PathIndex(str(tmp_path / "local" / "index"), context=compile_context())
        engine = Engine(store, index)
        st = src.stat()
        engine.get_code(
            importlib.machinery.SourceFileLoader("mod", str(src)), str(src), st, st.st_mtime_ns
        )
        return engine, src

    def test_the_helper_takes_the_index_records_of_a_remote_hit(self, tmp_path, monkeypatch):
        from pycache import backfill

        handed = []
        monkeypatch.setattr(
            backfill, "spawn", lambda root, entries, index=None: handed.append(index) or True
        )
        engine, src = self._engine(tmp_path)
        engine.flush()
        assert not (tmp_path / "local" / "index").exists()  # the exiting process wrote none
        (index_root, context, pending) = handed[0]
        assert index_root == engine.index.root and context == compile_context()
        assert set(pending) == {str(src.parent)} and set(pending[str(src.parent)]) == {"mod.py"}

    def test_without_a_helper_the_process_writes_its_index(self, tmp_path, monkeypatch):
        from pycache import backfill

        monkeypatch.setattr(backfill, "spawn", lambda root, entries, index=None: False)
        engine, src = self._engine(tmp_path)
        engine.flush()
        fresh = PathIndex(engine.index.root, context=compile_context())
        assert fresh.lookup(str(src)) is not None


def _remote_env(remote: Path, mode: str, **more: str) -> dict[str, str | None]:
    env: dict[str, str | None] = {
        "PYCACHE_REMOTE": f"file://{remote}",
        "PYCACHE_REMOTE_MODE": mode,
        "PYCACHE_KEY": None,
    }
    env.update(more)
    return env


class TestEndToEnd:
    def test_ci_fills_the_remote_and_a_fresh_host_reads_it(
        self, sandbox, make_tree, run_py, read_stats, tmp_path
    ):
        tree = make_tree(TREE)
        main = sandbox.script(MAIN)
        remote = tmp_path / "shared"
        run_py([main], pythonpath=[tree], env=_remote_env(remote, "rw"))
        assert len(list((remote / "entries").rglob("*"))) > 0
        ci = read_stats()
        assert ci["remote_writes"] == ci["compiles"] == 3
        dev_store = tmp_path / "dev-store"
        time.sleep(GRANULARITY_NS / 1e9 + 0.2)  # the dev host's index records are trusted
        run = run_py(
            [main], pythonpath=[tree], env=_remote_env(remote, "ro", PYCACHE_DIR=str(dev_store))
        )
        assert run.stdout == "2\n"
        dev = read_stats(dev_store)
        assert dev.get("compiles", 0) == 0
        assert dev["hits_remote"] == dev["remote_backfills"] == 3
        assert len(sandbox.entry_files(dev_store)) == 3
        again = run_py(
            [main], pythonpath=[tree], env=_remote_env(remote, "ro", PYCACHE_DIR=str(dev_store))
        )
        assert again.stdout == "2\n"
        after = read_stats(dev_store)
        assert after["hits_remote"] == 3  # the second run was all local,
        assert after.get("hits_by_stat", 0) == 3  # on the index the backfill helper wrote

    def test_tampered_remote_entries_are_rejected_with_a_key(
        self, sandbox, make_tree, run_py, read_stats, tmp_path
    ):
        tree = make_tree(TREE)
        main = sandbox.script(MAIN)
        remote = tmp_path / "shared"
        source = (tree / "pkg" / "one.py").read_bytes()
        key = cache_key(source, compile_context())
        evil = compile("VALUE = 1\nprint('PWNED')\n", str(tree / "pkg" / "one.py"), "exec")
        SharedDirStore(str(remote)).put(key.hex(), _entry.encode_entry(key, marshal.dumps(evil)))
        env = _remote_env(remote, "ro", PYCACHE_KEY="secret")
        run = run_py([main], pythonpath=[tree], env=env)
        assert run.stdout == "2\n" and "PWNED" not in run.stderr
        stats = read_stats(env={"PYCACHE_KEY": "secret"})
        assert stats["miss_unsigned"] == 1 and stats.get("hits_remote", 0) == 0
        local = Path(sandbox.store) / "entries" / key.hex()[:2] / key.hex()[2:]
        assert b"PWNED" not in local.read_bytes()

    def test_an_unusable_remote_never_breaks_imports(self, sandbox, make_tree, run_py, tmp_path):
        tree = make_tree(TREE)
        main = sandbox.script(MAIN)
        (tmp_path / "file").write_text("not a directory")
        for url in (f"file://{tmp_path}/file", "redis://127.0.0.1:1/0", "http://127.0.0.1:1/"):
            run = run_py(
                [main], pythonpath=[tree], env={"PYCACHE_REMOTE": url, "PYCACHE_REMOTE_MODE": "rw"}
            )
            assert (run.stdout, run.stderr) == ("2\n", ""), run


class TestConfig:
    def test_remotes_and_modes(self):
        config = from_environ(
            {
                "PYCACHE_DIR": "/s",
                "PYCACHE_REMOTE": "file:///a, redis://h/0?mode=rw  https://h/x?mode=ro&t=1",
                "PYCACHE_REMOTE_MODE": "rw",
                "PYCACHE_REMOTE_TIMEOUT": "20",
            },
            strict=True,
        )
        assert config.remotes == (
            ("file:///a", True),
            ("redis://h/0", True),
            ("https://h/x?t=1", False),
        )
        assert config.remote_timeout == pytest.approx(0.02)
        default = from_environ({"PYCACHE_DIR": "/s", "PYCACHE_REMOTE": "file:///a"})
        assert default.remotes == (("file:///a", False),) and default.remote_timeout == 0.05

    @pytest.mark.parametrize(
        "env",
        [
            {"PYCACHE_REMOTE": "ftp://x"},
            {"PYCACHE_REMOTE": "file://relative"},
            {"PYCACHE_REMOTE": "file:///a?mode=rx"},
            {"PYCACHE_REMOTE": "file:///a", "PYCACHE_REMOTE_MODE": "write"},
            {"PYCACHE_REMOTE": "file:///a", "PYCACHE_REMOTE_TIMEOUT": "-5"},
            {"PYCACHE_REMOTE": "file:///a", "PYCACHE_REMOTE_FLUSH_TIMEOUT": "soon"},
        ],
    )
    def test_bad_values(self, env):
        environ = {"PYCACHE_DIR": "/s", **env}
        with pytest.raises(ValueError):
            from_environ(environ, strict=True)
        assert len(from_environ(environ).problems) == 1

    def test_build_engine_tiers_only_with_remotes(self, tmp_path):
        plain = _activate.build_engine(from_environ({"PYCACHE_DIR": str(tmp_path)}))
        assert isinstance(plain.store, LocalStore)
        tiered = _activate.build_engine(
            from_environ({"PYCACHE_DIR": str(tmp_path), "PYCACHE_REMOTE": f"file://{tmp_path}/r"})
        )
        assert isinstance(tiered.store, TieredStore) and len(tiered.store.remotes) == 1
        os.environ.get("PATH")  # noqa: B018


class TestCommandLine:
    def test_status_stats_and_push(self, sandbox, make_tree, run_py, pycache_cli, tmp_path):
        tree = make_tree(TREE)
        main = sandbox.script(MAIN)
        run_py([main], pythonpath=[tree], env={"PYCACHE_REMOTE": None})
        shared = tmp_path / "shared"
        shared.mkdir()
        env = _remote_env(shared, "ro")
        env["PYCACHE_REMOTE"] = f"file://{shared} file://{tmp_path}/absent?mode=rw"
        status = pycache_cli("status", "--json", env=env).json()
        assert [(t["mode"], t["answers"]) for t in status["remotes"]] == [  # type: ignore[index]
            ("ro", True),
            ("rw", False),
        ]
        text = pycache_cli("status", env=env).stdout
        assert f"file://{shared} (ro) answers" in text
        redis = pycache_cli("status", env={"PYCACHE_REMOTE": "redis://u:pw@127.0.0.1:1/0"})
        assert "redis://u:***@127.0.0.1:1/0" in redis.stdout and "pw" not in redis.stdout
        # Nothing read-write configured: a usage error.
        read_only = _remote_env(shared, "ro")
        assert pycache_cli("push", env=read_only, check=False).returncode == 2
        bad = pycache_cli("push", "--remote", "ftp://x", env=env, check=False)
        assert bad.returncode == 2 and bad.stderr.startswith("pycache: ")
        pushed = pycache_cli("push", "--remote", f"file://{shared}", env=env)
        assert "3 pushed, 0 already there, 0 failed" in pushed.stdout
        again = pycache_cli("push", "--remote", f"file://{shared}", env=env)
        assert "0 pushed, 3 already there" in again.stdout
        assert len(sandbox.entry_files(shared)) == 3
        (tmp_path / "file").write_text("x")
        failed = pycache_cli("push", "--remote", f"file://{tmp_path}/file", env=env, check=False)
        assert failed.returncode == 1 and "3 failed" in failed.stdout
        # A fresh store reading the pushed remote: remote hits show in stats.
        fresh = {**_remote_env(shared, "ro"), "PYCACHE_DIR": str(tmp_path / "fresh")}
        run_py([main], pythonpath=[tree], env=fresh)
        stats = pycache_cli("stats", env=fresh).stdout
        assert "remote tiers:" in stats and "hits remote" in stats
        assert "remote tiers:" not in pycache_cli("stats", env={"PYCACHE_REMOTE": None}).stdout

    def test_bad_remote_settings_exit_2(self, pycache_cli):
        run = pycache_cli(
            "status", env={"PYCACHE_REMOTE_MODE": "x", "PYCACHE_REMOTE": "file:///a"}, check=False
        )
        assert run.returncode == 2 and "PYCACHE_REMOTE_MODE" in run.stderr


class TestConfigFile:
    def test_file_settings_under_the_environment(self, tmp_path):
        path = tmp_path / "xdg" / "pycache" / "config"
        path.parent.mkdir(parents=True)
        path.write_text(
            "# team settings\nPYCACHE_REMOTE = file:///srv/cache\n"
            "PYCACHE_REMOTE_MODE=rw\n\nPYCACHE_READONLY = 1\n"
        )
        environ = {"XDG_CONFIG_HOME": str(tmp_path / "xdg"), "PYCACHE_DIR": "/s"}
        config = from_environ(environ, strict=True)
        assert config.remotes == (("file:///srv/cache", True),) and config.readonly
        config = from_environ({**environ, "PYCACHE_REMOTE_MODE": "ro"}, strict=True)
        assert config.remotes == (("file:///srv/cache", False),)
        other = tmp_path / "other"
        other.write_text("PYCACHE_REMOTE = file:///x\n")
        config = from_environ({**environ, "PYCACHE_CONFIG": str(other)}, strict=True)
        assert config.remotes == (("file:///x", False),) and not config.readonly

    @pytest.mark.parametrize("text", ["PYCACHE_DISABLE = 1\n", "just words\n", "OTHER=1\n"])
    def test_bad_lines(self, tmp_path, text):
        path = tmp_path / "config"
        path.write_text(text)
        environ = {"PYCACHE_CONFIG": str(path), "PYCACHE_DIR": "/s"}
        with pytest.raises(ValueError, match=f"{path}:1"):
            from_environ(environ, strict=True)
        assert len(from_environ(environ).problems) == 1

    def test_an_absent_file_is_fine_unless_named(self, tmp_path):
        assert from_environ({"HOME": str(tmp_path)}, strict=True).remotes == ()
        with pytest.raises(ValueError):
            from_environ({"PYCACHE_CONFIG": str(tmp_path / "nope")}, strict=True)

    def test_an_interpreter_reads_it(self, sandbox, make_tree, run_py, read_stats, tmp_path):
        tree = make_tree(TREE)
        main = sandbox.script(MAIN)
        config = tmp_path / "config"
        config.write_text(f"PYCACHE_REMOTE = file://{tmp_path}/shared?mode=rw\n")
        run_py([main], pythonpath=[tree], env={"PYCACHE_CONFIG": str(config)})
        assert len(sandbox.entry_files(tmp_path / "shared")) == 3


class Slow(MemoryStore):
    """A remote that answers "miss" only after its timeout, like a backend that timed out."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def get(self, key: str) -> bytes | None:
        self.calls += 1
        threading.Event().wait(0.02)
        return None


def test_a_remote_that_keeps_timing_out_is_given_up(tmp_path):
    slow = Slow()
    store = TieredStore(
        LocalStore(str(tmp_path / "local")),
        [Remote(slow, "slow", read_write=False)],
        timeout=0.01,
    )
    for _ in range(10):
        assert store.get("ab" * 20) is None
    assert slow.calls == 3 and store.take_counts() == {"remote_errors": 1}


def test_many_writers_on_one_shared_directory_leave_whole_entries(tmp_path):
    # Several "hosts" (stores with other host names) and threads write the same
    # key at once; every read sees one whole payload, and no temp file is left.
    root = str(tmp_path / "shared")
    writers = []
    for host in ("alpha", "beta", "gamma"):
        store = SharedDirStore(root)
        store._host = host
        writers.append(store)
    payloads = [bytes([n]) * 50_000 for n in range(6)]
    reader = SharedDirStore(root)
    seen: set[bytes] = set()
    stop = threading.Event()

    def write(store: SharedDirStore, payload: bytes) -> None:
        for _ in range(30):
            assert store.put("ab" * 20, payload)

    def read() -> None:
        while not stop.is_set():
            data = reader.get("ab" * 20)
            if data is not None:
                seen.add(data)

    reading = threading.Thread(target=read)
    reading.start()
    threads = [
        threading.Thread(target=write, args=(writers[n % 3], payload))
        for n, payload in enumerate(payloads)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stop.set()
    reading.join()
    seen.add(reader.get("ab" * 20) or b"")
    assert seen <= set(payloads)
    assert [p.name for p in Path(root, "entries", "ab").iterdir()] == ["ab" * 19]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_writes_its_own_entries(sandbox, make_tree, run_py, read_stats, tmp_path):
    tree = make_tree(TREE)
    script = sandbox.script(
        "import os, sys\n"
        "import pkg.one\n"  # the parent's writer thread is running now
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    import pkg.two\n"
        "    print(pkg.two.DOUBLE)\n"
        "    sys.exit(0)\n"
        "_, status = os.waitpid(pid, 0)\n"
        "print(status)\n"
    )
    remote = tmp_path / "shared"
    run = run_py([script], pythonpath=[tree], env=_remote_env(remote, "rw"))
    assert sorted(run.stdout.split()) == ["0", "2"]
    stats = read_stats()
    # pkg's three modules, and on 3.12+ whatever showing fork()'s DeprecationWarning
    # imports from source: each compiled once, and written to the remote once.
    assert stats["compiles"] >= 3
    assert len(sandbox.entry_files(remote)) == stats["remote_writes"] == stats["compiles"]


def test_a_read_only_remote_does_not_import_threading(sandbox, make_tree, run_py, tmp_path):
    tree = make_tree(TREE)
    script = sandbox.script("import sys, pkg.two\nprint('threading' in sys.modules)\n")
    run = run_py([script], pythonpath=[tree], env=_remote_env(tmp_path / "shared", "ro"))
    assert run.stdout == "False\n"
    fresh = _remote_env(tmp_path / "other", "rw", PYCACHE_DIR=str(tmp_path / "fresh"))
    rw = run_py([script], pythonpath=[tree], env=fresh)
    assert rw.stdout == "True\n"  # the writer thread, started by the first write
