"""Unit tests for pycache.engine: the get_code algorithm, driven in-process."""

from __future__ import annotations

import _imp
import importlib.machinery
import importlib.util
import marshal
import os
import py_compile
import sys
import types

import pytest

from pycache import stats
from pycache._entry import decode_entry, encode_entry
from pycache.engine import Engine
from pycache.index import GRANULARITY_NS, PathIndex
from pycache.keys import cache_key, compile_context
from pycache.stores.local import LocalStore
from pycache.stores.memory import MemoryStore

SOURCE = b'''\
"""A module with nested code objects."""

VALUE = 41

def outer(n):
    def inner(m):
        return [m * i for i in range(n)]
    return inner(2)

class Thing:
    def method(self):
        return (lambda: VALUE + 1)()

DOUBLED = list(x * 2 for x in range(3))
'''
# The same size as SOURCE, different behaviour.
EDITED = SOURCE.replace(b"VALUE = 41", b"VALUE = 99")
assert len(EDITED) == len(SOURCE)


class CountingLoader(importlib.machinery.SourceFileLoader):
    """CPython's source loader, counting the calls the engine makes."""

    def __init__(self, fullname: str, path: str) -> None:
        super().__init__(fullname, path)
        self.get_data_calls = 0
        self.compile_calls = 0

    def get_data(self, path):
        self.get_data_calls += 1
        return super().get_data(path)

    def source_to_code(self, data, path, *, _optimize=-1):
        self.compile_calls += 1
        return super().source_to_code(data, path, _optimize=_optimize)


