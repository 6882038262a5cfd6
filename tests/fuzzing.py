"""Fuzzing the three decoders that read bytes from disk or a remote, with Hypothesis.

Targets, and the only exceptions each may raise (``DOCUMENTED``):

- ``pyc``: ``_format.load_code`` (header and marshal payload) and
  ``inspector.describe`` (any CPython's header, 1.5 to 3.14);
- ``entry``: ``_entry.decode_entry`` then ``_format.loads_code``, as the
  engine reads a store entry, with and without a signing key;
- ``index``: ``index.decode_index`` then ``valid_record`` and
  ``trusted_key`` on every record, as a lookup does.

Each Hypothesis example is a seed (a real encoding, or arbitrary bytes) and a
list of mutations (byte flips, insertions, deletions, splices, truncation).
One example feeds the decoder several inputs: the mutated bytes, prefixes of
them cut at example-chosen points, and, for entries and index files, the
mutated payload *resealed* with a correct checksum and length, so that the
fuzzing reaches the marshal payload behind the checksum. ``run`` counts the
inputs actually fed.
"""

from __future__ import annotations

import _imp
import contextlib
import marshal
import os
import traceback
from typing import Callable, Iterator

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from pycache import _entry, _format, index, inspector
from pycache.exceptions import EntryFormatError, IndexFormatError, PycFormatError

TARGETS = ("pyc", "entry", "index")
DOCUMENTED = {
    "pyc": "PycFormatError (load_code), InspectError (describe)",
    "entry": "EntryFormatError incl. EntrySignatureError (decode_entry), PycFormatError (payload)",
    "index": "IndexFormatError",
}
KEY = bytes(range(_entry.KEY_SIZE))
SECRET = b"fuzzing secret"
DIRECTORY = "/srv/app/pkg"
CONTEXT = b"cpython-311 opt0"
#: Prefixes of each mutated input fed as well.
_CUTS = 6
#: Hypothesis examples per run.
_CHUNK = 4000


def _sources() -> list[bytes]:
    return [
        b"",
        b"X = 1\n",
        b'"""Doc."""\nimport os\n\nclass A:\n'
        b'    def f(self, x=(1, 2.5, "s", b"b")):\n        return [i for i in x]\n',
        b"async def g():\n    async with a as b:\n        yield {1: frozenset({2})}\n",
    ]


#: A real stat result, for index records and the freshness check.
STAT = os.stat(__file__)


def _seeds() -> dict[str, list[bytes]]:
    pycs, entries, indexes = [], [], []
    for source in _sources():
        code = compile(source, "<fuzz>", "exec")
        payload = marshal.dumps(code)
        pycs.append(_format.encode_pyc(code, mtime=1_700_000_000, size=len(source)))
        pycs.append(_format.encode_pyc(code, mode=_format.CHECKED_HASH, source=source))
        pycs.append(_format.encode_pyc(code, mode=_format.UNCHECKED_HASH, source=source))
        entries.append(_entry.encode_entry(KEY, payload))
        entries.append(_entry.encode_entry(KEY, payload, SECRET))
    # Headers of older CPythons: 8-byte (up to 3.2), 12-byte (3.3-3.6) and 16-byte.
    pycs += [bytes.fromhex("03f30d0a") + bytes(4), bytes.fromhex("330d0d0a") + bytes(8)]
    records = {
        "one.py": index.make_record(STAT, STAT.st_mtime_ns + 5 * 10**9, KEY),
        "two.py": (1, 2, 3, 4, 5, 6, KEY),
    }
    indexes.append(index.encode_index(DIRECTORY, records, CONTEXT))
    indexes.append(index.encode_index(DIRECTORY, {}, CONTEXT))
    return {"pyc": pycs, "entry": entries, "index": indexes}


SEEDS = _seeds()


def _reseal_entry(data: bytes) -> bytes:
    """Rebuild a valid unsigned entry around whatever follows the header in ``data``."""
    payload = data[_entry.ENTRY_HEADER_SIZE :]
    return _entry.encode_entry(KEY, payload)


def _reseal_index(data: bytes) -> bytes:
    payload = data[index._HEADER_SIZE :]
    return data[:8] + _imp.source_hash(index._CHECKSUM_SEED, payload) + payload


def _feed_pyc(data: bytes) -> None:
    try:
        _format.load_code(data)
    except PycFormatError:
        pass
    try:
        inspector.describe(data)
    except inspector.InspectError:
        pass


