"""A remote store over HTTP(S): ``GET``, ``PUT`` and ``HEAD`` of ``<base>/<key>``.

Works with any server that stores what is PUT and serves it back: nginx with
WebDAV ``PUT`` (``dav_methods PUT; create_full_put_path on;``), and the HTTP
remote caches ccache and Bazel use. URL options (the query), after ccache's
HTTP storage attributes:

``layout=flat``     ``<base>/<key>`` (the default)
``layout=subdirs``  ``<base>/<first two hex digits>/<the rest>``, ccache's default
``layout=bazel``    ``<base>/ac/<key padded to 64 hex digits>``, the Bazel HTTP
                    remote-cache protocol's action cache (servers that check
                    action-cache entries, e.g. bazel-remote, need that check off)

Credentials in the URL (``https://user:password@host/...``) are sent as HTTP
Basic authentication; ``bearer=TOKEN`` sends ``Authorization: Bearer TOKEN``.

The standard library's ``http.client`` does the talking. It is imported on
the first local miss that can import it safely (see ``_library``), not when
the store is opened, so processes whose imports all hit the local store never
pay for it. Each thread keeps its own keep-alive
connection (the background writer and the importing thread never share one),
and a forked child opens its own.

Failures: a connection that cannot be made, times out, or gets an answer that
is not HTTP raises ``RemoteError`` (the tiered store then gives the remote up
for the rest of the process, so it costs one timeout at most). An HTTP error
status is a miss or a failed write; ``FAILURE_LIMIT`` in a row raise too.
"""

import os

from ..exceptions import RemoteError
from ._library import Library

TYPE_CHECKING = False
if TYPE_CHECKING:
    from http.client import HTTPConnection
    from typing import Iterator

__all__ = ["HTTPStore", "LAYOUTS"]

LAYOUTS = ("flat", "subdirs", "bazel")
#: HTTP error statuses in a row before the remote is given up.
FAILURE_LIMIT = 3
#: The largest entry accepted from a server (a store entry is a module's bytecode).
MAX_ENTRY_SIZE = 64 << 20
_BAZEL_KEY_LENGTH = 64
#: What a request needs imported (``encodings.idna``: the first connect's host name).
_HTTP = Library(("http.client", "encodings.idna"))
_HTTPS = Library(("http.client", "encodings.idna", "ssl"))


