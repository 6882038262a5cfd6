"""Hit and miss counters: counted in memory by the engine, appended to the stats file at exit.

Each process that did any work appends one line to ``<store>/stats``::

    pycache-stats-v1 hits=12 misses=3 compiles=2 miss_new=3

The reader sums every line it understands and skips the rest, so a torn or
foreign line costs a few counts, never an error. Appenders and the compactor
serialise on a POSIX record lock (``os.lockf``, so that exiting processes need
not import ``fcntl``); an appender that finds the file replaced under it
retries on the new one. Record locks are dropped when the process closes *any*
descriptor of the file, so the compactor reads through the locked descriptor.
"""

import os

from . import _debug, _fs

__all__ = ["COUNTERS", "append", "decode_lines", "encode_line", "read_totals", "reset"]

#: Every counter, in display order.
COUNTERS = (
    "hits",  # served from the store
    "hits_by_stat",  # ... trusted from the path index (one stat, no hashing)
    "hits_by_content",  # ... after hashing the source (new path, racy or changed)
    "misses",  # the store had no usable entry
    "miss_new",  # ... a source path PyCache had not seen, with new content
    "miss_changed",  # ... a known path whose content changed
    "miss_missing",  # ... the index named an entry that is gone
    "miss_corrupt",  # ... the entry failed its checks (removed and rebuilt)
    "miss_unsigned",  # ... unsigned or wrongly signed while PYCACHE_KEY is set (rebuilt)
    "intree_pyc",  # misses served from a matching hash-based __pycache__ pyc
    "compiles",  # misses compiled from source
    "store_writes",  # entries written
    "store_write_errors",  # entries that could not be written
    "hits_remote",  # hits served by a remote tier (checked, then copied locally)
    "hits_remote_bundle",  # ... served from the program's bundle, fetched in a few requests
    "remote_backfills",  # ... copied into the local store (by a helper process after exit)
    "remote_backfill_drops",  # ... not copied: over the in-memory limit, or no time left
    "remote_bundles_fetched",  # program bundles fetched from a remote
    "remote_bundle_writes",  # program bundles uploaded at exit (once per machine and set)
    "remote_bundle_write_errors",  # ... not uploaded: refused, timed out or out of time
    "remote_writes",  # entries written to a read-write remote
    "remote_write_errors",  # ... refused by the remote
    "remote_write_drops",  # ... dropped: queue full, or still queued at exit
    "remote_errors",  # remotes given up for the rest of a process after raising
)

_PREFIX = "pycache-stats-v1"
_COMPACT_AT = 256 * 1024


def encode_line(counts: "dict[str, int]") -> bytes:
    """Return the stats-file line for ``counts`` (zero counters omitted)."""
    fields = " ".join(f"{name}={value}" for name, value in sorted(counts.items()) if value)
    return f"{_PREFIX} {fields}\n".encode()


def decode_lines(text: bytes) -> "dict[str, int]":
    """Sum the counters of every well-formed line in ``text``; skip the rest."""
    totals: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if not parts or parts[0] != _PREFIX.encode():
            continue
        parsed: dict[str, int] = {}
        for part in parts[1:]:
            name, sep, value = part.partition(b"=")
            if not sep or not value.isdigit() or len(value) > 18:
                break
            parsed[name.decode("ascii", "replace")] = int(value)
        else:
            for counter, count in parsed.items():
                totals[counter] = totals.get(counter, 0) + count
    return totals


def _locked_open(path: str) -> int:
    """Open ``path`` for appending and lock it; retry if it was replaced meanwhile."""
    for _ in range(5):
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            os.lockf(fd, os.F_LOCK, 0)
        except BaseException:
            os.close(fd)
            raise
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)
    raise OSError("stats file keeps being replaced")


def append(path: str, counts: "dict[str, int]") -> None:
    """Add ``counts`` to the stats file at ``path``; compact it when it grows.

    Raises ``OSError`` if the file cannot be written.
    """
    if not any(counts.values()):
        return
    try:
        fd = _locked_open(path)
    except FileNotFoundError:
        _fs.makedirs_private(os.path.dirname(path))
        fd = _locked_open(path)
    try:
        os.write(fd, encode_line(counts))
        size = os.fstat(fd).st_size
        if size > _COMPACT_AT:
            _fs.write_atomic(path, encode_line(decode_lines(os.pread(fd, size, 0))))
    finally:
        os.close(fd)


def read_totals(path: str) -> "dict[str, int]":
    """Return the summed counters in the stats file, every counter present."""
    try:
        totals = decode_lines(_fs.read_file(path))
    except FileNotFoundError:
        totals = {}
    return {name: totals.get(name, 0) for name in COUNTERS}


def reset(path: str) -> None:
    """Set every counter to zero. Raises ``OSError`` if the file cannot be replaced."""
    try:
        fd = _locked_open(path)
    except FileNotFoundError:
        return
    try:
        _fs.write_atomic(path, b"")
    finally:
        os.close(fd)
    _debug.trace("stats reset at %s", path)
