"""Finding the pycs of a source tree and the source each one belongs to.

Shared by ``verifier`` and ``cleaner``. PEP 3147 layout: ``dir/__pycache__/
name.<tag>[.opt-N].pyc`` belongs to ``dir/name.py``; a legacy ``name.pyc`` or
``name.pyo`` beside it belongs to ``name.py`` in the same directory, and one
without that ``.py`` is *sourceless*: CPython imports it as the module itself,
and some deployments ship such pycs on purpose.
"""

from __future__ import annotations

import os
from typing import Iterator, NamedTuple

__all__ = ["Pyc", "find_pycs", "optimization_level"]

IN_CACHE, LEGACY = "in-cache", "legacy"


class Pyc(NamedTuple):
    """A pyc file, where it sits, and the source it belongs to."""

    path: str
    kind: str  # IN_CACHE or LEGACY
    source: str  # the .py it belongs to (which may not exist)

    @property
    def source_exists(self) -> bool:
        return os.path.isfile(self.source)


def optimization_level(pyc_path: str) -> int:
    """The ``-O`` level a pyc's name says it was compiled at (``.opt-2.pyc`` -> 2)."""
    stem = os.path.basename(pyc_path).rsplit(".", 1)[0]
    _, _, last = stem.rpartition(".")
    if last.startswith("opt-") and last[4:].isdigit():
        return int(last[4:])
    return 1 if pyc_path.endswith(".pyo") else 0


def _source_for_cached(pyc_path: str) -> str:
    directory, name = os.path.split(pyc_path)
    module = name.split(".", 1)[0]
    return os.path.join(os.path.dirname(directory), module + ".py")


def find_pycs(root: str) -> Iterator[Pyc]:
    """Yield the pycs under ``root`` (a directory or a single pyc), sorted by path.

    Symlinked directories are not entered. Raises ``OSError`` if ``root``
    itself cannot be read.
    """
    if os.path.isdir(root):
        yield from _walk(root, top=True)
    elif root.endswith((".pyc", ".pyo")):
        yield _classify(root)


def _walk(directory: str, *, top: bool = False) -> Iterator[Pyc]:
    try:
        with os.scandir(directory) as listing:
            entries = sorted(listing, key=lambda entry: entry.name)
    except OSError:
        if top:
            raise
        return  # an unreadable subdirectory has no pycs we can see
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            yield from _walk(entry.path)
        elif entry.name.endswith((".pyc", ".pyo")) and entry.is_file(follow_symlinks=False):
            yield _classify(entry.path)


def _classify(path: str) -> Pyc:
    if os.path.basename(os.path.dirname(path)) == "__pycache__":
        return Pyc(path, IN_CACHE, _source_for_cached(path))
    return Pyc(path, LEGACY, path[:-1])  # name.pyc / name.pyo -> name.py
