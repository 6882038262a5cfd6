"""A remote store in Redis (``redis://`` and ``rediss://`` URLs), through redis-py.

redis-py is the ``[redis]`` extra. It is imported on the first local miss that
can import it safely (see ``_library``), not when the store is opened: a
process whose imports all hit the local store never pays for it (importing
redis-py costs tens of milliseconds).

URL: ``redis://[[user]:password@]host[:port][/db][?prefix=P&ttl=SECONDS]``.
``prefix`` (default ``pycache:``) is put before every key, so one Redis can
serve several teams or other tools; ``ttl`` makes each written entry expire
after that many seconds (default: never; a Redis with ``maxmemory`` and
``maxmemory-policy allkeys-lru`` evicts like PyCache's own ``gc``). Other
query options (``ssl_cert_reqs``…) are passed to redis-py.

Failures: an error reaching the server (refused, timed out, reset, a reply
that is not Redis) raises ``RemoteError``, so the tiered store gives the remote
up for the rest of the process after one connect timeout. A server error
answer (say, ``OOM`` on a write) is a miss or a failed write; ``FAILURE_LIMIT``
of those in a row raise too.
"""

from ..exceptions import RemoteError
from ._library import Library

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Iterator

__all__ = ["RedisStore"]

DEFAULT_PREFIX = "pycache:"
#: Server error answers in a row before the remote is given up.
FAILURE_LIMIT = 3
_OWN_OPTIONS = ("prefix", "ttl")
#: What a request needs imported (``encodings.idna``: the first connect's host name).
_MODULES = ("redis", "redis.backoff", "redis.retry", "redis.exceptions", "encodings.idna")
#: redis-py's own packages and (optional) dependencies, outside the standard library.
_THIRD_PARTY = ("redis", "async_timeout", "typing_extensions", "hiredis", "jwt", "cryptography")
_LIBRARY = Library(_MODULES, _THIRD_PARTY)


def _split_options(url: str) -> "tuple[str, dict[str, str]]":
    """Return ``url`` without PyCache's own query options, and those options."""
    base, sep, query = url.partition("?")
    if not sep:
        return url, {}
    own: dict[str, str] = {}
    kept = []
    for option in query.split("&"):
        name, _, value = option.partition("=")
        if name in _OWN_OPTIONS:
            own[name] = value
        elif option:
            kept.append(option)
    return base + ("?" + "&".join(kept) if kept else ""), own


class RedisStore:
    """A ``Store`` in Redis. ``get`` and ``put`` raise ``RemoteError`` when Redis is unusable."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float,
        prefix: str = DEFAULT_PREFIX,
        ttl: "int | None" = None,
        writable: bool = True,
    ) -> None:
        self.url = url
        self.timeout = timeout
        self.prefix = prefix
        self.ttl = ttl
        self.writable = writable
        self._client: Any = None
        #: Server error answers in a row (any command).
        self._failures = 0

    @classmethod
    def from_url(cls, url: str, *, timeout: float, writable: bool = True) -> "RedisStore":
        """Open ``url``; raises ``ValueError`` for a bad ``ttl``."""
        base, own = _split_options(url)
        ttl = None
        if own.get("ttl"):
            try:
                ttl = int(own["ttl"])
            except ValueError:
                ttl = 0
            if ttl <= 0:
                raise ValueError(f"ttl={own['ttl']!r} is not a positive number of seconds")
        from urllib.parse import unquote

        prefix = unquote(own["prefix"]) if "prefix" in own else DEFAULT_PREFIX
        return cls(base, timeout=timeout, prefix=prefix, ttl=ttl, writable=writable)

    def ready(self) -> bool:
        """Import redis-py if that is safe now (see ``_library``); say whether it is.

        Raises ``RemoteError`` if redis-py is not installed.
        """
        try:
            return _LIBRARY.ready()
        except ImportError as exc:
            raise RemoteError(
                f"redis:// remotes need redis-py: pip install 'pycache[redis]' ({exc})"
            ) from exc

    def _redis(self) -> "Any":
        if self._client is None:
            try:
                import redis
                from redis.backoff import NoBackoff
                from redis.retry import Retry
            except ImportError as exc:
                raise RemoteError(
                    "redis:// remotes need redis-py: pip install 'pycache[redis]'"
                ) from exc
            options: dict[str, Any] = {
                "socket_timeout": self.timeout,
                "socket_connect_timeout": self.timeout,
                # One try per request: redis-py's default retries back off for seconds.
                "retry": Retry(NoBackoff(), 0),
                "retry_on_timeout": False,
                "health_check_interval": 0,
            }
            self._client = redis.Redis.from_url(self.url, **options)
        return self._client

    def _call(self, name: str, *args: "Any", **kwargs: "Any") -> "Any":
        """Run one command. Raises ``RemoteError``; a server error answer returns ``None``."""
        client = self._redis()
        import redis.exceptions as errors

        try:
            result = getattr(client, name)(*args, **kwargs)
        except (errors.ConnectionError, errors.TimeoutError, errors.AuthenticationError) as exc:
            raise RemoteError(f"redis {name}: {type(exc).__name__}: {exc}") from exc
        except (errors.ResponseError, errors.DataError, errors.InvalidResponse) as exc:
            if isinstance(exc, errors.InvalidResponse):  # not a Redis server at all
                raise RemoteError(f"redis {name}: {exc}") from exc
            self._failures += 1
            if self._failures >= FAILURE_LIMIT:
                raise RemoteError(f"redis {name}: {FAILURE_LIMIT} errors in a row: {exc}") from exc
            return None
        except errors.RedisError as exc:
            raise RemoteError(f"redis {name}: {type(exc).__name__}: {exc}") from exc
        except OSError as exc:
            raise RemoteError(f"redis {name}: {exc}") from exc
        self._failures = 0
        return result

    def get(self, key: str) -> "bytes | None":
        if not self.ready():
            return None
        data = self._call("get", self.prefix + key)
        return data if isinstance(data, bytes) else None

    def put(self, key: str, data: bytes) -> bool:
        if not self.writable:
            return False
        return bool(self._call("set", self.prefix + key, data, ex=self.ttl))

    def contains(self, key: str) -> bool:
        """Say whether ``key`` is present (one ``EXISTS``)."""
        return bool(self._call("exists", self.prefix + key))

    def delete(self, key: str) -> None:
        self._call("delete", self.prefix + key)

    def iterate(self) -> "Iterator[str]":
        client = self._redis()
        skip = len(self.prefix)
        pattern = self.prefix.replace("*", r"\*").replace("?", r"\?") + "*"
        try:
            for name in client.scan_iter(match=pattern, count=1000):
                yield name[skip:].decode("ascii", "replace")
        except Exception as exc:
            raise RemoteError(f"redis scan: {exc}") from exc

    def probe(self) -> bool:
        """Say whether the server answers a ``PING``."""
        try:
            return bool(self._call("ping"))
        except RemoteError:
            return False

    def close(self) -> None:
        if self._client is not None:
            try:
                self._client.close()
            except Exception:
                pass
            self._client = None
