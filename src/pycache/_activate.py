"""Switching PyCache on inside a Python process.

``activate()`` is what the ``.pth`` file of ``pycache enable`` and the
``sitecustomize`` of ``pycache run`` call at start-up. It must stay cheap (it
runs in every process) and must never raise: if anything goes wrong, Python
simply runs without PyCache.
"""

from __future__ import annotations

import os

from . import _debug

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .config import Config
    from .engine import Engine

__all__ = ["activate", "active_engine", "deactivate", "is_active"]

_engine: Engine | None = None


def build_engine(config: Config) -> Engine:
    """Return an engine for ``config`` (the store need not exist yet)."""
    from .engine import Engine
    from .index import PathIndex
    from .keys import compile_context
    from .stats import Stats
    from .stores.local import LocalStore

    if config.store_dir is None:
        from .stores.memory import MemoryStore

        store: LocalStore | MemoryStore = MemoryStore()
        index = PathIndex("", writable=False)
        stats_path = None
    else:
        writable = not config.readonly
        store = LocalStore(config.store_dir, writable=writable)
        index = PathIndex(os.path.join(config.store_dir, "index"), writable=writable)
        stats_path = os.path.join(config.store_dir, "stats") if writable else None
    return Engine(
        store,
        index,
        Stats(),
        context=compile_context(),
        use_intree=config.intree,
        stats_path=stats_path,
    )


def activate() -> bool:
    """Turn PyCache on for this process; return whether it is on. Never raises."""
    global _engine
    if _engine is not None:
        return True
    try:
        from . import importer
        from .config import from_environ

        config = from_environ(os.environ)
        if config.debug:
            _debug.enable()
        if config.problems:
            import warnings  # a bad setting is reported once per process, not per import

            for problem in config.problems:
                warnings.warn(f"pycache: {problem}", RuntimeWarning, stacklevel=1)
        if config.disabled:
            _debug.trace("disabled by PYCACHE_DISABLE")
            return False
        if config.store_dir is None:
            _debug.trace("no store directory (HOME and PYCACHE_DIR unset); compiling in memory")
        engine = build_engine(config)
        if not importer.install(engine):
            _debug.trace("no FileFinder path hook found; not activating")
            return False
        import atexit

        atexit.register(_flush)
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=_after_fork)
        _engine = engine
        _debug.trace("active, store %s", config.store_dir)
        return True
    except Exception as exc:  # never break start-up
        _debug.trace("activation failed: %r", exc)
        return False


def _flush() -> None:
    if _engine is not None:
        _engine.flush()


def _after_fork() -> None:
    if _engine is not None:
        _engine.after_fork()


def deactivate() -> None:
    """Turn PyCache off for this process, writing what it has counted."""
    global _engine
    if _engine is None:
        return
    from . import importer

    importer.uninstall()
    engine, _engine = _engine, None
    engine.flush()


def is_active() -> bool:
    """Say whether PyCache serves imports in this process."""
    return _engine is not None


def active_engine() -> Engine | None:
    """Return this process's engine, if PyCache is active."""
    return _engine
