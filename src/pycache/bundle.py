"""Bundles: every entry one program loaded, fetched from a remote in a few requests.

A fresh CI runner or container imports hundreds of modules, and each one that
misses the empty local store costs a remote round trip. So a process that
writes to a remote also uploads, at exit, a bundle: the entries of every
module it loaded, under a key named after the compile context and the program
(``program_name``). A later process of the same program that reaches the
remote fetches the bundle once and serves its misses from it. Each entry in a
bundle is still a whole store entry, checked by the engine like any other
(checksum, and HMAC with a key), so a bundle can waste bandwidth but cannot
plant code.

A bundle is stored as parts of at most ``PART_SIZE`` bytes (one request each,
under a default nginx ``client_max_body_size``), the parts under keys named by
the upload's digest and the head, written last, under the bundle key: readers
switch to a new upload only once all of it is there. This module's own format
(all integers big-endian)::

    part 0:   "PYCBNDL1" | u32 parts | 20-byte BLAKE2b of the payload | payload[0]
    part n>0: "PYCBNDLP" | 20-byte BLAKE2b of the payload | payload[n]
    payload:  records, each u8 key length | key (ASCII hex) | u32 length | entry

Parts that do not carry their head's digest belong to another upload, and the
whole bundle is then ignored. The same record framing is used for the spool
files of ``backfill``.
"""

import struct
import sys

from ._entry import KEY_SIZE

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterable, Sequence

__all__ = [
    "HEX_DIGITS",
    "MAX_BYTES",
    "MAX_ENTRIES",
    "MIN_ENTRIES",
    "bundle_key",
    "check_part",
    "decode_parts",
    "decode_records",
    "encode_records",
    "head_info",
    "join_parts",
    "key_set_digest",
    "part_key",
    "program_name",
    "record_buffers",
    "split_parts",
]

MAGIC = b"PYCBNDL1"
PART_MAGIC = b"PYCBNDLP"
#: Bytes of payload per part.
PART_SIZE = 512 * 1024
#: A program that loaded fewer entries gains too little to be worth a bundle.
MIN_ENTRIES = 16
#: At most this many entries, and this many bytes of them, go into one bundle.
MAX_ENTRIES = 8192
MAX_BYTES = 64 * 1024 * 1024
_DIGEST_SIZE = KEY_SIZE
_HEAD = struct.Struct(f">8sI{_DIGEST_SIZE}s")
_PART_HEAD = struct.Struct(f">8s{_DIGEST_SIZE}s")
_LENGTH = struct.Struct(">I")
_KEY_LENGTH = 2 * KEY_SIZE
#: The digits of a store key (lowercase hex).
HEX_DIGITS = frozenset("0123456789abcdef")


def _blake2b(*chunks: bytes, person: bytes) -> bytes:
    from .keys import _hasher

    digest = _hasher()(digest_size=_DIGEST_SIZE, person=person)
    for chunk in chunks:
        digest.update(chunk)  # type: ignore[attr-defined]
    result: bytes = digest.digest()  # type: ignore[attr-defined]
    return result


def _error(message: str) -> Exception:
    from .exceptions import BundleFormatError  # imported on failure only

    return BundleFormatError(message)


def program_name(orig_argv: "Sequence[str] | None" = None) -> "str | None":
    """Name the running program so that the same command on another machine matches.

    From the command line as the interpreter got it (``sys.orig_argv``, 3.10+;
    before that ``/proc/self/cmdline``, else ``sys.argv``): ``-m pytest`` gives
    ``-m pytest``, a script or console script its file name (``pytest``,
    ``manage.py``), ``-c`` code ``-c`` and a digest of the code. Paths are
    left out: runners check out to different directories. ``None`` for a
    process that should have no bundle: a ``multiprocessing`` worker (its
    command line says where it was started from, not what it runs).
    """
    argv = list(orig_argv) if orig_argv is not None else _orig_argv()
    if "--multiprocessing-fork" in argv:
        return None
    args = argv[1:]
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "-m":
            return f"-m {args[i + 1] if i + 1 < len(args) else ''}"
        if arg.startswith("-m"):
            return f"-m {arg[2:]}"
        if arg.startswith("-c"):
            code = arg[2:] or (args[i + 1] if i + 1 < len(args) else "")
            if code.startswith("from multiprocessing"):  # a forkserver, resource tracker...
                return None
            digest = _blake2b(code.encode("utf-8", "surrogateescape"), person=b"pyc-code")
            return f"-c {digest.hex()[:16]}"  # one bundle per piece of code
        if arg in ("-X", "-W", "--check-hash-based-pycs"):  # options with a separate value
            i += 2
            continue
        if arg.startswith("-") and arg != "-":
            i += 1
            continue
        return arg.replace("\\", "/").rstrip("/").rpartition("/")[2] or arg
    return ""


