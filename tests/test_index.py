"""Unit tests for pycache.index: stat signatures, the racy rule, the index file codec, PathIndex."""

from __future__ import annotations

import _imp
import errno
import marshal
import os
import types

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pycache import _fs, index
from pycache.exceptions import FormatError, IndexFormatError
from pycache.index import (
    GRANULARITY_NS,
    PathIndex,
    decode_index,
    encode_index,
    make_record,
    trusted_key,
    valid_record,
)

FUZZ = settings(max_examples=300, deadline=None)

KEY = bytes(range(20))
OTHER_KEY = bytes(range(1, 21))
DIRECTORY = "/src/pkg"
T = 1_700_000_000 * 10**9  # a plausible wall-clock time in ns


def fake_stat(dev=1, ino=2, size=3, mtime_ns=T, ctime_ns=T):
    return types.SimpleNamespace(
        st_dev=dev, st_ino=ino, st_size=size, st_mtime_ns=mtime_ns, st_ctime_ns=ctime_ns
    )


def record_for(st, recorded_ns=T + GRANULARITY_NS, key=KEY):
    return make_record(st, recorded_ns, key)


def sealed(payload: bytes) -> bytes:
    """An index file with a valid header and checksum around any payload."""
    return b"PYCI\x02\x00\x00\x00" + _imp.source_hash(index._CHECKSUM_SEED, payload) + payload


RECORDS = {
    "a.py": (1, 2, 3, T, T, T + GRANULARITY_NS, KEY),
    "b.py": (1, 5, 300, T - 7, T, T + 3 * GRANULARITY_NS, OTHER_KEY),
}
INDEX_FILE = encode_index(DIRECTORY, RECORDS)


class TestMakeRecord:
    def test_fields_in_order(self, tmp_path):
        path = tmp_path / "mod.py"
        path.write_bytes(b"x = 1\n")
        st = os.stat(path)
        record = make_record(st, 42, KEY)
        assert record == (
            st.st_dev,
            st.st_ino,
            st.st_size,
            st.st_mtime_ns,
            st.st_ctime_ns,
            42,
            KEY,
        )
        assert valid_record(record)


