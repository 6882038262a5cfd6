"""Which CPython wrote a pyc: its magic number, and the header layout that goes with it.

Pure data and functions, no I/O. A pyc starts with a 2-byte little-endian
magic number followed by ``b"\\r\\n"``. The numbers below are facts from
CPython's own records: the comment table in ``Lib/importlib/_bootstrap_external.py``
(3.x, where each release series owns a block of numbers) and ``Python/import.c``
(1.5 to 2.7, one number per change). Header layouts:

* up to 3.2: magic, then the source mtime (8 bytes);
* 3.3 to 3.6: magic, mtime, source size (12 bytes; bpo-13645);
* 3.7 and later: magic, flags, then mtime and size or the source hash (16
  bytes; PEP 552).

Legacy ``.pyo`` files (``-O`` before 3.5, PEP 488) share the magic of their version.
"""

from __future__ import annotations

__all__ = ["header_size", "magic_of", "version_of"]

# 1.5 to 2.7: each magic number that a released interpreter wrote.
_EXACT = {
    20121: "1.5",
    50428: "1.6",
    50823: "2.0",
    60202: "2.1",
    60717: "2.2",
    62011: "2.3",
    62021: "2.3",
    62041: "2.4",
    62051: "2.4",
    62061: "2.4",
    62071: "2.5",
    62081: "2.5",
    62091: "2.5",
    62092: "2.5",
    62101: "2.5",
    62111: "2.5",
    62121: "2.5",
    62131: "2.5",
    62151: "2.6",
    62161: "2.6",
    62171: "2.7",
    62181: "2.7",
    62191: "2.7",
    62201: "2.7",
    62211: "2.7",
}

# 3.x: the first number of each series' block (alphas and betas included).
_BLOCKS = (
    (3000, "3.0"),
    (3140, "3.1"),
    (3160, "3.2"),
    (3190, "3.3"),
    (3250, "3.4"),
    (3320, "3.5"),
    (3360, "3.6"),
    (3390, "3.7"),
    (3400, "3.8"),
    (3420, "3.9"),
    (3430, "3.10"),
    (3450, "3.11"),
    (3500, "3.12"),
    (3550, "3.13"),
    (3600, "3.14"),
)
_BLOCKS_END = 3650  # where 3.15's block begins: unknown to this table


def magic_of(data: bytes) -> int | None:
    """Return the magic number at the start of ``data``, or ``None`` if it is not one."""
    if len(data) < 4 or data[2:4] != b"\r\n":
        return None
    return int.from_bytes(data[:2], "little")


def version_of(magic: int) -> str | None:
    """Return the CPython version (``"3.11"``) that writes pycs with ``magic``, or ``None``."""
    if magic in _EXACT:
        return _EXACT[magic]
    if not _BLOCKS[0][0] <= magic < _BLOCKS_END:
        return None
    found = None
    for first, version in _BLOCKS:
        if magic >= first:
            found = version
    return found


def header_size(version: str) -> int:
    """Return the pyc header size of CPython ``version``: 8, 12 or 16 bytes."""
    major, minor = (int(part) for part in version.split("."))
    if (major, minor) >= (3, 7):
        return 16
    if (major, minor) >= (3, 3):
        return 12
    return 8
