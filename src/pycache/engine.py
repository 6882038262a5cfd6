"""The get_code algorithm: path index, then store, then in-tree pyc, then compile.

For a source ``path`` whose ``stat`` is ``st``:

1. If the path index holds a trusted record for ``st`` (same signature, not
   racy), load the recorded key from the store. This is the warm path: one
   ``stat``, one entry read, no hashing of the source.
2. Otherwise read and hash the source. If the store has that key (the content
   was seen before, at any path), load it and renew the index record.
3. Otherwise use a ``__pycache__`` pyc whose source hash matches the bytes just
   read, for this import only; else compile, then store the result under the
   key. Timestamp pycs are never used: nothing proves that the bytes they were
   compiled from are the bytes on disk now (see ``_from_intree``).

Every cache problem on the way is a miss. Only what CPython itself would raise
(reading the source, ``SyntaxError`` from compiling it) propagates.

Only the warm path's modules are imported with this one; hashing, the pyc
format and the stats file are imported on first need. Imports that the engine
itself triggers are served by CPython's loader (see ``importer``), so such a
lazy import never re-enters the engine. For the same reason the warm path's
modules quote their annotations instead of importing ``__future__``, and import
``exceptions`` only when they fail.
"""

import _imp
import marshal
import os
import sys

from . import _debug, _entry
from .index import make_record, trusted_key

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import CodeType
    from typing import Protocol

    from .index import PathIndex
    from .stores.base import Store

    class SourceLoader(Protocol):
        def get_data(self, path: str) -> bytes: ...

        def source_to_code(self, data: bytes, path: str) -> "CodeType": ...


__all__ = ["Engine"]

_HIT, _MISSING, _CORRUPT, _UNSIGNED = "hit", "missing", "corrupt", "unsigned"
_CODE_TYPE = type((lambda: None).__code__)  # types.CodeType, without importing types
_cache_from_source = sys.modules["_frozen_importlib_external"].cache_from_source
# Rewrites co_filename in place, recursively, as CPython's own loader does.
_fix_co_filename = _imp._fix_co_filename  # type: ignore[attr-defined]


