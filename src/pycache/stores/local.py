"""The embedded default store: one file per entry in a private directory.

Layout under the store root::

    entries/ab/cdef...   one entry, named by its hex key (first two digits fan out)
    index/               the path index (``pycache.index``)
    stats                counters appended at process exit (``pycache.stats``)
    CACHEDIR.TAG         tells backup tools to skip the store

Directories are created 0700 and entries 0600. Many processes may read and
write at once: writers replace whole files atomically and readers check every
entry's checksum.

Whatever the store serves gets executed, so it is trusted only if it is ours
alone: a store root, or an entry, owned by another user or writable by others
is ignored, with one warning per process (``_fs.untrusted_reason``). An
untrusted root is neither read nor written; an untrusted entry in a trusted
root is a miss, and is replaced by our own.
"""

import os

from .. import _debug, _fs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterator

__all__ = ["LocalStore", "iterate_entries"]

_SEP = os.sep

_CACHEDIR_TAG = (
    b"Signature: 8a477f597d28d172789f06886806bc55\n"
    b"# This file is a cache directory tag created by PyCache.\n"
    b"# For information about cache directory tags see https://bford.info/cachedir/\n"
)


def iterate_entries(entries_dir: str) -> "Iterator[str]":
    """Yield the key of every entry under ``entries_dir`` (``ab/cdef...`` files)."""
    try:
        fans = sorted(os.listdir(entries_dir))
    except (FileNotFoundError, NotADirectoryError):
        return
    for fan in fans:
        if len(fan) != 2:
            continue
        try:
            names = os.listdir(os.path.join(entries_dir, fan))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for name in names:
            if not name.endswith(".tmp"):
                yield fan + name


class LocalStore:
    """A ``Store`` in a local directory. ``get`` and ``put`` never raise."""

    def __init__(self, root: str, *, writable: bool = True) -> None:
        self.root = root
        self.entries_dir = os.path.join(root, "entries")
        self._prefix = self.entries_dir + os.sep
        self.writable = writable
        self._root_ready = False
        self.trusted = self._check_root()

    def path_for(self, key: str) -> str:
        """Return the file that holds ``key``."""
        return f"{self._prefix}{key[:2]}{_SEP}{key[2:]}"  # os.path.join, minus its cost

    def _check_root(self) -> bool:
        try:
            st = os.stat(self.root)
        except OSError:  # absent (we will create it, private) or unreadable (reads fail)
            return True
        reason = _fs.untrusted_reason(st)
        if reason is None:
            return True
        _debug.warn_once(
            "untrusted-store",
            f"not using the store {self.root}: it is {reason}, so it could be used to "
            "plant code; compiling in memory instead",
        )
        self.writable = False
        return False

    def get(self, key: str) -> "bytes | None":
        if not self.trusted:
            return None
        try:
            return _fs.read_owned(self.path_for(key))
        except FileNotFoundError:
            return None
        except _fs.NotOwnedError as exc:
            _debug.warn_once(
                "untrusted-entry",
                f"ignoring store entry {exc.filename}: it is {exc.strerror}; compiling instead",
            )
            return None
        except OSError as exc:
            _debug.trace("cannot read entry %s: %s", key, exc)
            return None

    def put(self, key: str, data: bytes) -> bool:
        if not self.writable:
            return False
        try:
            if not self._root_ready:
                self._prepare_root()
            _fs.write_atomic(self.path_for(key), data)
            return True
        except OSError as exc:
            _debug.trace("cannot write entry %s: %s", key, exc)
            if exc.errno in _fs.GIVE_UP_ERRNOS:
                _debug.trace("store %s is not writable; carrying on without writing", self.root)
                self.writable = False
            return False

    def _prepare_root(self) -> None:
        _fs.makedirs_private(self.entries_dir)
        tag = os.path.join(self.root, "CACHEDIR.TAG")
        if not os.path.exists(tag):
            _fs.write_atomic(tag, _CACHEDIR_TAG, 0o644)
        self._root_ready = True

    def delete(self, key: str) -> None:
        try:
            os.unlink(self.path_for(key))
        except FileNotFoundError:
            pass
        except OSError as exc:
            _debug.trace("cannot delete entry %s: %s", key, exc)

    def iterate(self) -> "Iterator[str]":
        return iterate_entries(self.entries_dir)

    def usage(self) -> "tuple[int, int]":
        """Return ``(entries, bytes)`` currently in the store."""
        count = size = 0
        for key in self.iterate():
            try:
                size += os.stat(self.path_for(key)).st_size
            except OSError:
                continue
            count += 1
        return count, size

    def close(self) -> None:
        pass
