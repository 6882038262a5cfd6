"""Store entries: the bytes a store keeps under a key. Pure functions, no I/O.

Layout (all integers little-endian)::

    0   magic      b"PYCE"
    4   version    uint8   ENTRY_FORMAT_VERSION
    5   reserved   3 bytes zero
    8   key        20 bytes, the key the entry was written for
    28  checksum   8 bytes, SipHash-1-3 of the payload, keyed by the key
    36  length     uint32  payload length
    40  payload    marshal.dumps(code)

The checksum is keyed by the entry's key and the header repeats the key, so an
entry copied into another key's place fails to decode. Keying the hash rather
than hashing ``key + payload`` avoids copying the payload on every read. It
detects damage, not tampering: signing is a separate layer.
"""

import _imp

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .exceptions import EntryFormatError

__all__ = ["ENTRY_FORMAT_VERSION", "ENTRY_HEADER_SIZE", "KEY_SIZE", "decode_entry", "encode_entry"]

#: Bump when the entry layout or the meaning of its payload changes; it is part of every key.
ENTRY_FORMAT_VERSION = 1
#: Keys are 20-byte BLAKE2b digests (``pycache.keys``).
KEY_SIZE = 20

_MAGIC = b"PYCE"
_VERSION = bytes([ENTRY_FORMAT_VERSION, 0, 0, 0])
_CHECKSUM_SEED = 0x50594345  # "PYCE"; any fixed seed works, it only has to stay fixed
ENTRY_HEADER_SIZE = 4 + 4 + KEY_SIZE + 8 + 4


def _error(message: str) -> "EntryFormatError":
    # Imported on failure only: the warm path never needs the exceptions module.
    from .exceptions import EntryFormatError

    return EntryFormatError(message)


def _checksum(key: bytes, payload: "bytes | memoryview") -> bytes:
    seed = int.from_bytes(key[:8], "little", signed=True) ^ _CHECKSUM_SEED  # a C long
    digest: bytes = _imp.source_hash(seed, payload)
    return digest


def encode_entry(key: bytes, payload: bytes) -> bytes:
    """Return the entry bytes that bind ``payload`` to ``key``."""
    if len(key) != KEY_SIZE:
        raise ValueError(f"key must be {KEY_SIZE} bytes, not {len(key)}")
    return b"".join(
        (
            _MAGIC,
            _VERSION,
            key,
            _checksum(key, payload),
            len(payload).to_bytes(4, "little"),
            payload,
        )
    )


def decode_entry(key: bytes, data: bytes) -> "memoryview":
    """Return the payload of the entry ``data`` stored under ``key``, without copying it.

    Raises ``EntryFormatError`` if the entry is truncated, has another format
    version, was written for another key, or fails its checksum.
    """
    # One comparison for magic, version and key on the warm path; the precise
    # complaint is worked out only on failure.
    if len(data) < ENTRY_HEADER_SIZE or data[:28] != _MAGIC + _VERSION + key:
        raise _header_error(key, data)
    length = int.from_bytes(data[36:40], "little")
    payload = memoryview(data)[ENTRY_HEADER_SIZE:]
    if len(payload) != length:
        raise _error(f"payload is {len(payload)} bytes, header says {length}")
    if data[28:36] != _checksum(key, payload):
        raise _error("entry checksum mismatch")
    return payload


def _header_error(key: bytes, data: bytes) -> "EntryFormatError":
    if len(data) < ENTRY_HEADER_SIZE:
        return _error(f"truncated entry ({len(data)} bytes)")
    if data[:4] != _MAGIC:
        return _error("not a PyCache entry (bad magic)")
    if data[4:8] != _VERSION:
        return _error(f"entry format version {data[4]}, expected {ENTRY_FORMAT_VERSION}")
    return _error("entry belongs to another key")
