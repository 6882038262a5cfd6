"""Unit tests for pycache.stores: the Store contract, LocalStore and MemoryStore."""

from __future__ import annotations

import errno
import os
import shutil
import stat

import pytest

from pycache.stores.local import LocalStore
from pycache.stores.memory import MemoryStore

KEY = "ab" + "0" * 38
OTHER_KEY = "cd" + "1" * 38
THIRD_KEY = "ab" + "2" * 38  # shares KEY's fan-out directory


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def mode_of(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def files_under(directory) -> list:
    return sorted(
        os.path.relpath(os.path.join(dirpath, name), directory)
        for dirpath, _, names in os.walk(directory)
        for name in names
    )


@pytest.fixture(params=["local", "memory"])
def store(request, tmp_path):
    if request.param == "local":
        return LocalStore(str(tmp_path / "store"))
    return MemoryStore()


class TestStoreContract:
    """What every backend promises (stores.base.Store)."""

    def test_get_missing(self, store):
        assert store.get(KEY) is None

    def test_put_then_get(self, store):
        assert store.put(KEY, b"entry bytes") is True
        assert store.get(KEY) == b"entry bytes"
        assert store.get(OTHER_KEY) is None

    def test_put_overwrites(self, store):
        store.put(KEY, b"first")
        store.put(KEY, b"second")
        assert store.get(KEY) == b"second"

    def test_keys_are_independent(self, store):
        for key in (KEY, OTHER_KEY, THIRD_KEY):
            store.put(key, key.encode())
        assert [store.get(key) for key in (KEY, OTHER_KEY, THIRD_KEY)] == [
            KEY.encode(),
            OTHER_KEY.encode(),
            THIRD_KEY.encode(),
        ]

    def test_delete(self, store):
        store.put(KEY, b"x")
        store.put(OTHER_KEY, b"y")
        store.delete(KEY)
        assert store.get(KEY) is None
        assert store.get(OTHER_KEY) == b"y"

    def test_delete_missing_is_quiet(self, store):
        store.delete(KEY)
        assert store.get(KEY) is None

    def test_iterate(self, store):
        assert list(store.iterate()) == []
        for key in (KEY, OTHER_KEY, THIRD_KEY):
            store.put(key, b"x")
        assert sorted(store.iterate()) == sorted([KEY, OTHER_KEY, THIRD_KEY])

    def test_iterate_while_deleting(self, store):
        for key in (KEY, OTHER_KEY, THIRD_KEY):
            store.put(key, b"x")
        for key in store.iterate():
            store.delete(key)
        assert list(store.iterate()) == []

    def test_not_writable_refuses_writes(self, store):
        store.writable = False
        assert store.put(KEY, b"x") is False
        assert store.get(KEY) is None
        assert list(store.iterate()) == []

    def test_binary_values_kept_exactly(self, store):
        data = bytes(range(256)) * 40
        store.put(KEY, data)
        assert store.get(KEY) == data


class TestLocalStoreLayout:
    def test_entry_path(self, tmp_path):
        local = LocalStore(str(tmp_path / "store"))
        assert local.path_for(KEY) == str(tmp_path / "store" / "entries" / "ab" / KEY[2:])

    def test_files_and_modes(self, tmp_path, umask_022):
        root = tmp_path / "store"
        local = LocalStore(str(root))
        local.put(KEY, b"x")
        assert files_under(root) == ["CACHEDIR.TAG", os.path.join("entries", "ab", KEY[2:])]
        assert mode_of(root) == 0o700
        assert mode_of(root / "entries") == 0o700
        assert mode_of(root / "entries" / "ab") == 0o700
        assert mode_of(local.path_for(KEY)) == 0o600
        assert mode_of(root / "CACHEDIR.TAG") == 0o644

    def test_cachedir_tag(self, tmp_path):
        root = tmp_path / "store"
        LocalStore(str(root)).put(KEY, b"x")
        tag = (root / "CACHEDIR.TAG").read_bytes()
        # https://bford.info/cachedir/: the file must start with exactly this.
        assert tag.startswith(b"Signature: 8a477f597d28d172789f06886806bc55")

    def test_existing_cachedir_tag_kept(self, tmp_path):
        root = tmp_path / "store"
        root.mkdir()
        (root / "CACHEDIR.TAG").write_bytes(b"Signature: 8a477f597d28d172789f06886806bc55\nmine\n")
        LocalStore(str(root)).put(KEY, b"x")
        assert (root / "CACHEDIR.TAG").read_bytes().endswith(b"mine\n")

    def test_nothing_created_until_a_write(self, tmp_path):
        root = tmp_path / "store"
        local = LocalStore(str(root))
        assert local.get(KEY) is None
        assert list(local.iterate()) == []
        assert local.usage() == (0, 0)
        local.delete(KEY)
        assert not root.exists()

    def test_second_instance_reads_first_ones_entries(self, tmp_path):
        LocalStore(str(tmp_path / "store")).put(KEY, b"shared")
        assert LocalStore(str(tmp_path / "store")).get(KEY) == b"shared"


class TestLocalStoreIterate:
    def test_skips_temp_files_and_strays(self, tmp_path):
        root = tmp_path / "store"
        local = LocalStore(str(root))
        local.put(KEY, b"x")
        fan = root / "entries" / "ab"
        (fan / (KEY[2:] + ".123.456.tmp")).write_bytes(b"half written")
        (root / "entries" / "stray-file").write_bytes(b"")
        (root / "entries" / "xyz").mkdir()
        (root / "entries" / "xyz" / ("0" * 38)).write_bytes(b"")
        (root / "entries" / "zz").write_bytes(b"a file where a fan-out directory goes")
        assert list(local.iterate()) == [KEY]

    def test_usage(self, tmp_path):
        local = LocalStore(str(tmp_path / "store"))
        local.put(KEY, b"12345")
        local.put(OTHER_KEY, b"1234567")
        local.put(THIRD_KEY, b"")
        assert local.usage() == (3, 12)
        local.delete(OTHER_KEY)
        assert local.usage() == (2, 5)


class TestLocalStoreFailures:
    def test_unreadable_entry_is_a_miss(self, tmp_path):
        local = LocalStore(str(tmp_path / "store"))
        os.makedirs(local.path_for(KEY))  # a directory where the entry file goes
        assert local.get(KEY) is None

    def test_full_disk(self, tmp_path, monkeypatch):
        root = tmp_path / "store"
        local = LocalStore(str(root))
        assert local.put(KEY, b"first") is True

        def full_disk(fd, data):
            raise OSError(errno.ENOSPC, "No space left on device")

        with monkeypatch.context() as patch:
            patch.setattr(os, "write", full_disk)
            assert local.put(OTHER_KEY, b"second") is False
        assert local.writable is False
        assert local.put(OTHER_KEY, b"second") is False  # given up, though the disk is back
        assert local.get(OTHER_KEY) is None
        assert local.get(KEY) == b"first"
        assert [name for name in files_under(root) if name.endswith(".tmp")] == []

    def test_full_disk_on_first_write(self, tmp_path, monkeypatch):
        local = LocalStore(str(tmp_path / "store"))

        def full_disk(fd, data):
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(os, "write", full_disk)
        assert local.put(KEY, b"x") is False
        monkeypatch.undo()
        assert local.writable is False
        assert local.get(KEY) is None

    def test_root_is_a_file(self, tmp_path):
        root = tmp_path / "store"
        root.write_bytes(b"not a directory")
        local = LocalStore(str(root))
        assert local.put(KEY, b"x") is False
        assert local.writable is False
        assert local.get(KEY) is None
        assert list(local.iterate()) == []
        assert local.usage() == (0, 0)
        assert root.read_bytes() == b"not a directory"

    def test_transient_error_keeps_writing(self, tmp_path, monkeypatch):
        local = LocalStore(str(tmp_path / "store"))

        def io_error(source, destination):
            raise OSError(errno.EIO, "Input/output error")

        with monkeypatch.context() as patch:
            patch.setattr(os, "replace", io_error)
            assert local.put(KEY, b"x") is False
        assert local.writable is True
        assert local.put(KEY, b"x") is True
        assert local.get(KEY) == b"x"

    def test_root_deleted_mid_run(self, tmp_path, umask_022):
        root = tmp_path / "store"
        local = LocalStore(str(root))
        assert local.put(KEY, b"before")
        shutil.rmtree(root)
        assert local.get(KEY) is None
        assert local.put(OTHER_KEY, b"after") is True
        assert local.get(OTHER_KEY) == b"after"
        assert mode_of(root) == 0o700
        assert mode_of(root / "entries") == 0o700
        assert list(local.iterate()) == [OTHER_KEY]

    def test_delete_problem_is_quiet(self, tmp_path):
        local = LocalStore(str(tmp_path / "store"))
        os.makedirs(local.path_for(KEY))  # unlink of a directory fails with EISDIR
        local.delete(KEY)
        assert os.path.isdir(local.path_for(KEY))


class TestMemoryStore:
    def test_put_copies_the_data(self):
        memory = MemoryStore()
        data = bytearray(b"original")
        memory.put(KEY, data)
        data[:] = b"changed!"
        assert memory.get(KEY) == b"original"
        assert type(memory.get(KEY)) is bytes

    def test_read_only_at_construction(self):
        memory = MemoryStore(writable=False)
        assert memory.writable is False
        assert memory.put(KEY, b"x") is False
        assert memory.entries == {}

    def test_close_empties(self):
        memory = MemoryStore()
        memory.put(KEY, b"x")
        memory.close()
        assert memory.get(KEY) is None
        assert list(memory.iterate()) == []

    def test_entries_are_visible(self):
        memory = MemoryStore()
        memory.put(KEY, b"x")
        assert memory.entries == {KEY: b"x"}
