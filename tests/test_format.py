"""Unit tests for pycache._format: pyc bytes in and out, checked against CPython's own writers."""

from __future__ import annotations

import contextlib
import importlib.util
import marshal
import os
import py_compile
import types

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pycache._format import (
    CHECKED_HASH,
    HEADER_SIZE,
    INVALIDATION_MODES,
    MAGIC_NUMBER,
    TIMESTAMP,
    UNCHECKED_HASH,
    PycHeader,
    decode_header,
    encode_pyc,
    is_fresh_for_source,
    load_code,
    loads_code,
    source_hash,
)
from pycache.exceptions import FormatError, PycFormatError

_bootstrap_external = importlib.import_module("importlib._bootstrap_external")

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Exercises everything the optimization levels change: docstrings (-OO), asserts
# and __debug__ (-O), plus nested code objects and a spread of constant types.
SOURCE = b'''\
"""Module docstring, dropped at -OO."""

def outer(x):
    """Function docstring."""
    assert x >= 0, "negative"
    def inner(y):
        return [y * i for i in range(3)]
    return inner(x) if __debug__ else None

class Thing:
    """Class docstring."""
    value = {"a": 1, "b": (2.5, b"bytes", None, 10**30, 1j, frozenset({3}))}
    squares = lambda n: (n * n for n in range(n))
'''

PY_COMPILE_MODE = {
    TIMESTAMP: py_compile.PycInvalidationMode.TIMESTAMP,
    CHECKED_HASH: py_compile.PycInvalidationMode.CHECKED_HASH,
    UNCHECKED_HASH: py_compile.PycInvalidationMode.UNCHECKED_HASH,
}
FLAGS = {TIMESTAMP: 0, CHECKED_HASH: 3, UNCHECKED_HASH: 1}


def compile_like_py_compile(source: bytes, path: str, optimize: int) -> types.CodeType:
    # What SourceLoader.source_to_code (and so py_compile) does.
    return compile(source, path, "exec", dont_inherit=True, optimize=optimize)


def encode_for_file(path: str, mode: str, optimize: int) -> bytes:
    with open(path, "rb") as file:
        source = file.read()
    code = compile_like_py_compile(source, path, optimize)
    st_source = os.stat(path)
    return encode_pyc(
        code, mode=mode, mtime=int(st_source.st_mtime), size=st_source.st_size, source=source
    )


@pytest.fixture
def source_file(tmp_path):
    path = tmp_path / "mod.py"
    path.write_bytes(SOURCE)
    return str(path)


def py_compile_bytes(source_path: str, mode: str, optimize: int) -> bytes:
    cfile = source_path + f".{mode}.{optimize}.pyc"
    py_compile.compile(
        source_path,
        cfile=cfile,
        doraise=True,
        optimize=optimize,
        invalidation_mode=PY_COMPILE_MODE[mode],
    )
    with open(cfile, "rb") as file:
        return file.read()


@contextlib.contextmanager
def bounded_address_space(headroom: int = 512 * 2**20):
    """Make huge allocations fail at once with MemoryError.

    A mutated marshal payload can declare a tuple of two billion items, which
    CPython allocates and clears before noticing the data is short: 16 GiB.
    """
    try:
        import resource

        with open("/proc/self/statm") as statm:
            in_use = int(statm.read().split()[0]) * resource.getpagesize()
    except (ImportError, OSError):
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = in_use + headroom
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


