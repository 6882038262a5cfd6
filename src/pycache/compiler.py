"""Compiling sources ahead of time: single files and whole trees.

Three layers, from pure to I/O:

* planning (pure): which optimization levels, which pyc path for a source
  (``pyc_path``), which name goes into ``co_filename`` (``code_filename``),
  the default invalidation mode (``default_invalidation_mode``), how to cut
  the work into batches (``batches``);
* checking (in the parent, cheap): ``find_sources`` walks the trees, and
  ``compile_tree`` stats every source and decides what is up to date from the
  path index (store destination) or the existing pyc header (in-tree), so that
  a no-op rerun starts no worker at all (a forked child checks the second
  half of a large tree meanwhile);
* compiling (``compile_batch``, in worker processes): read, hash, compile,
  marshal and write.

Destinations: ``store`` writes store entries under exactly the key the import
engine computes for each optimization level, and records the path index so
that later imports are hits by stat. ``in-tree`` writes CPython-compatible pycs
into ``__pycache__`` (or under a ``sys.pycache_prefix``-style prefix) and
``legacy`` beside the source (``compileall -b``). The pyc bytes are those
``py_compile`` writes: the PEP 552 header (``pycache._format``) followed by
``marshal.dumps(compile(source, dfile, "exec", dont_inherit=True, optimize=level))``.
"""

from __future__ import annotations

import marshal
import operator
import os
import re
import sys
import time
from types import CodeType
from typing import (
    Any,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    NamedTuple,
    Sequence,
    TypeVar,
)

from . import _entry, _format, _fs
from .index import PathIndex, make_record, trusted_key
from .keys import cache_key, compile_context
from .stores.local import LocalStore

__all__ = [
    "STORE",
    "IN_TREE",
    "LEGACY",
    "Failure",
    "Options",
    "Summary",
    "batches",
    "code_filename",
    "compile_batch",
    "compile_tree",
    "default_invalidation_mode",
    "find_sources",
    "pyc_path",
]

STORE = "store"
IN_TREE = "in-tree"
LEGACY = "legacy"

_cache_from_source = sys.modules["_frozen_importlib_external"].cache_from_source
_CACHE_TAG = sys.implementation.cache_tag
# compileall's default recursion depth is the recursion limit.
DEFAULT_MAX_DEPTH = sys.getrecursionlimit()

# Result statuses of one source.
_COMPILED, _UP_TO_DATE, _FAILED = "compiled", "up to date", "failed"


# NamedTuples and a plain class rather than dataclasses: importing dataclasses
# (and inspect with it) would be a twentieth of a no-op rerun.


class Options(NamedTuple):
    """What to compile and where; built by the command line, read by every worker."""

    destination: str = STORE
    store_dir: str | None = None
    #: Sign store entries with this secret (``PYCACHE_KEY``), as imports would.
    secret: bytes | None = None
    prefix: str | None = None
    invalidation_mode: str = _format.TIMESTAMP
    levels: tuple[int, ...] = (0,)
    force: bool = False
    hardlink_dupes: bool = False
    ddir: str | None = None
    stripdir: str | None = None
    prependdir: str | None = None


_DEFAULT_OPTIONS = Options()


class Source(NamedTuple):
    """One source file to compile: its path, and the name its code objects carry."""

    path: str
    dfile: str


class Failure(NamedTuple):
    """A source that could not be compiled or written, as ``file:line: message``."""

    path: str
    line: int | None
    message: str

    def __str__(self) -> str:
        if self.line is None:
            return f"{self.path}: {self.message}"
        return f"{self.path}:{self.line}: {self.message}"


class Summary:
    """What a run did. ``failures`` are sorted by path."""

    __slots__ = ("compiled", "failed", "failures", "files", "seconds", "up_to_date")

    def __init__(self, files: int = 0) -> None:
        self.files = files
        self.compiled = 0
        self.up_to_date = 0
        self.failed = 0
        self.seconds = 0.0
        self.failures: list[Failure] = []

    def as_json(self) -> dict[str, object]:
        return {
            "files": self.files,
            "compiled": self.compiled,
            "up_to_date": self.up_to_date,
            "failed": self.failed,
            "seconds": round(self.seconds, 3),
        }