class HTTPStore:
    """A ``Store`` on an HTTP server. ``get`` and ``put`` raise ``RemoteError`` when unusable."""

    def __init__(
        self,
        base: str,
        *,
        timeout: float,
        layout: str = "flat",
        headers: "dict[str, str] | None" = None,
        writable: bool = True,
    ) -> None:
        """``base`` is ``http(s)://host[:port][/path]`` without credentials or query."""
        if layout not in LAYOUTS:
            raise ValueError(f"layout={layout!r} is not one of {', '.join(LAYOUTS)}")
        scheme, _, rest = base.partition("://")
        self.secure = scheme.lower() == "https"
        self.netloc, _, path = rest.partition("/")
        if not self.netloc:
            raise ValueError(f"{base!r} has no host")
        self.base_path = "/" + path.strip("/") if path.strip("/") else ""
        self.timeout = timeout
        self.layout = layout
        self.headers = dict(headers or {})
        self.writable = writable
        self._connections: dict[int, HTTPConnection] = {}
        self._pid = os.getpid()
        #: HTTP error statuses in a row, for reads and for writes (kept apart: the
        #: writer thread's PUTs must not reset the importing thread's GETs).
        self._failures = {"GET": 0, "PUT": 0}
        self._library = _HTTPS if self.secure else _HTTP

    @classmethod
    def from_url(cls, url: str, *, timeout: float, writable: bool = True) -> "HTTPStore":
        """Open ``url`` (see the module docstring); raises ``ValueError`` for bad options."""
        base, _, query = url.partition("?")
        base = base.partition("#")[0]
        scheme, _, rest = base.partition("://")
        netloc, slash, path = rest.partition("/")
        userinfo, at, host = netloc.rpartition("@")
        headers: dict[str, str] = {}
        layout = "flat"
        if at:
            import base64
            from urllib.parse import unquote

            user, _, password = userinfo.partition(":")
            token = f"{unquote(user)}:{unquote(password)}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(token).decode("ascii")
        for option in filter(None, query.split("&")):
            name, _, value = option.partition("=")
            if name == "layout":
                layout = value
            elif name == "bearer":
                from urllib.parse import unquote

                headers["Authorization"] = "Bearer " + unquote(value)
            else:
                raise ValueError(f"unknown option {name!r} (layout=, bearer=)")
        return cls(
            f"{scheme}://{host}{slash}{path}",
            timeout=timeout,
            layout=layout,
            headers=headers,
            writable=writable,
        )

    def path_for(self, key: str) -> str:
        """Return the request path of ``key`` in this store's layout."""
        if self.layout == "subdirs":
            return f"{self.base_path}/{key[:2]}/{key[2:]}"
        if self.layout == "bazel":
            return f"{self.base_path}/ac/{key.ljust(_BAZEL_KEY_LENGTH, '0')}"
        return f"{self.base_path}/{key}"

    def _connection(self) -> "HTTPConnection":
        import _thread

        if os.getpid() != self._pid:  # forked: the parent's sockets are not ours
            self._connections = {}
            self._pid = os.getpid()
        ident = _thread.get_ident()
        connection = self._connections.get(ident)
        if connection is None:
            import http.client

            kind = http.client.HTTPSConnection if self.secure else http.client.HTTPConnection
            connection = kind(self.netloc, timeout=self.timeout)
            self._connections[ident] = connection
        return connection

    def _request(self, method: str, key: str, body: "bytes | None" = None) -> "tuple[int, bytes]":
        """Send one request; return the status and body. Raises ``RemoteError``."""
        import http.client

        headers = dict(self.headers)
        if body is not None:
            headers["Content-Type"] = "application/octet-stream"
        path = self.path_for(key)
        for attempt in (1, 2):
            connection = self._connection()
            reused = connection.sock is not None
            try:
                connection.request(method, path, body=body, headers=headers)
                response = connection.getresponse()
                length = response.getheader("Content-Length")
                if length is not None and length.isdigit() and int(length) > MAX_ENTRY_SIZE:
                    raise RemoteError(f"HTTP {method} {path}: {length} bytes is not an entry")
                data = response.read(MAX_ENTRY_SIZE + 1)
                if len(data) > MAX_ENTRY_SIZE:
                    raise RemoteError(f"HTTP {method} {path}: the body is too large")
                if response.will_close:
                    connection.close()
                return response.status, data
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
                connection.close()
                # The server closed a kept-alive connection between requests: try once anew.
                if reused and attempt == 1:
                    continue
                raise RemoteError(f"HTTP {method} {path}: {exc!r}") from exc
            except RemoteError:
                connection.close()
                raise
            except (OSError, http.client.HTTPException) as exc:
                connection.close()
                raise RemoteError(f"HTTP {method} {path}: {exc!r}") from exc
        raise AssertionError("unreachable")

    def _soft_failure(self, method: str, status: int) -> None:
        self._failures[method] += 1
        if self._failures[method] >= FAILURE_LIMIT:
            raise RemoteError(f"HTTP {method}: status {status}, {FAILURE_LIMIT} times in a row")

    def ready(self) -> bool:
        """Import ``http.client`` if that is safe now (see ``_library``); say whether it is."""
        try:
            return self._library.ready()
        except ImportError as exc:  # a Python built without ssl
            raise RemoteError(f"cannot use {'https' if self.secure else 'http'}: {exc}") from exc

    def get(self, key: str) -> "bytes | None":
        if not self.ready():
            return None
        status, data = self._request("GET", key)
        if status in (200, 404):
            self._failures["GET"] = 0
            return data if status == 200 else None
        self._soft_failure("GET", status)
        return None

    def put(self, key: str, data: bytes) -> bool:
        if not self.writable:
            return False
        status, _ = self._request("PUT", key, data)
        if 200 <= status < 300:
            self._failures["PUT"] = 0
            return True
        self._soft_failure("PUT", status)
        return False

    def contains(self, key: str) -> bool:
        """Say whether ``key`` is present (one ``HEAD``)."""
        status, _ = self._request("HEAD", key)
        return status == 200

    def delete(self, key: str) -> None:
        self._request("DELETE", key)

    def iterate(self) -> "Iterator[str]":
        """HTTP has no listing: yields nothing."""
        return iter(())

    def probe(self) -> bool:
        """Say whether the server answers (any HTTP status will do)."""
        try:
            self._request("HEAD", "0" * 40)
        except RemoteError:
            return False
        return True

    def close(self) -> None:
        for connection in self._connections.values():
            connection.close()
        self._connections = {}
