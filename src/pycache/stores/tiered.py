"""The local store in front of one or more remote stores.

A read tries the local store, then each remote in order. A remote's bytes are
not trusted yet: the engine checks them (checksum, and HMAC when a key is
set) and only then calls ``backfill``, which copies them into the local
store. So an unsigned or forged remote entry never lands locally. The copy
is made by the background thread below, never on the import path: creating a
file can cost more than fetching it, and a fresh runner backfills every
module it imports. The copies share the writes' bounded queue discipline: a
full queue drops the copy (the next run fetches that entry again), and at
exit the queue gets a bounded wait.

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
import time

from .. import _debug
from ._library import Library

TYPE_CHECKING = False
if TYPE_CHECKING:
    import threading
    from typing import Callable, Deque, Iterator

    from .base import Store

__all__ = ["Remote", "TieredStore"]

#: Entries waiting for the remotes, at most.
QUEUE_LIMIT = 256
#: Consecutive reads that take the whole timeout before a remote is given up.
SLOW_LIMIT = 3
#: ``threading`` itself is imported at a safe point only (see ``_library``).
_THREADING = Library(("threading",))


class Remote:
    """One remote tier: its store, its URL (for display) and whether we write to it."""

    __slots__ = ("failed", "read_write", "slow", "store", "url")

    def __init__(self, store: "Store", url: str, *, read_write: bool) -> None:
        self.store = store
        self.url = url
        self.read_write = read_write
        self.failed = False
        #: Consecutive reads that took the whole timeout.
        self.slow = 0


class TieredStore:
    """A ``Store``: ``local`` first, then ``remotes``. ``get`` and ``put`` never raise."""

    def __init__(
        self,
        local: "Store",
        remotes: "list[Remote]",
        *,
        queue_limit: int = QUEUE_LIMIT,
        timeout: "float | None" = None,
    ) -> None:
        self.local = local
        self.remotes = remotes
        self.queue_limit = queue_limit
        #: Reads taking this long count as failures (``None``: never).
        self.timeout = timeout
        self.counts: dict[str, int] = {}
        self._remote_hit: tuple[str, bytes] | None = None
        self._reset_queue()

    def _reset_queue(self) -> None:
        #: Entries for the read-write remotes, and remote hits to copy into ``local``.
        self._queue: Deque[tuple[str, bytes]] = collections.deque()
        self._backfills: Deque[tuple[str, bytes]] = collections.deque()
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
                self._remote_hit = (key, data)
                return data
        return None

    def backfill(self, key: str, data: bytes) -> None:
        """Copy ``data`` into the local store once the engine has verified it."""
        hit = self._remote_hit
        if hit is None or hit[0] != key or hit[1] is not data:
            return  # a local hit: nothing to copy
        self._remote_hit = None
        self._count("hits_remote")
        if not self.local.writable:
            return
        # Never written here: creating a file can cost more than fetching it. A
        # dropped copy (the writer is behind) is fetched again by a later run.
        self._offer(self._backfills, key, data, "remote_backfill_drops")

    def put(self, key: str, data: bytes) -> bool:
        written = self.local.writable and self.local.put(key, data)
        if any(r.read_write and not r.failed for r in self.remotes):
            self._enqueue(key, data)
            return True
        return written

    def _enqueue(self, key: str, data: bytes) -> None:
        if self._offer(self._queue, key, data, "remote_write_drops"):
            self._check_remotes_ready()

    def _offer(self, queue: "Deque[tuple[str, bytes]]", key: str, data: bytes, drops: str) -> bool:
        """Queue ``(key, data)`` for the writer thread; if the queue is full, count ``drops``.

        The thread is started here once ``threading`` can be imported safely;
        until then the queue waits for it.
        """
        if self._writer() is None:
            if len(queue) < self.queue_limit:
                queue.append((key, data))
                return True
        else:
            with self._cond:  # type: ignore[union-attr]
                if len(queue) < self.queue_limit:
                    queue.append((key, data))
                    self._cond.notify()  # type: ignore[union-attr]
                    return True
        self._count(drops)
        return False

    def _check_remotes_ready(self) -> None:
        """Let the writer at the remote queue once every read-write remote's library is in."""
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
                while not (self._backfills or (self._remotes_ready and self._queue)):
                    cond.wait()
                backfill = bool(self._backfills)
                key, data = (self._backfills if backfill else self._queue).popleft()
                self._busy += 1
            try:
                if backfill:
                    if self.local.put(key, data):
                        self._count_in_writer("remote_backfills")
                else:
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

    def flush(self, timeout: float) -> bool:
        """Wait at most ``timeout`` seconds for queued writes; say whether all went."""
        deadline = time.monotonic() + timeout
        if self._thread is None and not (self._queue or self._backfills):
            return True  # nothing was ever queued
        if self._writer() is None:  # threading cannot be imported now: give up the queues
            self._drop_queued()
            return False
        self._check_remotes_ready()
        cond = self._cond
        assert cond is not None  # made with the writer
        with cond:
            cond.notify_all()  # the writer, for anything queued before it started
            while (
                (self._backfills or (self._queue and self._remotes_ready) or self._busy)
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
        """Empty both queues, counting what they held; say whether they held anything."""
        dropped = False
        for queue, counter in (
            (self._queue, "remote_write_drops"),
            (self._backfills, "remote_backfill_drops"),
        ):
            if queue:
                self._count(counter, len(queue))
                queue.clear()
                dropped = True
        return dropped

    def after_fork(self) -> None:
        """In a forked child: forget the parent's queue, writer thread and counters."""
        self._reset_queue()
        self._remote_hit = None
        self.counts = {}

    def delete(self, key: str) -> None:
        self.local.delete(key)  # a bad remote entry is the remote's owner's business

    def iterate(self) -> "Iterator[str]":
        return self.local.iterate()

    def close(self) -> None:
        self.local.close()
        for remote in self.remotes:
            try:
                remote.store.close()
            except Exception as exc:
                _debug.trace("closing remote %s: %r", remote.url, exc)
