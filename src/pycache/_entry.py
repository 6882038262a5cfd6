"""Store entries: the bytes a store keeps under a key. Pure functions, no I/O.

Layout (all integers little-endian)::

    0   magic      b"PYCE"
    4   version    uint8   ENTRY_FORMAT_VERSION
    5   flags      uint8   bit 0: signed
    6   reserved   2 bytes zero
    8   key        20 bytes, the key the entry was written for
    28  checksum   8 bytes, SipHash-1-3 of the payload, keyed by the key
    36  length     uint32  payload length
    40  mac        32 bytes, signed entries only: HMAC-SHA256 of key + payload
    40 or 72       payload  marshal.dumps(code)

The checksum is keyed by the entry's key and the header repeats the key, so an
entry copied into another key's place fails to decode. Keying the hash rather
than hashing ``key + payload`` avoids copying the payload on every read. It
detects damage, not tampering.

Tampering is what the MAC is for. With a secret configured (``PYCACHE_KEY`` or
``PYCACHE_KEY_FILE``), writers sign every entry with HMAC-SHA256 (RFC 2104)
over the key and the payload, and readers reject entries that are unsigned or
whose MAC does not match, so nobody without the secret can make PyCache run
their code. Without a secret, signed entries are read like unsigned ones.
"""

import _imp

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .exceptions import EntryFormatError, EntrySignatureError

__all__ = [
    "ENTRY_FORMAT_VERSION",
    "ENTRY_HEADER_SIZE",
    "KEY_SIZE",
    "MAC_SIZE",
    "decode_entry",
    "encode_entry",
    "entry_mac",
]

#: Bump when the entry layout or the meaning of its payload changes; it is part of every key.
ENTRY_FORMAT_VERSION = 1
#: Keys are 20-byte BLAKE2b digests (``pycache.keys``).
KEY_SIZE = 20
#: HMAC-SHA256 digests.
MAC_SIZE = 32

_MAGIC = b"PYCE"
_FLAG_SIGNED = 0x01
_UNSIGNED = _MAGIC + bytes([ENTRY_FORMAT_VERSION, 0, 0, 0])
_SIGNED = _MAGIC + bytes([ENTRY_FORMAT_VERSION, _FLAG_SIGNED, 0, 0])
_CHECKSUM_SEED = 0x50594345  # "PYCE"; any fixed seed works, it only has to stay fixed
_MAC_DOMAIN = b"pycache-entry-mac-v1\0"  # so the MAC means nothing outside PyCache entries
ENTRY_HEADER_SIZE = 4 + 4 + KEY_SIZE + 8 + 4


def _error(message: str) -> "EntryFormatError":
    # Imported on failure only: the warm path never needs the exceptions module.
    from .exceptions import EntryFormatError

    return EntryFormatError(message)


def _signature_error(message: str) -> "EntrySignatureError":
    from .exceptions import EntrySignatureError

    return EntrySignatureError(message)


def _checksum(key: bytes, payload: "bytes | memoryview") -> bytes:
    seed = int.from_bytes(key[:8], "little", signed=True) ^ _CHECKSUM_SEED  # a C long
    digest: bytes = _imp.source_hash(seed, payload)
    return digest


def entry_mac(secret: bytes, key: bytes, payload: "bytes | memoryview") -> bytes:
    """Return the HMAC-SHA256 that signs ``payload`` under ``key`` with ``secret``."""
    import hmac  # only processes that sign pay for hashlib

    mac = hmac.new(secret, _MAC_DOMAIN + key, "sha256")
    mac.update(payload)
    return mac.digest()


def encode_entry(key: bytes, payload: bytes, secret: "bytes | None" = None) -> bytes:
    """Return the entry bytes that bind ``payload`` to ``key``, signed if ``secret`` is given."""
    if len(key) != KEY_SIZE:
        raise ValueError(f"key must be {KEY_SIZE} bytes, not {len(key)}")
    return b"".join(
        (
            _UNSIGNED if secret is None else _SIGNED,
            key,
            _checksum(key, payload),
            len(payload).to_bytes(4, "little"),
            b"" if secret is None else entry_mac(secret, key, payload),
            payload,
        )
    )


def decode_entry(key: bytes, data: bytes, secret: "bytes | None" = None) -> "memoryview":
    """Return the payload of the entry ``data`` stored under ``key``, without copying it.

    Raises ``EntryFormatError`` if the entry is truncated, has another format
    version, was written for another key, or fails its checksum; and, when a
    ``secret`` is given, ``EntrySignatureError`` (a subclass) if the entry is
    unsigned or its MAC does not match.
    """
    # One comparison for magic, version, flags and key on the warm path; the
    # precise complaint is worked out only on failure.
    head = data[:28]
    if head == _UNSIGNED + key:
        start = ENTRY_HEADER_SIZE
    elif head == _SIGNED + key:
        start = ENTRY_HEADER_SIZE + MAC_SIZE
    else:
        raise _header_error(key, data)
    if len(data) < start:
        raise _error(f"truncated entry ({len(data)} bytes)")
    length = int.from_bytes(data[36:40], "little")
    payload = memoryview(data)[start:]
    if len(payload) != length:
        raise _error(f"payload is {len(payload)} bytes, header says {length}")
    if data[28:36] != _checksum(key, payload):
        raise _error("entry checksum mismatch")
    if secret is not None:
        if start == ENTRY_HEADER_SIZE:
            raise _signature_error("entry is not signed")
        import hmac

        if not hmac.compare_digest(data[40:start], entry_mac(secret, key, payload)):
            raise _signature_error("entry signature does not match (another key, or tampered)")
    return payload


def _header_error(key: bytes, data: bytes) -> "EntryFormatError":
    if len(data) < 28:
        return _error(f"truncated entry ({len(data)} bytes)")
    if data[:4] != _MAGIC:
        return _error("not a PyCache entry (bad magic)")
    if data[4] != ENTRY_FORMAT_VERSION:
        return _error(f"entry format version {data[4]}, expected {ENTRY_FORMAT_VERSION}")
    if data[5] not in (0, _FLAG_SIGNED) or data[6:8] != b"\0\0":
        return _error(f"unknown entry flags {data[5:8].hex()}")
    return _error("entry belongs to another key")
