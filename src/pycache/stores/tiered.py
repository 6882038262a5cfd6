"""The local store in front of one or more remote stores.

A read tries the local store, then each remote in order. A remote's bytes are
not trusted yet: the engine checks them (checksum, and HMAC when a key is
set) and only then calls ``backfill``, which keeps them for the local store.
So an unsigned or forged remote entry never lands locally. The copies are
made after exit by a helper process (``pycache.backfill``), never on the import
path nor in a thread of the importing process: a fresh runner backfills every
module it imports. At most ``BACKFILL_LIMIT`` bytes are kept;
beyond that a copy is dropped (the next run fetches that entry again).

Bundles (``pycache.bundle``): at its first request to a remote, a process
fetches the bundle of its program (the entries a writing run of the same
program loaded) in a few requests, and serves later misses from it. At exit a
process that writes to remotes uploads the bundle of what it loaded, unless
this machine already uploaded that same set (a marker in
``<store>/bundles/``).

A write goes to the local store at once and to every read-write remote
through a bounded queue drained by one daemon thread, started on the first
remote write once the remotes' client libraries are imported. Backends whose
library must be imported (``ready``, see ``_library``) are asked in the
importing thread, never in the writer: a remote that is not ready yet is
skipped by reads, and writes wait in the queue for it (at the latest, the
exit flush imports it). When the queue is full the entry is dropped (and counted). At
exit ``flush`` waits a bounded time for the queue, then gives up. A remote
whose ``get`` or ``put`` raises, or whose reads take the whole timeout
``SLOW_LIMIT`` times in a row, is dropped for the rest of the process (the
backends have their own breakers as well). After ``fork`` the child
forgets the parent's queue and thread.
"""

import collections
import os
import time

from .. import _debug
from ..exceptions import RemoteError
from ._library import Library, busy_with

TYPE_CHECKING = False
if TYPE_CHECKING:
    import threading
    from typing import Callable, Deque, Iterable, Iterator

    from ..index import PathIndex
    from .base import Store

__all__ = ["Remote", "TieredStore"]

#: Entries waiting for the remotes, at most.
QUEUE_LIMIT = 256
#: Bytes of remote hits kept for the local store, at most.
BACKFILL_LIMIT = 64 * 1024 * 1024
#: Seconds after which a machine uploads an unchanged bundle again (the remote may have lost it).
BUNDLE_REFRESH = 24 * 3600
#: Consecutive reads that take the whole timeout before a remote is given up.
SLOW_LIMIT = 3
#: ``threading`` itself is imported at a safe point only (see ``_library``).
_THREADING = Library(("threading",))


class Remote:
    """One remote tier: its store, its URL (for display) and whether we write to it."""

    __slots__ = (
        "bundle",
        "bundle_damaged",
        "bundle_keys",
        "failed",
        "read_write",
        "slow",
        "store",
        "url",
    )

    def __init__(self, store: "Store", url: str, *, read_write: bool) -> None:
        self.store = store
        self.url = url
        self.read_write = read_write
        self.failed = False
        #: Consecutive reads that took the whole timeout.
        self.slow = 0
        #: The entries of this program's bundle not served yet (``None``: not fetched).
        self.bundle: dict[str, bytes] | None = None
        #: The keys of the bundle fetched from this remote (``None``: none fetched).
        self.bundle_keys: frozenset[str] | None = None
        #: An entry of that bundle failed the engine's checks: upload it anew.
        self.bundle_damaged = False


