"""Real servers for the remote-store tests: redis-server and nginx (WebDAV PUT).

Each server runs as a child process on a free loopback port, with its files
under the test's ``tmp_path``, and is stopped when the test ends. A missing
binary skips the test with the Debian package to install; under ``CI=true`` it
fails the test instead (``.ci/run`` installs both). The benchmarks start the
same servers, passing the binary they found (``find_binary``).

Besides starting and stopping, a server can be frozen (``SIGSTOP``: the kernel
still accepts connections, nobody answers: a hung remote), thawed, and killed.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import textwrap
import time
from pathlib import Path

_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def find_binary(name: str) -> str | None:
    """Return the path of the program ``name`` (also in sbin, off a user's PATH), or None."""
    for candidate in (shutil.which(name), f"/usr/sbin/{name}", f"/usr/bin/{name}"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def need_binary(name: str, package: str) -> str:
    """Return the path of ``name``; skip the test (locally) or fail it (CI) if it is missing."""
    import pytest

    found = find_binary(name)
    if found is not None:
        return found
    message = (
        f"{name} not found: install the Debian package {package!r} (apt-get install {package})"
    )
    if _CI:
        pytest.fail(message + "; CI must have it (.ci/run installs it)")
    pytest.skip(message)


def free_port() -> int:
    """Return a loopback TCP port nobody listens on (at the time of asking)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_until(answers, what: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited: {log.read_text(errors='replace')[-2000:]}")
        try:
            if answers():
                return
        except OSError:
            pass
        time.sleep(0.02)
    raise RuntimeError(f"{what} did not answer within 15 s")


class Server:
    """A running server: its URL base, port, process and data directory."""

    def __init__(self, process: subprocess.Popen, port: int, data: Path) -> None:
        self.process = process
        self.port = port
        self.data = data

    def freeze(self) -> None:
        """Stop the process: connections are accepted by the kernel but never answered."""
        os.kill(self.process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)

    def kill(self) -> None:
        """Take the server down for good (SIGKILL)."""
        if self.process.poll() is None:
            self.thaw()
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.thaw()
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


class RedisServer(Server):
    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self, *words: str | bytes) -> bytes:
        """Send one command (RESP) and return the raw reply: enough for the tests' checks."""
        parts = [b"*%d\r\n" % len(words)]
        for word in words:
            data = word.encode() if isinstance(word, str) else word
            parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as connection:
            connection.sendall(b"".join(parts))
            reply = b""
            while not reply.endswith(b"\r\n") or _incomplete(reply):
                chunk = connection.recv(65536)
                if not chunk:
                    break
                reply += chunk
            return reply

    def answers(self) -> bool:
        return self.command("PING") == b"+PONG\r\n"

    def keys(self, pattern: str = "*") -> list[str]:
        reply = self.command("KEYS", pattern).decode()
        lines = reply.split("\r\n")
        return [line for line in lines[2::2] if line]


def _incomplete(reply: bytes) -> bool:
    """Whether a RESP reply (bulk string or array of bulk strings) is still arriving."""
    if reply[:1] == b"$":
        length = int(reply[1 : reply.index(b"\r\n")])
        return length >= 0 and len(reply) < reply.index(b"\r\n") + 2 + length + 2
    if reply[:1] == b"*":
        count = int(reply[1 : reply.index(b"\r\n")])
        return reply.count(b"\r\n") < 1 + 2 * max(count, 0)
    return False


def start_redis(tmp_path: Path, binary: str | None = None) -> RedisServer:
    binary = binary or need_binary("redis-server", "redis-server")
    data = tmp_path / "redis"
    data.mkdir(parents=True, exist_ok=True)
    for attempt in range(3):
        port = free_port()
        log = data / "redis.log"
        process = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(data), "--logfile", str(log),
             "--daemonize", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        server = RedisServer(process, port, data)
        try:
            _wait_until(server.answers, "redis", process, log)
            return server
        except RuntimeError:
            server.stop()
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


class NginxServer(Server):
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/cache"

    @property
    def root(self) -> Path:
        """Where PUT files land: ``/cache/...`` is ``root/cache/...``."""
        return self.data / "www"

    def answers(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=1) as connection:
            connection.sendall(b"HEAD /cache/ HTTP/1.0\r\n\r\n")
            return connection.recv(16).startswith(b"HTTP/1.1")

    def files(self) -> list[str]:
        base = self.root / "cache"
        return sorted(str(p.relative_to(base)) for p in base.rglob("*") if p.is_file())


def start_nginx(
    tmp_path: Path, *, allow_put: bool = True, binary: str | None = None
) -> NginxServer:
    """nginx serving ``/cache`` from a directory, with WebDAV PUT unless ``allow_put`` is off."""
    binary = binary or need_binary("nginx", "nginx")
    data = tmp_path / "nginx"
    (data / "www" / "cache").mkdir(parents=True, exist_ok=True)
    (data / "logs").mkdir(exist_ok=True)
    dav = (
        "dav_methods PUT DELETE; create_full_put_path on; dav_access user:rw group:r all:r;"
        if allow_put
        else ""
    )
    for attempt in range(3):
        port = free_port()
        conf = data / "nginx.conf"
        # One process as this user (no master, no workers switching to nobody).
        conf.write_text(
            textwrap.dedent(
                f"""\
                daemon off;
                master_process off;
                pid {data}/nginx.pid;
                error_log {data}/logs/error.log warn;
                events {{ worker_connections 256; }}
                http {{
                    access_log off;
                    client_body_temp_path {data}/body;
                    proxy_temp_path {data}/proxy;
                    fastcgi_temp_path {data}/fastcgi;
                    uwsgi_temp_path {data}/uwsgi;
                    scgi_temp_path {data}/scgi;
                    client_max_body_size 64m;
                    keepalive_timeout 30s;
                    server {{
                        listen 127.0.0.1:{port};
                        root {data}/www;
                        location /cache/ {{ {dav} }}
                    }}
                }}
                """
            )
        )
        log = data / "logs" / "error.log"
        process = subprocess.Popen(
            [binary, "-p", str(data), "-c", str(conf), "-e", str(log)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        server = NginxServer(process, port, data)

        try:
            _wait_until(server.answers, "nginx", process, log)
            return server
        except RuntimeError:
            server.stop()
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


class JunkServer:
    """A TCP server that answers every connection with bytes of no protocol, then closes."""

    def __init__(self) -> None:
        import threading

        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(64)
        self.port = int(self.socket.getsockname()[1])
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.socket.accept()
            except OSError:
                return
            with connection:
                try:
                    connection.recv(65536)
                    connection.sendall(b"\x00\xffgarbage\x13\x37 not a protocol\r\n" * 4)
                except OSError:
                    pass

    def close(self) -> None:
        self.socket.close()
