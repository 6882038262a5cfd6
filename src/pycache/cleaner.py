"""`pycache clean`: remove the bytecode CPython left in source trees.

What goes (``plan``, from the pycs ``pyctree`` finds):

* every pyc in a ``__pycache__`` directory, and the directory once empty
  (files that are not pycs are left alone, and so is their directory);
* legacy ``name.pyc``/``name.pyo`` files beside an existing ``name.py``;
* with ``orphans_only``, only ``__pycache__`` pycs whose source is gone.

A legacy pyc with no ``.py`` beside it is *sourceless*: CPython imports it as
the module itself and some deployments ship only those, so it stays unless
``include_sourceless`` is given. Symlinked directories are never entered.
"""

from __future__ import annotations

import os
from typing import Iterable, NamedTuple

from .pyctree import IN_CACHE, Pyc, find_pycs

__all__ = ["Removal", "clean", "plan"]


class Removal(NamedTuple):
    path: str
    size: int
    why: str
    error: str | None = None


def plan(
    pycs: Iterable[Pyc], *, orphans_only: bool = False, include_sourceless: bool = False
) -> list[tuple[Pyc, str]]:
    """Return ``(pyc, why)`` for each pyc to remove. Pure but for ``Pyc.source_exists``."""
    chosen = []
    for pyc in pycs:
        has_source = pyc.source_exists
        if pyc.kind == IN_CACHE:
            if not has_source:
                chosen.append((pyc, "orphaned: its source is gone"))
            elif not orphans_only:
                chosen.append((pyc, "__pycache__"))
        elif has_source:
            if not orphans_only:
                chosen.append((pyc, "legacy pyc beside its source"))
        elif include_sourceless:
            chosen.append((pyc, "sourceless"))
    return chosen


def clean(
    paths: Iterable[str],
    *,
    dry_run: bool = False,
    orphans_only: bool = False,
    include_sourceless: bool = False,
) -> list[Removal]:
    """Remove (or, with ``dry_run``, list) what ``plan`` picks under ``paths``.

    Raises ``FileNotFoundError`` for a path that does not exist; failures to
    remove single files are in the returned removals' ``error``.
    """
    removals = []
    emptied: set[str] = set()
    for root in paths:
        if not os.path.lexists(root):
            raise FileNotFoundError(2, "No such file or directory", root)
        chosen = plan(
            find_pycs(root), orphans_only=orphans_only, include_sourceless=include_sourceless
        )
        for pyc, why in chosen:
            try:
                size = os.lstat(pyc.path).st_size
            except OSError:
                continue
            error = None
            if not dry_run:
                try:
                    os.unlink(pyc.path)
                except OSError as exc:
                    error = exc.strerror
            if pyc.kind == IN_CACHE:
                emptied.add(os.path.dirname(pyc.path))
            removals.append(Removal(pyc.path, size, why, error))
    if not dry_run:
        for directory in sorted(emptied):
            try:
                os.rmdir(directory)  # only if nothing else is left in it
            except OSError:
                pass
    return removals