class TieredStore:
    """A ``Store``: ``local`` first, then ``remotes``. ``get`` and ``put`` never raise."""

    def __init__(
        self,
        local: "Store",
        remotes: "list[Remote]",
        *,
        queue_limit: int = QUEUE_LIMIT,
        timeout: "float | None" = None,
        context: "bytes | None" = None,
        backfill_limit: int = BACKFILL_LIMIT,
    ) -> None:
        self.local = local
        self.remotes = remotes
        self.queue_limit = queue_limit
        self.backfill_limit = backfill_limit
        #: Reads taking this long count as failures (``None``: never).
        self.timeout = timeout
        #: The compile context, which names bundles (``None``: no bundles).
        self.context = context
        #: The bundle's name: ``""`` until computed, ``None`` for no bundle.
        self._bundle_key: str | None = ""
        self.counts: dict[str, int] = {}
        #: The last entry served by a remote, until the engine has checked it: key,
        #: data, and the remote whose bundle held it (``None``: the remote's own entry).
        self._remote_hit: tuple[str, bytes, Remote | None] | None = None
        self._reset_queue()

    def _reset_queue(self) -> None:
        #: Entries for the read-write remotes.
        self._queue: Deque[tuple[str, bytes]] = collections.deque()
        #: Checked remote hits for the local store, and their bytes.
        self._backfills: dict[str, bytes] = {}
        self._backfill_bytes = 0
        #: Every key this process loaded or stored, in order (kept for the bundle if we write).
        self._used: dict[str, None] = {}
        self._record_use = any(r.read_write for r in self.remotes)
        #: Set (by an importing thread) once every read-write remote's library is imported.
        self._remotes_ready = False
        # threading is imported on the first queued write, not at start-up.
        self._cond: threading.Condition | None = None
        self._busy = 0
        self._thread: threading.Thread | None = None
        #: The writer thread's counters (merged by ``take_counts``).
        self._writer_counts: dict[str, int] = {}

    @property
    def writable(self) -> bool:
        return self.local.writable or any(r.read_write and not r.failed for r in self.remotes)

    def _count(self, name: str, n: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + n

    def _count_in_writer(self, name: str) -> None:
        self._writer_counts[name] = self._writer_counts.get(name, 0) + 1

    def take_counts(self) -> "dict[str, int]":
        """Return the per-tier counters and start again from zero."""
        counts, self.counts = self.counts, {}
        if self._writer_counts:
            with self._cond:  # type: ignore[union-attr]
                writer, self._writer_counts = self._writer_counts, {}
            for name, value in writer.items():
                counts[name] = counts.get(name, 0) + value
        return counts

    def _fail(
        self, remote: Remote, exc: BaseException, count: "Callable[[str], None] | None" = None
    ) -> None:
        """Give ``remote`` up; ``count`` is ``_count_in_writer`` in the writer thread."""
        remote.failed = True
        (count or self._count)("remote_errors")
        _debug.trace("remote %s failed (%r); not using it again in this process", remote.url, exc)

    def _ready(self, remote: Remote) -> bool:
        """Say whether ``remote`` can take requests now (its client library is imported)."""
        ready = getattr(remote.store, "ready", None)
        if ready is None:
            return True
        try:
            return bool(ready())
        except Exception as exc:  # the library is not installed
            self._fail(remote, exc)
            return False

    def get(self, key: str) -> "bytes | None":
        data = self.local.get(key)
        if data is not None:
            return data
        for remote in self.remotes:
            if remote.failed or not self._ready(remote):
                continue
            if remote.bundle is None and not busy_with(()):  # see _library: imports bundle
                remote.bundle = self._fetch_bundle(remote)
                if remote.failed:
                    continue
            data = remote.bundle.pop(key, None) if remote.bundle else None
            if data is not None:
                self._remote_hit = (key, data, remote)
                return data
            started = time.monotonic()
            try:
                data = remote.store.get(key)
            except Exception as exc:
                self._fail(remote, exc)
                continue
            if self.timeout is not None and time.monotonic() - started >= self.timeout:
                remote.slow += 1  # a backend that answers "miss" after timing out
                if remote.slow >= SLOW_LIMIT:
                    self._fail(remote, TimeoutError(f"{SLOW_LIMIT} reads timed out"))
            else:
                remote.slow = 0
            if data is not None:
                self._remote_hit = (key, data, None)
                return data
        return None

    def _bundle_name(self) -> "str | None":
        """The remote key of this program's bundle, or ``None`` for no bundle."""
        if self._bundle_key == "":
            from ..bundle import bundle_key, program_name

            program = program_name()
            if self.context is None or program is None:
                self._bundle_key = None
            else:
                self._bundle_key = bundle_key(self.context, program)
        return self._bundle_key

    def _fetch_bundle(self, remote: Remote) -> "dict[str, bytes]":
        """Fetch this program's bundle from ``remote``; ``{}`` if it has none (or a bad one).

        Never raises: a remote that fails is given up, anything else is no bundle.
        """
        try:
            from .. import bundle

            name = self._bundle_name()
            if name is None:
                return {}
            head = remote.store.get(name)
            if head is None:
                return {}
            count, digest = bundle.head_info(head)
            bundle.check_part(head)
            parts = [head]
            for number in range(1, count):
                part = remote.store.get(bundle.part_key(name, digest, number))
                if part is None:
                    _debug.trace("bundle %s lacks part %d; not using it", name, number)
                    return {}
                bundle.check_part(part)
                parts.append(part)
            entries = bundle.decode_parts(parts)
        except ValueError as exc:  # BundleFormatError: garbage, or mixed-up uploads
            _debug.trace("ignoring the bundle of remote %s: %s", remote.url, exc)
            return {}
        except RemoteError as exc:
            self._fail(remote, exc)
            return {}
        except Exception as exc:  # e.g. a module under way: no bundle in this process
            _debug.trace("cannot fetch the bundle of remote %s: %r", remote.url, exc)
            return {}
        self._count("remote_bundles_fetched")
        _debug.trace("bundle %s: %d entries from %s", name, len(entries), remote.url)
        remote.bundle_keys = frozenset(entries)
        return entries

    def backfill(self, key: str, data: bytes) -> None:
        """Note that ``data`` passed the engine's checks; keep it for the local store if remote."""
        if self._record_use:
            self._used[key] = None
        hit = self._remote_hit
        if hit is None or hit[0] != key or hit[1] is not data:
            return  # a local hit: nothing to copy
        self._remote_hit = None
        self._count("hits_remote")
        if hit[2] is not None:
            self._count("hits_remote_bundle")
        if not self.local.writable or key in self._backfills:
            return
        if self._backfill_bytes + len(data) > self.backfill_limit:
            self._count("remote_backfill_drops")  # fetched again by a later run
            return
        self._backfills[key] = data
        self._backfill_bytes += len(data)

    def put(self, key: str, data: bytes) -> bool:
        written = self.local.writable and self.local.put(key, data)
        if self._record_use:
            self._used[key] = None
        if any(r.read_write and not r.failed for r in self.remotes):
            self._enqueue(key, data)
            return True
        return written

    def _enqueue(self, key: str, data: bytes) -> None:
        """Queue ``(key, data)`` for the writer thread; if the queue is full, drop it.

        The thread is started here once ``threading`` can be imported safely;
        until then the queue waits for it.
        """
        queue = self._queue
        if len(queue) >= self.queue_limit:
            self._count("remote_write_drops")
            return
        if self._writer() is None:
            queue.append((key, data))
            return
        with self._cond:  # type: ignore[union-attr]
            queue.append((key, data))
            self._cond.notify()  # type: ignore[union-attr]
        self._check_remotes_ready()

    def _check_remotes_ready(self) -> None:
        """Let the writer at the queue once every read-write remote's library is in."""
        if self._remotes_ready or self._cond is None:
            return
        for remote in self.remotes:
            if remote.read_write and not remote.failed and not self._ready(remote):
                return  # asked again on the next write, and at exit
        with self._cond:
            self._remotes_ready = True
            self._cond.notify()

    def _writer(self) -> "threading.Thread | None":
        """Return the writer thread, starting it if ``threading`` can be imported safely."""
        if self._thread is not None:
            return self._thread
        if not _THREADING.ready():
            return None
        import threading

        if self._cond is None:
            self._cond = threading.Condition()
        self._thread = threading.Thread(
            target=self._drain, name="pycache-remote-writer", daemon=True
        )
        self._thread.start()
        return self._thread

    def _drain(self) -> None:
        cond = self._cond
        assert cond is not None
        while True:
            with cond:
                while not (self._remotes_ready and self._queue):
                    cond.wait()
                key, data = self._queue.popleft()
                self._busy += 1
            try:
                self.write_remotes(key, data)
            except Exception as exc:  # never let the thread die with work queued
                _debug.trace("background write of %s failed: %r", key, exc)
            finally:
                with cond:
                    self._busy -= 1
                    cond.notify_all()

    def write_remotes(self, key: str, data: bytes) -> int:
        """Write one entry to every usable read-write remote; return how many took it."""
        written = 0
        for remote in self.remotes:
            if not remote.read_write or remote.failed:
                continue
            try:
                ok = remote.store.put(key, data)
            except Exception as exc:
                self._fail(remote, exc, self._count_in_writer)
                continue
            if ok:
                written += 1
                self._count_in_writer("remote_writes")
            else:
                self._count_in_writer("remote_write_errors")
        return written

    def flush(self, timeout: float, index: "PathIndex | None" = None) -> bool:
        """At exit: hand the backfills to a helper, with ``index``'s unwritten
        records if there is one, then wait at most ``timeout`` seconds for
        queued writes and the bundle upload; say whether all went.

        Never raises: each step's failure is traced and the next step runs.
        Records the helper did not take are still pending in ``index``.
        """
        deadline = time.monotonic() + timeout
        backfills, self._backfills = self._backfills, {}
        self._backfill_bytes = 0
        try:
            self._hand_off_backfills(backfills, deadline, index)
        except Exception as exc:
            _debug.trace("cannot hand off the remote hits: %r", exc)
        done = True
        try:
            if self._thread is not None or self._queue:
                done = self._wait_for_queue(deadline)
        except Exception as exc:
            _debug.trace("waiting for the remote writes failed: %r", exc)
            done = False
        if done:
            try:
                self._upload_bundle(backfills, deadline)
            except Exception as exc:
                _debug.trace("bundle upload failed: %r", exc)
        return done

    def _wait_for_queue(self, deadline: float) -> bool:
        if self._writer() is None:  # threading cannot be imported now: give up the queue
            self._drop_queued()
            return False
        self._check_remotes_ready()
        cond = self._cond
        assert cond is not None  # made with the writer
        with cond:
            cond.notify_all()  # the writer, for anything queued before it started
            while (
                ((self._queue and self._remotes_ready) or self._busy)
                and self._thread is not None
                and self._thread.is_alive()
            ):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                cond.wait(left)
            dropped = self._drop_queued()
            return not (dropped or self._busy)

    def _drop_queued(self) -> bool:
        """Empty the write queue, counting what it held; say whether it held anything."""
        if not self._queue:
            return False
        self._count("remote_write_drops", len(self._queue))
        self._queue.clear()
        return True

    def _hand_off_backfills(
        self, backfills: "dict[str, bytes]", deadline: float, index: "PathIndex | None"
    ) -> None:
        """Give the kept remote hits (and ``index``'s records) to a helper
        process, or else copy them now (the records stay pending)."""
        entries = list(backfills.items())
        if not entries:
            return
        root = getattr(self.local, "root", None)
        from .. import backfill

        pending = index.take_pending() if index is not None and index.root else {}
        records = (index.root, index.context, pending) if index is not None and pending else None
        spawned = False
        try:
            spawned = root is not None and backfill.spawn(root, entries, records)
        finally:
            if not spawned and index is not None:
                index.add_pending(pending)  # still this process's to write
        if spawned:
            return
        copied = 0
        for key, data in entries:  # no helper: copy what the time allows
            if time.monotonic() >= deadline or not self.local.put(key, data):
                break
            copied += 1
        if copied:
            self._count("remote_backfills", copied)
        if copied < len(entries):
            self._count("remote_backfill_drops", len(entries) - copied)

    def _upload_bundle(self, backfills: "dict[str, bytes]", deadline: float) -> None:
        """Upload the bundle of what this process loaded where it is not known to be.

        It is known to be on a remote whose bundle, fetched by this process,
        holds every entry it loaded, and on one this machine uploaded the same
        set to less than ``BUNDLE_REFRESH`` seconds ago (a marker per remote
        and bundle: remotes expire and get wiped). ``backfills`` are the
        remote hits (not in the local store yet).
        """
        if not self._used:  # no read-write remote, or nothing loaded
            return
        name = self._bundle_name()
        if name is None:
            return
        from .. import bundle

        keys = list(self._used)[: bundle.MAX_ENTRIES]
        if len(keys) < bundle.MIN_ENTRIES:
            return
        digest = bundle.key_set_digest(keys)
        targets = []
        for remote in self.remotes:
            if not remote.read_write or remote.failed:
                continue
            if remote.bundle_damaged:  # whoever uploaded it, and whenever
                targets.append((remote, self._marker_path(remote, name)))
                continue
            if remote.bundle_keys is not None and remote.bundle_keys.issuperset(keys):
                continue
            marker = self._marker_path(remote, name)
            if marker is None or not _marker_says(marker, digest):
                targets.append((remote, marker))
        if not targets:
            return
        entries = []
        size = 0
        for key in keys:
            if time.monotonic() >= deadline:
                _debug.trace("no time left to build the bundle %s", name)
                return
            data = backfills.get(key) or self.local.get(key)
            if data is None:
                continue
            size += len(data)
            if size > bundle.MAX_BYTES:
                break
            entries.append((key, data))
        parts = bundle.split_parts(bundle.encode_records(entries))
        _, upload = bundle.head_info(parts[0])
        names = [name] + [bundle.part_key(name, upload, n) for n in range(1, len(parts))]
        # The head last: readers switch to this upload only once all of it is there.
        items = list(zip(names, parts))[::-1]
        for remote, marker in targets:
            if not _put_all(remote, items, deadline):
                self._count("remote_bundle_write_errors")
                continue
            self._count("remote_bundle_writes")
            if marker is not None:
                try:
                    from .. import _fs

                    _fs.write_atomic(marker, digest)
                except OSError as exc:
                    _debug.trace("cannot write the bundle marker %s: %s", marker, exc)

    def _marker_path(self, remote: Remote, name: str) -> "str | None":
        root = getattr(self.local, "root", None)
        if root is None or not self.local.writable:
            return None
        from ..bundle import key_set_digest

        return f"{root}/bundles/{key_set_digest([remote.url, name]).hex()}"

    def after_fork(self) -> None:
        """In a forked child: forget the parent's queue, writer thread and counters.

        A forked child uploads no bundle: it loaded what its parent did, under
        its parent's program name, plus whatever its own task needs.
        """
        self._reset_queue()
        self._record_use = False
        self._remote_hit = None
        self.counts = {}

    def delete(self, key: str) -> None:
        self.local.delete(key)  # a bad remote entry is the remote's owner's business

    def refetch(self, key: str) -> "bytes | None":
        """After the engine rejected the entry ``get`` just served from a bundle,
        return ``key``'s entry from the remotes themselves (``None`` otherwise:
        asking a remote again for an entry it served itself would be wasted)."""
        hit = self._remote_hit
        if hit is None or hit[0] != key or hit[2] is None:
            return None
        self._remote_hit = None
        hit[2].bundle_damaged = True  # a read-write run replaces it
        return self.get(key)  # the bundle has given up its copy: a request of its own

    def iterate(self) -> "Iterator[str]":
        return self.local.iterate()

    def close(self) -> None:
        self.local.close()
        for remote in self.remotes:
            try:
                remote.store.close()
            except Exception as exc:
                _debug.trace("closing remote %s: %r", remote.url, exc)


def _put_all(remote: Remote, items: "Iterable[tuple[str, bytes]]", deadline: float) -> bool:
    """Write every ``(key, data)`` to ``remote`` before ``deadline``; say whether all went."""
    try:
        for key, data in items:
            if time.monotonic() >= deadline:
                _debug.trace("no time left to upload the bundle to %s", remote.url)
                return False
            if not remote.store.put(key, data):
                _debug.trace("%s refused part %s of the bundle", remote.url, key)
                return False
    except Exception as exc:  # an upload at exit: the remote is not given up for it
        _debug.trace("bundle upload to %s failed: %r", remote.url, exc)
        return False
    return True


def _marker_says(path: str, digest: bytes) -> bool:
    """Whether the marker at ``path`` records ``digest`` and is under ``BUNDLE_REFRESH`` old."""
    try:
        with open(path, "rb") as f:
            if time.time() - os.fstat(f.fileno()).st_mtime >= BUNDLE_REFRESH:
                return False
            return f.read() == digest
    except OSError:
        return False
