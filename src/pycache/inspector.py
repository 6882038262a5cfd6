"""`pycache inspect`: what a pyc file says, whichever CPython wrote it.

``describe`` (pure: the file's bytes and name in, a plain dict out) decodes the
header of pycs from CPython 1.5 to 3.14 (``_magic`` says which layout), and,
for the running interpreter's own pycs, summarises the code object. ``compare``
adds whether the pyc is fresh against its source when that is present.
"""

from __future__ import annotations

import datetime
import marshal
import sys
from typing import Any

from . import _format, _magic

__all__ = ["InspectError", "code_summary", "describe", "freshness"]

_MODES = {0: "timestamp", 0b01: "unchecked-hash", 0b11: "checked-hash"}


class InspectError(ValueError):
    """The file is not a pyc this tool can read (the message says why)."""


def _utc(seconds: int) -> str:
    moment = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def describe(data: bytes) -> dict[str, Any]:
    """Return the header fields of pyc ``data``. Raises ``InspectError`` if it is not a pyc."""
    magic = _magic.magic_of(data)
    if magic is None:
        raise InspectError("not a pyc: no magic number (the 3rd and 4th bytes are not \\r\\n)")
    version = _magic.version_of(magic)
    if version is None:
        raise InspectError(f"unknown magic number {magic} ({data[:4].hex()})")
    size = _magic.header_size(version)
    if len(data) < size:
        raise InspectError(f"truncated: {len(data)} bytes, a {version} header has {size}")
    info: dict[str, Any] = {
        "magic": magic,
        "magic_bytes": data[:4].hex(),
        "version": version,
        "header_size": size,
        "loadable_here": data[:4] == _format.MAGIC_NUMBER,
    }
    fields = 4
    if size == 16:
        flags = int.from_bytes(data[4:8], "little")
        if flags not in _MODES:
            raise InspectError(f"invalid flags {flags:#x} (PEP 552 allows 0, 1 and 3)")
        info["flags"] = flags
        info["mode"] = _MODES[flags]
        fields = 8
        if flags:
            info["source_hash"] = data[8:16].hex()
            return info
    else:
        info["mode"] = "timestamp"
    mtime = int.from_bytes(data[fields : fields + 4], "little")
    info["source_mtime"] = mtime
    info["source_mtime_utc"] = _utc(mtime)
    if size >= 12:
        info["source_size"] = int.from_bytes(data[fields + 4 : fields + 8], "little")
    return info


def freshness(info: dict[str, Any], *, source: bytes, mtime: float, size: int) -> str:
    """Say whether a pyc described by ``info`` is fresh against its source. Pure."""
    if info["mode"] != "timestamp":
        if not info["loadable_here"]:
            return f"cannot check a source hash written by CPython {info['version']} here"
        same = _format.source_hash(source).hex() == info["source_hash"]
        return "fresh (source hash matches)" if same else "stale: source hash mismatch"
    if info["source_mtime"] != int(mtime) & 0xFFFFFFFF:
        return f"stale: mtime mismatch (source has {int(mtime)}, {_utc(int(mtime))})"
    if "source_size" in info and info["source_size"] != size & 0xFFFFFFFF:
        return f"stale: size mismatch (source has {size} bytes)"
    return "fresh (mtime and size match)"


def code_summary(code: Any, *, depth: int = 0, limit: int = 40) -> list[str]:
    """Return lines describing ``code`` and its nested code objects (at most ``limit``)."""
    code_type = type(code)
    consts = [const for const in code.co_consts if type(const) is not code_type]
    nested = [const for const in code.co_consts if type(const) is code_type]
    shown = ", ".join(repr(const)[:30] for const in consts[:6])
    more = f", ... ({len(consts)} in all)" if len(consts) > 6 else ""
    lines = [
        f"{'  ' * depth}{code.co_name} (line {code.co_firstlineno}): "
        f"{len(code.co_names)} names {list(code.co_names[:8])}"
        f"{'...' if len(code.co_names) > 8 else ''}; constants [{shown}{more}]; "
        f"{len(nested)} nested"
    ]
    for child in nested:
        if len(lines) >= limit:
            lines.append(f"{'  ' * (depth + 1)}...")
            break
        lines.extend(code_summary(child, depth=depth + 1, limit=limit - len(lines)))
    return lines


def load_code(data: bytes) -> Any:
    """Unmarshal the code object of one of the running interpreter's pycs."""
    try:
        code = marshal.loads(data[_format.HEADER_SIZE :])
    except (EOFError, ValueError, TypeError) as exc:
        raise InspectError(f"corrupt payload: {exc}") from None
    if type(code) is not type(load_code.__code__):
        raise InspectError(f"payload is a {type(code).__name__}, not a code object")
    return code


def running_version() -> str:
    return f"{sys.version_info[0]}.{sys.version_info[1]}"