class TestEncodePycMatchesPyCompile:
    @pytest.mark.parametrize("optimize", [0, 1, 2])
    @pytest.mark.parametrize("mode", INVALIDATION_MODES)
    def test_byte_identical(self, source_file, mode, optimize):
        expected = py_compile_bytes(source_file, mode, optimize)
        assert encode_for_file(source_file, mode, optimize) == expected

    @pytest.mark.parametrize("mode", INVALIDATION_MODES)
    def test_optimization_levels_differ(self, source_file, mode):
        # Guards the test above: if the levels gave the same bytes it would prove less.
        pycs = {encode_for_file(source_file, mode, optimize) for optimize in (0, 1, 2)}
        assert len(pycs) == 3

    @given(mtime=st.integers(0, 2**64), size=st.integers(0, 2**64))
    @FUZZ
    def test_timestamp_fields_wrap_like_cpython(self, mtime, size):
        code = compile(SOURCE, "<fuzz>", "exec")
        expected = bytes(_bootstrap_external._code_to_timestamp_pyc(code, mtime, size))
        assert encode_pyc(code, mode=TIMESTAMP, mtime=mtime, size=size) == expected

    @given(source=st.binary(max_size=200), checked=st.booleans())
    @FUZZ
    def test_hash_pyc_matches_cpython(self, source, checked):
        code = compile("x = 1", "<fuzz>", "exec")
        expected = bytes(
            _bootstrap_external._code_to_hash_pyc(code, importlib.util.source_hash(source), checked)
        )
        mode = CHECKED_HASH if checked else UNCHECKED_HASH
        assert encode_pyc(code, mode=mode, source=source) == expected

    def test_unknown_mode_raises_value_error(self):
        code = compile("", "<x>", "exec")
        with pytest.raises(ValueError, match="unknown invalidation mode"):
            encode_pyc(code, mode="sometimes")

    @pytest.mark.parametrize("mode", [CHECKED_HASH, UNCHECKED_HASH])
    def test_hash_mode_without_source_raises_value_error(self, mode):
        code = compile("", "<x>", "exec")
        with pytest.raises(ValueError, match="source"):
            encode_pyc(code, mode=mode)


class TestSourceHash:
    @given(source=st.binary(max_size=500))
    @FUZZ
    def test_matches_importlib(self, source):
        assert source_hash(source) == importlib.util.source_hash(source)

    def test_is_eight_bytes(self):
        assert len(source_hash(b"print(1)\n")) == 8


class TestDecodeHeader:
    @pytest.mark.parametrize("optimize", [0, 2])
    @pytest.mark.parametrize("mode", INVALIDATION_MODES)
    def test_decodes_py_compile_output(self, source_file, mode, optimize):
        header = decode_header(py_compile_bytes(source_file, mode, optimize))
        st_source = os.stat(source_file)
        assert header.mode == mode
        assert header.flags == FLAGS[mode]
        if mode == TIMESTAMP:
            assert (header.mtime, header.size) == (int(st_source.st_mtime), len(SOURCE))
            assert header.source_hash is None
        else:
            assert (header.mtime, header.size) == (0, 0)
            assert header.source_hash == importlib.util.source_hash(SOURCE)

    @given(mtime=st.integers(0, 2**32 - 1), size=st.integers(0, 2**32 - 1))
    @FUZZ
    def test_timestamp_round_trip(self, mtime, size):
        data = encode_pyc(compile("", "<x>", "exec"), mtime=mtime, size=size)
        assert decode_header(data) == PycHeader(TIMESTAMP, 0, mtime, size, None)

    @given(source=st.binary(max_size=100), mode=st.sampled_from([CHECKED_HASH, UNCHECKED_HASH]))
    @FUZZ
    def test_hash_round_trip(self, source, mode):
        data = encode_pyc(compile("", "<x>", "exec"), mode=mode, source=source)
        assert decode_header(data) == PycHeader(mode, FLAGS[mode], 0, 0, source_hash(source))

    def test_header_alone_is_enough(self):
        data = encode_pyc(compile("", "<x>", "exec"), mtime=5, size=7)[:HEADER_SIZE]
        assert decode_header(data) == PycHeader(TIMESTAMP, 0, 5, 7, None)

    @pytest.mark.parametrize("length", range(HEADER_SIZE))
    def test_truncated_header_rejected(self, length):
        data = encode_pyc(compile("", "<x>", "exec"), mtime=5, size=7)
        with pytest.raises(PycFormatError, match="truncated"):
            decode_header(data[:length])

    def test_other_interpreters_magic_rejected(self):
        data = bytearray(encode_pyc(compile("", "<x>", "exec")))
        data[0] ^= 1
        with pytest.raises(PycFormatError, match="magic"):
            decode_header(bytes(data))

    @pytest.mark.parametrize("flags", [2, 4, 5, 7, 0x100, 0xFFFFFFFF])
    def test_invalid_flags_rejected(self, flags):
        data = MAGIC_NUMBER + flags.to_bytes(4, "little") + bytes(8)
        with pytest.raises(PycFormatError, match="flags"):
            decode_header(data)

    def test_error_is_a_value_error(self):
        with pytest.raises(ValueError):
            decode_header(b"")
        assert issubclass(PycFormatError, FormatError)


