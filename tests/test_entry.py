"""Unit tests for pycache._entry: the bytes a store keeps under a key."""

from __future__ import annotations

import marshal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pycache._entry import (
    ENTRY_FORMAT_VERSION,
    ENTRY_HEADER_SIZE,
    KEY_SIZE,
    MAC_SIZE,
    decode_entry,
    encode_entry,
    entry_mac,
)
from pycache.exceptions import EntryFormatError, EntrySignatureError, FormatError
from pycache.keys import cache_key, compile_context

FUZZ = settings(max_examples=300, deadline=None)

SOURCE = b"import os\n\ndef f(x):\n    return [os.sep * i for i in range(x)]\n"
KEY = cache_key(SOURCE, compile_context())
OTHER_KEY = cache_key(SOURCE + b"\n", compile_context())
PAYLOAD = marshal.dumps(compile(SOURCE, "/src/mod.py", "exec"))
ENTRY = encode_entry(KEY, PAYLOAD)

keys_strategy = st.binary(min_size=KEY_SIZE, max_size=KEY_SIZE)


def decode_outcome(key: bytes, data: bytes) -> bytes | None:
    """The payload, or None for EntryFormatError; anything else fails the test."""
    try:
        return bytes(decode_entry(key, data))
    except EntryFormatError:
        return None


class TestRoundTrip:
    def test_real_code_object(self):
        payload = decode_entry(KEY, ENTRY)
        assert bytes(payload) == PAYLOAD
        namespace: dict = {}
        exec(marshal.loads(payload), namespace)
        assert namespace["f"](2) == ["", "/"]

    def test_returns_a_view_not_a_copy(self):
        payload = decode_entry(KEY, ENTRY)
        assert isinstance(payload, memoryview)
        assert payload.obj is ENTRY

    def test_empty_payload(self):
        assert bytes(decode_entry(KEY, encode_entry(KEY, b""))) == b""

    def test_layout(self):
        assert ENTRY_HEADER_SIZE == 40
        assert len(ENTRY) == ENTRY_HEADER_SIZE + len(PAYLOAD)
        assert ENTRY[:4] == b"PYCE"
        assert ENTRY[4:8] == bytes([ENTRY_FORMAT_VERSION, 0, 0, 0])
        assert ENTRY[8:28] == KEY
        assert int.from_bytes(ENTRY[36:40], "little") == len(PAYLOAD)
        assert ENTRY[ENTRY_HEADER_SIZE:] == PAYLOAD

    @given(key=keys_strategy, payload=st.binary(max_size=500))
    @FUZZ
    def test_arbitrary_key_and_payload(self, key, payload):
        assert bytes(decode_entry(key, encode_entry(key, payload))) == payload

    @pytest.mark.parametrize("length", [0, 19, 21, 32])
    def test_key_of_wrong_length_refused(self, length):
        with pytest.raises(ValueError, match="20 bytes"):
            encode_entry(b"k" * length, PAYLOAD)


class TestKeyBinding:
    def test_entry_under_another_key_rejected(self):
        with pytest.raises(EntryFormatError, match="another key"):
            decode_entry(OTHER_KEY, ENTRY)

    def test_header_rewritten_to_another_key_fails_checksum(self):
        # Copying an entry into another key's place and patching the header is
        # still caught: the checksum is keyed by the key.
        forged = ENTRY[:8] + OTHER_KEY + ENTRY[28:]
        with pytest.raises(EntryFormatError, match="checksum"):
            decode_entry(OTHER_KEY, forged)

    def test_same_payload_under_two_keys_has_different_checksums(self):
        assert encode_entry(KEY, PAYLOAD)[28:36] != encode_entry(OTHER_KEY, PAYLOAD)[28:36]

    def test_error_is_a_format_error_and_a_value_error(self):
        with pytest.raises(FormatError):
            decode_entry(OTHER_KEY, ENTRY)
        assert issubclass(EntryFormatError, ValueError)


class TestDamage:
    @pytest.mark.parametrize("mask", [0x01, 0x80, 0xFF])
    def test_every_single_byte_flip_rejected(self, mask):
        accepted = []
        for position in range(len(ENTRY)):
            damaged = bytearray(ENTRY)
            damaged[position] ^= mask
            if decode_outcome(KEY, bytes(damaged)) is not None:
                accepted.append(position)
        assert accepted == []

    def test_every_truncation_rejected(self):
        accepted = [n for n in range(len(ENTRY)) if decode_outcome(KEY, ENTRY[:n]) is not None]
        assert accepted == []

    def test_trailing_bytes_rejected(self):
        with pytest.raises(EntryFormatError, match="header says"):
            decode_entry(KEY, ENTRY + b"\0")

    def test_other_format_version_rejected(self):
        data = ENTRY[:4] + bytes([ENTRY_FORMAT_VERSION + 1]) + ENTRY[5:]
        with pytest.raises(EntryFormatError, match="version"):
            decode_entry(KEY, data)

    def test_bad_magic_rejected(self):
        with pytest.raises(EntryFormatError, match="magic"):
            decode_entry(KEY, b"PYCX" + ENTRY[4:])

    def test_short_input_rejected(self):
        with pytest.raises(EntryFormatError, match="truncated"):
            decode_entry(KEY, ENTRY[: ENTRY_HEADER_SIZE - 1])


