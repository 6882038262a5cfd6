"""File-system primitives shared by the local store, the index and the stats file.

Writes are atomic: a temp file unique per process and thread, created with
``O_EXCL | O_NOFOLLOW`` in the target's directory, then ``os.replace``. Readers
therefore see either the old file or the whole new one. Nothing is fsynced: a
file torn by a power cut fails its checksum and is a miss.
"""

import _thread
import errno
import os

__all__ = [
    "GIVE_UP_ERRNOS",
    "NotOwnedError",
    "makedirs_private",
    "read_fd",
    "read_file",
    "read_owned",
    "untrusted_reason",
    "write_atomic",
]

# Write errors that will not go away by retrying within this process: after one
# of them a writer stops trying and PyCache carries on read-only.
GIVE_UP_ERRNOS = frozenset(
    getattr(errno, name)
    for name in ("EACCES", "EPERM", "EROFS", "ENOSPC", "EDQUOT", "ENOTDIR")
    if hasattr(errno, name)
)

_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_CLOEXEC | _O_NOFOLLOW
_READ_FLAGS = os.O_RDONLY | _O_CLOEXEC
_EUID = os.geteuid() if hasattr(os, "geteuid") else 0


class NotOwnedError(OSError):
    """A store file that another user owns or can write: it must not be trusted."""


def untrusted_reason(st: "os.stat_result") -> "str | None":
    """Say why a store file or directory with stat ``st`` must not be trusted, or ``None``.

    Whatever the store serves gets executed, so it must be ours alone: owned by
    this process's effective user (or by root, who can replace our code anyway,
    e.g. a store baked into an image) and writable by nobody else (a
    world-writable cache is the classic poisoning vector, e.g. one made under
    ``umask(0)``).
    """
    if st.st_uid != _EUID and st.st_uid != 0:
        return f"owned by uid {st.st_uid}, not by you (uid {_EUID}) or root"
    if st.st_mode & 0o022:
        return f"writable by {'others' if st.st_mode & 0o002 else 'its group'}"
    return None


def makedirs_private(path: str) -> None:
    """Create ``path`` and any missing parents with mode 0700.

    ``os.makedirs`` applies its mode to the leaf only; every directory we
    create must be private. Raises ``OSError`` if a directory cannot be made.
    """
    missing = []
    head = path
    while head and not os.path.isdir(head):
        missing.append(head)
        parent = os.path.dirname(head)
        if parent == head:
            break
        head = parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, 0o700)
        except FileExistsError:
            if not os.path.isdir(directory):  # a file in the way: ENOTDIR, so writers give up
                raise NotADirectoryError(errno.ENOTDIR, "Not a directory", directory) from None


def read_file(path: str) -> bytes:
    """Return the whole content of ``path`` with as few system calls as we can."""
    fd = os.open(path, _READ_FLAGS)
    try:
        return read_fd(fd, os.fstat(fd).st_size)
    finally:
        os.close(fd)


def read_owned(path: str) -> bytes:
    """Like ``read_file``, but raise ``NotOwnedError`` for a file we must not trust.

    The check costs nothing extra: it reads the ``fstat`` that sizes the read.
    """
    fd = os.open(path, _READ_FLAGS)
    try:
        st = os.fstat(fd)
        reason = untrusted_reason(st)
        if reason is not None:
            raise NotOwnedError(errno.EPERM, reason, path)
        size = st.st_size
        data = os.read(fd, size + 1)  # read_fd's usual case, inlined for the warm path
        return data if len(data) <= size else read_fd_rest(fd, data)
    finally:
        os.close(fd)


def read_fd(fd: int, size: int) -> bytes:
    """Read ``fd`` to its end, expecting about ``size`` bytes."""
    data = os.read(fd, size + 1)  # one byte more: a short read proves we reached the end
    if len(data) <= size:
        return data
    return read_fd_rest(fd, data)


def read_fd_rest(fd: int, data: bytes) -> bytes:
    """Read the rest of ``fd`` (which grew while we read it) after ``data``."""
    chunks = [data]
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def write_atomic(path: str, data: bytes, mode: int = 0o600, *, tag: str = "") -> None:
    """Replace ``path`` with ``data`` atomically; create its directory if needed.

    The temp file is named by pid and thread, and by ``tag`` (a host name, for
    directories several hosts write).

    Raises ``OSError`` on failure (full disk, read-only store, permission
    denied); the temp file is removed before the error propagates.
    """
    tmp = f"{path}.{tag}{os.getpid()}.{_thread.get_ident()}.tmp"
    try:
        fd = os.open(tmp, _CREATE_FLAGS, mode)
    except FileNotFoundError:
        makedirs_private(os.path.dirname(path))
        fd = os.open(tmp, _CREATE_FLAGS, mode)
    except FileExistsError:  # left behind by a killed process that had our pid and thread id
        os.unlink(tmp)
        fd = os.open(tmp, _CREATE_FLAGS, mode)
    try:
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
