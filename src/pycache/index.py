"""The path index: source path -> (stat signature, key), and the racy rule.

A warm import costs one ``stat`` of the source and a dictionary lookup: if the
source's stat signature (device, inode, size, ``mtime_ns``, ``ctime_ns``) equals
the recorded one, the recorded key is used without reading or hashing the
source.

Racy rule (after git's index): a signature recorded while the source's mtime or
ctime lay within ``GRANULARITY_NS`` of the recording clock proves nothing, since
an edit in that same tick could leave every field unchanged. Such a record is
not trusted on stat alone; the source is rehashed on its next use and the
record renewed. Because ``ctime`` cannot be set by user space, ``touch -d``,
rename-replace and checkouts all change the signature.

Records are grouped in one file per source directory *and compile context*,
read once per process on first use and rewritten (merged with what is on disk)
at exit. A lost update only costs a rehash, never a wrong answer. The compile
context (``keys.compile_context``: magic number, cache tag, ``-O`` level, ...)
is part of the file's name and content because the key a record names is only
right for the context it was computed in: a record made by ``python -O`` must
never send a plain ``python`` (or another interpreter version) to ``-O`` code.

Index file layout::

    0   magic     b"PYCI"
    4   version   uint8 + 3 zero bytes
    8   checksum  8 bytes, SipHash-1-3 of the payload
    16  payload   marshal.dumps((directory, context, {name: record}))

where ``record`` is ``(dev, ino, size, mtime_ns, ctime_ns, recorded_ns, key)``.
"""

import _imp
import marshal
import os

from . import _debug, _fs
from ._entry import KEY_SIZE

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Dict, Tuple

    from .exceptions import IndexFormatError

    Record = Tuple[int, int, int, int, int, int, bytes]
    Records = Dict[str, Record]

__all__ = [
    "GRANULARITY_NS",
    "PathIndex",
    "decode_index",
    "decode_index_any",
    "encode_index",
    "make_record",
    "valid_record",
    "trusted_key",
]

# Two seconds covers FAT's 2 s and HFS+'s 1 s timestamps, the kernel's coarse
# clock tick, and small clock offsets between an NFS server and its client.
GRANULARITY_NS = 2_000_000_000

_MAGIC = b"PYCI"
_VERSION = b"\x02\x00\x00\x00"  # 2: the compile context joined the payload
_HEADER_SIZE = 16
_CHECKSUM_SEED = 0x50594349  # "PYCI"
_DIRECTORY_SEED = 0x50594344  # "PYCD"
_SEP = os.sep


def make_record(st: "os.stat_result", recorded_ns: int, key: bytes) -> "Record":
    """Return the index record for a source with stat ``st`` and key ``key``.

    ``recorded_ns`` must be a wall-clock time taken *before* ``st`` was read.
    """
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, recorded_ns, key)


def trusted_key(record: "Record", st: "os.stat_result") -> "bytes | None":
    """Return the recorded key if ``st`` proves the source unchanged, else ``None``.

    ``None`` means: the signature differs, or the record is racy and the source
    must be rehashed.
    """
    if (
        record[3] == st.st_mtime_ns
        and record[4] == st.st_ctime_ns
        and record[2] == st.st_size
        and record[1] == st.st_ino
        and record[0] == st.st_dev
        and max(record[3], record[4]) + GRANULARITY_NS <= record[5]
    ):
        return record[6]
    return None


def encode_index(directory: str, records: "Records", context: bytes = b"") -> bytes:
    """Return the bytes of the index file for ``directory`` in compile ``context``."""
    payload = marshal.dumps((directory, context, records))
    return _MAGIC + _VERSION + _imp.source_hash(_CHECKSUM_SEED, payload) + payload


def valid_record(record: object) -> bool:
    """Say whether ``record`` has the shape of an index record."""
    # Unrolled: this runs on every warm import.
    return (
        type(record) is tuple
        and len(record) == 7
        and type(record[0]) is int
        and type(record[1]) is int
        and type(record[2]) is int
        and type(record[3]) is int
        and type(record[4]) is int
        and type(record[5]) is int
        and type(record[6]) is bytes
        and len(record[6]) == KEY_SIZE
    )


def decode_index(directory: str, data: bytes, context: bytes = b"") -> "Records":
    """Return the records of the index file ``data`` for ``directory`` in ``context``.

    Raises ``IndexFormatError`` if the file is truncated, fails its checksum,
    was written for another directory or compile context, or is not a
    mapping. Individual records are checked when they are looked up
    (``valid_record``), so that loading a large directory's index costs no
    per-record work.
    """
    stored_directory, stored_context, records = decode_index_any(data)
    if stored_directory != directory:
        raise _error("index belongs to another directory")
    if stored_context != context:
        raise _error("index belongs to another compile context")
    return records