def _orig_argv() -> "list[str]":
    argv = getattr(sys, "orig_argv", None)
    if argv is not None:
        return list(argv)
    try:
        with open("/proc/self/cmdline", "rb") as f:
            raw = f.read()
        return [arg.decode("utf-8", "surrogateescape") for arg in raw.split(b"\0")[:-1]]
    except OSError:
        return [sys.executable, *sys.argv]


def bundle_key(context: bytes, program: str) -> str:
    """Return the remote key of the bundle of ``program`` in compile ``context``."""
    name = program.encode("utf-8", "surrogateescape")
    return _blake2b(context, b"\0", name, person=b"pyc-bundle").hex()


def part_key(key: str, digest: bytes, part: int) -> str:
    """Return the remote key of part ``part`` (> 0) of the upload ``digest`` of bundle ``key``.

    Named by the upload, so a new upload never overwrites the parts of the one
    readers use: they switch over when the head (the bundle key) is replaced,
    which is written last. Parts of replaced uploads are left to the remote's
    own expiry (a Redis ``ttl`` or LRU policy, an HTTP cache's eviction).
    """
    name = key.encode("ascii") + digest + _LENGTH.pack(part)
    return _blake2b(name, person=b"pyc-bpart").hex()


def key_set_digest(keys: "Iterable[str]") -> bytes:
    """Return a digest of a set of keys (order and repeats do not matter)."""
    return _blake2b("\n".join(sorted(set(keys))).encode("ascii"), person=b"pyc-bkeys")


def record_buffers(entries: "Iterable[tuple[str, bytes]]") -> "list[bytes]":
    """Frame ``(key, entry)`` pairs as a payload, in pieces (for ``os.writev``: no copy)."""
    out = []
    for key, data in entries:
        raw = key.encode("ascii")
        out.append(bytes((len(raw),)) + raw + _LENGTH.pack(len(data)))
        out.append(data)
    return out


def encode_records(entries: "Iterable[tuple[str, bytes]]") -> bytes:
    """Frame ``(key, entry)`` pairs as a payload."""
    return b"".join(record_buffers(entries))


def decode_records(payload: bytes) -> "dict[str, bytes]":
    """Return the ``{key: entry}`` of a payload; ``BundleFormatError`` if it is cut or bad.

    Every key must be a store key (``2 * KEY_SIZE`` lowercase hex digits) and
    every entry non-empty, and there are at most ``MAX_ENTRIES``: a forged
    payload cannot cost more than its own size in memory.
    """
    return _decode_chunks([memoryview(payload)])


