"""`pycache verify`: is each pyc of a tree what CPython would load, and is the store sound?

A pyc's verdict (``verdict``, pure: the pyc's bytes and name, the source's
bytes and stat in, a status and a reason out):

``fresh``            CPython would use it as it is.
``stale``            CPython would recompile: the recorded mtime or size, or
                     the source hash, no longer match, or the magic number is
                     another interpreter's.
``stale-on-arrival`` a timestamp pyc compiled from exactly the current source
                     bytes, whose recorded mtime no longer matches because
                     the source's mtime was reset (zip and wheels clamp it to
                     1980, Docker layers, rpm and Nix set it to a fixed value):
                     CPython recompiles it on every start and, on a read-only
                     install, never manages to write a fresh one.
``corrupt``          the header or the payload cannot be read.
``orphaned``         in ``__pycache__`` with no source beside it.
``sourceless``       a legacy pyc with no ``.py``: CPython imports the pyc
                     itself, which is fine (reported, never an error).

``verify_store`` checks every entry and index file of the local store.
"""

from __future__ import annotations

import marshal
import os
from typing import Iterable, NamedTuple

from . import _entry, _format
from .index import decode_index_any
from .pyctree import IN_CACHE, Pyc, find_pycs, optimization_level
from .stores.local import LocalStore

__all__ = [
    "CORRUPT",
    "FRESH",
    "ORPHANED",
    "SOURCELESS",
    "STALE",
    "STALE_ON_ARRIVAL",
    "Report",
    "verdict",
    "verify_paths",
    "verify_store",
]

FRESH, STALE, STALE_ON_ARRIVAL = "fresh", "stale", "stale-on-arrival"
CORRUPT, ORPHANED, SOURCELESS = "corrupt", "orphaned", "sourceless"
#: Verdicts that make `pycache verify` exit with 1.
PROBLEMS = frozenset({STALE, STALE_ON_ARRIVAL, CORRUPT})


class Report(NamedTuple):
    path: str
    source: str | None
    status: str
    reason: str


def verdict(data: bytes, *, level: int, source: bytes, mtime: float, size: int) -> tuple[str, str]:
    """Return ``(status, reason)`` for pyc ``data`` against the source it belongs to. Pure.

    ``level`` is the optimization level the pyc's name says (``.opt-1``).
    """
    if len(data) >= 4 and data[:4] != _format.MAGIC_NUMBER:
        if len(data) >= 4 and data[2:4] == b"\r\n":
            return STALE, f"magic number {data[:2].hex()} is another interpreter's"
        return CORRUPT, "not a pyc (bad magic number)"
    try:
        header = _format.decode_header(data)
        code = _format.loads_code(data[_format.HEADER_SIZE :])
    except ValueError as exc:  # PycFormatError
        return CORRUPT, str(exc)
    if header.source_hash is not None:
        if header.source_hash == _format.source_hash(source):
            return FRESH, f"{header.mode}, hash matches"
        return STALE, f"{header.mode}: source hash mismatch"
    if header.size != size & 0xFFFFFFFF:
        return STALE, f"size mismatch (pyc records {header.size}, source has {size})"
    if header.mtime == int(mtime) & 0xFFFFFFFF:
        return FRESH, "timestamp matches"
    try:
        recompiled = compile(source, code.co_filename, "exec", dont_inherit=True, optimize=level)
    except (SyntaxError, ValueError):
        recompiled = None
    if recompiled is not None and marshal.dumps(recompiled) == data[_format.HEADER_SIZE :]:
        return STALE_ON_ARRIVAL, (
            f"same code, but the source's mtime ({int(mtime)}) is not the one recorded "
            f"({header.mtime}): reset by an archive or image build, so CPython recompiles "
            "it on every start"
        )
    return STALE, f"mtime mismatch (pyc records {header.mtime}, source has {int(mtime)})"


def _report(pyc: Pyc) -> Report:
    if not pyc.source_exists:
        if pyc.kind == IN_CACHE:
            return Report(pyc.path, pyc.source, ORPHANED, "its source is gone")
        return Report(pyc.path, None, SOURCELESS, "no .py beside it: CPython imports the pyc")
    try:
        with open(pyc.path, "rb") as file:
            data = file.read()
        with open(pyc.source, "rb") as file:
            st = os.fstat(file.fileno())
            source = file.read()
    except OSError as exc:
        return Report(pyc.path, pyc.source, CORRUPT, f"cannot read: {exc.strerror}")
    status, reason = verdict(
        data,
        level=optimization_level(pyc.path),
        source=source,
        mtime=st.st_mtime,
        size=st.st_size,
    )
    return Report(pyc.path, pyc.source, status, reason)


def verify_paths(paths: Iterable[str]) -> list[Report]:
    """Return a report for every pyc under ``paths``. Raises ``OSError`` for a bad path."""
    reports: list[Report] = []
    for path in paths:
        if not os.path.lexists(path):
            raise FileNotFoundError(2, "No such file or directory", path)
        reports.extend(_report(pyc) for pyc in find_pycs(path))
    return reports


def verify_store(store: LocalStore, *, repair: bool = False) -> list[Report]:
    """Return a report for every bad entry and index file of ``store``; remove them if ``repair``.

    An entry must decode for the key its file name says, and hold a code
    object; an index file must decode. Removing either is always safe: a
    missing entry or record is a miss.
    """
    bad = []
    for key in store.iterate():
        path = store.path_for(key)
        try:
            with open(path, "rb") as file:
                data = file.read()
            code = marshal.loads(_entry.decode_entry(bytes.fromhex(key), data))
            if type(code) is not type(verdict.__code__):
                raise ValueError(f"payload is a {type(code).__name__}, not code")
        except FileNotFoundError:
            continue
        except (OSError, ValueError, EOFError, TypeError) as exc:
            bad.append(Report(path, None, CORRUPT, str(exc)))
    index_root = os.path.join(store.root, "index")
    for fan in sorted(os.listdir(index_root)) if os.path.isdir(index_root) else ():
        fan_dir = os.path.join(index_root, fan)
        if not os.path.isdir(fan_dir):
            continue
        for name in sorted(os.listdir(fan_dir)):
            path = os.path.join(fan_dir, name)
            if name.endswith(".tmp") or not os.path.isfile(path):
                continue
            try:
                with open(path, "rb") as file:
                    decode_index_any(file.read())
            except (OSError, ValueError) as exc:
                bad.append(Report(path, None, CORRUPT, str(exc)))
    if repair:
        for report in bad:
            try:
                os.unlink(report.path)
            except FileNotFoundError:
                pass
    return bad
