"""The .pyc file format of the running interpreter: pure functions, no I/O.

Layout (PEP 552; CPython ``Lib/importlib/_bootstrap_external.py``)::

    0   magic      4 bytes  MAGIC_NUMBER (2-byte version word + b"\\r\\n")
    4   flags      uint32le bit 0: hash-based; bit 1: check_source
    8   mtime      uint32le  | source_hash  8 bytes (SipHash of the source,
    12  size       uint32le  |              keyed by the magic number)
    16  payload    marshal.dumps(code)

Flags 0 is timestamp-based, 0b11 checked-hash and 0b01 unchecked-hash. Any other
flag value is invalid.
"""

import _imp
import marshal
import sys

from .exceptions import PycFormatError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import CodeType

__all__ = [
    "CHECKED_HASH",
    "HEADER_SIZE",
    "MAGIC_NUMBER",
    "TIMESTAMP",
    "UNCHECKED_HASH",
    "PycHeader",
    "decode_header",
    "encode_pyc",
    "load_code",
    "source_hash",
]

_bootstrap_external = sys.modules["_frozen_importlib_external"]

MAGIC_NUMBER: bytes = _bootstrap_external.MAGIC_NUMBER
_RAW_MAGIC_NUMBER = int.from_bytes(MAGIC_NUMBER, "little")
_CODE_TYPE = type((lambda: None).__code__)  # types.CodeType, without importing types
HEADER_SIZE = 16

TIMESTAMP = "timestamp"
CHECKED_HASH = "checked-hash"
UNCHECKED_HASH = "unchecked-hash"
INVALIDATION_MODES = (TIMESTAMP, CHECKED_HASH, UNCHECKED_HASH)

_FLAG_HASH_BASED = 0b01
_FLAG_CHECK_SOURCE = 0b10
_MODE_BY_FLAGS = {0: TIMESTAMP, 0b11: CHECKED_HASH, 0b01: UNCHECKED_HASH}
_FLAGS_BY_MODE = {mode: flags for flags, mode in _MODE_BY_FLAGS.items()}


class PycHeader:
    """The decoded 16-byte header of a pyc for the running interpreter."""

    __slots__ = ("flags", "mode", "mtime", "size", "source_hash")

    def __init__(
        self, mode: str, flags: int, mtime: int, size: int, source_hash: "bytes | None"
    ) -> None:
        self.mode = mode
        self.flags = flags
        self.mtime = mtime
        self.size = size
        self.source_hash = source_hash

    def __repr__(self) -> str:
        if self.source_hash is None:
            return f"PycHeader({self.mode}, mtime={self.mtime}, size={self.size})"
        return f"PycHeader({self.mode}, source_hash={self.source_hash.hex()})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PycHeader):
            return NotImplemented
        return (self.mode, self.mtime, self.size, self.source_hash) == (
            other.mode,
            other.mtime,
            other.size,
            other.source_hash,
        )

    def __hash__(self) -> int:
        return hash((self.mode, self.mtime, self.size, self.source_hash))


def source_hash(source: bytes) -> bytes:
    """Return the 8-byte hash CPython records in hash-based pycs for ``source``."""
    digest: bytes = _imp.source_hash(_RAW_MAGIC_NUMBER, source)
    return digest


def _uint32(value: int) -> bytes:
    # CPython stores mtime and size modulo 2**32 (_pack_uint32).
    return (int(value) & 0xFFFFFFFF).to_bytes(4, "little")


def encode_pyc(
    code: "CodeType",
    *,
    mode: str = TIMESTAMP,
    mtime: int = 0,
    size: int = 0,
    source: "bytes | None" = None,
) -> bytes:
    """Return the bytes of a pyc holding ``code``, exactly as CPython writes them.

    ``mtime`` (whole seconds) and ``size`` are used in timestamp mode; ``source``
    (the source bytes) is required in the hash modes. Raises ``ValueError`` for
    an unknown mode or a hash mode without ``source``.
    """
    flags = _FLAGS_BY_MODE.get(mode)
    if flags is None:
        raise ValueError(f"unknown invalidation mode {mode!r}")
    if flags & _FLAG_HASH_BASED:
        if source is None:
            raise ValueError(f"{mode} pycs need the source bytes")
        fields = source_hash(source)
    else:
        fields = _uint32(mtime) + _uint32(size)
    return MAGIC_NUMBER + flags.to_bytes(4, "little") + fields + marshal.dumps(code)


def decode_header(data: bytes) -> "PycHeader":
    """Decode the 16-byte header at the start of ``data``.

    Raises ``PycFormatError`` if ``data`` is shorter than a header, carries
    another interpreter's magic number or has invalid flags.
    """
    if len(data) < HEADER_SIZE:
        raise PycFormatError(f"truncated pyc header ({len(data)} of {HEADER_SIZE} bytes)")
    if data[:4] != MAGIC_NUMBER:
        raise PycFormatError(f"bad magic number {bytes(data[:4])!r}, expected {MAGIC_NUMBER!r}")
    flags = int.from_bytes(data[4:8], "little")
    mode = _MODE_BY_FLAGS.get(flags)
    if mode is None:
        raise PycFormatError(f"invalid pyc flags {flags:#x}")
    if flags & _FLAG_HASH_BASED:
        return PycHeader(mode, flags, 0, 0, bytes(data[8:16]))
    mtime = int.from_bytes(data[8:12], "little")
    size = int.from_bytes(data[12:16], "little")
    return PycHeader(mode, flags, mtime, size, None)


def load_code(data: bytes) -> "CodeType":
    """Return the code object in the payload of the pyc ``data``.

    Raises ``PycFormatError`` if the header is bad or the payload is not a
    marshalled code object (CPython itself would raise ``EOFError`` or
    ``ValueError`` here).
    """
    decode_header(data)
    return loads_code(data[HEADER_SIZE:])


def loads_code(payload: bytes) -> "CodeType":
    """Unmarshal ``payload`` into a code object; raise ``PycFormatError`` if it is not one."""
    try:
        code = marshal.loads(payload)
    except Exception as exc:  # marshal raises EOFError, ValueError, TypeError
        raise PycFormatError(f"bad marshal payload: {exc}") from exc
    if type(code) is not _CODE_TYPE:
        raise PycFormatError(f"payload is a {type(code).__name__}, not a code object")
    return code


def is_fresh_for_source(
    header: "PycHeader", *, source: bytes, mtime: float, size: int, check_unchecked: bool = True
) -> bool:
    """Say whether a pyc header matches the source it was compiled from.

    Timestamp pycs must record the source's mtime (whole seconds) and size;
    hash-based pycs must record the SipHash of ``source``. Unchecked-hash pycs
    are checked too unless ``check_unchecked`` is false. Note that a timestamp
    match alone does not prove freshness: the caller adds the file-time rule.
    """
    if header.source_hash is None:
        return header.mtime == int(mtime) & 0xFFFFFFFF and header.size == size & 0xFFFFFFFF
    if header.mode == UNCHECKED_HASH and not check_unchecked:
        return True
    return header.source_hash == source_hash(source)
