"""Bundles: their format, program names, and their use by the tiered store."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from conftest import wait_for_backfill
from pycache import bundle
from pycache.exceptions import BundleFormatError, FormatError
from pycache.stores import tiered
from pycache.stores.local import LocalStore
from pycache.stores.memory import MemoryStore
from pycache.stores.tiered import Remote, TieredStore

CONTEXT = b"test-context"


def _entries(n: int, size: int = 100) -> list[tuple[str, bytes]]:
    return [(f"{i:040x}", os.urandom(size)) for i in range(n)]


def _entries_of(parts: list[bytes]) -> dict[str, bytes]:
    return bundle.decode_records(bundle.join_parts(parts))


class TestFormat:
    def test_records_round_trip(self):
        entries = _entries(20)
        assert bundle.decode_records(bundle.encode_records(entries)) == dict(entries)
        assert bundle.decode_records(b"") == {}

    @pytest.mark.parametrize(
        "key, entry",
        [("ff" * 20, b""), ("FF" * 20, b"x"), ("ab", b"x"), ("../" * 13 + "x", b"x")],
        ids=["empty entry", "upper case", "short key", "path"],
    )
    def test_only_store_keys_and_non_empty_entries_decode(self, key, entry):
        with pytest.raises(BundleFormatError):
            bundle.decode_records(bundle.encode_records([*_entries(2), (key, entry)]))

    def test_at_most_max_entries_decode(self, monkeypatch):
        monkeypatch.setattr(bundle, "MAX_ENTRIES", 5)
        assert len(bundle.decode_records(bundle.encode_records(_entries(5)))) == 5
        with pytest.raises(BundleFormatError, match="more than 5"):
            bundle.decode_records(bundle.encode_records(_entries(6)))

    @pytest.mark.parametrize("cut", [1, 5, 30, 45, 150])
    def test_a_cut_payload_is_an_error(self, cut):
        payload = bundle.encode_records(_entries(2))
        with pytest.raises(BundleFormatError) as info:
            bundle.decode_records(payload[:-cut])
        assert isinstance(info.value, FormatError) and isinstance(info.value, ValueError)

    def test_parts_round_trip_and_the_head_comes_first(self, monkeypatch):
        monkeypatch.setattr(bundle, "PART_SIZE", 1000)
        payload = bundle.encode_records(_entries(30))
        parts = bundle.split_parts(payload)
        assert len(parts) == -(-len(payload) // 1000) > 1
        assert bundle.head_info(parts[0])[0] == len(parts)
        assert bundle.join_parts(parts) == payload
        assert bundle.join_parts(bundle.split_parts(b"")) == b""

    @pytest.mark.parametrize("part_size", [1, 7, 45, 100, 1000, 10**6])
    def test_parts_decode_as_their_joined_payload(self, monkeypatch, part_size):
        # Records straddle parts (a part as small as one byte): only whole records come out.
        monkeypatch.setattr(bundle, "PART_SIZE", part_size)
        entries = [(f"{i:040x}", os.urandom(i * 37 % 300 + 1)) for i in range(40)]
        parts = bundle.split_parts(bundle.encode_records(entries))
        assert bundle.decode_parts(parts) == dict(entries)
        payload = bundle.join_parts(parts)
        for cut in (1, 44, 45, len(payload) // 2):
            cut_parts = bundle.split_parts(payload[:-cut])
            with pytest.raises(BundleFormatError):
                bundle.decode_parts(cut_parts)
        assert bundle.decode_parts(bundle.split_parts(b"")) == {}

    def test_parts_of_two_uploads_do_not_mix(self, monkeypatch):
        monkeypatch.setattr(bundle, "PART_SIZE", 1000)
        first = bundle.split_parts(bundle.encode_records(_entries(30)))
        second = bundle.split_parts(bundle.encode_records(_entries(30)))
        with pytest.raises(BundleFormatError, match="another upload"):
            bundle.join_parts([first[0], second[1], *first[2:]])
        with pytest.raises(BundleFormatError, match="parts"):
            bundle.join_parts(first[:-1])
        tampered = bytearray(second[1])
        tampered[-1] ^= 1  # a part with the right digest but a damaged byte decodes:
        decoded = bundle.decode_parts([second[0], bytes(tampered), *second[2:]])
        changed = [key for key, data in _entries_of(second).items() if decoded[key] != data]
        assert len(changed) == 1  # one entry differs, which the engine's checks reject
        # (TestTieredBundles.test_a_damaged_entry_is_fetched_on_its_own_and_the_bundle_replaced).

    @pytest.mark.parametrize(
        "head",
        [b"", b"PYCBNDL1", bytes(range(64)), b"PYCBNDL1" + b"\0" * 4 + b"x" * 20],
        ids=["empty", "magic only", "garbage", "zero parts"],
    )
    def test_a_bad_head_is_an_error(self, head):
        with pytest.raises(BundleFormatError):
            bundle.head_info(head)

    def test_a_part_larger_than_any_upload_is_an_error(self):
        (part,) = bundle.split_parts(b"x" * bundle.PART_SIZE)
        bundle.check_part(part)
        with pytest.raises(BundleFormatError, match="more than"):
            bundle.check_part(part + b"x")

    def test_keys_depend_on_context_and_program(self):
        names = {
            bundle.bundle_key(context, program)
            for context in (b"a", b"b")
            for program in ("pytest", "-m pytest")
        }
        assert len(names) == 4 and all(len(name) == 40 for name in names)
        upload, other = b"u" * 20, b"v" * 20
        assert bundle.part_key("ab" * 20, upload, 1) != bundle.part_key("ab" * 20, upload, 2)
        assert bundle.part_key("ab" * 20, upload, 1) != bundle.part_key("ab" * 20, other, 1)
        assert bundle.key_set_digest(["b", "a", "a"]) == bundle.key_set_digest(["a", "b"])


class TestProgramName:
    @pytest.mark.parametrize(
        "argv, name",
        [
            (["/venv/bin/python", "-m", "pytest", "-x"], "-m pytest"),
            (["python3", "-X", "dev", "-mpytest"], "-m pytest"),
            (["python", "-I", "-W", "error", "/ci/build/manage.py", "test"], "manage.py"),
            (["/venv/bin/python", "/home/runner/work/venv/bin/pytest", "tests"], "pytest"),
            (["python", "C:\\work\\tool.py"], "tool.py"),
            (["python"], ""),
            (["python", "-"], "-"),
        ],
    )
    def test_paths_are_left_out(self, argv, name):
        assert bundle.program_name(argv) == name

    def test_code_is_named_by_its_digest(self):
        one = bundle.program_name(["python", "-c", "print(1)"])
        assert one is not None and one.startswith("-c ") and len(one) == 19
        assert bundle.program_name(["python3", "-cprint(1)"]) == one
        assert bundle.program_name(["python", "-c", "print(2)"]) != one

    @pytest.mark.parametrize(
        "argv",
        [
            ["python", "-c", "from multiprocessing.spawn import spawn_main; spawn_main()"],
            ["python", "-B", "-c", "from multiprocessing.spawn import x", "--multiprocessing-fork"],
            ["python", "-c", "from multiprocessing.resource_tracker import main;main(5)"],
        ],
    )
    def test_multiprocessing_workers_have_no_bundle(self, argv):
        assert bundle.program_name(argv) is None

    def test_the_running_program_has_a_name(self):
        assert bundle.program_name() != ""  # pytest, or -m pytest


def _tiered(tmp_path: Path, remote: MemoryStore, read_write: bool) -> TieredStore:
    local = LocalStore(str(tmp_path / "local"))
    return TieredStore(local, [Remote(remote, "mem", read_write=read_write)], context=CONTEXT)


def _write(tmp_path: Path, remote: MemoryStore, entries: list[tuple[str, bytes]]) -> TieredStore:
    """A writing process that compiled ``entries`` and has exited (flushed)."""
    writer = _tiered(tmp_path, remote, True)
    for key, data in entries:
        writer.put(key, data)
    assert writer.flush(30)
    return writer


def _read(store: TieredStore, key: str) -> bytes | None:
    """Load ``key`` as the engine does: get it, then confirm it (it checks out here)."""
    served = store.get(key)
    if served is not None:
        store.backfill(key, served)
    return served


def _name() -> str:
    """This test process's bundle key."""
    return bundle.bundle_key(CONTEXT, bundle.program_name())


