"""Open a remote store from its URL: ``file:///``, ``redis://``, ``http(s)://``.

Backends are imported only when such a URL is configured.
"""

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .base import Store

__all__ = ["open_remote", "redact"]

SCHEMES = ("file", "redis", "rediss", "http", "https")


def open_remote(url: str, timeout: float, *, writable: bool) -> "Store":
    """Return the store for ``url``. Raises ``ValueError`` for an unknown scheme."""
    scheme = url.partition("://")[0].lower()
    if scheme == "file":
        from .shared import SharedDirStore

        path = url[7:].partition("?")[0].partition("#")[0]
        if "%" in path:  # urllib.parse is not cheap at start-up: only when needed
            from urllib.parse import unquote

            path = unquote(path)
        return SharedDirStore(path, writable=writable)
    store: Store
    if scheme in ("redis", "rediss"):
        from .redis import RedisStore

        store = RedisStore.from_url(url, timeout=timeout, writable=writable)
    elif scheme in ("http", "https"):
        from .http import HTTPStore

        store = HTTPStore.from_url(url, timeout=timeout, writable=writable)
    else:
        raise ValueError(f"unsupported remote URL {redact(url)!r}")
    return store


def redact(url: str) -> str:
    """Return ``url`` with any password replaced by ``***``."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    netloc, slash, path = rest.partition("/")
    userinfo, at, host = netloc.rpartition("@")
    if at and ":" in userinfo:
        userinfo = userinfo.partition(":")[0] + ":***"
    elif at and scheme.startswith("redis"):
        userinfo = "***"
    return f"{scheme}{sep}{userinfo}{at}{host}{slash}{path}"
