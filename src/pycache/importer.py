"""The importlib integration: a source loader that asks the engine for code.

PyCache keeps CPython's own ``FileFinder`` (so packages, namespace packages,
``__file__``, ``__spec__`` and ``__cached__`` are exactly CPython's) and swaps
only the loader it uses for ``.py`` files. Extension modules, sourceless pycs,
builtins, frozen modules and zipimport are left alone.
"""

import _thread
import os
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import CodeType
    from typing import Any, Callable

    from .engine import Engine

__all__ = ["PyCacheLoader", "current_engine", "flush", "install", "installed", "uninstall"]

_bootstrap_external = sys.modules["_frozen_importlib_external"]
_engine: "Engine | None" = None
# Set while this thread is inside the engine: imports the engine itself triggers
# (its lazily imported modules) go to CPython's loader instead of re-entering.
_inside = _thread._local()
# Builds the engine on the first source import, so that a process that imports
# no source module (``python -c pass``) never loads the cache machinery.
_engine_factory: "Callable[[], Engine] | None" = None


def _materialize() -> "Engine | None":
    global _engine, _engine_factory
    factory, _engine_factory = _engine_factory, None
    if factory is None:
        return None
    # While the factory runs, _engine and _engine_factory are None, so the
    # imports it triggers are served by CPython's own loader.
    try:
        _engine = factory()
    except Exception:
        _engine = None
    return _engine


def current_engine() -> "Engine | None":
    """Return the engine, building it now if it was installed lazily."""
    return _engine if _engine is not None else _materialize()


class PyCacheLoader(_bootstrap_external.SourceFileLoader):  # type: ignore[misc,name-defined]
    """``SourceFileLoader`` whose ``get_code`` goes through PyCache.

    ``__cached__`` keeps the value CPython gives it (the ``__pycache__`` path
    CPython would use); PyCache never writes that file.
    """

    def get_code(self, fullname: str) -> "CodeType":
        engine = _engine
        if engine is None:
            engine = _materialize()
        if engine is None or getattr(_inside, "busy", False):
            code: CodeType = super().get_code(fullname)
            return code
        path = self.get_filename(fullname)
        now = time.time_ns()  # before the stat: the racy rule needs it so
        try:
            st = os.stat(path)
        except OSError:
            code = super().get_code(fullname)  # CPython's own error for a missing source
            return code
        _inside.busy = True
        try:
            return engine.get_code(self, path, st, now)
        except BaseException as exc:  # what CPython's loader would raise: SyntaxError, OSError
            _drop_engine_frames(exc)
            raise
        finally:
            _inside.busy = False


def _drop_engine_frames(exc: BaseException) -> None:
    """Unlink the engine's frames from ``exc``'s traceback, in place."""
    prev = exc.__traceback__
    if prev is None:
        return
    tb = prev.tb_next
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == _ENGINE_FILE:
            prev.tb_next = tb.tb_next
        else:
            prev = tb
        tb = tb.tb_next


# CPython hides its import machinery from the traceback of an error raised while
# compiling a module: import.c's remove_importlib_frames drops each unbroken run
# of frames from importlib's two frozen files that ends in _call_with_frames_removed
# (which source_to_code goes through). So that a SyntaxError prints exactly as
# under CPython, get_code takes importlib's filename (its frame then continues
# that run) and drops the engine's frames from what it raises.
_ENGINE_FILE = os.path.join(os.path.dirname(__file__), "engine.py")
PyCacheLoader.get_code.__code__ = PyCacheLoader.get_code.__code__.replace(
    co_filename=_bootstrap_external.SourceLoader.get_code.__code__.co_filename
)


def flush(engine: "Engine") -> None:
    """Flush ``engine``; the modules that loads (``stats``) bypass the engine."""
    busy = getattr(_inside, "busy", False)
    _inside.busy = True
    try:
        engine.flush()
    finally:
        _inside.busy = busy


def _is_file_finder_hook(hook: object) -> bool:
    return getattr(hook, "__qualname__", "").startswith("FileFinder.path_hook.")


def _swap_loaders(old: type, new: type) -> None:
    """Make the finders created before activation use ``new`` for source files.

    Patching their ``(suffix, loader)`` list in place, rather than dropping
    them, keeps their directory-listing caches: a dropped finder would list
    its directory again on the next import.
    """
    for finder in list(sys.path_importer_cache.values()):
        loaders = getattr(finder, "_loaders", None)
        if isinstance(finder, _bootstrap_external.FileFinder) and isinstance(loaders, list):
            finder._loaders = [
                (suffix, new if loader is old else loader) for suffix, loader in loaders
            ]


def installed() -> bool:
    """Say whether PyCache's path hook is in ``sys.path_hooks``."""
    return any(getattr(hook, "_pycache_replaces", None) for hook in sys.path_hooks)


def install(factory: "Callable[[], Engine]") -> bool:
    """Route source imports through the engine that ``factory`` builds on first use.

    Returns False if ``sys.path_hooks`` has no FileFinder hook to replace.
    """
    global _engine, _engine_factory
    for position, hook in enumerate(sys.path_hooks):  # noqa: B007 - used after the loop
        if getattr(hook, "_pycache_replaces", None) is not None:
            _engine, _engine_factory = None, factory
            return True
        if _is_file_finder_hook(hook):
            break
    else:
        return False
    details = [
        (PyCacheLoader if loader is _bootstrap_external.SourceFileLoader else loader, suffixes)
        for loader, suffixes in _bootstrap_external._get_supported_file_loaders()
    ]
    ours: Callable[[str], Any] = _bootstrap_external.FileFinder.path_hook(*details)
    ours._pycache_replaces = hook  # type: ignore[attr-defined]
    _engine, _engine_factory = None, factory
    sys.path_hooks[position] = ours
    _swap_loaders(_bootstrap_external.SourceFileLoader, PyCacheLoader)
    return True


def uninstall() -> None:
    """Put CPython's own path hook back and stop serving from the engine."""
    global _engine, _engine_factory
    _engine = _engine_factory = None
    for position, hook in enumerate(sys.path_hooks):
        original = getattr(hook, "_pycache_replaces", None)
        if original is not None:
            sys.path_hooks[position] = original
            _swap_loaders(PyCacheLoader, _bootstrap_external.SourceFileLoader)
            return