class TestLoadCode:
    @pytest.mark.parametrize("optimize", [0, 1, 2])
    @pytest.mark.parametrize("mode", INVALIDATION_MODES)
    def test_loads_py_compile_output(self, source_file, mode, optimize):
        code = load_code(py_compile_bytes(source_file, mode, optimize))
        assert code == compile_like_py_compile(SOURCE, source_file, optimize)
        assert code.co_filename == source_file

    @pytest.mark.parametrize("mode", INVALIDATION_MODES)
    def test_round_trip_runs_the_same(self, mode):
        code = compile(SOURCE, "/src/mod.py", "exec")
        loaded = load_code(encode_pyc(code, mode=mode, mtime=1, size=2, source=SOURCE))
        namespace: dict = {}
        exec(loaded, namespace)
        assert loaded == code
        assert namespace["outer"](2) == [0, 2, 4]
        assert list(namespace["Thing"].squares(3)) == [0, 1, 4]
        assert namespace["Thing"].value["b"][3] == 10**30

    def test_bad_header_rejected_before_payload(self):
        data = encode_pyc(compile("", "<x>", "exec"))
        with pytest.raises(PycFormatError, match="magic"):
            load_code(b"\0\0\0\0" + data[4:])

    @pytest.mark.parametrize("value", [1, "text", (1, 2), None, b"bytes"])
    def test_payload_that_is_not_code_rejected(self, value):
        data = encode_pyc(compile("", "<x>", "exec"))[:HEADER_SIZE] + marshal.dumps(value)
        with pytest.raises(PycFormatError, match="not a code object"):
            load_code(data)

    def test_empty_payload_rejected(self):
        header = encode_pyc(compile("", "<x>", "exec"))[:HEADER_SIZE]
        with pytest.raises(PycFormatError):
            load_code(header)


class TestIsFreshForSource:
    def header(self, mode, **fields):
        return decode_header(encode_pyc(compile("", "<x>", "exec"), mode=mode, **fields))

    def test_timestamp_matching_mtime_and_size(self):
        header = self.header(TIMESTAMP, mtime=1_700_000_000, size=42)
        assert is_fresh_for_source(header, source=b"", mtime=1_700_000_000.75, size=42)

    def test_timestamp_ignores_the_source_bytes(self):
        # Documented: a timestamp match alone proves nothing; the caller adds the file-time rule.
        header = self.header(TIMESTAMP, mtime=1_700_000_000, size=42)
        assert is_fresh_for_source(header, source=b"anything", mtime=1_700_000_000, size=42)

    @pytest.mark.parametrize("mtime", [1_699_999_999, 1_700_000_001, 1_700_000_001.0])
    def test_timestamp_mtime_mismatch(self, mtime):
        header = self.header(TIMESTAMP, mtime=1_700_000_000, size=42)
        assert not is_fresh_for_source(header, source=b"", mtime=mtime, size=42)

    @pytest.mark.parametrize("size", [0, 41, 43, 42 + 2**32 + 1])
    def test_timestamp_size_mismatch(self, size):
        header = self.header(TIMESTAMP, mtime=1_700_000_000, size=42)
        assert not is_fresh_for_source(header, source=b"", mtime=1_700_000_000, size=size)

    def test_timestamp_compares_modulo_2_32_like_cpython(self):
        header = self.header(TIMESTAMP, mtime=2**32 + 5, size=2**32 + 6)
        assert (header.mtime, header.size) == (5, 6)
        assert is_fresh_for_source(header, source=b"", mtime=2**32 + 5.5, size=2**32 + 6)
        assert is_fresh_for_source(header, source=b"", mtime=5, size=6)

    def test_checked_hash_matching_source(self):
        header = self.header(CHECKED_HASH, source=b"x = 1\n")
        assert is_fresh_for_source(header, source=b"x = 1\n", mtime=0, size=0)

    def test_checked_hash_ignores_mtime_and_size(self):
        header = self.header(CHECKED_HASH, source=b"x = 1\n")
        assert is_fresh_for_source(header, source=b"x = 1\n", mtime=123456, size=99)

    def test_checked_hash_mismatch(self):
        header = self.header(CHECKED_HASH, source=b"x = 1\n")
        assert not is_fresh_for_source(header, source=b"x = 2\n", mtime=0, size=6)

    def test_unchecked_hash_is_checked_by_default(self):
        header = self.header(UNCHECKED_HASH, source=b"x = 1\n")
        assert is_fresh_for_source(header, source=b"x = 1\n", mtime=0, size=6)
        assert not is_fresh_for_source(header, source=b"x = 2\n", mtime=0, size=6)
        assert not is_fresh_for_source(
            header, source=b"x = 2\n", mtime=0, size=6, check_unchecked=True
        )

    def test_unchecked_hash_trusted_when_not_checking(self):
        header = self.header(UNCHECKED_HASH, source=b"x = 1\n")
        assert is_fresh_for_source(
            header, source=b"x = 2\n", mtime=0, size=6, check_unchecked=False
        )

    def test_check_unchecked_does_not_affect_checked_hash(self):
        header = self.header(CHECKED_HASH, source=b"x = 1\n")
        assert not is_fresh_for_source(
            header, source=b"x = 2\n", mtime=0, size=6, check_unchecked=False
        )


