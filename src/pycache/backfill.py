"""Copying remote hits into the local store, from a helper process after exit.

A fresh runner fetches hundreds of entries from a remote. Made in the
importing process, even from a background thread, the copies slowed such a
run down (by about 0.23 s of 1.5 s for 790 entries on the benchmark machine:
the thread's Python work between system calls holds the GIL). So the
importing process only keeps the checked entries in memory, and at exit
hands them to a detached helper interpreter (``python -I -S``: no site, so
PyCache is not active in it) that copies them into the store and adds
``remote_backfills`` to the stats. The exiting process does not wait for it.

The process's unwritten path-index records go along (on a fresh runner, a
hundred index files: 10 to 120 ms of an exit on the benchmark machine). The
helper writes them after the entries, and only if it wrote every entry. A
record may still name an entry that is not in the store (one the process
dropped over the memory limit, or that eviction removed): that costs a
rehash, as any record of an evicted entry does.

The entries travel in an anonymous memory file (``memfd_create``, Linux)
whose descriptor the helper inherits: a u32 length and the marshalled index
records ``(index root, compile context, {directory: records})`` (length 0 for
none), then the entries framed as ``bundle`` records; without a memory file,
in a spool file. Either way a file in ``<store>/spool/`` (empty when the
entries are in memory) exists while the helper works: it removes it last, so
an empty ``spool/`` means every helper is done. A helper killed half-way
leaves its spool file behind; ``gc`` removes spool files older than an hour,
like other temp files. A process started before the helper finished simply
fetches those entries again.

If no helper can be started (no ``posix_spawn``, or ``sys.executable`` is not a
Python interpreter, as when embedded), ``spawn`` says so and the caller copies
the entries itself.
"""

import os
import sys

from . import _debug, _fs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, Sequence, Tuple

    from .index import Records

    #: What the helper writes into a path index: its root, context and records.
    IndexRecords = Tuple[str, bytes, Dict[str, Records]]

__all__ = ["SPOOL_DIR", "main", "payload_buffers", "spawn", "write_entries", "write_index"]

SPOOL_DIR = "spool"
_HELPER = (
    "import sys; sys.path.insert(0, sys.argv[1]); "
    "from pycache.backfill import main; sys.exit(main(sys.argv[2:]))"
)
#: Buffers per ``writev`` call (the usual ``IOV_MAX``).
_IOV_MAX = 1024
#: The descriptor the helper finds its entries on.
_MEMORY_FD = 3
#: Helpers started by this process and not yet collected.
_children: "list[int]" = []


def _interpreter() -> "str | None":
    executable = sys.executable
    if not executable or not os.path.basename(executable).startswith("python"):
        return None  # embedded (uWSGI, a GUI app...): its argv is not Python's
    return executable


def spawn(
    root: str, entries: "Sequence[tuple[str, bytes]]", index: "IndexRecords | None" = None
) -> bool:
    """Hand ``entries`` to a detached helper that writes them into the store at ``root``,
    then ``index``'s records into that path index.

    Returns ``False`` if no helper could be started (nothing is left behind),
    or should not be: as PID 1 (a container's init), whose exit kills it.
    Never raises.
    """
    executable = _interpreter()
    posix_spawn = getattr(os, "posix_spawn", None)
    if executable is None or posix_spawn is None or os.getpid() == 1:
        # As a container's PID 1, our exit kills every process in the container.
        return False
    _reap()
    buffers = payload_buffers(entries, index)
    # The entries go through an anonymous memory file where there is one (Linux):
    # no file-system blocks to allocate and nothing to clean up. The spool file
    # is then an empty marker that says a helper is at work.
    memory = _memory_file(buffers)
    spool = os.path.join(root, SPOOL_DIR, f"{os.getpid()}-{os.urandom(4).hex()}.tmp")
    try:
        _fs.write_atomic(spool, b"" if memory is not None else b"".join(buffers))
    except OSError as exc:
        _debug.trace("cannot write the backfill spool %s: %s", spool, exc)
        if memory is not None:
            os.close(memory)
        return False
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    source = "-" if memory is None else str(_MEMORY_FD)
    argv = [executable, "-I", "-S", "-c", _HELPER, package_parent, root, spool, source]
    actions: list[tuple[object, ...]] = []
    if memory is not None:  # first: the memory file may be on 0-2 if stdio was closed
        actions.append((os.POSIX_SPAWN_DUP2, memory, _MEMORY_FD))
    actions.extend((os.POSIX_SPAWN_OPEN, fd, os.devnull, os.O_RDWR, 0) for fd in (0, 1, 2))
    try:
        pid = posix_spawn(executable, argv, dict(os.environ), file_actions=actions, setsid=True)
    except Exception as exc:  # OSError; NotImplementedError where setsid is unsupported
        _debug.trace("cannot start the backfill helper: %r", exc)
        try:
            os.unlink(spool)
        except OSError:
            pass
        return False
    finally:
        if memory is not None:
            os.close(memory)  # the helper has its own descriptor
    _children.append(pid)
    _debug.trace("backfill helper started for %d entries", len(entries))
    return True


