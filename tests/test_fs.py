"""Unit tests for pycache._fs: atomic writes, private directories, whole-file reads."""

from __future__ import annotations

import _thread
import errno
import os
import stat
import threading

import pytest

from pycache._fs import GIVE_UP_ERRNOS, makedirs_private, read_fd, read_file, write_atomic


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def mode_of(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def leftovers(directory) -> list:
    return sorted(
        os.path.join(dirpath, name)
        for dirpath, _, names in os.walk(directory)
        for name in names
        if name.endswith(".tmp")
    )


def temp_name(path: str) -> str:
    # The name write_atomic uses in this process and thread.
    return f"{path}.{os.getpid()}.{_thread.get_ident()}.tmp"


class TestWriteAtomic:
    def test_writes_content(self, tmp_path):
        path = tmp_path / "file"
        write_atomic(str(path), b"content")
        assert path.read_bytes() == b"content"

    def test_accepts_any_bytes_like(self, tmp_path):
        path = tmp_path / "file"
        write_atomic(str(path), memoryview(b"abcdef")[2:])
        assert path.read_bytes() == b"cdef"

    def test_empty(self, tmp_path):
        path = tmp_path / "file"
        write_atomic(str(path), b"")
        assert path.read_bytes() == b""

    def test_file_is_private(self, tmp_path, umask_022):
        path = tmp_path / "file"
        write_atomic(str(path), b"x")
        assert mode_of(path) == 0o600

    def test_explicit_mode(self, tmp_path, umask_022):
        path = tmp_path / "CACHEDIR.TAG"
        write_atomic(str(path), b"x", 0o644)
        assert mode_of(path) == 0o644

    def test_replaces_existing_file_and_its_mode(self, tmp_path, umask_022):
        path = tmp_path / "file"
        path.write_bytes(b"old content that is longer")
        os.chmod(path, 0o644)
        write_atomic(str(path), b"new")
        assert path.read_bytes() == b"new"
        assert mode_of(path) == 0o600

    def test_creates_missing_directories_private(self, tmp_path, umask_022):
        path = tmp_path / "a" / "b" / "c" / "file"
        write_atomic(str(path), b"x")
        assert path.read_bytes() == b"x"
        for directory in (tmp_path / "a", tmp_path / "a" / "b", tmp_path / "a" / "b" / "c"):
            assert mode_of(directory) == 0o700, directory

    def test_short_writes_are_continued(self, tmp_path, monkeypatch):
        real_write = os.write
        sizes = []

        def write_three(fd, data):
            sizes.append(len(data))
            return real_write(fd, bytes(data[:3]))

        monkeypatch.setattr(os, "write", write_three)
        data = bytes(range(256)) * 4
        write_atomic(str(tmp_path / "file"), data)
        monkeypatch.undo()
        assert (tmp_path / "file").read_bytes() == data
        assert len(sizes) == -(-len(data) // 3)

    def test_failed_replace_leaves_old_file_and_no_temp(self, tmp_path, monkeypatch):
        path = tmp_path / "file"
        path.write_bytes(b"old")

        def full_disk(source, destination):
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(os, "replace", full_disk)
        with pytest.raises(OSError) as caught:
            write_atomic(str(path), b"new")
        assert caught.value.errno == errno.ENOSPC
        assert path.read_bytes() == b"old"
        assert os.listdir(tmp_path) == ["file"]

    def test_failed_write_leaves_no_temp(self, tmp_path, monkeypatch):
        def full_disk(fd, data):
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(os, "write", full_disk)
        with pytest.raises(OSError) as caught:
            write_atomic(str(tmp_path / "sub" / "file"), b"new")
        monkeypatch.undo()
        assert caught.value.errno == errno.ENOSPC
        assert leftovers(tmp_path) == []
        assert not (tmp_path / "sub" / "file").exists()

    def test_interrupt_leaves_no_temp(self, tmp_path, monkeypatch):
        def interrupted(source, destination):
            raise KeyboardInterrupt

        monkeypatch.setattr(os, "replace", interrupted)
        with pytest.raises(KeyboardInterrupt):
            write_atomic(str(tmp_path / "file"), b"new")
        assert os.listdir(tmp_path) == []

    def test_unwritable_location_raises(self, tmp_path):
        blocker = tmp_path / "blocker"
        blocker.write_bytes(b"a file, not a directory")
        with pytest.raises(OSError) as caught:
            write_atomic(str(blocker / "sub" / "file"), b"x")
        assert caught.value.errno in GIVE_UP_ERRNOS
        assert blocker.read_bytes() == b"a file, not a directory"

    def test_stale_temp_file_is_replaced(self, tmp_path):
        path = tmp_path / "file"
        stale = temp_name(str(path))
        with open(stale, "wb") as file:
            file.write(b"left by a killed process")
        write_atomic(str(path), b"new")
        assert path.read_bytes() == b"new"
        assert os.listdir(tmp_path) == ["file"]

    def test_symlink_at_temp_path_is_not_followed(self, tmp_path):
        target = tmp_path / "precious"
        target.write_bytes(b"do not touch")
        os.chmod(target, 0o644)
        path = tmp_path / "store" / "file"
        path.parent.mkdir()
        os.symlink(target, temp_name(str(path)))
        write_atomic(str(path), b"new")
        assert target.read_bytes() == b"do not touch"
        assert mode_of(target) == 0o644
        assert path.read_bytes() == b"new"
        assert not path.is_symlink()
        assert os.listdir(path.parent) == ["file"]

    def test_dangling_symlink_at_temp_path_creates_nothing(self, tmp_path):
        target = tmp_path / "elsewhere" / "planted"
        target.parent.mkdir()
        path = tmp_path / "file"
        os.symlink(target, temp_name(str(path)))
        write_atomic(str(path), b"new")
        assert not os.path.lexists(target)
        assert path.read_bytes() == b"new"
        assert not path.is_symlink()

    def test_temp_names_differ_per_thread(self, tmp_path, monkeypatch):
        real_open = os.open
        names = set()
        lock = threading.Lock()

        def recording_open(path, *args, **kwargs):
            with lock:
                names.add(path)
            return real_open(path, *args, **kwargs)

        monkeypatch.setattr(os, "open", recording_open)
        target = str(tmp_path / "file")
        barrier = threading.Barrier(4)  # all alive at once, so no thread id is reused

        def writer():
            barrier.wait()
            write_atomic(target, b"x")

        threads = [threading.Thread(target=writer) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        monkeypatch.undo()
        assert len(names) == 4
        assert all(name.startswith(target + f".{os.getpid()}.") for name in names)

    def test_concurrent_threads_same_path(self, tmp_path):
        path = str(tmp_path / "entries" / "ab" / "cdef")
        writers, rounds = 8, 25
        values = {bytes([n]) * (1000 + n) for n in range(writers)}
        barrier = threading.Barrier(writers)
        errors = []

        def writer(value):
            try:
                barrier.wait()
                for _ in range(rounds):
                    write_atomic(path, value)
                    with open(path, "rb") as file:
                        seen = file.read()
                    assert seen in values  # never a torn or mixed file
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=writer, args=(value,)) for value in values]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        with open(path, "rb") as file:
            assert file.read() in values
        assert leftovers(tmp_path) == []


class TestMakedirsPrivate:
    def test_creates_every_missing_level_0700(self, tmp_path, umask_022):
        path = tmp_path / "a" / "b" / "c"
        makedirs_private(str(path))
        assert path.is_dir()
        for directory in (tmp_path / "a", tmp_path / "a" / "b", path):
            assert mode_of(directory) == 0o700, directory

    def test_leaves_existing_directories_alone(self, tmp_path, umask_022):
        existing = tmp_path / "shared"
        existing.mkdir()
        os.chmod(existing, 0o755)
        makedirs_private(str(existing / "mine"))
        assert mode_of(existing) == 0o755
        assert mode_of(existing / "mine") == 0o700

    def test_existing_path_is_fine(self, tmp_path):
        makedirs_private(str(tmp_path))
        makedirs_private(str(tmp_path))
        assert tmp_path.is_dir()

    @pytest.mark.parametrize("below", ["", "sub", "sub/deeper"])
    def test_file_in_the_way_is_not_a_directory_error(self, tmp_path, below):
        # Callers give up writing on ENOTDIR (GIVE_UP_ERRNOS); EEXIST would make
        # them retry on every write.
        blocker = tmp_path / "blocker"
        blocker.write_bytes(b"x")
        with pytest.raises(OSError) as caught:
            makedirs_private(os.path.join(str(blocker), below) if below else str(blocker))
        assert caught.value.errno == errno.ENOTDIR
        assert caught.value.errno in GIVE_UP_ERRNOS

    def test_lost_race_with_another_creator(self, tmp_path, monkeypatch):
        real_mkdir = os.mkdir
        target = tmp_path / "racy"

        def mkdir_after_someone_else(path, mode=0o777):
            if str(path) == str(target):
                real_mkdir(path, mode)  # the other process wins
            real_mkdir(path, mode)

        monkeypatch.setattr(os, "mkdir", mkdir_after_someone_else)
        makedirs_private(str(target))
        assert target.is_dir()


class TestReadFile:
    def test_reads_whole_file(self, tmp_path):
        path = tmp_path / "file"
        data = os.urandom(200_000)
        path.write_bytes(data)
        assert read_file(str(path)) == data

    def test_empty_file(self, tmp_path):
        path = tmp_path / "file"
        path.write_bytes(b"")
        assert read_file(str(path)) == b""

    def test_missing_file_raises(self, tmp_path):
        with pytest.raises(FileNotFoundError):
            read_file(str(tmp_path / "missing"))

    @pytest.mark.parametrize("expected_size", [0, 1, 99, 100, 101, 70_000, 1_000_000])
    def test_read_fd_whatever_the_size_hint(self, tmp_path, expected_size):
        # The file may have grown or shrunk since the fstat that gave the hint.
        path = tmp_path / "file"
        data = os.urandom(100_000)
        path.write_bytes(data)
        fd = os.open(str(path), os.O_RDONLY)
        try:
            assert read_fd(fd, expected_size) == data
        finally:
            os.close(fd)


class TestGiveUpErrnos:
    def test_permanent_errors(self):
        for name in ("EACCES", "EPERM", "EROFS", "ENOSPC", "ENOTDIR", "EDQUOT"):
            if hasattr(errno, name):
                assert getattr(errno, name) in GIVE_UP_ERRNOS, name

    def test_transient_errors_are_retried(self):
        for name in ("EIO", "EINTR", "EEXIST", "ENOENT", "EAGAIN"):
            assert getattr(errno, name) not in GIVE_UP_ERRNOS, name