class RecordingStore(MemoryStore):
    """A MemoryStore that logs what the engine asks of it."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.log: list = []

    def get(self, key):
        self.log.append(("get", key))
        return super().get(key)

    def put(self, key, data):
        self.log.append(("put", key))
        return super().put(key, data)

    def delete(self, key):
        self.log.append(("delete", key))
        super().delete(key)


def behaviour(code: types.CodeType) -> tuple:
    namespace: dict = {}
    exec(code, namespace)
    return (
        namespace["VALUE"],
        namespace["outer"](3),
        namespace["Thing"]().method(),
        namespace["DOUBLED"],
    )


ORIGINAL_BEHAVIOUR = (41, [0, 2, 4], 42, [0, 2, 4])
EDITED_BEHAVIOUR = (99, [0, 2, 4], 100, [0, 2, 4])


def filenames(code: types.CodeType) -> set:
    """co_filename of ``code`` and of every code object nested in it."""
    found = {code.co_filename}
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            found |= filenames(const)
    return found


def nested_count(code: types.CodeType) -> int:
    return 1 + sum(nested_count(c) for c in code.co_consts if isinstance(c, types.CodeType))


def write_source(path, data: bytes = SOURCE) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return str(path)


def call(engine: Engine, loader, path: str, *, racy: bool = False, st=None):
    """Run get_code as the importer does; ``racy`` records the time of the stat itself."""
    if st is None:
        st = os.stat(path)
    now = max(st.st_mtime_ns, st.st_ctime_ns)
    if not racy:
        now += GRANULARITY_NS  # the record will be old enough to trust on stat
    return engine.get_code(loader, path, st, now)


def key_of(source: bytes) -> str:
    return cache_key(source, compile_context()).hex()


@pytest.fixture
def source(tmp_path) -> str:
    return write_source(tmp_path / "src" / "mod.py")


@pytest.fixture
def loader(source) -> CountingLoader:
    return CountingLoader("mod", source)


@pytest.fixture
def store() -> RecordingStore:
    return RecordingStore()


@pytest.fixture
def engine(tmp_path, store) -> Engine:
    return Engine(store, PathIndex(str(tmp_path / "index")))


class TestColdPath:
    def test_compiles_and_stores(self, engine, store, loader, source):
        code = call(engine, loader, source)
        assert behaviour(code) == ORIGINAL_BEHAVIOUR
        assert (loader.get_data_calls, loader.compile_calls) == (1, 1)
        assert engine.counts == {"misses": 1, "miss_new": 1, "compiles": 1, "store_writes": 1}
        assert list(store.entries) == [key_of(SOURCE)]
        payload = decode_entry(bytes.fromhex(key_of(SOURCE)), store.entries[key_of(SOURCE)])
        assert marshal.loads(payload) == code

    def test_records_the_stat_signature(self, engine, loader, source):
        call(engine, loader, source)
        st = os.stat(source)
        record = engine.index.lookup(source)
        assert record[:5] == (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        assert record[6].hex() == key_of(SOURCE)

    def test_filename_is_the_source_path(self, engine, loader, source):
        code = call(engine, loader, source)
        assert nested_count(code) >= 5
        assert filenames(code) == {source}

    def test_explicit_context_goes_into_the_key(self, tmp_path, store, loader, source):
        engine = Engine(store, PathIndex(str(tmp_path / "index")), context=b"ctx\0")
        call(engine, loader, source)
        assert list(store.entries) == [cache_key(SOURCE, b"ctx\0").hex()]

    def test_default_context_is_the_interpreters(self, engine):
        assert engine.context == compile_context()


class TestWarmPath:
    def test_hit_by_stat_does_not_read_the_source(self, engine, loader, source):
        call(engine, loader, source)
        engine.take_counts()
        code = call(engine, loader, source)
        assert behaviour(code) == ORIGINAL_BEHAVIOUR
        assert filenames(code) == {source}
        assert (loader.get_data_calls, loader.compile_calls) == (1, 1)
        assert engine.counts == {"hits": 1, "hits_by_stat": 1}

    def test_hit_by_stat_in_a_new_process(self, tmp_path, source):
        root = str(tmp_path / "store")
        first = Engine(LocalStore(root), PathIndex(os.path.join(root, "index")))
        call(first, CountingLoader("mod", source), source)
        first.flush()
        second = Engine(LocalStore(root), PathIndex(os.path.join(root, "index")))
        loader = CountingLoader("mod", source)
        code = call(second, loader, source)
        assert behaviour(code) == ORIGINAL_BEHAVIOUR
        assert (loader.get_data_calls, loader.compile_calls) == (0, 0)
        assert second.counts == {"hits": 1, "hits_by_stat": 1}

    def test_racy_record_rehashes_but_does_not_compile(self, engine, loader, source):
        call(engine, loader, source, racy=True)
        engine.take_counts()
        code = call(engine, loader, source, racy=True)
        assert behaviour(code) == ORIGINAL_BEHAVIOUR
        assert (loader.get_data_calls, loader.compile_calls) == (2, 1)
        assert engine.counts == {"hits": 1, "hits_by_content": 1}

    def test_rehash_renews_the_record(self, engine, loader, source):
        call(engine, loader, source, racy=True)
        call(engine, loader, source)  # rehashed; the new record is old enough
        engine.take_counts()
        call(engine, loader, source)
        assert loader.get_data_calls == 2
        assert engine.counts == {"hits": 1, "hits_by_stat": 1}

    def test_racy_record_with_identical_signature_is_not_stale(self, engine, loader, source):
        # An edit in the same clock tick can leave every stat field unchanged:
        # replay the first stat after the edit. The racy record must not be trusted.
        first_stat = os.stat(source)
        assert behaviour(call(engine, loader, source, st=first_stat, racy=True)) == (
            ORIGINAL_BEHAVIOUR
        )
        with open(source, "r+b") as file:
            file.write(EDITED)
        engine.take_counts()
        code = call(engine, loader, source, st=first_stat, racy=True)
        assert behaviour(code) == EDITED_BEHAVIOUR
        assert engine.counts == {
            "misses": 1,
            "miss_changed": 1,
            "compiles": 1,
            "store_writes": 1,
        }

    def test_same_content_at_another_path(self, tmp_path, engine, store, loader, source):
        call(engine, loader, source)
        engine.take_counts()
        other = write_source(tmp_path / "elsewhere" / "copy.py")
        other_loader = CountingLoader("copy", other)
        code = call(engine, other_loader, other)
        assert behaviour(code) == ORIGINAL_BEHAVIOUR
        assert filenames(code) == {other}
        assert (other_loader.get_data_calls, other_loader.compile_calls) == (1, 0)
        assert engine.counts == {"hits": 1, "hits_by_content": 1}
        assert len(store.entries) == 1
        assert engine.index.lookup(other)[6].hex() == key_of(SOURCE)
        # The first path still gets its own filename.
        assert filenames(call(engine, loader, source)) == {source}

    def test_edited_source_is_a_changed_miss(self, engine, loader, source):
        call(engine, loader, source)
        engine.take_counts()
        with open(source, "wb") as file:
            file.write(EDITED + b"# longer\n")
        code = call(engine, loader, source)
        assert behaviour(code) == EDITED_BEHAVIOUR
        assert engine.counts == {
            "misses": 1,
            "miss_changed": 1,
            "compiles": 1,
            "store_writes": 1,
        }

    def test_entry_gone_is_a_missing_miss(self, engine, store, loader, source):
        call(engine, loader, source)
        store.entries.clear()
        engine.take_counts()
        code = call(engine, loader, source)
        assert behaviour(code) == ORIGINAL_BEHAVIOUR
        assert engine.counts == {
            "misses": 1,
            "miss_missing": 1,
            "compiles": 1,
            "store_writes": 1,
        }
        assert list(store.entries) == [key_of(SOURCE)]


class TestCorruption:
    @pytest.mark.parametrize("where", [0, 10, 30, 38, 60, -1])
    def test_corrupt_entry_removed_and_rebuilt(self, engine, store, loader, source, where):
        call(engine, loader, source)
        key = key_of(SOURCE)
        good = store.entries[key]
        damaged = bytearray(good)
        damaged[where] ^= 0x04
        store.entries[key] = bytes(damaged)
        engine.take_counts()
        store.log.clear()
        code = call(engine, loader, source)
        assert behaviour(code) == ORIGINAL_BEHAVIOUR
        assert engine.counts == {
            "misses": 1,
            "miss_corrupt": 1,
            "compiles": 1,
            "store_writes": 1,
        }
        assert store.log == [("get", key), ("delete", key), ("put", key)]
        assert store.entries[key] == good

    def test_corrupt_entry_found_by_content(self, tmp_path, store, loader, source):
        Engine(store, PathIndex(str(tmp_path / "index1"))).get_code(
            loader, source, os.stat(source), 0
        )
        key = key_of(SOURCE)
        store.entries[key] = store.entries[key][:-1]
        fresh = Engine(store, PathIndex(str(tmp_path / "index2")))
        code = call(fresh, loader, source)
        assert behaviour(code) == ORIGINAL_BEHAVIOUR
        assert fresh.counts["miss_corrupt"] == 1
        assert decode_entry(bytes.fromhex(key), store.entries[key])  # rebuilt whole

    @pytest.mark.parametrize("payload", [marshal.dumps(42), marshal.dumps(("code",)), b"\xff"])
    def test_valid_entry_without_code_is_corrupt(self, engine, store, loader, source, payload):
        key = key_of(SOURCE)
        store.entries[key] = encode_entry(bytes.fromhex(key), payload)
        code = call(engine, loader, source)
        assert behaviour(code) == ORIGINAL_BEHAVIOUR
        assert engine.counts["miss_corrupt"] == 1
        assert marshal.loads(decode_entry(bytes.fromhex(key), store.entries[key])) == code

    def test_store_get_raising(self, tmp_path, loader, source):
        class BrokenStore(MemoryStore):
            def get(self, key):
                raise RuntimeError("backend down")

        store = BrokenStore()
        engine = Engine(store, PathIndex(str(tmp_path / "index")))
        for _ in range(2):
            assert behaviour(call(engine, loader, source)) == ORIGINAL_BEHAVIOUR
        assert loader.compile_calls == 2
        assert engine.counts["compiles"] == 2
        assert list(store.entries) == [key_of(SOURCE)]

    def test_store_get_returning_garbage(self, tmp_path, loader, source):
        class GarbageStore(RecordingStore):
            def get(self, key):
                super().get(key)
                return b"\x00garbage" * 10

        store = GarbageStore()
        engine = Engine(store, PathIndex(str(tmp_path / "index")))
        code = call(engine, loader, source)
        assert behaviour(code) == ORIGINAL_BEHAVIOUR
        assert engine.counts["miss_corrupt"] == 1
        assert engine.counts["compiles"] == 1
        assert ("delete", key_of(SOURCE)) in store.log

    def test_index_lookup_raising(self, tmp_path, store, loader, source):
        class BrokenIndex(PathIndex):
            def lookup(self, path):
                raise RuntimeError("index broken")

        engine = Engine(store, BrokenIndex(str(tmp_path / "index")))
        code = call(engine, loader, source)
        assert behaviour(code) == ORIGINAL_BEHAVIOUR
        assert engine.counts["compiles"] == 1
        assert list(store.entries) == [key_of(SOURCE)]


class TestUnwritableStore:
    def test_failed_write_counted(self, tmp_path, loader, source):
        blocker = tmp_path / "store"
        blocker.write_bytes(b"a file, not a directory")
        engine = Engine(LocalStore(str(blocker)), PathIndex(str(tmp_path / "index")))
        code = call(engine, loader, source)
        assert behaviour(code) == ORIGINAL_BEHAVIOUR
        assert engine.counts == {
            "misses": 1,
            "miss_new": 1,
            "compiles": 1,
            "store_write_errors": 1,
        }
        # No index record for an entry that was never written.
        assert engine.index.lookup(source) is None

    def test_read_only_store(self, tmp_path, loader, source):
        store = MemoryStore(writable=False)
        engine = Engine(store, PathIndex(str(tmp_path / "index")))
        for _ in range(2):
            assert behaviour(call(engine, loader, source)) == ORIGINAL_BEHAVIOUR
        assert store.entries == {}
        assert engine.counts == {"misses": 2, "miss_new": 2, "compiles": 2}

    def test_read_only_store_still_serves_hits(self, tmp_path, store, loader, source):
        call(Engine(store, PathIndex(str(tmp_path / "index1"))), loader, source)
        store.writable = False
        engine = Engine(store, PathIndex(str(tmp_path / "index2")))
        assert behaviour(call(engine, loader, source)) == ORIGINAL_BEHAVIOUR
        assert engine.counts == {"hits": 1, "hits_by_content": 1}


class TestSourceErrors:
    def test_syntax_error_propagates_and_nothing_is_stored(self, tmp_path, engine, store):
        path = write_source(tmp_path / "src" / "bad.py", b"x = 1\ndef broken(:\n    pass\n")
        with pytest.raises(SyntaxError) as caught:
            call(engine, CountingLoader("bad", path), path)
        assert caught.value.filename == path
        assert caught.value.lineno == 2
        assert store.entries == {}
        assert engine.index.lookup(path) is None
        assert "compiles" not in engine.counts
        assert engine.index.flush() == 0

    def test_unreadable_source_propagates(self, tmp_path, engine, store, source):
        missing = str(tmp_path / "src" / "gone.py")
        with pytest.raises(FileNotFoundError):
            engine.get_code(CountingLoader("gone", missing), missing, os.stat(source), 0)
        assert store.entries == {}


@pytest.fixture
def no_pycache_prefix(monkeypatch):
    # Keep pycs beside the sources under tmp_path whatever PYTHONPYCACHEPREFIX says.
    monkeypatch.setattr(sys, "pycache_prefix", None)


def write_pyc(source: str, mode: str, *, dfile=None) -> str:
    pyc = importlib.util.cache_from_source(source)
    py_compile.compile(
        source,
        cfile=pyc,
        dfile=dfile,
        doraise=True,
        invalidation_mode=py_compile.PycInvalidationMode[mode],
    )
    return pyc


def newest_source_time(source: str) -> int:
    st = os.stat(source)
    return max(st.st_mtime_ns, st.st_ctime_ns)


def set_mtime(path: str, mtime_ns: int) -> None:
    os.utime(path, ns=(mtime_ns, mtime_ns))


@pytest.mark.usefixtures("no_pycache_prefix")
class TestInTreePyc:
    def test_timestamp_pyc_never_used_even_if_newer(self, engine, store, loader, source):
        # A matching header and a newer file do not prove which bytes were compiled.
        pyc = write_pyc(source, "TIMESTAMP", dfile="/built/elsewhere/mod.py")
        set_mtime(pyc, newest_source_time(source) + 5 * 10**9)
        code = call(engine, loader, source)
        assert loader.compile_calls == 1
        assert behaviour(code) == ORIGINAL_BEHAVIOUR
        assert filenames(code) == {source}
        assert engine.counts == {
            "misses": 1,
            "miss_new": 1,
            "compiles": 1,
            "store_writes": 1,
        }
        key = key_of(SOURCE)
        assert marshal.loads(decode_entry(bytes.fromhex(key), store.entries[key])) == code

    def test_timestamp_pyc_not_newer_than_source_ignored(self, engine, loader, source):
        pyc = write_pyc(source, "TIMESTAMP")
        st = os.stat(source)
        set_mtime(pyc, st.st_ctime_ns)  # header matches, but the pyc is not provably newer
        code = call(engine, loader, source)
        assert loader.compile_calls == 1
        assert behaviour(code) == ORIGINAL_BEHAVIOUR
        assert "intree_pyc" not in engine.counts

    def test_stale_timestamp_pyc_ignored(self, engine, loader, source):
        pyc = write_pyc(source, "TIMESTAMP")
        with open(source, "wb") as file:
            file.write(EDITED + b"\n")
        set_mtime(pyc, newest_source_time(source) + 5 * 10**9)
        code = call(engine, loader, source)
        assert loader.compile_calls == 1
        assert behaviour(code) == EDITED_BEHAVIOUR
        assert "intree_pyc" not in engine.counts

    @pytest.mark.parametrize("mode", ["CHECKED_HASH", "UNCHECKED_HASH"])
    def test_matching_hash_pyc_used_whatever_its_time(self, engine, store, loader, source, mode):
        pyc = write_pyc(source, mode, dfile="/built/elsewhere/mod.py")
        set_mtime(pyc, 10**9)  # older than the source: irrelevant for hash pycs
        code = call(engine, loader, source)
        assert loader.compile_calls == 0
        assert behaviour(code) == ORIGINAL_BEHAVIOUR
        assert filenames(code) == {source}
        assert engine.counts == {"misses": 1, "miss_new": 1, "intree_pyc": 1}
        # Used for this import only: nothing goes into the store.
        assert store.entries == {}

    @pytest.mark.parametrize(
        ("mode", "policy", "checked"),
        [
            ("CHECKED_HASH", "default", True),
            ("UNCHECKED_HASH", "default", False),  # what unchecked means, as in CPython
            ("UNCHECKED_HASH", "always", True),
            ("CHECKED_HASH", "never", False),
        ],
    )
    def test_hash_pyc_of_other_source(
        self, monkeypatch, engine, loader, source, mode, policy, checked
    ):
        # --check-hash-based-pycs decides, exactly as it does for CPython.
        monkeypatch.setattr(_imp, "check_hash_based_pycs", policy)
        pyc = write_pyc(source, mode)
        with open(source, "wb") as file:
            file.write(EDITED)
        set_mtime(pyc, newest_source_time(source) + 5 * 10**9)
        code = call(engine, loader, source)
        if checked:
            assert loader.compile_calls == 1
            assert behaviour(code) == EDITED_BEHAVIOUR
            assert "intree_pyc" not in engine.counts
        else:
            assert loader.compile_calls == 0
            assert behaviour(code) == ORIGINAL_BEHAVIOUR
            assert engine.counts["intree_pyc"] == 1

    def test_disabled(self, tmp_path, store, loader, source):
        pyc = write_pyc(source, "CHECKED_HASH")
        engine = Engine(store, PathIndex(str(tmp_path / "index")), use_intree=False)
        code = call(engine, loader, source)
        assert os.path.exists(pyc)
        assert loader.compile_calls == 1
        assert behaviour(code) == ORIGINAL_BEHAVIOUR
        assert "intree_pyc" not in engine.counts

    @pytest.mark.parametrize(
        "damage",
        [
            lambda data: data[:16] + b"garbage",
            lambda data: data[:16] + marshal.dumps(42),
            lambda data: bytes([data[0] ^ 1]) + data[1:],
            lambda data: data[:4] + b"\x02\x00\x00\x00" + data[8:],
            lambda data: data[:10],
        ],
        ids=["garbage-payload", "not-code", "other-magic", "bad-flags", "truncated"],
    )
    def test_damaged_pyc_ignored(self, engine, store, loader, source, damage):
        pyc = write_pyc(source, "CHECKED_HASH")
        with open(pyc, "rb") as file:
            data = file.read()
        with open(pyc, "wb") as file:
            file.write(damage(data))
        code = call(engine, loader, source)
        assert loader.compile_calls == 1
        assert behaviour(code) == ORIGINAL_BEHAVIOUR
        assert "intree_pyc" not in engine.counts
        key = key_of(SOURCE)
        assert marshal.loads(decode_entry(bytes.fromhex(key), store.entries[key])) == code

    def test_no_pyc(self, engine, loader, source):
        code = call(engine, loader, source)
        assert not os.path.exists(importlib.util.cache_from_source(source))
        assert behaviour(code) == ORIGINAL_BEHAVIOUR
        assert loader.compile_calls == 1


class TestFlush:
    def test_writes_index_and_stats(self, tmp_path, loader, source):
        root = str(tmp_path / "store")
        stats_path = os.path.join(root, "stats")
        engine = Engine(
            LocalStore(root), PathIndex(os.path.join(root, "index")), stats_path=stats_path
        )
        call(engine, loader, source)
        call(engine, loader, source)
        engine.flush()
        assert engine.counts == {}
        totals = stats.read_totals(stats_path)
        assert (totals["hits"], totals["misses"], totals["compiles"]) == (1, 1, 1)
        assert PathIndex(os.path.join(root, "index")).lookup(source)[6].hex() == key_of(SOURCE)

    def test_nothing_to_flush(self, tmp_path):
        stats_path = tmp_path / "stats"
        engine = Engine(
            MemoryStore(), PathIndex(str(tmp_path / "index")), stats_path=str(stats_path)
        )
        engine.flush()
        assert not stats_path.exists()
        assert not (tmp_path / "index").exists()

    def test_unwritable_stats_do_not_raise(self, tmp_path, loader, source):
        blocker = tmp_path / "blocker"
        blocker.write_bytes(b"")
        index_root = str(tmp_path / "index")
        engine = Engine(MemoryStore(), PathIndex(index_root), stats_path=str(blocker / "stats"))
        call(engine, loader, source)
        engine.flush()
        assert engine.counts == {}
        assert blocker.read_bytes() == b""
        assert PathIndex(index_root).lookup(source) is not None

    def test_after_fork_forgets_the_parents_work(self, tmp_path, loader, source):
        stats_path = tmp_path / "stats"
        engine = Engine(
            MemoryStore(), PathIndex(str(tmp_path / "index")), stats_path=str(stats_path)
        )
        call(engine, loader, source)
        engine.after_fork()
        assert engine.counts == {}
        engine.flush()
        assert not stats_path.exists()
        assert not (tmp_path / "index").exists()

    def test_take_counts(self, engine, loader, source):
        call(engine, loader, source)
        counts = engine.take_counts()
        assert counts["compiles"] == 1
        assert engine.counts == {}