# --------------------------------------------------------------------------- planning


def default_invalidation_mode(environ: Mapping[str, str]) -> str:
    """Return py_compile's default mode: checked-hash when ``SOURCE_DATE_EPOCH`` is set.

    (CPython ``Lib/py_compile.py``, ``_get_default_invalidation_mode``: a
    reproducible build must not record the source's mtime.)
    """
    return _format.CHECKED_HASH if environ.get("SOURCE_DATE_EPOCH") else _format.TIMESTAMP


def pyc_path(source: str, level: int, options: Options) -> str:
    """Return where the pyc of ``source`` at optimization ``level`` goes (in-tree, legacy)."""
    if options.destination == LEGACY:
        return source + "c"
    if options.prefix is None:
        path: str = _cache_from_source(source, optimization=level or "")
        return path
    # The sys.pycache_prefix layout: the source's absolute directory mirrored
    # under the prefix, without a __pycache__ level (importlib's cache_from_source).
    head, tail = os.path.split(os.path.abspath(source))
    base = tail.rpartition(".")[0]
    opt = f".opt-{level}" if level else ""
    return os.path.join(options.prefix, head.lstrip(os.sep), f"{base}.{_CACHE_TAG}{opt}.pyc")


def code_filename(path: str, relative: str | None, options: Options) -> str:
    """Return the ``co_filename`` for ``path``, after ``-d``, ``-s`` and ``-p``.

    ``relative`` is the path below the directory argument it was found under
    (its base name for a file argument). Same rules as compileall: ``-d DIR``
    replaces the argument's directory with ``DIR``; ``-s DIR`` drops the
    leading components ``path`` shares with ``DIR``; ``-p DIR`` then prepends ``DIR``.
    """
    if options.destination == STORE:
        return os.path.abspath(path)
    if options.ddir is not None:
        return os.path.join(options.ddir, relative or os.path.basename(path))
    dfile: str | None = None
    if options.stripdir is not None:
        parts = path.split(os.sep)
        kept = list(parts)
        for strip_part, part in zip(options.stripdir.split(os.sep), parts):
            if strip_part == part:
                kept.remove(strip_part)
        dfile = os.path.join(*kept) if kept else ""
    if options.prependdir is not None:
        dfile = os.path.join(options.prependdir, dfile if dfile is not None else path)
    return dfile if dfile is not None else path


_T = TypeVar("_T")