def _decode_chunks(chunks: "list[memoryview]") -> "dict[str, bytes]":
    """``decode_records`` of the concatenation of ``chunks``, without making it.

    A record may straddle chunks (bundle parts): only its own bytes are joined.
    """
    chunks = [chunk for chunk in chunks if len(chunk)]
    records: dict[str, bytes] = {}
    total = left = sum(len(chunk) for chunk in chunks)
    number = pos = 0  # the chunk, and the position in it

    def take(size: int) -> bytes:
        nonlocal number, pos
        pieces = []
        while size:
            chunk = chunks[number]
            end = pos + size
            if end < len(chunk):
                pieces.append(chunk[pos:end])
                pos = end
                break
            pieces.append(chunk[pos:])
            size = end - len(chunk)
            number += 1
            pos = 0
        return bytes(pieces[0]) if len(pieces) == 1 else b"".join(pieces)

    header = 1 + _KEY_LENGTH + _LENGTH.size
    while left:
        offset = total - left
        if left < header:
            raise _error(f"bundle record at byte {offset} is cut short")
        head = take(header)
        left -= header
        if head[0] != _KEY_LENGTH:
            raise _error(f"bundle record at byte {offset} has a bad key")
        key = head[1 : 1 + _KEY_LENGTH].decode("latin-1")
        if not HEX_DIGITS.issuperset(key):
            raise _error(f"bundle record at byte {offset} has a key that is not hex")
        (length,) = _LENGTH.unpack_from(head, 1 + _KEY_LENGTH)
        if length == 0 or length > left:
            raise _error(f"bundle entry {key} is empty or cut short")
        if len(records) >= MAX_ENTRIES:
            raise _error(f"bundle holds more than {MAX_ENTRIES} entries")
        records[key] = take(length)
        left -= length
    return records


def decode_parts(parts: "Sequence[bytes]") -> "dict[str, bytes]":
    """``decode_records(join_parts(parts))``, without joining the parts first."""
    return _decode_chunks(_payload_views(parts))


def split_parts(payload: bytes) -> "list[bytes]":
    """Cut a payload into the parts to upload, in order (part 0 first)."""
    digest = _blake2b(payload, person=b"pyc-bundle")
    chunks = [payload[i : i + PART_SIZE] for i in range(0, len(payload), PART_SIZE)] or [b""]
    parts = [_HEAD.pack(MAGIC, len(chunks), digest) + chunks[0]]
    parts.extend(_PART_HEAD.pack(PART_MAGIC, digest) + chunk for chunk in chunks[1:])
    return parts


def head_info(part0: bytes) -> "tuple[int, bytes]":
    """Return ``(number of parts, payload digest)`` from part 0. Raises ``BundleFormatError``."""
    if len(part0) < _HEAD.size or part0[:8] != MAGIC:
        raise _error("not a PyCache bundle")
    magic, count, digest = _HEAD.unpack_from(part0)
    if not 1 <= count <= MAX_BYTES // PART_SIZE + 1:
        raise _error(f"bundle claims {count} parts")
    return count, digest


def check_part(part: bytes) -> None:
    """Raise ``BundleFormatError`` for a part larger than any part we upload.

    Checked as each part arrives, so a forged head cannot make a reader hold
    more than ``MAX_BYTES`` (and one oversized part) in memory.
    """
    if len(part) > _HEAD.size + PART_SIZE:
        raise _error(f"bundle part of {len(part)} bytes, more than {PART_SIZE}")


def join_parts(parts: "Sequence[bytes]") -> bytes:
    """Return the payload of a bundle's parts (part 0 first). Raises ``BundleFormatError``."""
    return b"".join(_payload_views(parts))


def _payload_views(parts: "Sequence[bytes]") -> "list[memoryview]":
    """The payload pieces of a bundle's parts, checked to be one upload's.

    Every part must carry its head's upload digest. The payload is not hashed
    again: on a fresh runner that took 36 ms of a 24 MB bundle, and a damaged
    byte is caught anyway, by the record framing (``decode_records``) or by
    the checksum of the entry it lands in, which the engine checks before use.
    """
    count, digest = head_info(parts[0])
    if len(parts) != count:
        raise _error(f"bundle has {len(parts)} parts, its head says {count}")
    views = [memoryview(parts[0])[_HEAD.size :]]
    for number, part in enumerate(parts[1:], 1):
        if len(part) < _PART_HEAD.size or part[:8] != PART_MAGIC:
            raise _error(f"bundle part {number} is not a bundle part")
        if part[8 : _PART_HEAD.size] != digest:
            raise _error(f"bundle part {number} belongs to another upload")
        views.append(memoryview(part)[_PART_HEAD.size :])
    return views