def _uploaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[MemoryStore, list[tuple[str, bytes]], TieredStore, list[str]]:
    """A CI machine at ``tmp_path / "ci"`` that uploaded the bundle of 20 entries,
    in parts of 1,000 bytes; return the remote, the entries, the writer and the
    remote keys of the bundle's parts (the head first)."""
    monkeypatch.setattr(bundle, "PART_SIZE", 1000)
    remote = MemoryStore()
    entries = _entries(20)
    writer = _write(tmp_path / "ci", remote, entries)
    name = _name()
    count, upload = bundle.head_info(remote.entries[name])
    return (
        remote,
        entries,
        writer,
        [name, *(bundle.part_key(name, upload, n) for n in range(1, count))],
    )


class TestTieredBundles:
    def test_a_writer_uploads_once_and_a_reader_is_served_from_it(self, tmp_path, monkeypatch):
        remote, entries, writer, parts = _uploaded(tmp_path, monkeypatch)
        assert len(parts) > 1 and all(key in remote.entries for key in parts)
        assert writer.take_counts() == {"remote_writes": 20, "remote_bundle_writes": 1}
        # Another process on that machine loading the same set does not upload it again.
        again = _tiered(tmp_path / "ci", remote, True)
        for key, data in entries:
            again.backfill(key, data)
        assert again.flush(30) and again.take_counts() == {}
        # A fresh reader fetches the bundle once and makes no other request.
        requests = []
        monkeypatch.setattr(
            remote, "get", lambda key: requests.append(key) or remote.entries.get(key)
        )
        reader = _tiered(tmp_path / "laptop", remote, False)
        for key, data in entries:
            assert _read(reader, key) == data
        assert len(requests) == len(bundle.split_parts(bundle.encode_records(entries)))
        counts = reader.take_counts()
        assert counts["hits_remote"] == counts["hits_remote_bundle"] == 20
        assert counts["remote_bundles_fetched"] == 1

    def test_fresh_writers_reupload_only_a_changed_set_with_their_remote_hits(self, tmp_path):
        remote = MemoryStore()
        entries = _entries(20)
        _write(tmp_path / "ci-1", remote, entries)
        # A fresh runner served by the bundle loads the same set: nothing to upload.
        second = _tiered(tmp_path / "ci-2", remote, True)
        for key, _ in entries:
            _read(second, key)
        assert second.flush(30)
        assert "remote_bundle_writes" not in second.take_counts()
        wait_for_backfill(tmp_path / "ci-2" / "local")
        # One more module: the new bundle holds it and the hits (not local yet when built).
        third = _tiered(tmp_path / "ci-3", remote, True)
        for key, _ in entries:
            _read(third, key)
        third.put("ee" * 20, b"new")
        assert third.flush(30)
        assert third.take_counts()["remote_bundle_writes"] == 1
        payload = bundle.join_parts([remote.entries[_name()]])
        assert bundle.decode_records(payload) == {**dict(entries), "ee" * 20: b"new"}
        wait_for_backfill(tmp_path / "ci-3" / "local")

    def test_an_interrupted_upload_leaves_the_previous_bundle_usable(self, tmp_path, monkeypatch):
        monkeypatch.setattr(bundle, "PART_SIZE", 1000)
        remote = MemoryStore()
        old = _entries(20)
        _write(tmp_path / "ci-1", remote, old)
        name = _name()
        # The next upload writes every part, then the head is refused.
        put = remote.put
        monkeypatch.setattr(remote, "put", lambda key, data: key != name and put(key, data))
        second = _write(tmp_path / "ci-2", remote, _entries(25, size=150))
        counts = second.take_counts()
        assert counts["remote_bundle_write_errors"] == 1 and "remote_bundle_writes" not in counts
        reader = _tiered(tmp_path / "laptop", remote, False)
        key, data = old[3]
        assert _read(reader, key) == data
        assert reader.take_counts()["hits_remote_bundle"] == 1  # the old bundle, intact

    def test_a_machine_uploads_an_unchanged_bundle_again_after_a_day(self, tmp_path):
        remote = MemoryStore()
        entries = _entries(20)

        def run() -> dict[str, int]:
            writer = _tiered(tmp_path, remote, True)
            for key, data in entries:
                writer.backfill(key, data)
                writer.put(key, data)
            assert writer.flush(30)
            return writer.take_counts()

        assert run()["remote_bundle_writes"] == 1
        assert "remote_bundle_writes" not in run()
        (marker,) = (tmp_path / "local" / "bundles").iterdir()
        old = marker.stat().st_mtime - tiered.BUNDLE_REFRESH
        os.utime(marker, (old, old))
        assert run()["remote_bundle_writes"] == 1

    def test_a_forked_child_uploads_no_bundle(self, tmp_path):
        remote = MemoryStore()
        store = _tiered(tmp_path, remote, True)
        store.after_fork()
        for key, data in _entries(20):
            store.put(key, data)
        assert store.flush(30)
        assert len(remote.entries) == 20  # the entries, no bundle

    def test_too_few_entries_make_no_bundle(self, tmp_path):
        remote = MemoryStore()
        _write(tmp_path, remote, _entries(bundle.MIN_ENTRIES - 1))
        assert len(remote.entries) == bundle.MIN_ENTRIES - 1

    def test_a_damaged_entry_is_fetched_on_its_own_and_the_bundle_replaced(
        self, tmp_path, monkeypatch
    ):
        remote, entries, _, parts = _uploaded(tmp_path, monkeypatch)
        last = parts[-1]
        damaged = bytearray(remote.entries[last])
        damaged[-1] ^= 1  # the last byte of the last entry, as a bad disk would
        remote.entries[last] = bytes(damaged)
        # A fresh read-write run on the machine that uploaded it (its marker is fresh).
        shutil.copytree(
            tmp_path / "ci" / "local" / "bundles", tmp_path / "ci-2" / "local" / "bundles"
        )
        reader = _tiered(tmp_path / "ci-2", remote, True)
        for key, data in entries[:-1]:
            assert _read(reader, key) == data
        key, data = entries[-1]
        assert reader.get(key) not in (None, data)  # the bundle's damaged copy...
        reader.delete(key)  # ...which the engine rejects and removes,
        assert reader.refetch(key) == data  # then asks the remote for its own
        reader.backfill(key, data)
        assert reader.refetch(key) is None  # once
        assert reader.flush(30)
        counts = reader.take_counts()
        assert (counts["hits_remote"], counts["hits_remote_bundle"]) == (20, 19)
        assert counts["remote_bundle_writes"] == 1  # replaced, marker or not
        laptop = _tiered(tmp_path / "laptop", remote, False)
        assert all(_read(laptop, key) == data for key, data in entries)
        assert laptop.take_counts()["hits_remote_bundle"] == 20

    def test_a_reader_ignores_a_bundle_with_a_missing_part(self, tmp_path, monkeypatch):
        remote, entries, _, parts = _uploaded(tmp_path, monkeypatch)
        del remote.entries[parts[1]]
        reader = _tiered(tmp_path / "laptop", remote, False)
        key, data = entries[0]
        assert _read(reader, key) == data  # fetched on its own
        assert reader.take_counts() == {"hits_remote": 1}