@st.composite
def mutated(draw, originals):
    """One of ``originals`` with a few bytes flipped, inserted or deleted, or truncated."""
    data = bytearray(draw(st.sampled_from(originals)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        # Weight the 16 header bytes: most of the decoding logic is there.
        where = draw(st.one_of(st.integers(0, HEADER_SIZE), st.integers(0, len(data))))
        where = min(where, len(data))
        if kind == "flip" and where < len(data):
            data[where] ^= draw(st.integers(1, 255))
        elif kind == "insert":
            data[where:where] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del data[where : where + draw(st.integers(1, 8))]
        else:
            del data[where:]
    return bytes(data)


VALID_PYCS = [
    encode_pyc(compile(SOURCE, "/src/mod.py", "exec"), mtime=1_700_000_000, size=len(SOURCE)),
    encode_pyc(
        compile(SOURCE, "/src/mod.py", "exec", optimize=2), mode=CHECKED_HASH, source=SOURCE
    ),
    encode_pyc(compile("x = 1", "/src/x.py", "exec"), mode=UNCHECKED_HASH, source=b"x = 1"),
]
HEADERS = [pyc[:HEADER_SIZE] for pyc in VALID_PYCS]


def decode_header_outcome(data: bytes) -> PycHeader | None:
    try:
        header = decode_header(data)
    except PycFormatError:
        return None
    # A header that decodes must describe exactly the bytes it came from.
    assert data[:4] == MAGIC_NUMBER
    assert header.mode in INVALIDATION_MODES
    assert header.flags == int.from_bytes(data[4:8], "little") == FLAGS[header.mode]
    if header.mode == TIMESTAMP:
        assert header.mtime == int.from_bytes(data[8:12], "little")
        assert header.size == int.from_bytes(data[12:16], "little")
    else:
        assert header.source_hash == data[8:16]
    return header


def load_code_outcome(data: bytes) -> types.CodeType | None:
    with bounded_address_space():
        try:
            code = load_code(data)
        except PycFormatError:
            return None
    assert type(code) is types.CodeType
    return code


class TestHostileInput:
    @given(data=st.binary(max_size=64))
    @FUZZ
    def test_arbitrary_bytes_to_decode_header(self, data):
        decode_header_outcome(data)

    @given(data=st.binary(max_size=256))
    @FUZZ
    def test_arbitrary_bytes_to_load_code(self, data):
        load_code_outcome(data)

    @given(header=st.sampled_from(HEADERS), payload=st.binary(max_size=256))
    @FUZZ
    def test_valid_header_arbitrary_payload(self, header, payload):
        # Arbitrary bytes almost never carry the magic number: this reaches marshal.
        assert decode_header_outcome(header + payload) is not None
        load_code_outcome(header + payload)

    @given(data=mutated(VALID_PYCS))
    @FUZZ
    def test_mutated_pyc_to_decode_header(self, data):
        decode_header_outcome(data)

    @given(data=mutated(VALID_PYCS))
    @FUZZ
    def test_mutated_pyc_to_load_code(self, data):
        code = load_code_outcome(data)
        if data in VALID_PYCS:
            assert code is not None

    @given(payload=st.binary(max_size=256))
    @FUZZ
    def test_arbitrary_payload_to_loads_code(self, payload):
        with bounded_address_space():
            try:
                code = loads_code(payload)
            except PycFormatError:
                return
        assert type(code) is types.CodeType

    @pytest.mark.parametrize("pyc", VALID_PYCS, ids=INVALIDATION_MODES)
    def test_every_truncation(self, pyc):
        for length in range(len(pyc)):
            with pytest.raises(PycFormatError):
                load_code(pyc[:length])
        assert type(load_code(pyc)) is types.CodeType
