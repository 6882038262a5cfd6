"""The interface every store backend implements."""

from __future__ import annotations

from typing import Iterator, Protocol

__all__ = ["Store"]


class Store(Protocol):
    """A content-addressed byte store.

    ``get`` and ``put`` never raise for I/O problems: a store that cannot read
    answers ``None`` (a miss) and one that cannot write answers ``False``.
    Backends may raise ``pycache.exceptions.StoreError`` from ``iterate`` and
    ``delete`` when called from the command line.
    """

    #: False once the backend has given up writing for this process.
    writable: bool

    def get(self, key: str) -> bytes | None:
        """Return the bytes stored under ``key``, or ``None``."""

    def put(self, key: str, data: bytes) -> bool:
        """Store ``data`` under ``key``; return whether it was written."""

    def delete(self, key: str) -> None:
        """Remove ``key`` if present."""

    def iterate(self) -> Iterator[str]:
        """Yield every key in the store."""

    def close(self) -> None:
        """Release resources."""