def _feed_entry(data: bytes) -> None:
    for secret in (None, SECRET):
        try:
            payload = _entry.decode_entry(KEY, data, secret)
        except EntryFormatError:
            continue
        try:
            _format.loads_code(bytes(payload))
        except PycFormatError:
            pass


def _feed_index(data: bytes) -> None:
    try:
        records = index.decode_index(DIRECTORY, data, CONTEXT)
    except IndexFormatError:
        return
    for record in records.values():
        if index.valid_record(record):
            index.trusted_key(record, STAT)


FEEDERS: dict[str, Callable[[bytes], None]] = {
    "pyc": _feed_pyc,
    "entry": _feed_entry,
    "index": _feed_index,
}
RESEAL: dict[str, Callable[[bytes], bytes]] = {"entry": _reseal_entry, "index": _reseal_index}

_mutation = st.tuples(
    st.sampled_from(("flip", "set", "insert", "delete", "splice", "truncate")),
    st.integers(min_value=0, max_value=1 << 16),
    st.integers(min_value=0, max_value=255),
)


def _mutate(data: bytes, mutations: list[tuple[str, int, int]]) -> bytes:
    buf = bytearray(data)
    for kind, where, value in mutations:
        at = where % (len(buf) + 1)
        if kind == "flip" and buf:
            buf[at % len(buf)] ^= 1 << (value % 8)
        elif kind == "set" and buf:
            buf[at % len(buf)] = value
        elif kind == "insert":
            buf[at:at] = bytes([value]) * (1 + value % 4)
        elif kind == "delete":
            del buf[at : at + 1 + value % 8]
        elif kind == "splice":
            buf[at:] = buf[value % (len(buf) + 1) :]
        elif kind == "truncate":
            del buf[at:]
    return bytes(buf)


def run(target: str, inputs: int) -> tuple[int, list[str]]:
    """Feed ``target`` about ``inputs`` inputs; return (inputs fed, unexpected exceptions)."""
    feed, reseal, seeds = FEEDERS[target], RESEAL.get(target), SEEDS[target]
    fed = 0
    unexpected: list[str] = []

    def one(data: bytes) -> None:
        nonlocal fed
        fed += 1
        try:
            feed(data)
        except Exception as exc:  # anything not documented is a finding
            if len(unexpected) < 20:
                where = traceback.extract_tb(exc.__traceback__)[-1]
                unexpected.append(
                    f"{type(exc).__name__}: {exc} at {where.filename}:{where.lineno} "
                    f"for input {data[:64].hex()}..."
                )

    per_example = 1 + _CUTS + (reseal is not None)
    examples = max(1, -(-inputs // per_example))

    def make_example() -> Callable[[], None]:
        @given(
            base=st.one_of(st.sampled_from(seeds), st.binary(max_size=256)),
            mutations=st.lists(_mutation, max_size=6),
            cuts=st.lists(st.integers(0, 1 << 16), min_size=_CUTS, max_size=_CUTS),
        )
        def example(base: bytes, mutations: list[tuple[str, int, int]], cuts: list[int]) -> None:
            data = _mutate(base, mutations)
            one(data)
            for cut in cuts:
                one(data[: cut % (len(data) + 1)])
            if reseal is not None:
                one(reseal(data))

        return example  # type: ignore[no-any-return]

    # In chunks, each with its own fixed seed: one Hypothesis run remembers every
    # example it made. With an address-space limit: a resealed payload can ask
    # marshal for a tuple of 2**31 items, which it allocates before finding the
    # data short (CPython's own pyc loading does the same); the limit turns
    # that into a quick MemoryError (caught as a bad payload) instead of gigabytes.
    with _address_space_limit(1 << 30):
        for chunk, start in enumerate(range(0, examples, _CHUNK)):
            runner = settings(
                max_examples=min(_CHUNK, examples - start),
                database=None,
                deadline=None,
                phases=[Phase.generate],
                suppress_health_check=list(HealthCheck),
            )(seed(chunk)(make_example()))
            runner()
    return fed, unexpected


@contextlib.contextmanager
def _address_space_limit(extra: int) -> Iterator[None]:
    """Limit this process's address space to what it uses now plus ``extra`` bytes."""
    try:
        import resource

        with open("/proc/self/statm") as handle:
            size = int(handle.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        old = resource.getrlimit(resource.RLIMIT_AS)
        resource.setrlimit(resource.RLIMIT_AS, (size + extra, old[1]))
    except (ImportError, OSError, ValueError):
        yield  # not Linux: no limit
        return
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, old)
