"""Import a remote backend's client library from inside an import, only when it is safe.

A remote is first needed on a local miss, that is inside the import of some
module M. Importing ``http.client`` or redis-py there would find M, and every
module whose import is under way, half-initialised in ``sys.modules``: if the
library needs one of them (``typing``, ``socket``, ``importlib``...) its import
fails, or worse, it keeps a half-built module. Importing it from another
thread instead can deadlock with this one on the import system's module locks.

So a library is imported in the thread that needs it, at the first miss where
no module it may depend on is being initialised: no standard-library module,
and none of ``third_party`` (the library's own packages and dependencies). A
miss before that simply skips the remote (the module compiles locally), and
the exit flush, when no import is under way, gets another chance. The import
happens once per process; a missing library raises ``ImportError``.
"""

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterable

__all__ = ["Library"]


def _stdlib_dir() -> str:
    os_module = sys.modules.get("os")
    path = getattr(os_module, "__file__", None) or ""
    return path.rpartition("/")[0] + "/" if path else "\0"


def busy_with(names: "Iterable[str]") -> bool:
    """Say whether a standard-library module, or one under ``names``, is being initialised."""
    third_party = frozenset(names)
    stdlib = getattr(sys, "stdlib_module_names", None)  # 3.10+
    stdlib_dir = _stdlib_dir() if stdlib is None else ""
    for name, module in list(sys.modules.items()):
        spec = getattr(module, "__spec__", None)
        if spec is None or not getattr(spec, "_initializing", False):
            continue
        top = name.partition(".")[0]
        if top in third_party:
            return True
        if stdlib is not None:
            if top in stdlib:
                return True
        else:
            origin = getattr(spec, "origin", None) or ""
            if origin.startswith(stdlib_dir) and "-packages/" not in origin:
                return True
    return False


def _initialised(name: str) -> bool:
    module = sys.modules.get(name)
    spec = getattr(module, "__spec__", None)
    return module is not None and not getattr(spec, "_initializing", False)


class Library:
    """Modules to import together, once, when ``ready`` finds it safe."""

    def __init__(self, modules: "tuple[str, ...]", third_party: "tuple[str, ...]" = ()) -> None:
        self.modules = modules
        self.third_party = third_party
        self.loaded = False
        self._loading = False

    def ready(self) -> bool:
        """Import the modules if that is safe now; say whether they are imported.

        Never blocks. Raises ``ImportError`` if a module is not installed.
        """
        if self.loaded:
            return True
        if all(_initialised(name) for name in self.modules):  # imported by someone else
            self.loaded = True
            return True
        if self._loading or busy_with(self.third_party):
            return False  # a nested call while importing them, or not safe yet
        self._loading = True
        try:
            for name in self.modules:
                __import__(name)
        finally:
            self._loading = False
        self.loaded = True
        return True