class TestTrustedKey:
    def test_unchanged_real_file_trusted(self, tmp_path):
        path = tmp_path / "mod.py"
        path.write_bytes(b"x = 1\n")
        st = os.stat(path)
        record = make_record(st, max(st.st_mtime_ns, st.st_ctime_ns) + GRANULARITY_NS, KEY)
        assert trusted_key(record, os.stat(path)) == KEY

    def test_rename_replace_with_same_content_not_trusted(self, tmp_path):
        path = tmp_path / "mod.py"
        path.write_bytes(b"x = 1\n")
        st = os.stat(path)
        record = make_record(st, max(st.st_mtime_ns, st.st_ctime_ns) + GRANULARITY_NS, KEY)
        replacement = tmp_path / "mod.py.new"
        replacement.write_bytes(b"x = 1\n")
        os.utime(replacement, ns=(st.st_atime_ns, st.st_mtime_ns))
        os.replace(replacement, path)
        assert trusted_key(record, os.stat(path)) is None

    def test_exactly_one_granularity_old_is_trusted(self):
        st = fake_stat()
        assert trusted_key(record_for(st, T + GRANULARITY_NS), st) == KEY

    @pytest.mark.parametrize("age", [0, 1, GRANULARITY_NS // 2, GRANULARITY_NS - 1])
    def test_racy_record_not_trusted(self, age):
        st = fake_stat()
        assert trusted_key(record_for(st, T + age), st) is None

    def test_racy_by_mtime_alone(self):
        # os.utime can put mtime after ctime; the newer of the two decides.
        st = fake_stat(mtime_ns=T, ctime_ns=T - 10 * GRANULARITY_NS)
        assert trusted_key(record_for(st, T + GRANULARITY_NS - 1), st) is None
        assert trusted_key(record_for(st, T + GRANULARITY_NS), st) == KEY

    def test_racy_by_ctime_alone(self):
        st = fake_stat(mtime_ns=T - 10 * GRANULARITY_NS, ctime_ns=T)
        assert trusted_key(record_for(st, T + GRANULARITY_NS - 1), st) is None
        assert trusted_key(record_for(st, T + GRANULARITY_NS), st) == KEY

    def test_file_times_after_the_record_not_trusted(self):
        st = fake_stat(mtime_ns=T + 5 * GRANULARITY_NS)
        assert trusted_key(record_for(st, T), st) is None

    @pytest.mark.parametrize("field", ["dev", "ino", "size", "mtime_ns", "ctime_ns"])
    @pytest.mark.parametrize("delta", [1, -1])
    def test_any_field_changed_not_trusted(self, field, delta):
        recorded = fake_stat()
        record = record_for(recorded, T + 10 * GRANULARITY_NS)
        current = fake_stat(**{field: getattr(recorded, "st_" + field) + delta})
        assert trusted_key(record, recorded) == KEY
        assert trusted_key(record, current) is None

    @given(
        recorded=st.tuples(*[st.integers(0, 3)] * 3, *[st.integers(T - 5, T + 5)] * 2),
        current=st.tuples(*[st.integers(0, 3)] * 3, *[st.integers(T - 5, T + 5)] * 2),
        age=st.integers(-GRANULARITY_NS, 2 * GRANULARITY_NS),
    )
    @FUZZ
    def test_trusted_exactly_when_equal_and_settled(self, recorded, current, age):
        recorded_ns = max(recorded[3], recorded[4]) + age
        record = record_for(fake_stat(*recorded), recorded_ns)
        expected = KEY if recorded == current and age >= GRANULARITY_NS else None
        assert trusted_key(record, fake_stat(*current)) == expected


class TestValidRecord:
    def test_valid(self):
        assert all(valid_record(record) for record in RECORDS.values())

    @pytest.mark.parametrize(
        "record",
        [
            None,
            [1, 2, 3, T, T, T, KEY],
            (1, 2, 3, T, T, T),
            (1, 2, 3, T, T, T, KEY, 0),
            (1, 2, 3, T, T, T, KEY[:19]),
            (1, 2, 3, T, T, T, KEY + b"\0"),
            (1, 2, 3, T, T, T, KEY.hex()),
            (1, 2, 3, T, T, T, bytearray(KEY)),
            (1, 2, 3.0, T, T, T, KEY),
            (1, True, 3, T, T, T, KEY),
            ("1", 2, 3, T, T, T, KEY),
        ],
    )
    def test_invalid(self, record):
        assert not valid_record(record)


class TestIndexCodec:
    def test_round_trip(self):
        assert decode_index(DIRECTORY, INDEX_FILE) == RECORDS

    def test_empty(self):
        assert decode_index(DIRECTORY, encode_index(DIRECTORY, {})) == {}

    @given(
        directory=st.text(min_size=1, max_size=40),
        records=st.dictionaries(
            st.text(max_size=20),
            st.tuples(*[st.integers(0, 2**64)] * 6, st.binary(min_size=20, max_size=20)),
            max_size=8,
        ),
    )
    @FUZZ
    def test_round_trip_arbitrary(self, directory, records):
        assert decode_index(directory, encode_index(directory, records)) == records

    def test_other_directory_rejected(self):
        with pytest.raises(IndexFormatError, match="another directory"):
            decode_index("/src/other", INDEX_FILE)

    def test_other_compile_context_rejected(self):
        data = encode_index(DIRECTORY, RECORDS, b"opt=1")
        assert decode_index(DIRECTORY, data, b"opt=1") == RECORDS
        for other in (b"", b"opt=2"):
            with pytest.raises(IndexFormatError, match="another compile context"):
                decode_index(DIRECTORY, data, other)

    def test_every_payload_byte_flip_fails_checksum(self):
        accepted = []
        for position in range(16, len(INDEX_FILE)):
            damaged = bytearray(INDEX_FILE)
            damaged[position] ^= 0x20
            try:
                decode_index(DIRECTORY, bytes(damaged))
            except IndexFormatError as exc:
                assert "checksum" in str(exc)
            else:
                accepted.append(position)
        assert accepted == []

    @pytest.mark.parametrize("position", range(16))
    def test_every_header_byte_flip_rejected(self, position):
        damaged = bytearray(INDEX_FILE)
        damaged[position] ^= 0x01
        with pytest.raises(IndexFormatError):
            decode_index(DIRECTORY, bytes(damaged))

    def test_every_truncation_rejected(self):
        accepted = []
        for length in range(len(INDEX_FILE)):
            try:
                decode_index(DIRECTORY, INDEX_FILE[:length])
            except IndexFormatError:
                continue
            accepted.append(length)
        assert accepted == []

    def test_trailing_bytes_rejected(self):
        with pytest.raises(IndexFormatError):
            decode_index(DIRECTORY, INDEX_FILE + b"\0")

    @pytest.mark.parametrize(
        "payload",
        [
            b"",
            b"\xff",
            marshal.dumps(5),
            marshal.dumps((DIRECTORY,)),
            marshal.dumps((DIRECTORY, RECORDS)),
            marshal.dumps((DIRECTORY, b"", RECORDS, 1)),
            marshal.dumps([DIRECTORY, b"", RECORDS])[:-1],
        ],
    )
    def test_checksummed_garbage_rejected(self, payload):
        with pytest.raises(IndexFormatError, match="bad index payload"):
            decode_index(DIRECTORY, sealed(payload))

    @pytest.mark.parametrize("records", [[], (), None, "a.py", list(RECORDS.items())])
    def test_records_not_a_dict_rejected(self, records):
        with pytest.raises(IndexFormatError, match="malformed"):
            decode_index(DIRECTORY, sealed(marshal.dumps((DIRECTORY, b"", records))))

    def test_error_is_a_format_error(self):
        with pytest.raises(FormatError):
            decode_index(DIRECTORY, b"")
        assert issubclass(IndexFormatError, ValueError)


marshallable = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=10)
    | st.binary(max_size=24),
    lambda children: (
        st.lists(children, max_size=4)
        | st.lists(children, max_size=7).map(tuple)
        | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def mutated_index(draw):
    data = bytearray(INDEX_FILE)
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.integers(0, len(data)))
        kind = draw(st.sampled_from(["set", "insert", "delete", "truncate"]))
        if kind == "set" and where < len(data):
            data[where] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[where:where] = draw(st.binary(min_size=1, max_size=4))
        elif kind == "delete":
            del data[where : where + draw(st.integers(1, 4))]
        else:
            del data[where:]
    return bytes(data)


def decode_outcome(directory: str, data: bytes):
    try:
        records = decode_index(directory, data)
    except IndexFormatError:
        return None
    assert type(records) is dict
    return records


class TestHostileInput:
    @given(data=st.binary(max_size=200))
    @FUZZ
    def test_arbitrary_bytes(self, data):
        assert decode_outcome(DIRECTORY, data) is None

    @given(data=mutated_index())
    @FUZZ
    def test_mutated_file(self, data):
        records = decode_outcome(DIRECTORY, data)
        assert (records is not None) == (data == INDEX_FILE)

    @given(
        content=marshallable
        | st.tuples(st.sampled_from([DIRECTORY, "/elsewhere"]), st.just(b""), marshallable)
        | st.tuples(
            st.just(DIRECTORY),
            st.sampled_from([b"", b"other"]),
            st.dictionaries(st.text(max_size=5), marshallable, max_size=3),
        )
    )
    @FUZZ
    def test_checksummed_arbitrary_content(self, content, tmp_path_factory):
        data = sealed(marshal.dumps(content))
        records = decode_outcome(DIRECTORY, data)
        if records is not None:
            assert content == (DIRECTORY, b"", records)
        # Whatever the file holds, lookups answer a valid record or None.
        path_index = PathIndex(str(tmp_path_factory.mktemp("index")))
        target = path_index.file_for(DIRECTORY)
        os.makedirs(os.path.dirname(target))
        with open(target, "wb") as file:
            file.write(data)
        for name in list(records or ()) + ["a.py"]:
            found = path_index.lookup(os.path.join(DIRECTORY, str(name)))
            assert found is None or valid_record(found)


def src(tmp_path, name="mod.py", directory="src"):
    return str(tmp_path / directory / name)


class TestPathIndex:
    def test_record_flush_and_read_back(self, tmp_path):
        root = str(tmp_path / "index")
        path_index = PathIndex(root)
        path = src(tmp_path)
        record = RECORDS["a.py"]
        path_index.record(path, record)
        assert path_index.lookup(path) == record
        assert path_index.flush() == 1
        assert PathIndex(root).lookup(path) == record

    def test_each_compile_context_has_its_own_records(self, tmp_path):
        # A key recorded under -O must never be handed to a plain run.
        root = str(tmp_path / "index")
        path = src(tmp_path)
        optimized = PathIndex(root, context=b"opt=1")
        optimized.record(path, RECORDS["a.py"])
        optimized.flush()
        plain = PathIndex(root, context=b"opt=0")
        assert plain.lookup(path) is None
        plain.record(path, RECORDS["b.py"])
        plain.flush()
        assert PathIndex(root, context=b"opt=1").lookup(path) == RECORDS["a.py"]
        assert PathIndex(root, context=b"opt=0").lookup(path) == RECORDS["b.py"]

    def test_lookup_unknown(self, tmp_path):
        root = str(tmp_path / "index")
        path_index = PathIndex(root)
        path_index.record(src(tmp_path, "a.py"), RECORDS["a.py"])
        path_index.flush()
        fresh = PathIndex(root)
        assert fresh.lookup(src(tmp_path, "b.py")) is None
        assert fresh.lookup(src(tmp_path, "a.py", directory="elsewhere")) is None

    def test_lookup_does_not_create_files(self, tmp_path):
        root = tmp_path / "index"
        assert PathIndex(str(root)).lookup(src(tmp_path)) is None
        assert not root.exists()

    def test_one_file_per_directory(self, tmp_path):
        root = str(tmp_path / "index")
        path_index = PathIndex(root)
        first = path_index.file_for("/src/a")
        assert first == path_index.file_for("/src/a")
        assert first != path_index.file_for("/src/b")
        assert os.path.dirname(os.path.dirname(first)) == root
        assert len(os.path.basename(os.path.dirname(first))) == 2

    def test_flush_counts_files(self, tmp_path):
        root = str(tmp_path / "index")
        path_index = PathIndex(root)
        path_index.record(src(tmp_path, "a.py", "one"), RECORDS["a.py"])
        path_index.record(src(tmp_path, "b.py", "one"), RECORDS["b.py"])
        path_index.record(src(tmp_path, "a.py", "two"), RECORDS["b.py"])
        assert path_index.flush() == 2
        assert path_index.flush() == 0  # nothing pending any more
        fresh = PathIndex(root)
        assert fresh.lookup(src(tmp_path, "a.py", "one")) == RECORDS["a.py"]
        assert fresh.lookup(src(tmp_path, "b.py", "one")) == RECORDS["b.py"]
        assert fresh.lookup(src(tmp_path, "a.py", "two")) == RECORDS["b.py"]

    def test_two_writers_merge(self, tmp_path):
        root = str(tmp_path / "index")
        first, second = PathIndex(root), PathIndex(root)
        assert second.lookup(src(tmp_path, "a.py")) is None  # loaded before the first writes
        first.record(src(tmp_path, "a.py"), RECORDS["a.py"])
        second.record(src(tmp_path, "b.py"), RECORDS["b.py"])
        assert first.flush() == 1
        assert second.flush() == 1
        fresh = PathIndex(root)
        assert fresh.lookup(src(tmp_path, "a.py")) == RECORDS["a.py"]
        assert fresh.lookup(src(tmp_path, "b.py")) == RECORDS["b.py"]

    def test_later_writer_wins_for_the_same_name(self, tmp_path):
        root = str(tmp_path / "index")
        first, second = PathIndex(root), PathIndex(root)
        first.record(src(tmp_path), RECORDS["a.py"])
        second.record(src(tmp_path), RECORDS["b.py"])
        first.flush()
        second.flush()
        assert PathIndex(root).lookup(src(tmp_path)) == RECORDS["b.py"]

    def test_relative_path_is_made_absolute(self, tmp_path, monkeypatch):
        (tmp_path / "src").mkdir()
        monkeypatch.chdir(tmp_path / "src")
        root = str(tmp_path / "index")
        path_index = PathIndex(root)
        path_index.record("mod.py", RECORDS["a.py"])
        path_index.flush()
        assert PathIndex(root).lookup(os.path.join(os.getcwd(), "mod.py")) == RECORDS["a.py"]

    def test_file_in_the_root_directory(self, tmp_path):
        root = str(tmp_path / "index")
        path_index = PathIndex(root)
        path_index.record(os.sep + "mod.py", RECORDS["a.py"])
        path_index.flush()
        assert PathIndex(root).lookup(os.sep + "mod.py") == RECORDS["a.py"]
        assert decode_index(os.sep, _fs.read_file(path_index.file_for(os.sep))) == {
            "mod.py": RECORDS["a.py"]
        }

    def write_raw(self, path_index, directory, data):
        target = path_index.file_for(directory)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "wb") as file:
            file.write(data)
        return target

    @pytest.mark.parametrize(
        "data",
        [b"", b"garbage", INDEX_FILE[:-1], INDEX_FILE[:20] + b"x" + INDEX_FILE[21:]],
        ids=["empty", "garbage", "truncated", "damaged"],
    )
    def test_corrupt_file_is_empty(self, tmp_path, data):
        path_index = PathIndex(str(tmp_path / "index"))
        self.write_raw(path_index, DIRECTORY, data)
        assert path_index.lookup(os.path.join(DIRECTORY, "a.py")) is None

    def test_intact_file_is_read(self, tmp_path):
        # The counterpart of the test above: the same file, undamaged, is used.
        path_index = PathIndex(str(tmp_path / "index"))
        self.write_raw(path_index, DIRECTORY, INDEX_FILE)
        assert path_index.lookup(os.path.join(DIRECTORY, "a.py")) == RECORDS["a.py"]

    def test_file_of_another_directory_is_empty(self, tmp_path):
        path_index = PathIndex(str(tmp_path / "index"))
        self.write_raw(path_index, "/src/other", INDEX_FILE)
        assert path_index.lookup(os.path.join("/src/other", "a.py")) is None

    def test_unreadable_file_is_empty(self, tmp_path):
        path_index = PathIndex(str(tmp_path / "index"))
        os.makedirs(path_index.file_for(DIRECTORY))  # a directory where the file should be
        assert path_index.lookup(os.path.join(DIRECTORY, "a.py")) is None

    def test_flush_replaces_a_corrupt_file(self, tmp_path):
        root = str(tmp_path / "index")
        path_index = PathIndex(root)
        self.write_raw(path_index, DIRECTORY, b"garbage")
        path_index.record(os.path.join(DIRECTORY, "b.py"), RECORDS["b.py"])
        assert path_index.flush() == 1
        assert decode_index(DIRECTORY, _fs.read_file(path_index.file_for(DIRECTORY))) == {
            "b.py": RECORDS["b.py"]
        }

    def test_malformed_records_ignored_and_dropped_on_flush(self, tmp_path):
        root = str(tmp_path / "index")
        path_index = PathIndex(root)
        bad = dict(RECORDS, **{"bad.py": (1, 2, 3), "short.py": RECORDS["a.py"][:6] + (b"k",)})
        bad[7] = RECORDS["a.py"]  # a name that is not a str
        self.write_raw(path_index, DIRECTORY, encode_index(DIRECTORY, bad))
        assert path_index.lookup(os.path.join(DIRECTORY, "bad.py")) is None
        assert path_index.lookup(os.path.join(DIRECTORY, "short.py")) is None
        assert path_index.lookup(os.path.join(DIRECTORY, "a.py")) == RECORDS["a.py"]
        path_index.record(os.path.join(DIRECTORY, "c.py"), RECORDS["a.py"])
        path_index.flush()
        on_disk = decode_index(DIRECTORY, _fs.read_file(path_index.file_for(DIRECTORY)))
        assert on_disk == dict(RECORDS, **{"c.py": RECORDS["a.py"]})

    def test_not_writable_writes_nothing(self, tmp_path):
        root = tmp_path / "index"
        path_index = PathIndex(str(root), writable=False)
        path_index.record(src(tmp_path), RECORDS["a.py"])
        assert path_index.lookup(src(tmp_path)) == RECORDS["a.py"]
        assert path_index.flush() == 0
        assert not root.exists()

    def test_forget_pending(self, tmp_path):
        root = tmp_path / "index"
        path_index = PathIndex(str(root))
        path_index.record(src(tmp_path), RECORDS["a.py"])
        path_index.forget_pending()
        assert path_index.flush() == 0
        assert not root.exists()

    def test_root_is_a_file_gives_up(self, tmp_path, monkeypatch):
        root = tmp_path / "index"
        root.write_bytes(b"not a directory")
        path_index = PathIndex(str(root))
        path_index.record(src(tmp_path, "a.py", "one"), RECORDS["a.py"])
        assert path_index.flush() == 0
        assert path_index.writable is False
        assert root.read_bytes() == b"not a directory"
        assert path_index.lookup(src(tmp_path, "a.py", "one")) == RECORDS["a.py"]  # in memory
        attempts = []
        monkeypatch.setattr(_fs, "write_atomic", lambda *args: attempts.append(args))
        path_index.record(src(tmp_path, "b.py", "two"), RECORDS["b.py"])
        assert path_index.flush() == 0
        assert attempts == []

    def fail_replace(self, monkeypatch, errno_value):
        calls = []

        def replace(source, destination):
            calls.append(destination)
            raise OSError(errno_value, os.strerror(errno_value))

        monkeypatch.setattr(os, "replace", replace)
        return calls

    def test_full_disk_gives_up(self, tmp_path, monkeypatch):
        root = tmp_path / "index"
        path_index = PathIndex(str(root))
        path_index.record(src(tmp_path, "a.py", "one"), RECORDS["a.py"])
        path_index.record(src(tmp_path, "a.py", "two"), RECORDS["a.py"])
        calls = self.fail_replace(monkeypatch, errno.ENOSPC)
        assert path_index.flush() == 0
        assert path_index.writable is False
        assert len(calls) == 1  # the second directory is not tried
        leftovers = [name for _, _, names in os.walk(root) for name in names]
        assert leftovers == []

    def test_transient_error_keeps_writing(self, tmp_path, monkeypatch):
        root = str(tmp_path / "index")
        path_index = PathIndex(root)
        path_index.record(src(tmp_path, "a.py"), RECORDS["a.py"])
        with monkeypatch.context() as patch:
            self.fail_replace(patch, errno.EIO)
            assert path_index.flush() == 0
        assert path_index.writable is True
        path_index.record(src(tmp_path, "b.py"), RECORDS["b.py"])
        assert path_index.flush() == 1
        fresh = PathIndex(root)
        assert fresh.lookup(src(tmp_path, "b.py")) == RECORDS["b.py"]
        assert fresh.lookup(src(tmp_path, "a.py")) is None  # dropped with the failed write