class Engine:
    """Serve code objects for source paths from a store and a path index.

    Counters live in ``counts`` (names from ``pycache.stats.COUNTERS``) until
    ``flush`` adds them to the stats file.
    """

    def __init__(
        self,
        store: "Store",
        index: "PathIndex",
        *,
        context: "bytes | None" = None,
        use_intree: bool = True,
        stats_path: "str | None" = None,
        secret: "bytes | None" = None,
        max_size: "int | None" = None,
    ) -> None:
        self.store = store
        self.index = index
        #: The store's size limit, checked at exit by processes that wrote entries.
        self.max_size = max_size
        self.bytes_written = 0
        #: With a secret, entries are signed when written and must be signed to be read.
        self.secret = secret
        self.counts: dict[str, int] = {}
        self._context = context
        self.use_intree = use_intree
        self.stats_path = stats_path
        #: Seconds ``flush`` may wait for queued remote writes (a ``TieredStore``).
        self.remote_flush_timeout = 1.0
        #: A tiered store's ``backfill``: called only with entries that passed the checks.
        self._backfill = getattr(store, "backfill", None)

    @property
    def context(self) -> bytes:
        """The compile context that goes into every key (computed on first use)."""
        if self._context is None:
            from .keys import compile_context

            self._context = compile_context()
        return self._context

    def _count(self, name: str) -> None:
        counts = self.counts
        counts[name] = counts.get(name, 0) + 1

    def get_code(
        self, loader: "SourceLoader", path: str, st: "os.stat_result", now: int
    ) -> "CodeType":
        """Return the code object for the source ``path``.

        ``st`` is the source's ``stat`` and ``now`` a wall-clock time (ns) taken
        before it. Raises what ``loader.get_data`` and ``loader.source_to_code``
        raise, nothing else.
        """
        record = None
        tried = None
        status = None
        try:
            record = self.index.lookup(path)
            if record is not None:
                tried = trusted_key(record, st)
                if tried is not None:
                    code, status = self._load(tried, path)
                    if code is not None:
                        counts = self.counts  # inlined _count: this is the warm path
                        counts["hits"] = counts.get("hits", 0) + 1
                        counts["hits_by_stat"] = counts.get("hits_by_stat", 0) + 1
                        _debug.trace("hit %s (index)", path)
                        return code
        except Exception as exc:  # a cache problem is a miss
            _debug.trace("index lookup failed for %s: %r", path, exc)

        source = loader.get_data(path)
        key = None
        code = None
        try:
            from .keys import cache_key

            key = cache_key(source, self.context)
            if key != tried:
                code, status = self._load(key, path)
                if code is not None:
                    self._count("hits")
                    self._count("hits_by_content")
                    _debug.trace("hit %s (content)", path)
                    self.index.record(path, make_record(st, now, key))
                    return code
            reason = self._miss_reason(record, key, status)
            self._count("misses")
            self._count(reason)
            _debug.trace("miss %s (%s)", path, reason)
            if self.use_intree:
                code = self._from_intree(path, source)
                if code is not None:
                    self._count("intree_pyc")
                    return code
        except Exception as exc:
            _debug.trace("cache failure for %s, compiling: %r", path, exc)

        if code is None:
            code = loader.source_to_code(source, path)
            self._count("compiles")
        if key is not None:
            try:
                self._store(key, code, path, st, now)
            except Exception as exc:
                _debug.trace("cannot store %s: %r", path, exc)
        return code

    @staticmethod
    def _miss_reason(record: object, key: bytes, status: "str | None") -> str:
        if status == _CORRUPT:
            return "miss_corrupt"
        if status == _UNSIGNED:
            return "miss_unsigned"
        if record is None:
            return "miss_new"
        if record[6] != key:  # type: ignore[index]
            return "miss_changed"
        return "miss_missing"

    def _load(self, key: bytes, path: str) -> "tuple[CodeType | None, str]":
        """Load ``key`` from the store; remove it if it fails its checks."""
        hex_key = key.hex()
        data = self.store.get(hex_key)
        if data is None:
            return None, _MISSING
        code, status = self._decode(key, data, path)
        if code is None:
            # A damaged copy in a remote's bundle: the remote's own entry may be
            # good. (An unsigned one would be unsigned there too.)
            refetch = getattr(self.store, "refetch", None)
            data = refetch(hex_key) if refetch is not None and status == _CORRUPT else None
            if data is None:
                return None, status
            code, status = self._decode(key, data, path)
            if code is None:
                return None, status
        if self._backfill is not None:
            self._backfill(hex_key, data)
        _fix_co_filename(code, path)
        return code, _HIT

    def _decode(self, key: bytes, data: bytes, path: str) -> "tuple[CodeType | None, str]":
        """Return the code of the entry ``data``; remove it from the store if it is bad."""
        try:
            code = marshal.loads(_entry.decode_entry(key, data, self.secret))
            if type(code) is not _CODE_TYPE:
                raise TypeError(f"payload is a {type(code).__name__}, not code")
            return code, _HIT
        except Exception as exc:  # EntryFormatError, or marshal's EOFError/ValueError/TypeError
            from .exceptions import EntrySignatureError

            status = _UNSIGNED if isinstance(exc, EntrySignatureError) else _CORRUPT
            hex_key = key.hex()
            _debug.trace("%s entry %s for %s: %s; removing it", status, hex_key, path, exc)
            self.store.delete(hex_key)  # its replacement is written once compiled
            return None, status

    def _from_intree(self, path: str, source: bytes) -> "CodeType | None":
        """Return the code of a usable hash-based ``__pycache__`` pyc for ``source``, or ``None``.

        Hash-based pycs are honoured as CPython honours them (PEP 552): a
        checked-hash pyc is used only if its hash matches ``source``, an
        unchecked-hash pyc is used as it is, and ``--check-hash-based-pycs
        always|never`` changes that as it does for CPython. A timestamp pyc
        proves nothing and is never used: CPython stats the source, reads it
        and writes the pyc later, so a same-second, same-size edit in between
        leaves a pyc whose header matches and whose file is newer than the
        source, yet whose code is the old one. A pyc another user owns or
        others can write is ignored, like an untrusted store entry.

        The code serves this import only and never goes into the store: the
        pyc may have been compiled under other flags (``-X no_debug_ranges``)
        or from other bytes (unchecked), and must not outlive its ``__pycache__``.
        """
        from . import _format, _fs

        try:
            pyc_path = _cache_from_source(path)
            fd = os.open(pyc_path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except (OSError, NotImplementedError, ValueError):
            return None
        try:
            pyc_st = os.fstat(fd)
            reason = _fs.untrusted_reason(pyc_st)
            if reason is not None:
                _debug.trace("ignoring %s: it is %s", pyc_path, reason)
                return None
            # The header alone decides; most pycs are timestamp ones, read no further.
            head = os.read(fd, _format.HEADER_SIZE)
            try:
                header = _format.decode_header(head)
            except ValueError as exc:  # PycFormatError
                _debug.trace("ignoring %s: %s", pyc_path, exc)
                return None
            if header.source_hash is None:
                _debug.trace("ignoring %s: a timestamp pyc cannot prove it is fresh", pyc_path)
                return None
            policy = _imp.check_hash_based_pycs
            check = policy == "always" or (
                policy == "default" and header.mode == _format.CHECKED_HASH
            )
            if check and header.source_hash != _format.source_hash(source):
                _debug.trace("ignoring stale %s", pyc_path)
                return None
            payload = _fs.read_fd(fd, pyc_st.st_size - len(head))
        finally:
            os.close(fd)
        try:
            code = _format.loads_code(payload)
        except ValueError as exc:  # PycFormatError
            _debug.trace("ignoring corrupt %s: %s", pyc_path, exc)
            return None
        _fix_co_filename(code, path)
        _debug.trace("using %s %s", "checked" if check else "unchecked", pyc_path)
        return code

    def _store(
        self,
        key: bytes,
        code: "CodeType",
        path: str,
        st: "os.stat_result",
        now: int,
    ) -> None:
        if not self.store.writable:
            return
        entry = _entry.encode_entry(key, marshal.dumps(code), self.secret)
        if self.store.put(key.hex(), entry):
            self.bytes_written += len(entry)
            self._count("store_writes")
            self.index.record(path, make_record(st, now, key))
        else:
            self._count("store_write_errors")

    def take_counts(self) -> "dict[str, int]":
        """Return the counters and start again from zero."""
        counts, self.counts = self.counts, {}
        return counts

    def flush(self) -> None:
        """Write the pending index records and counters. Never raises."""
        counts = self.take_counts()
        if self._backfill is not None:  # a TieredStore: bounded wait for the remote queue
            try:
                # Its backfill helper, if it starts one, takes the index records too.
                self.store.flush(self.remote_flush_timeout, self.index)  # type: ignore[attr-defined]
                for name, value in self.store.take_counts().items():  # type: ignore[attr-defined]
                    counts[name] = counts.get(name, 0) + value
            except Exception as exc:
                _debug.trace("remote flush failed: %r", exc)
        try:
            self.index.flush()
        except Exception as exc:
            _debug.trace("index flush failed: %r", exc)
        if self.stats_path is not None and counts:
            try:
                from . import stats

                stats.append(self.stats_path, counts)
            except Exception as exc:
                _debug.trace("cannot write stats to %s: %r", self.stats_path, exc)
        self._enforce_size_limit()

    def _enforce_size_limit(self) -> None:
        """Trim the store if this process's writes took it over ``max_size``. Never raises.

        Amortised: only processes that wrote entries get here, and they only add
        to an estimate unless it passes the limit (see ``eviction``).
        """
        written, self.bytes_written = self.bytes_written, 0
        local = getattr(self.store, "local", self.store)  # a TieredStore's own disk
        root = getattr(local, "root", None)
        if not written or self.max_size is None or root is None or not local.writable:
            return
        try:
            from . import eviction

            outcome = eviction.collect_if_due(root, self.max_size, written)
            if outcome is not None:
                _debug.trace("store size checked: %d entries evicted", outcome.evicted)
        except Exception as exc:
            _debug.trace("cannot enforce the store size limit: %r", exc)

    def after_fork(self) -> None:
        """Forget the parent's unflushed counters and records in a forked child."""
        self.take_counts()
        self.bytes_written = 0
        self.index.forget_pending()
        if self._backfill is not None:
            self.store.after_fork()  # type: ignore[attr-defined]