def decode_index_any(data: bytes) -> "tuple[object, object, Records]":
    """Return ``(directory, context, records)`` of the index file ``data``, whoever it is for.

    Raises ``IndexFormatError`` as ``decode_index`` does (for ``pycache verify --store``).
    """
    if len(data) < _HEADER_SIZE:
        raise _error(f"truncated index ({len(data)} bytes)")
    if data[:4] != _MAGIC or data[4:8] != _VERSION:
        raise _error("not a PyCache index file of this version")
    payload = data[_HEADER_SIZE:]
    if data[8:16] != _imp.source_hash(_CHECKSUM_SEED, payload):
        raise _error("index checksum mismatch")
    try:
        stored_directory, stored_context, records = marshal.loads(payload)
    except Exception as exc:
        raise _error(f"bad index payload: {exc}") from exc
    if type(records) is not dict:
        raise _error("malformed index records")
    return stored_directory, stored_context, records


def _error(message: str) -> "IndexFormatError":
    # Imported on failure only: the warm path never needs the exceptions module.
    from .exceptions import IndexFormatError

    return IndexFormatError(message)


def _valid_records(records: "Records") -> "Records":
    """The records of ``records`` that have a name and the shape of a record."""
    return {
        name: record
        for name, record in records.items()
        if type(name) is str and valid_record(record)
    }


def _split(path: str) -> "tuple[str, str]":
    if path[:1] != _SEP:  # os.path.isabs, without a call on the warm path
        path = os.path.abspath(path)
    directory, _, name = path.rpartition(_SEP)
    return directory or _SEP, name


class PathIndex:
    """The on-disk path index under ``root`` for one compile ``context``, cached in memory.

    ``context`` must be the context the recorded keys were computed in
    (``keys.compile_context()``). Reads never raise: an unreadable or damaged
    index file is an empty one. An empty ``root`` keeps the index in memory.
    """

    def __init__(self, root: str, *, context: bytes = b"", writable: bool = True) -> None:
        self.root = root
        self.context = context
        self._name_prefix = context + b"\0"
        self.writable = writable
        self._loaded: dict[str, Records] = {}
        self._pending: dict[str, Records] = {}

    def file_for(self, directory: str) -> str:
        """Return the index file that holds the records of ``directory``."""
        identity = self._name_prefix + os.fsencode(directory)
        name = _imp.source_hash(_DIRECTORY_SEED, identity).hex()
        return os.path.join(self.root, name[:2], name[2:])

    def _read(self, directory: str) -> "Records":
        if not self.root:  # an in-memory index (no store): nothing on disk to read
            return {}
        path = self.file_for(directory)
        try:
            return decode_index(directory, _fs.read_owned(path), self.context)
        except FileNotFoundError:
            return {}
        except _fs.NotOwnedError as exc:
            _debug.warn_once(
                "untrusted-index",
                f"ignoring index file {path}: it is {exc.strerror}; rehashing instead",
            )
            return {}
        except (OSError, ValueError) as exc:  # ValueError: IndexFormatError
            _debug.trace("index %s for %s unusable: %s", path, directory, exc)
            return {}

    def lookup(self, path: str) -> "Record | None":
        """Return the record for the source ``path``, or ``None``."""
        directory, name = _split(path)
        records = self._loaded.get(directory)
        if records is None:
            records = self._loaded[directory] = self._read(directory)
        record = records.get(name)
        if record is None or valid_record(record):
            return record
        return None

    def record(self, path: str, record: "Record") -> None:
        """Remember ``record`` for ``path``; it is written by ``flush``."""
        directory, name = _split(path)
        self._loaded.setdefault(directory, {})[name] = record
        self._pending.setdefault(directory, {})[name] = record

    def flush(self, directories: "Iterable[str] | None" = None) -> int:
        """Write pending records, merged with the files' current content.

        ``directories`` limits the write to those directories' records (the
        others stay pending). Returns the number of index files written. I/O
        errors are traced and the records dropped: they only save rehashing.
        """
        if directories is None:
            pending = self.take_pending()
        else:
            pending = {}
            for directory in directories:
                records = self._pending.pop(directory, None)
                if records is not None:
                    pending[directory] = records
        if not self.writable:
            return 0
        written = 0
        for directory, records in pending.items():
            merged = _valid_records(self._read(directory))
            merged.update(records)
            try:
                data = encode_index(directory, merged, self.context)
                _fs.write_atomic(self.file_for(directory), data)
            except OSError as exc:
                _debug.trace("cannot write index for %s: %s", directory, exc)
                if exc.errno in _fs.GIVE_UP_ERRNOS:
                    self.writable = False
                    break
            else:
                written += 1
        return written

    def forget_pending(self) -> None:
        """Drop unwritten records (a forked child must not write its parent's)."""
        self.take_pending()

    def take_pending(self) -> "dict[str, Records]":
        """Return the unwritten records, by directory, and forget them (another
        process writes them: see ``backfill``)."""
        pending, self._pending = self._pending, {}
        return pending

    def add_pending(self, pending: "dict[str, Records]") -> None:
        """Queue ``take_pending``'s records (valid ones only) to be written by ``flush``."""
        for directory, records in pending.items():
            if type(directory) is not str or type(records) is not dict:
                continue
            valid = _valid_records(records)
            if valid:
                self._pending.setdefault(directory, {}).update(valid)
