"""Switching PyCache on inside a Python process.

``activate()`` is what the ``.pth`` file of ``pycache enable`` and the
``sitecustomize`` of ``pycache run`` call at start-up. It must stay cheap (it
runs in every process) and must never raise: if anything goes wrong, Python
simply runs without PyCache. It only checks ``PYCACHE_DISABLE`` and swaps the
path hook; the configuration, store, index and engine are set up on the first
source import. (No ``from __future__ import annotations`` here or in
``importer``: even that import is measurable at start-up.)
"""

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .config import Config
    from .engine import Engine
    from .stores.base import Store
    from .stores.tiered import TieredStore

__all__ = ["activate", "active_engine", "build_engine", "deactivate", "is_active"]

_active = False


def build_engine(config: "Config") -> "Engine":
    """Return an engine for ``config`` (the store need not exist yet)."""
    from .engine import Engine
    from .index import PathIndex
    from .keys import compile_context
    from .stores.local import LocalStore

    # Keys, and so index records, are only valid in the context they were made in.
    context = compile_context()
    if config.store_dir is None or config.secret_unusable:
        from .stores.memory import MemoryStore

        store: LocalStore | MemoryStore = MemoryStore()
        index = PathIndex("", writable=False)
        stats_path = None
    else:
        store = LocalStore(config.store_dir, writable=not config.readonly)
        # An untrusted store (another user's, or writable by others) is not
        # touched at all: neither its entries nor its index nor its stats.
        writable = store.writable
        if store.trusted:
            index = PathIndex(
                os.path.join(config.store_dir, "index"), context=context, writable=writable
            )
        else:
            index = PathIndex("", context=context, writable=False)
        stats_path = os.path.join(config.store_dir, "stats") if writable else None
    if config.remotes and not config.secret_unusable:
        store = _tiered(store, config, context)  # type: ignore[assignment]
    engine = Engine(
        store,
        index,
        context=context,
        use_intree=config.intree,
        stats_path=stats_path,
        secret=config.secret,
        max_size=config.max_size,
    )
    engine.remote_flush_timeout = config.remote_flush_timeout
    return engine


def _tiered(local: "Store", config: "Config", context: bytes) -> "TieredStore":
    """Put ``local`` in front of the configured remotes (those that can be opened)."""
    from . import _debug
    from .stores.remote import open_remote, redact
    from .stores.tiered import Remote, TieredStore

    remotes = []
    for url, read_write in config.remotes:
        try:
            remote = open_remote(url, config.remote_timeout, writable=read_write)
        except Exception as exc:  # a missing backend or client library: carry on without it
            _debug.trace("cannot use remote %s: %r", redact(url), exc)
            continue
        remotes.append(Remote(remote, redact(url), read_write=read_write))
    return TieredStore(local, remotes, timeout=config.remote_timeout, context=context)


def _engine_from_environment() -> "Engine":
    from . import _debug
    from .config import from_environ

    config = from_environ(os.environ)
    if config.problems:
        import warnings  # a bad setting is reported once per process, not once per import

        for problem in config.problems:
            warnings.warn(f"pycache: {problem}", RuntimeWarning, stacklevel=1)
    if config.store_dir is None:
        _debug.trace("no store directory (HOME and PYCACHE_DIR unset); compiling in memory")
    else:
        _debug.trace("store %s%s", config.store_dir, " (read-only)" if config.readonly else "")
    return build_engine(config)


def _flag(name: str) -> bool:
    value = os.environ.get(name)
    if not value:
        return False
    from .config import parse_bool

    try:
        return parse_bool(name, value, False)
    except ValueError:  # reported with the other problems on first use
        return False


def activate() -> bool:
    """Turn PyCache on for this process; return whether it is on. Never raises."""
    global _active
    if _active:
        return True
    try:
        debug = _flag("PYCACHE_DEBUG")
        if debug:
            from . import _debug

            _debug.enable()
        if _flag("PYCACHE_DISABLE"):
            if debug:
                _debug.trace("disabled by PYCACHE_DISABLE")
            return False
        from . import importer

        if not importer.install(_engine_from_environment):
            if debug:
                _debug.trace("no FileFinder path hook found; not activating")
            return False
        import atexit

        atexit.register(_flush)
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=_after_fork)
        _active = True
        if debug:
            _debug.trace("active")
        return True
    except Exception:  # never break start-up
        return False


def active_engine() -> "Engine | None":
    """Return this process's engine if PyCache is active and has served an import."""
    if not _active:
        return None
    from . import importer

    return importer._engine


def _flush() -> None:
    engine = active_engine()
    if engine is not None:
        from . import importer

        importer.flush(engine)


def _after_fork() -> None:
    engine = active_engine()
    if engine is not None:
        engine.after_fork()


def deactivate() -> None:
    """Turn PyCache off for this process, writing what it has counted."""
    global _active
    if not _active:
        return
    engine = active_engine()
    from . import importer

    importer.uninstall()
    _active = False
    if engine is not None:
        importer.flush(engine)


def is_active() -> bool:
    """Say whether PyCache serves imports in this process."""
    return _active
