"""Keeping the store within its size: least-recently-used eviction, as ccache does.

The policy is a pure function (``plan``): given every entry's size and the time
it was last used, drop what is older than ``max_age``, then, if the store is
still over ``max_size``, the least recently used entries until it is down to
``LOW_WATER`` of the limit, so that a store at its limit is not trimmed again
by every process that adds one entry.

Recency costs the import path nothing: an entry's last use is the later of its
``mtime`` (written) and ``atime`` (read). Linux's default ``relatime`` mount
option updates ``atime`` on the first read after a write and then at most once
a day, which is all the precision a day-scale LRU needs; on a ``noatime``
mount the order falls back to write time (first in, first out).

Eviction is ``unlink``: a process that has the entry open keeps reading it,
one that opens it afterwards gets a miss, and nobody sees half an entry, since
entries are only ever created whole (``_fs.write_atomic``).

``collect_if_due`` is what runs automatically, at the exit of a process that
wrote entries (never inside an import): it adds what the process wrote to an
estimate kept in ``<store>/gc-state`` and walks the store only when the
estimate passes the limit, under a lock that other collectors skip.
"""

import os
import time

from . import _debug, _fs
from .backfill import SPOOL_DIR
from .stores.local import LocalStore

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterable

# No typing, dataclasses or __future__ at run time: this module is loaded at
# the exit of ordinary Python processes that wrote entries.

__all__ = [
    "LOW_WATER",
    "STALE_TEMP_SECONDS",
    "Entry",
    "Outcome",
    "collect",
    "collect_if_due",
    "plan",
    "scan",
]

#: After trimming for size, the store holds at most this fraction of the limit.
LOW_WATER = 0.9
#: Temp files older than this were left by a killed writer.
STALE_TEMP_SECONDS = 3600
_STATE = "gc-state"
_LOCK = "gc.lock"


class Entry:
    """One store entry: its key, its size and when it was last used (seconds)."""

    __slots__ = ("key", "last_used", "size")

    def __init__(self, key: str, size: int, last_used: float) -> None:
        self.key = key
        self.size = size
        self.last_used = last_used

    def __repr__(self) -> str:
        return f"Entry({self.key!r}, {self.size}, {self.last_used})"


class Outcome:
    """What a collection found and did."""

    __slots__ = (
        "bytes_before",
        "entries_before",
        "errors",
        "evicted",
        "freed",
        "temp_files_removed",
    )

    def __init__(
        self,
        entries_before: int,
        bytes_before: int,
        evicted: int,
        freed: int,
        temp_files_removed: int,
        errors: int,
    ) -> None:
        self.entries_before = entries_before
        self.bytes_before = bytes_before
        self.evicted = evicted
        self.freed = freed
        self.temp_files_removed = temp_files_removed
        self.errors = errors

    def as_json(self) -> "dict[str, int]":
        return {
            "entries_before": self.entries_before,
            "bytes_before": self.bytes_before,
            "evicted": self.evicted,
            "freed": self.freed,
            "entries_after": self.entries_after,
            "bytes_after": self.bytes_after,
            "temp_files_removed": self.temp_files_removed,
            "errors": self.errors,
        }

    @property
    def entries_after(self) -> int:
        return self.entries_before - self.evicted

    @property
    def bytes_after(self) -> int:
        return self.bytes_before - self.freed


def plan(
    entries: "Iterable[Entry]", *, max_size: "int | None", max_age: "float | None", now: float
) -> "list[Entry]":
    """Return the entries to evict, oldest use first. Pure."""
    ordered = sorted(entries, key=lambda entry: (entry.last_used, entry.key))
    victims: list[Entry] = []
    keep: list[Entry] = []
    for entry in ordered:
        if max_age is not None and now - entry.last_used > max_age:
            victims.append(entry)
        else:
            keep.append(entry)
    if max_size is not None:
        total = sum(entry.size for entry in keep)
        if total > max_size:
            target = int(max_size * LOW_WATER)
            for entry in keep:
                if total <= target:
                    break
                victims.append(entry)
                total -= entry.size
    return victims


def scan(store: LocalStore) -> "list[Entry]":
    """Return every entry of ``store`` with its size and last use."""
    found = []
    for key in store.iterate():
        try:
            st = os.lstat(store.path_for(key))
        except OSError:  # removed meanwhile
            continue
        found.append(Entry(key, st.st_size, max(st.st_atime, st.st_mtime)))
    return found


def _remove_stale_temp_files(store: LocalStore, now: float, dry_run: bool) -> int:
    removed = 0
    # Temp files sit in the fan-out directories of entries/ and index/, and
    # backfill spool files (left by a killed helper) directly in spool/.
    directories = [os.path.join(store.root, SPOOL_DIR)]
    for parent in (store.entries_dir, os.path.join(store.root, "index")):
        try:
            directories.extend(os.path.join(parent, fan) for fan in os.listdir(parent))
        except OSError:
            continue
    for directory in directories:
        try:
            names = [name for name in os.listdir(directory) if name.endswith(".tmp")]
        except OSError:
            continue
        for name in names:
            path = os.path.join(directory, name)
            try:
                if now - os.lstat(path).st_mtime > STALE_TEMP_SECONDS:
                    if not dry_run:
                        os.unlink(path)
                    removed += 1
            except OSError:
                continue
    return removed


def collect(
    store: LocalStore,
    *,
    max_size: "int | None",
    max_age: "float | None",
    dry_run: bool = False,
    now: "float | None" = None,
) -> Outcome:
    """Evict what ``plan`` picks from ``store`` and remove stale temp files."""
    now = time.time() if now is None else now
    entries = scan(store)
    victims = plan(entries, max_size=max_size, max_age=max_age, now=now)
    evicted = freed = errors = 0
    for victim in victims:
        if not dry_run:
            try:
                os.unlink(store.path_for(victim.key))
            except FileNotFoundError:
                continue  # another collector got there first
            except OSError as exc:
                _debug.trace("cannot evict %s: %s", victim.key, exc)
                errors += 1
                continue
        evicted += 1
        freed += victim.size
    temp_files = _remove_stale_temp_files(store, now, dry_run)
    outcome = Outcome(
        len(entries), sum(entry.size for entry in entries), evicted, freed, temp_files, errors
    )
    if not dry_run:
        _write_state(store.root, outcome.bytes_after)
    return outcome


def _read_state(root: str) -> int:
    try:
        return int(_fs.read_owned(os.path.join(root, _STATE)).split()[0])
    except (OSError, ValueError, IndexError):
        return -1  # unknown: measure


def _write_state(root: str, estimated_size: int) -> None:
    try:
        _fs.write_atomic(os.path.join(root, _STATE), f"{estimated_size}\n".encode())
    except OSError as exc:
        _debug.trace("cannot write %s: %s", _STATE, exc)


def collect_if_due(root: str, max_size: int, written: int) -> "Outcome | None":
    """Add ``written`` bytes to the store's size estimate; collect if over ``max_size``.

    Returns the outcome of a collection, or ``None`` when none was due (or
    another process is collecting). Raises ``OSError`` only for the lock file.
    """
    estimate = _read_state(root)
    if estimate >= 0 and estimate + written <= max_size:
        _write_state(root, estimate + written)  # a lost update only delays a collection
        return None
    fd = os.open(os.path.join(root, _LOCK), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            os.lockf(fd, os.F_TLOCK, 0)
        except OSError:  # another process is collecting: leave it to them
            return None
        store = LocalStore(root)
        if not store.trusted:
            return None
        return collect(store, max_size=max_size, max_age=None)
    finally:
        os.close(fd)
