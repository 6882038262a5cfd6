"""PyCache's exceptions, in one tree.

::

    PyCacheError
    ├── FormatError (also a ValueError): bytes that do not decode
    │   ├── PycFormatError      a .pyc file or header
    │   ├── EntryFormatError    a store entry (bad magic, checksum or key binding)
    │   │   └── EntrySignatureError  unsigned, or its MAC does not match (PYCACHE_KEY)
    │   ├── IndexFormatError    a path-index file
    │   └── BundleFormatError   a remote bundle or a backfill spool file
    ├── StoreError              a store backend could not do what was asked
    │   └── RemoteError         a remote store is unreachable, hangs or does not speak its protocol
    └── ConfigError (also a ValueError): a configuration value is invalid

On the import path none of these escapes: every cache problem is a miss. The
command-line tools turn them into messages and exit codes.
"""

__all__ = [
    "BundleFormatError",
    "ConfigError",
    "EntryFormatError",
    "EntrySignatureError",
    "FormatError",
    "IndexFormatError",
    "PyCacheError",
    "PycFormatError",
    "RemoteError",
    "StoreError",
]


class PyCacheError(Exception):
    """Base class of every error PyCache raises on purpose."""


class FormatError(PyCacheError, ValueError):
    """Bytes that do not decode as the expected format."""


class PycFormatError(FormatError):
    """A .pyc file or header is malformed, truncated or for another interpreter."""


class EntryFormatError(FormatError):
    """A store entry is malformed, fails its checksum or belongs to another key."""


class EntrySignatureError(EntryFormatError):
    """A store entry is unsigned, or its MAC does not match the configured key."""


class IndexFormatError(FormatError):
    """A path-index file is malformed or fails its checksum."""


class BundleFormatError(FormatError):
    """A bundle (``pycache.bundle``) or backfill spool file is cut short or mixed up."""


class StoreError(PyCacheError):
    """A store backend failed (I/O error, unreachable server, ...)."""


class RemoteError(StoreError):
    """A remote store is unreachable, timed out, or answered outside its protocol.

    The tiered store gives such a remote up for the rest of the process.
    """


class ConfigError(PyCacheError, ValueError):
    """A configuration value is invalid."""