def payload_buffers(
    entries: "Sequence[tuple[str, bytes]]", index: "IndexRecords | None" = None
) -> "list[bytes]":
    """Frame a helper's payload, in pieces (for ``os.writev``: no copy)."""
    import marshal

    from .bundle import record_buffers

    index_blob = marshal.dumps(index) if index is not None and index[2] else b""
    return [len(index_blob).to_bytes(4, "big"), index_blob, *record_buffers(entries)]


def _reap() -> None:
    """Collect the helpers this process started that have finished (no zombies)."""
    for pid in list(_children):
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done = pid
        except OSError:
            continue
        if done:
            _children.remove(pid)


def _memory_file(buffers: "list[bytes]") -> "int | None":
    """Return an inheritable descriptor of an anonymous file holding ``buffers``, or ``None``."""
    memfd_create = getattr(os, "memfd_create", None)
    if memfd_create is None:
        return None
    try:
        fd: int = memfd_create("pycache-backfill", 0)  # inheritable: the helper reads it
    except OSError:
        return None
    try:
        for start in range(0, len(buffers), _IOV_MAX):
            chunk = buffers[start : start + _IOV_MAX]
            expected = sum(len(buffer) for buffer in chunk)
            if os.writev(fd, chunk) != expected:  # only a full memory gives a short write
                raise OSError("short write to the backfill memory file")
    except OSError as exc:
        _debug.trace("cannot fill the backfill memory file: %s", exc)
        os.close(fd)
        return None
    return fd


def write_entries(root: str, entries: "Sequence[tuple[str, bytes]]") -> "tuple[int, int]":
    """Write ``entries`` into the local store at ``root``; return how many, and their bytes."""
    from .bundle import HEX_DIGITS
    from .stores.local import LocalStore

    store = LocalStore(root)
    written = size = 0
    for key, data in entries:
        if len(key) > 2 and HEX_DIGITS.issuperset(key) and store.put(key, data):
            written += 1  # (a key is checked: it names a file under entries/)
            size += len(data)
        elif not store.writable:
            break
    return written, size


def write_index(blob: bytes) -> int:
    """Write the index records marshalled in ``blob``; return how many index files."""
    import marshal

    from .index import PathIndex

    try:
        index_root, context, pending = marshal.loads(blob)
    except (ValueError, TypeError, EOFError):  # a spool cut short
        return 0
    if type(index_root) is not str or type(context) is not bytes or type(pending) is not dict:
        return 0
    index = PathIndex(index_root, context=context)
    index.add_pending(pending)
    return index.flush()


def _enforce_size_limit(root: str, written: int) -> None:
    """Trim the store if these writes took it over its limit, as an exiting writer does."""
    try:
        from .config import from_environ
        from .eviction import collect_if_due

        max_size = from_environ(os.environ).max_size  # the exited process's settings
        if max_size is not None:
            collect_if_due(root, max_size, written)
    except Exception as exc:
        _debug.trace("cannot enforce the store size limit: %r", exc)


def main(argv: "Sequence[str]") -> int:
    """The helper: ``ROOT SPOOL FD``. Copies the entries (read from descriptor ``FD``,
    or from the spool file if ``FD`` is ``-``) into the store, then removes the spool."""
    root, spool, source = argv[0], argv[1], argv[2]
    try:
        try:
            payload = _read_payload(spool, source)
        except (OSError, ValueError):
            return 1
        index_end = 4 + int.from_bytes(payload[:4], "big")
        try:
            from .bundle import decode_records

            entries = list(decode_records(payload[index_end:]).items())
        except ValueError:  # BundleFormatError: a spool cut short (full disk)
            return 1
        written, size = write_entries(root, entries)
        if written:
            from . import stats

            stats.append(os.path.join(root, "stats"), {"remote_backfills": written})
            _enforce_size_limit(root, size)
        if index_end > 4 and written == len(entries):
            write_index(payload[4:index_end])
        return 0
    finally:  # last: an empty spool/ means every helper is done, counters included
        try:
            os.unlink(spool)
        except OSError:
            pass


def _read_payload(spool: str, source: str) -> bytes:
    if source == "-":
        return _fs.read_file(spool)
    fd = int(source)
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        return _fs.read_fd(fd, os.fstat(fd).st_size)
    finally:
        os.close(fd)
