"""Cache keys: the content address of a module's bytecode.

A key is the BLAKE2b-160 digest of the source bytes together with everything
else that changes the bytecode the compiler produces from them:

* PyCache's entry-format version (``ENTRY_FORMAT_VERSION``);
* the interpreter's magic number and cache tag (``cpython-311``);
* the optimization level (``-O`` / ``-OO``);
* whether column information is produced (``-X no_debug_ranges``, 3.11+).

The source path is deliberately left out: the same source at two paths has
one key, and the loader rewrites ``co_filename`` to the importing path.
"""

import os
import sys

from ._entry import ENTRY_FORMAT_VERSION, KEY_SIZE

TYPE_CHECKING = False  # typing costs milliseconds at start-up; mypy still sees the block
if TYPE_CHECKING:
    from collections.abc import Callable


__all__ = ["cache_key", "compile_context", "key_hex"]

_blake2b: "Callable[..., object] | None" = None


def _hasher() -> "Callable[..., object]":
    global _blake2b
    if _blake2b is None:
        try:  # the builtin module avoids loading OpenSSL through hashlib
            from _blake2 import blake2b
        except ImportError:  # pragma: no cover - every CPython build we support has it
            from hashlib import blake2b
        _blake2b = blake2b
    return _blake2b


def compile_context(optimize: "int | None" = None) -> bytes:
    """Return the bytes that describe how this interpreter compiles source.

    ``optimize`` defaults to the running interpreter's ``sys.flags.optimize``.
    """
    if optimize is None:
        optimize = sys.flags.optimize
    magic = sys.modules["_frozen_importlib_external"].MAGIC_NUMBER
    no_ranges = int(
        "no_debug_ranges" in sys._xoptions
        or (not sys.flags.ignore_environment and bool(os.environ.get("PYTHONNODEBUGRANGES")))
    )
    tag = sys.implementation.cache_tag or "none"
    return (
        f"pycache-entry-v{ENTRY_FORMAT_VERSION}\0{magic.hex()}\0{tag}\0"
        f"opt={optimize}\0no_debug_ranges={no_ranges}\0"
    ).encode()


def cache_key(source: bytes, context: bytes) -> bytes:
    """Return the 20-byte key of ``source`` compiled in ``context``."""
    digest = _hasher()(context, digest_size=KEY_SIZE, person=b"pycache-key")
    digest.update(source)  # type: ignore[attr-defined]
    key: bytes = digest.digest()  # type: ignore[attr-defined]
    return key


def key_hex(key: bytes) -> str:
    """Return the text form of a key, as used for store entry names."""
    return key.hex()