def batches(items: Sequence[tuple[_T, str, int]], jobs: int) -> list[list[_T]]:
    """Cut ``(item, directory, size)`` triples into batches, heaviest first.

    One task per file (as compileall submits them) costs a round trip per
    file; one task per worker leaves cores idle when the batches take unequal
    time. So a batch holds at most 64 items and about 1/32 of a worker's share
    of the bytes (a bigger file goes alone). A directory's items stay in one
    batch where they fit, so that most directories are done, and their path
    index written, while the workers still run rather than after them. The
    batches come heaviest first (longest-processing-time scheduling): what is
    left at the end is small, so the workers finish together. ``items`` are
    expected grouped by directory (``compile_tree`` sorts them so); each run
    of one directory is a group.
    """
    if not items:
        return []
    count_cap = max(1, min(64, len(items) // (jobs * 32)))
    byte_cap = max(1, sum(size for _, _, size in items) // (jobs * 32))
    made: list[tuple[int, list[_T]]] = []
    current: list[_T] = []
    weight = 0
    start = 0
    while start < len(items):
        end = start
        directory = items[start][1]
        while end < len(items) and items[end][1] == directory:
            end += 1
        group = items[start:end]
        group_weight = sum(size for _, _, size in group)
        if current and (len(current) + len(group) > count_cap or weight + group_weight > byte_cap):
            made.append((weight, current))
            current, weight = [], 0
        for item, _, size in group:
            if current and (len(current) >= count_cap or weight + size > byte_cap):
                made.append((weight, current))
                current, weight = [], 0
            current.append(item)
            weight += size
        start = end
    if current:
        made.append((weight, current))
    made.sort(key=lambda batch: -batch[0])  # stable: equal weights keep tree order
    return [batch for _, batch in made]


# --------------------------------------------------------------------------- finding sources


def _outside(path: str, limit_dir: str) -> bool:
    target = os.path.realpath(path)
    limit = os.path.realpath(limit_dir)
    return os.path.commonpath([target, limit]) != limit


_NAME = operator.attrgetter("name")  # a directory entry's sort key


def find_sources(
    paths: Iterable[str],
    *,
    max_depth: int = DEFAULT_MAX_DEPTH,
    exclude: re.Pattern[str] | None = None,
    limit_dir: str | None = None,
    options: Options = _DEFAULT_OPTIONS,
    failures: list[Failure] | None = None,
) -> list[Source]:
    """Return the ``.py`` files under ``paths``, sorted within each directory.

    A file argument is taken whatever its suffix (as compileall does for
    ``-i`` lists, only ``.py`` files are compiled from directories). Directory
    symlinks are not followed; ``__pycache__`` is skipped; ``exclude`` is
    searched in each file path; with ``limit_dir``, symlinks resolving outside
    it are skipped. Directories that cannot be listed are added to ``failures``.
    Raises ``FileNotFoundError`` for an argument that does not exist.
    """
    found: list[Source] = []
    seen: set[str] = set()
    to_store = options.destination == STORE
    sep = os.sep

    def add(path: str, relative: str) -> None:
        if exclude is not None and exclude.search(path):
            return
        if limit_dir is not None and os.path.islink(path) and _outside(path, limit_dir):
            return
        if path not in seen:
            seen.add(path)
            found.append(Source(path, path if to_store else code_filename(path, relative, options)))

    def walk(directory: str, relative: str, depth: int) -> None:
        # scandir: the file type comes from the directory entry, so a regular
        # file costs no stat here (the one stat is taken when it is checked).
        try:
            with os.scandir(directory) as listing:
                entries = sorted(listing, key=_NAME)
        except OSError as exc:
            if failures is not None:
                failures.append(Failure(directory, None, f"cannot list: {exc.strerror}"))
            return
        for entry in entries:
            name = entry.name
            if name == "__pycache__":
                continue
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            if is_dir:  # directory symlinks are not followed, as in compileall
                if depth > 0 and not entry.is_symlink():
                    walk(entry.path, f"{relative}{name}{sep}", depth - 1)
            elif name.endswith(".py") and entry.is_file():
                add(entry.path, relative + name)

    for path in paths:
        if to_store:
            path = os.path.abspath(path)  # the path imports see, and the index records
        if os.path.isdir(path):
            walk(path, "", max_depth)
        elif os.path.isfile(path):
            add(path, os.path.basename(path))
        elif not os.path.lexists(path):
            raise FileNotFoundError(path)
        elif failures is not None:
            failures.append(Failure(path, None, "not a regular file or directory"))
    return found


# --------------------------------------------------------------------------- compiling


class _Compiled:
    """What a worker reports for one source."""

    __slots__ = ("index", "keys", "status", "failure")

    def __init__(
        self,
        index: int,
        status: str,
        keys: tuple[bytes, ...] = (),
        failure: Failure | None = None,
    ) -> None:
        self.index = index
        self.status = status
        self.keys = keys
        self.failure = failure


def _syntax_failure(path: str, exc: BaseException) -> Failure:
    if isinstance(exc, SyntaxError):
        return Failure(path, exc.lineno, f"{type(exc).__name__}: {exc.msg}")
    return Failure(path, None, f"{type(exc).__name__}: {exc}")


def _read_source(path: str) -> tuple[bytes, os.stat_result]:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        st = os.fstat(fd)  # before the read, as py_compile takes the stats first
        return _fs.read_fd(fd, st.st_size), st
    finally:
        os.close(fd)


def _write_pyc(path: str, data: bytes, mode: int, link_to: str | None) -> None:
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    if link_to is not None:
        # Same bytes as the previous level's pyc: a hard link (compileall
        # --hardlink-dupes), made beside the target and renamed over it.
        tmp = f"{path}.{os.getpid()}.link.tmp"
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        os.link(link_to, tmp)
        os.replace(tmp, path)
        return
    _fs.write_atomic(path, data, mode)


class _Worker:
    """Compiles batches of sources for one ``Options``; one per process."""

    def __init__(self, options: Options, known_keys: set[str] | None = None) -> None:
        self.options = options
        self.store = LocalStore(options.store_dir) if options.store_dir is not None else None
        self.contexts = [compile_context(level) for level in options.levels]
        #: The parent's listing of the store's keys, with what this worker wrote since.
        self.known_keys = known_keys

    def compile_one(self, index: int, source: Source, levels: Sequence[int]) -> _Compiled:
        try:
            data, st = _read_source(source.path)
        except OSError as exc:
            return _Compiled(index, _FAILED, failure=Failure(source.path, None, str(exc.strerror)))
        try:
            if self.store is not None:
                return self._to_store(index, source, data)
            return self._to_tree(index, source, data, st, levels)
        except Exception as exc:  # one file's surprise must not take the batch down
            return _Compiled(index, _FAILED, failure=Failure(source.path, None, repr(exc)))

    @staticmethod
    def _code(source: Source, data: bytes, level: int) -> CodeType:
        # What py_compile does (SourceLoader.source_to_code).
        return compile(data, source.dfile, "exec", dont_inherit=True, optimize=level)

    def _to_store(self, index: int, source: Source, data: bytes) -> _Compiled:
        assert self.store is not None
        keys = tuple(cache_key(data, context) for context in self.contexts)
        compiled = False
        for level, key in zip(self.options.levels, keys):
            hex_key = key.hex()
            if not self.options.force and self._stored(key):
                continue
            try:
                payload = marshal.dumps(self._code(source, data, level))
            except Exception as exc:  # SyntaxError, ValueError (null bytes), RecursionError
                return _Compiled(index, _FAILED, failure=_syntax_failure(source.path, exc))
            entry = _entry.encode_entry(key, payload, self.options.secret)
            if not self.store.put(hex_key, entry):
                failure = Failure(source.path, None, f"cannot write to the store {self.store.root}")
                return _Compiled(index, _FAILED, failure=failure)
            if self.known_keys is not None:
                self.known_keys.add(hex_key)  # a duplicate later in this worker is up to date
            compiled = True
        return _Compiled(index, _COMPILED if compiled else _UP_TO_DATE, keys)

    def _stored(self, key: bytes) -> bool:
        """Say whether the store already holds a usable entry for ``key``."""
        assert self.store is not None
        if self.known_keys is not None:
            # The parent's listing of the store, inherited through fork: a
            # stat per file saved. An entry written since is written again
            # (same bytes); one gc removed since is redone by the next run, as
            # with a stat taken a moment too early.
            if key.hex() not in self.known_keys:
                return False
        elif self.options.secret is None:
            return os.path.exists(self.store.path_for(key.hex()))
        if self.options.secret is None:
            return True
        data = self.store.get(key.hex())  # with a secret, an unsigned entry must be redone
        if data is None:
            return False
        try:
            _entry.decode_entry(key, data, self.options.secret)
        except ValueError:  # EntryFormatError, EntrySignatureError
            return False
        return True

    def _to_tree(
        self, index: int, source: Source, data: bytes, st: os.stat_result, levels: Sequence[int]
    ) -> _Compiled:
        options = self.options
        mode = (st.st_mode | 0o200) & 0o666  # importlib's _calc_mode
        previous: tuple[bytes, str] | None = None
        for level in levels:
            try:
                code = self._code(source, data, level)
            except Exception as exc:
                return _Compiled(index, _FAILED, failure=_syntax_failure(source.path, exc))
            pyc = _format.encode_pyc(
                code,
                mode=options.invalidation_mode,
                mtime=int(st.st_mtime),
                size=st.st_size,
                source=data,
            )
            # Before 3.11, marshal writes a back-reference only for objects that
            # something else also refers to, so this code object must be gone
            # before the next level is compiled, as it is in py_compile.
            del code
            target = pyc_path(source.path, level, options)
            link_to = None
            if options.hardlink_dupes and previous is not None and previous[0] == pyc:
                link_to = previous[1]
            try:
                _write_pyc(target, pyc, mode, link_to)
            except OSError as exc:
                failure = Failure(source.path, None, f"cannot write {target}: {exc.strerror}")
                return _Compiled(index, _FAILED, failure=failure)
            previous = (pyc, target)
        return _Compiled(index, _COMPILED)


_worker: _Worker | None = None


def _init_worker(options: Options, known_keys: set[str] | None = None) -> None:
    global _worker
    _worker = _Worker(options, known_keys)


def compile_batch(batch: Sequence[tuple[int, Source, tuple[int, ...]]]) -> list[_Compiled]:
    """Compile one batch of ``(index, source, levels)`` in a worker process."""
    assert _worker is not None, "compile_batch runs in a worker made by _init_worker"
    return [_worker.compile_one(index, source, levels) for index, source, levels in batch]


# --------------------------------------------------------------------------- the parent


def _stale_levels(source: Source, st: os.stat_result, options: Options) -> tuple[int, ...]:
    """Return the levels whose in-tree pyc is missing or does not match the source."""
    stale = []
    source_bytes: bytes | None = None
    for level in options.levels:
        try:
            with open(pyc_path(source.path, level, options), "rb") as handle:
                header = _format.decode_header(handle.read(_format.HEADER_SIZE))
        except (OSError, ValueError):  # ValueError: PycFormatError
            stale.append(level)
            continue
        if header.mode != options.invalidation_mode:
            stale.append(level)  # a pyc in another mode is converted
            continue
        if header.source_hash is not None and source_bytes is None:
            try:
                source_bytes = _fs.read_file(source.path)
            except OSError:
                return options.levels  # the worker reports the error
        if not _format.is_fresh_for_source(
            header, source=source_bytes or b"", mtime=st.st_mtime, size=st.st_size
        ):
            stale.append(level)
    return tuple(stale)


_Work = list[tuple[int, Source, tuple[int, ...]]]
_Stats = dict[int, tuple[os.stat_result, int]]

#: Below this many sources, one process checks them all: the fork and the
#: pickled answer would cost more than the second core saves.
SPLIT_MIN_SOURCES = 4096


def _pending_work(
    sources: Sequence[Source],
    options: Options,
    store: LocalStore | None,
    indexes: Sequence[PathIndex] | None,
    summary: Summary,
    jobs: int = 1,
) -> tuple[_Work, _Stats, set[str] | None]:
    """Stat every source; return what must go to the workers, their stats, and
    the keys in the store (``None`` without a store, or when forced).

    With ``jobs`` > 1 and many sources, a forked child checks the second half
    while this process checks the first (a no-op rerun is all stats and index
    lookups); if the child fails, this process checks its half too.
    """
    stored = _stored_keys(store) if store is not None and not options.force else None

    def check(start: int, stop: int) -> tuple[_Work, _Stats, int]:
        return _check_sources(sources, start, stop, options, stored, indexes)

    half = len(sources)
    child = None
    if jobs > 1 and half >= SPLIT_MIN_SOURCES and _can_fork():
        half //= 2
        child = _fork(lambda: check(half, len(sources)))
    try:
        work, stats, up_to_date = check(0, half)
    except BaseException:  # interrupted: the child is stopped and reaped, not left behind
        if child is not None:
            _stop(child)
        raise
    if half < len(sources):
        other = _child_result(child) if child is not None else None
        if other is None:
            other = check(half, len(sources))
        work += other[0]
        stats.update(other[1])
        up_to_date += other[2]
    summary.up_to_date += up_to_date
    return work, stats, stored


def _check_sources(
    sources: Sequence[Source],
    start: int,
    stop: int,
    options: Options,
    stored: set[str] | None,
    indexes: Sequence[PathIndex] | None,
) -> tuple[_Work, _Stats, int]:
    """Check ``sources[start:stop]``: return the work, its stats, and how many are up to date."""
    work: _Work = []
    stats: _Stats = {}
    up_to_date = 0
    for position in range(start, stop):
        source = sources[position]
        now = time.time_ns()  # before the stat: the racy rule needs it so
        try:
            st = os.stat(source.path)
        except OSError:
            work.append((position, source, options.levels))  # the worker reports why
            continue
        if options.force:
            levels = options.levels
        elif stored is not None and indexes is not None:
            # Each level has its own index (its compile context): a source is
            # up to date when every level's record is trusted on this stat and
            # its entry is still in the store (gc may have removed it).
            levels = ()
            for index in indexes:
                record = index.lookup(source.dfile)  # dfile: the absolute path, for the store
                key = trusted_key(record, st) if record is not None else None
                if key is None or key.hex() not in stored:
                    levels = options.levels
                    break
        else:
            levels = _stale_levels(source, st, options)
        if levels:
            work.append((position, source, levels))
            stats[position] = (st, now)
        else:
            up_to_date += 1
    return work, stats, up_to_date


def _can_fork() -> bool:
    """Say whether this process may fork: POSIX, and no other thread running."""
    import signal

    if not hasattr(os, "fork") or not hasattr(signal, "pthread_sigmask"):
        return False
    threading = sys.modules.get("threading")  # not imported: no threads
    return threading is None or threading.active_count() == 1


def _fork(task: Callable[[], object]) -> tuple[int, int] | None:
    """Run ``task`` in a forked child; return its pid and the pipe its pickled result comes on."""
    import pickle  # here, not in the child
    import signal

    try:
        read_fd, write_fd = os.pipe()
    except OSError:
        return None
    # Signals wait until the child is inside the try that ends in os._exit: a
    # KeyboardInterrupt at the wrong moment must not send it on into our caller.
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
    try:
        pid = os.fork()
    except OSError:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        os.close(read_fd)
        os.close(write_fd)
        return None
    if pid == 0:  # the child: never returns into the caller's code
        code = 1
        try:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
            os.close(read_fd)
            data = memoryview(pickle.dumps(task(), pickle.HIGHEST_PROTOCOL))
            while data:
                data = data[os.write(write_fd, data) :]
            code = 0
        finally:
            os._exit(code)
    os.close(write_fd)
    try:
        # Handlers of the signals that came meanwhile run in this call.
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    except BaseException:
        _stop((pid, read_fd))
        raise
    return pid, read_fd


def _child_result(child: tuple[int, int]) -> Any:
    """Return what the child ``_fork`` started sent, or ``None`` if it failed."""
    pid, read_fd = child
    try:
        with open(read_fd, "rb") as pipe:
            data = pipe.read()
    finally:
        status = _reap(pid)
    if status not in (0, None) or not data:
        return None
    import pickle

    try:
        # With SIGCHLD ignored the status is unknown (None): an answer that
        # unpickles is whole, since the child sends it last.
        return pickle.loads(data)
    except Exception:  # a truncated answer: the caller does the work itself
        return None


def _reap(pid: int) -> int | None:
    """Wait for the child ``pid``; return its wait status (``None``: reaped elsewhere)."""
    try:
        return os.waitpid(pid, 0)[1]
    except ChildProcessError:  # SIGCHLD ignored, or a handler of the host reaped it
        return None


def _stop(child: tuple[int, int]) -> None:
    """Kill the child ``_fork`` started and reap it, discarding its answer."""
    import signal

    pid, read_fd = child
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass
    os.close(read_fd)
    _reap(pid)


def _stored_keys(store: LocalStore) -> set[str]:
    """Every key in ``store``: one listing per fan-out directory, not a stat per file."""
    return set(store.iterate())


def _directory(source: Source) -> str:
    """The directory whose path index holds ``source``'s record (as ``index`` splits it)."""
    return source.dfile.rpartition(os.sep)[0] or os.sep


def _plan(
    work: list[tuple[int, Source, tuple[int, ...]]],
    stats: Mapping[int, tuple[os.stat_result, int]],
    jobs: int,
) -> tuple[list[list[tuple[int, Source, tuple[int, ...]]]], dict[str, int]]:
    """Cut ``work`` into batches; return them and each directory's number of sources."""
    outstanding: dict[str, int] = {}
    for _, source, _ in work:  # grouped by directory, in the order first seen
        directory = _directory(source)
        outstanding[directory] = outstanding.get(directory, 0) + 1
    order = {directory: number for number, directory in enumerate(outstanding)}
    triples = sorted(
        (
            (item, _directory(item[1]), stats[item[0]][0].st_size if item[0] in stats else 0)
            for item in work
        ),
        key=lambda triple: order[triple[1]],
    )
    return batches(triples, jobs), outstanding


def _run_batches(
    chunks: list[list[tuple[int, Source, tuple[int, ...]]]],
    options: Options,
    jobs: int,
    known_keys: set[str] | None,
) -> Iterator[list[_Compiled]]:
    """Compile ``chunks`` in ``jobs`` worker processes; yield each one's results.

    ``known_keys`` (the store's listing) reaches forked workers for free; with
    another start method it is not sent, and workers stat the store instead.
    """
    if jobs <= 1 or len(chunks) <= 1:
        _init_worker(options, known_keys)
        for chunk in chunks:
            yield compile_batch(chunk)
        return
    import concurrent.futures
    import multiprocessing

    fork = "fork" in multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if fork else None)
    with concurrent.futures.ProcessPoolExecutor(
        max_workers=min(jobs, len(chunks)),
        mp_context=context,
        initializer=_init_worker,
        initargs=(options, known_keys if fork else None),
    ) as pool:
        futures = {pool.submit(compile_batch, chunk): chunk for chunk in chunks}
        for future in concurrent.futures.as_completed(futures):
            try:
                yield future.result()
            except Exception as exc:  # a worker died (BrokenProcessPool: killed, out of memory)
                message = f"worker failed: {exc!r}"
                yield [
                    _Compiled(index, _FAILED, failure=Failure(source.path, None, message))
                    for index, source, _ in futures[future]
                ]


def compile_tree(
    sources: Sequence[Source],
    options: Options,
    *,
    jobs: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> Summary:
    """Compile ``sources`` as ``options`` says; return what happened.

    ``jobs`` 0 means one worker per CPU. ``progress(done, total)`` is called
    as results arrive. Failures of single files are in the summary; nothing
    is raised for them.
    """
    started = time.perf_counter()
    jobs = jobs or os.cpu_count() or 1
    summary = Summary(files=len(sources))
    indexes = store = None
    if options.destination == STORE:
        assert options.store_dir is not None
        store = LocalStore(options.store_dir)
        root = os.path.join(options.store_dir, "index")
        # One index per level: the context a key was computed in is part of it.
        indexes = [PathIndex(root, context=compile_context(level)) for level in options.levels]
    work, stats, known_keys = _pending_work(sources, options, store, indexes, summary, jobs)
    chunks, outstanding = _plan(work, stats, jobs)
    done = summary.up_to_date
    if progress is not None:
        progress(done, len(sources))
    for results in _run_batches(chunks, options, jobs, known_keys):
        finished = []
        for result in results:
            source = sources[result.index]
            directory = _directory(source)
            outstanding[directory] -= 1
            if not outstanding[directory]:
                finished.append(directory)
            if result.status == _FAILED:
                summary.failed += 1
                assert result.failure is not None
                summary.failures.append(result.failure)
                continue
            if result.status == _COMPILED:
                summary.compiled += 1
            else:
                summary.up_to_date += 1
            if indexes is not None and result.index in stats:
                st, now = stats[result.index]
                for index, key in zip(indexes, result.keys):
                    index.record(source.dfile, make_record(st, now, key))
        if indexes is not None and finished:
            # Written while the workers go on with the next batches: no
            # index tail after the last compile.
            for index in indexes:
                index.flush(finished)
        done += len(results)
        if progress is not None:
            progress(done, len(sources))
    if indexes is not None:
        for index in indexes:
            index.flush()  # a safety net: each directory went as its last source came back
    summary.failures.sort(key=lambda failure: (failure.path, failure.line or 0))
    summary.seconds = time.perf_counter() - started
    return summary
