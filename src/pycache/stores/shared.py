"""A remote store in a shared directory (``file:///path``), e.g. an NFS or SMB mount.

Same layout as ``LocalStore`` (``entries/ab/cdef...``), but written by many
users and hosts: files are created 0644 and directories 0755, and there is no
ownership check. Its entries are trusted like any remote's: with
``PYCACHE_KEY`` set every entry must carry a valid HMAC (checked by the
engine before use or backfill); without a key, whoever can write the
directory can plant code. Writers create a temp file named by host, pid and
thread in the entry's own directory, then rename it over the entry: a rename
within one directory is atomic on local file systems and on NFS, so readers
see a whole old entry or a whole new one.
"""

import os

from .. import _debug, _fs
from .local import iterate_entries

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterator

__all__ = ["SharedDirStore"]


def _host_name() -> str:
    try:
        return os.uname().nodename  # cheaper to reach at start-up than socket.gethostname
    except AttributeError:  # Windows
        return os.environ.get("COMPUTERNAME", "")


class SharedDirStore:
    """A ``Store`` in a directory shared between hosts. ``get`` and ``put`` never raise."""

    def __init__(self, root: str, *, writable: bool = True) -> None:
        self.root = root
        self.entries_dir = os.path.join(root, "entries")
        self.writable = writable
        self._host = _host_name().replace(os.sep, "_") or "host"

    def path_for(self, key: str) -> str:
        """Return the file that holds ``key``."""
        return os.path.join(self.entries_dir, key[:2], key[2:])

    def get(self, key: str) -> "bytes | None":
        try:
            with open(self.path_for(key), "rb") as file:
                return file.read()
        except OSError:  # absent, or a mount that went away: a miss
            return None

    def put(self, key: str, data: bytes) -> bool:
        if not self.writable:
            return False
        path = self.path_for(key)
        try:
            os.makedirs(os.path.dirname(path), 0o755, exist_ok=True)
            _fs.write_atomic(path, data, 0o644, tag=self._host + ".")
            return True
        except OSError as exc:
            _debug.trace("cannot write shared entry %s: %s", key, exc)
            return False

    def contains(self, key: str) -> bool:
        """Say whether ``key`` is present (cheap: one stat)."""
        return os.path.isfile(self.path_for(key))

    def delete(self, key: str) -> None:
        try:
            os.unlink(self.path_for(key))
        except OSError:
            pass

    def iterate(self) -> "Iterator[str]":
        try:
            yield from iterate_entries(self.entries_dir)
        except OSError as exc:  # an unreadable mount: nothing to list
            _debug.trace("cannot list %s: %s", self.entries_dir, exc)

    def probe(self) -> bool:
        """Say whether the directory answers."""
        return os.path.isdir(self.root)

    def close(self) -> None:
        pass
