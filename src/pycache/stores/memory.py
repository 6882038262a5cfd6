"""An in-memory store, for tests and for embedding."""

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterator

__all__ = ["MemoryStore"]


class MemoryStore:
    """A ``Store`` that keeps entries in a dict; ``writable=False`` makes it refuse writes."""

    def __init__(self, *, writable: bool = True) -> None:
        self.entries: dict[str, bytes] = {}
        self.writable = writable

    def get(self, key: str) -> "bytes | None":
        return self.entries.get(key)

    def put(self, key: str, data: bytes) -> bool:
        if not self.writable:
            return False
        self.entries[key] = bytes(data)
        return True

    def delete(self, key: str) -> None:
        self.entries.pop(key, None)

    def iterate(self) -> "Iterator[str]":
        return iter(list(self.entries))

    def close(self) -> None:
        self.entries.clear()