@st.composite
def mutated_entry(draw):
    data = bytearray(ENTRY)
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.integers(0, len(data)))
        kind = draw(st.sampled_from(["set", "insert", "delete", "truncate"]))
        if kind == "set" and where < len(data):
            data[where] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[where:where] = draw(st.binary(min_size=1, max_size=4))
        elif kind == "delete":
            del data[where : where + draw(st.integers(1, 4))]
        else:
            del data[where:]
    return bytes(data)


class TestHostileInput:
    @given(data=st.binary(max_size=200), key=st.one_of(st.just(KEY), keys_strategy))
    @FUZZ
    def test_arbitrary_bytes(self, data, key):
        assert decode_outcome(key, data) is None

    @given(data=mutated_entry())
    @FUZZ
    def test_mutated_entry(self, data):
        payload = decode_outcome(KEY, data)
        # Only an unchanged entry may decode (a mutation can write back the same byte).
        assert (payload is not None) == (data == ENTRY)
        if payload is not None:
            assert payload == PAYLOAD

    @given(key=keys_strategy, payload=st.binary(max_size=64), junk=st.binary(min_size=1))
    @FUZZ
    def test_valid_header_junk_payload(self, key, payload, junk):
        data = encode_entry(key, payload)
        assert decode_outcome(key, data[:ENTRY_HEADER_SIZE] + junk) in (None, payload)


SECRET = b"0123456789abcdef0123456789abcdef"
SIGNED = encode_entry(KEY, PAYLOAD, SECRET)


class TestSigning:
    def test_signed_layout(self):
        assert SIGNED[4:8] == bytes([ENTRY_FORMAT_VERSION, 1, 0, 0])
        assert len(SIGNED) == ENTRY_HEADER_SIZE + MAC_SIZE + len(PAYLOAD)
        assert SIGNED[40:72] == entry_mac(SECRET, KEY, PAYLOAD)

    def test_signed_entry_round_trip(self):
        assert bytes(decode_entry(KEY, SIGNED, SECRET)) == PAYLOAD

    def test_without_a_secret_signed_entries_read_as_usual(self):
        assert bytes(decode_entry(KEY, SIGNED)) == PAYLOAD

    def test_unsigned_entry_rejected_when_a_secret_is_set(self):
        with pytest.raises(EntrySignatureError, match="not signed"):
            decode_entry(KEY, ENTRY, SECRET)

    def test_other_secret_rejected(self):
        with pytest.raises(EntrySignatureError, match="does not match"):
            decode_entry(KEY, SIGNED, b"another secret")

    def test_tampered_payload_with_a_fixed_checksum_rejected(self):
        # An attacker who can write the store recomputes the (public) checksum,
        # but cannot compute the MAC without the secret.
        evil = marshal.dumps(compile("print('pwned')", "/src/mod.py", "exec"))
        forged = encode_entry(KEY, evil, b"attacker's guess")
        assert bytes(decode_entry(KEY, forged)) == evil  # only the checksum: accepted
        with pytest.raises(EntrySignatureError):
            decode_entry(KEY, forged, SECRET)

    def test_signed_entry_copied_to_another_key_rejected(self):
        with pytest.raises(EntryFormatError, match="another key"):
            decode_entry(OTHER_KEY, SIGNED, SECRET)
        # Even with the header rewritten for the other key, the MAC covers the key.
        moved = SIGNED[:8] + OTHER_KEY + SIGNED[28:]
        with pytest.raises(EntryFormatError):
            decode_entry(OTHER_KEY, moved, SECRET)

    def test_every_mac_byte_flip_rejected(self):
        for position in range(40, 72):
            damaged = bytearray(SIGNED)
            damaged[position] ^= 0x01
            with pytest.raises(EntrySignatureError):
                decode_entry(KEY, bytes(damaged), SECRET)

    def test_unknown_flags_rejected(self):
        for flags in (2, 3, 0x80):
            data = SIGNED[:5] + bytes([flags]) + SIGNED[6:]
            with pytest.raises(EntryFormatError, match="flags"):
                decode_entry(KEY, data)

    def test_signature_error_is_an_entry_format_error(self):
        assert issubclass(EntrySignatureError, EntryFormatError)

    @given(data=st.binary(max_size=120), secret=st.sampled_from([None, SECRET]))
    @FUZZ
    def test_arbitrary_bytes_with_or_without_a_secret(self, data, secret):
        try:
            decode_entry(KEY, data, secret)
        except EntryFormatError:
            pass
        else:
            raise AssertionError("random bytes decoded")

    @given(position=st.integers(0, 200), value=st.integers(0, 255))
    @FUZZ
    def test_mutated_signed_entry(self, position, value):
        data = bytearray(SIGNED)
        position %= len(data)
        data[position] = value
        try:
            payload = bytes(decode_entry(KEY, bytes(data), SECRET))
        except EntryFormatError:
            return
        assert bytes(data) == SIGNED and payload == PAYLOAD
