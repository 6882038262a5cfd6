"""Remote stores against real servers: redis-server and nginx with WebDAV PUT.

The servers are started by ``servers.py`` on free loopback ports and stopped
after each test. Every scenario runs real interpreters with PyCache active
and checks what they print, what the store counted, and what the server holds.
"""

from __future__ import annotations

import marshal
import os

import pytest

from pycache import _entry
from pycache.bundle import bundle_key
from pycache.exceptions import RemoteError
from pycache.keys import cache_key, compile_context
from pycache.stores.http import HTTPStore
from pycache.stores.redis import RedisStore
from pycache.stores.remote import open_remote
from servers import JunkServer, start_nginx, start_redis

MODULES = 30
TREE = {"pkg/__init__.py": ""}
TREE.update({f"pkg/m{i}.py": f"VALUE = {i}\n" for i in range(MODULES)})
# No module but the tree's is imported (__import__ needs no importlib).
MAIN = (
    f"print(sum(__import__(f'pkg.m{{i}}', None, None, ['VALUE']).VALUE"
    f" for i in range({MODULES})))\n"
)
EXPECTED = f"{sum(range(MODULES))}\n"


def _get_calls(server) -> int:
    """How many GETs the Redis server answered since its stats were reset."""
    info = server.command("INFO", "commandstats").decode()
    for line in info.splitlines():
        if line.startswith("cmdstat_get:"):
            return int(line.split("calls=")[1].split(",")[0])
    return 0


@pytest.fixture
def redis_server(tmp_path):
    server = start_redis(tmp_path)
    yield server
    server.stop()


@pytest.fixture
def nginx_server(tmp_path):
    server = start_nginx(tmp_path)
    yield server
    server.stop()


def _env(url: str, mode: str = "ro", **more: str | None) -> dict[str, str | None]:
    env: dict[str, str | None] = {
        "PYCACHE_REMOTE": url,
        "PYCACHE_REMOTE_MODE": mode,
        "PYCACHE_REMOTE_TIMEOUT": "500",  # loopback, but the machine is shared and busy
        "PYCACHE_KEY": None,
        "PYCACHE_KEY_FILE": None,
    }
    env.update(more)
    return env


def _bundle(program: str = "main.py") -> str:
    """The remote key of the bundle a run of ``program`` uploads."""
    return bundle_key(compile_context(), program)


def _two_machines(sandbox, make_tree, run_py, read_stats, tmp_path, url: str) -> None:
    """CI (rw) compiles and fills the remote; a fresh machine (ro) runs without compiling.

    CI also uploads the program's bundle, and the fresh machine is served from it.
    """
    tree = make_tree(TREE)
    main = sandbox.script(MAIN)
    run = run_py([main], pythonpath=[tree], env=_env(url, "rw"))
    assert (run.stdout, run.stderr) == (EXPECTED, "")
    ci = read_stats()
    assert ci["compiles"] == ci["remote_writes"] == MODULES + 1
    assert ci["remote_bundle_writes"] == 1
    run = run_py([main], pythonpath=[tree], env=_env(url, "rw"))
    assert read_stats()["remote_bundle_writes"] == 1  # the same set: not uploaded again
    laptop = tmp_path / "laptop-store"
    run = run_py([main], pythonpath=[tree], env=_env(url, "ro", PYCACHE_DIR=str(laptop)))
    assert (run.stdout, run.stderr) == (EXPECTED, "")
    stats = read_stats(laptop)
    assert stats.get("compiles", 0) == 0
    assert stats["hits_remote"] == stats["remote_backfills"] == MODULES + 1
    assert stats["hits_remote_bundle"] == MODULES + 1 and stats["remote_bundles_fetched"] == 1
    assert stats.get("remote_writes", 0) == stats.get("remote_bundle_writes", 0) == 0
    # The second run on that machine is all local.
    run_py([main], pythonpath=[tree], env=_env(url, "ro", PYCACHE_DIR=str(laptop)))
    assert read_stats(laptop)["hits_remote"] == MODULES + 1


class TestRedis:
    def test_two_machines_share_one_remote(
        self, redis_server, sandbox, make_tree, run_py, read_stats, tmp_path
    ):
        _two_machines(sandbox, make_tree, run_py, read_stats, tmp_path, redis_server.url)
        keys = redis_server.keys()
        assert len(keys) == MODULES + 2 and all(k.startswith("pycache:") for k in keys)
        assert f"pycache:{_bundle()}" in keys

    def test_a_fresh_machine_makes_a_few_requests_not_one_per_module(
        self, redis_server, sandbox, make_tree, run_py, read_stats, tmp_path
    ):
        tree = make_tree(TREE)
        main = sandbox.script(MAIN)
        run_py([main], pythonpath=[tree], env=_env(redis_server.url, "rw"))
        redis_server.command("CONFIG", "RESETSTAT")
        laptop = tmp_path / "laptop"
        env = _env(redis_server.url, "ro", PYCACHE_DIR=str(laptop))
        run = run_py([main], pythonpath=[tree], env=env)
        assert (run.stdout, run.stderr) == (EXPECTED, "")
        assert read_stats(laptop)["hits_remote_bundle"] == MODULES + 1
        assert _get_calls(redis_server) == 1  # the bundle, in one part
        # Another program has another bundle (none here): one request per module.
        other = sandbox.script(MAIN, name="other.py")
        redis_server.command("CONFIG", "RESETSTAT")
        env["PYCACHE_DIR"] = str(tmp_path / "another-laptop")
        run = run_py([other], pythonpath=[tree], env=env)
        assert (run.stdout, run.stderr) == (EXPECTED, "")
        assert _get_calls(redis_server) == 1 + MODULES + 1

    def test_a_bad_or_mixed_up_bundle_is_ignored(
        self, redis_server, sandbox, make_tree, run_py, read_stats, tmp_path
    ):
        tree = make_tree(TREE)
        main = sandbox.script(MAIN)
        run_py([main], pythonpath=[tree], env=_env(redis_server.url, "rw"))
        name = f"pycache:{_bundle()}"
        reply = redis_server.command("GET", name)  # RESP: $<length>\r\n<value>\r\n
        good = reply[reply.index(b"\r\n") + 2 : -2]
        assert good.startswith(b"PYCBNDL1") and len(good) == int(reply[1 : reply.index(b"\r")])
        flipped = good[:-1] + bytes([good[-1] ^ 1])  # a byte of the last entry
        bad_values = {
            "garbage": (os.urandom(200), 0),
            "magic only": (b"PYCBNDL1" + os.urandom(40), 0),
            "cut short": (good[:-7], 0),
            # The damaged entry fails its checksum and is fetched on its own; the
            # bundle serves the others.
            "tampered": (flipped, MODULES),
        }
        for label, (bad, from_bundle) in bad_values.items():
            redis_server.command("SET", name, bad)
            laptop = tmp_path / label.replace(" ", "-")
            env = _env(redis_server.url, "ro", PYCACHE_DIR=str(laptop))
            run = run_py([main], pythonpath=[tree], env=env)
            assert (run.stdout, run.stderr) == (EXPECTED, "")
            stats = read_stats(laptop)
            assert stats["hits_remote"] == MODULES + 1 and stats.get("compiles", 0) == 0
            assert stats.get("hits_remote_bundle", 0) == from_bundle, label
            assert stats.get("misses", 0) == 0, label

    @pytest.mark.parametrize("first", ["typing", "importlib", "socket"])
    def test_a_library_dependency_imported_first_does_not_disable_the_remote(
        self, redis_server, sandbox, make_tree, run_py, read_stats, tmp_path, first
    ):
        # The first miss is a module redis-py itself imports: loading redis-py
        # then would meet it half-initialised, so the remote waits for a later miss.
        tree = make_tree(TREE)
        main = sandbox.script(f"import {first}\n" + MAIN)
        run_py([main], pythonpath=[tree], env=_env(redis_server.url, "rw"))
        laptop = tmp_path / "laptop"
        run = run_py(
            [main], pythonpath=[tree], env=_env(redis_server.url, "ro", PYCACHE_DIR=str(laptop))
        )
        assert (run.stdout, run.stderr) == (EXPECTED, "")
        stats = read_stats(laptop)
        assert stats.get("remote_errors", 0) == 0
        assert stats["hits_remote"] >= MODULES + 1

    def test_prefix_and_ttl(self, redis_server, sandbox, make_tree, run_py):
        tree = make_tree(TREE)
        url = redis_server.url + "?prefix=team-a/&ttl=3600"
        run = run_py([sandbox.script(MAIN)], pythonpath=[tree], env=_env(url, "rw"))
        assert run.stdout == EXPECTED
        keys = redis_server.keys()
        assert len(keys) == MODULES + 2 and all(k.startswith("team-a/") for k in keys)
        assert f"team-a/{_bundle()}" in keys
        ttl = int(redis_server.command("TTL", keys[0])[1:-2])
        assert 3500 < ttl <= 3600

    def test_a_read_only_remote_is_never_written(
        self, redis_server, sandbox, make_tree, run_py, read_stats
    ):
        tree = make_tree(TREE)
        run = run_py([sandbox.script(MAIN)], pythonpath=[tree], env=_env(redis_server.url, "ro"))
        assert run.stdout == EXPECTED
        assert redis_server.keys() == []
        assert read_stats()["compiles"] == MODULES + 1

    def test_garbage_values_are_misses_and_get_replaced(
        self, redis_server, sandbox, make_tree, run_py, read_stats
    ):
        tree = make_tree(TREE)
        for i in range(MODULES):
            source = (tree / "pkg" / f"m{i}.py").read_bytes()
            key = cache_key(source, compile_context()).hex()
            redis_server.command("SET", "pycache:" + key, os.urandom(100 + i))
        run = run_py([sandbox.script(MAIN)], pythonpath=[tree], env=_env(redis_server.url, "rw"))
        assert (run.stdout, run.stderr) == (EXPECTED, "")
        stats = read_stats()
        assert stats["miss_corrupt"] == MODULES and stats.get("hits_remote", 0) == 0
        # The writer replaced the garbage with good entries: a fresh machine hits them all.
        store = RedisStore.from_url(redis_server.url, timeout=5)
        source = (tree / "pkg" / "m3.py").read_bytes()
        key = cache_key(source, compile_context())
        entry = store.get(key.hex())
        assert entry is not None
        _entry.decode_entry(key, entry)

    def test_unsigned_entries_are_rejected_with_a_key(
        self, redis_server, sandbox, make_tree, run_py, read_stats
    ):
        tree = make_tree(TREE)
        source = (tree / "pkg" / "m1.py").read_bytes()
        key = cache_key(source, compile_context())
        evil = compile("VALUE = 1000\n", str(tree / "pkg" / "m1.py"), "exec")
        redis_server.command(
            "SET", "pycache:" + key.hex(), _entry.encode_entry(key, marshal.dumps(evil))
        )
        env = _env(redis_server.url, "ro", PYCACHE_KEY="team secret")
        run = run_py([sandbox.script(MAIN)], pythonpath=[tree], env=env)
        assert (run.stdout, run.stderr) == (EXPECTED, "")
        stats = read_stats(env={"PYCACHE_KEY": "team secret"})
        assert stats["miss_unsigned"] == 1 and stats.get("hits_remote", 0) == 0

    def test_going_down_mid_run(self, redis_server, sandbox, make_tree, run_py, read_stats):
        tree = make_tree(TREE)
        main = sandbox.script(MAIN)
        run_py([main], pythonpath=[tree], env=_env(redis_server.url, "rw"))
        killer = sandbox.script(
            f"""\
            import os
            def value(i):
                return __import__(f"pkg.m{{i}}", None, None, ["VALUE"]).VALUE
            first = [value(i) for i in range(10)]
            os.kill({redis_server.process.pid}, 9)  # SIGKILL, without importing signal
            rest = [value(i) for i in range(10, {MODULES})]
            print(sum(first) + sum(rest))
            """,
            name="killer.py",
        )
        laptop = sandbox.root / "laptop"
        env = _env(redis_server.url, "rw", PYCACHE_DIR=str(laptop))
        run = run_py([killer], pythonpath=[tree], env=env)
        assert (run.stdout, run.stderr) == (EXPECTED, "")
        stats = read_stats(laptop)
        assert stats["hits_remote"] >= 10 and stats["remote_errors"] == 1
        assert stats["hits_remote"] + stats["compiles"] == MODULES + 1

    def test_a_hung_server_costs_one_timeout(
        self, redis_server, sandbox, make_tree, run_py, read_stats
    ):
        tree = make_tree(TREE)
        redis_server.freeze()
        # 2 s per request: were the remote asked once per module, this would take a minute.
        env = _env(redis_server.url, "rw", PYCACHE_REMOTE_TIMEOUT="2000")
        run = run_py([sandbox.script(MAIN)], pythonpath=[tree], env=env, timeout=30)
        assert (run.stdout, run.stderr) == (EXPECTED, "")
        stats = read_stats()
        assert stats["remote_errors"] == 1 and stats["compiles"] == MODULES + 1

    def test_status_and_push(self, redis_server, sandbox, make_tree, run_py, pycache_cli):
        tree = make_tree(TREE)
        run_py([sandbox.script(MAIN)], pythonpath=[tree], env={"PYCACHE_REMOTE": None})
        status = pycache_cli("status", "--json", env=_env(redis_server.url, "rw"))
        (tier,) = status.json()["remotes"]
        assert tier["answers"] is True and tier["mode"] == "rw"
        push = pycache_cli("push", env=_env(redis_server.url, "rw"))
        assert push.returncode == 0, push
        assert f"{MODULES + 1} pushed" in push.stdout
        again = pycache_cli("push", env=_env(redis_server.url, "rw"))
        assert f"0 pushed, {MODULES + 1} already there" in again.stdout
        assert len(redis_server.keys()) == MODULES + 1
        redis_server.kill()
        status = pycache_cli("status", "--json", env=_env(redis_server.url, "rw"))
        assert status.json()["remotes"][0]["answers"] is False
        down = pycache_cli("push", env=_env(redis_server.url, "rw"))
        assert down.returncode == 1 and "Traceback" not in down.stderr, down


class TestHTTP:
    @pytest.mark.parametrize(
        "layout, where",
        [
            ("flat", lambda key: key),
            ("subdirs", lambda key: f"{key[:2]}/{key[2:]}"),
            ("bazel", lambda key: f"ac/{key.ljust(64, '0')}"),
        ],
    )
    def test_two_machines_share_one_remote(
        self, nginx_server, sandbox, make_tree, run_py, read_stats, tmp_path, layout, where
    ):
        url = f"{nginx_server.url}?layout={layout}"
        _two_machines(sandbox, make_tree, run_py, read_stats, tmp_path, url)
        files = nginx_server.files()
        assert len(files) == MODULES + 2 and where(_bundle()) in files
        tree = tmp_path / "tree"
        key = cache_key((tree / "pkg" / "m7.py").read_bytes(), compile_context()).hex()
        assert where(key) in files

    def test_a_server_without_put_is_a_failed_write(
        self, tmp_path, sandbox, make_tree, run_py, read_stats
    ):
        server = start_nginx(tmp_path, allow_put=False)
        try:
            tree = make_tree(TREE)
            run = run_py([sandbox.script(MAIN)], pythonpath=[tree], env=_env(server.url, "rw"))
            assert (run.stdout, run.stderr) == (EXPECTED, "")
            stats = read_stats()
            # nginx answers 405: three in a row and the remote is given up, imports unharmed.
            assert stats["remote_write_errors"] == 2 and stats["remote_errors"] == 1
            assert server.files() == []
        finally:
            server.stop()

    def test_a_read_only_remote_is_never_written(
        self, nginx_server, sandbox, make_tree, run_py, read_stats
    ):
        tree = make_tree(TREE)
        run = run_py([sandbox.script(MAIN)], pythonpath=[tree], env=_env(nginx_server.url, "ro"))
        assert run.stdout == EXPECTED
        assert nginx_server.files() == [] and read_stats()["compiles"] == MODULES + 1

    def test_garbage_bodies_are_misses(self, nginx_server, sandbox, make_tree, run_py, read_stats):
        tree = make_tree(TREE)
        for i in range(MODULES):
            key = cache_key((tree / "pkg" / f"m{i}.py").read_bytes(), compile_context()).hex()
            (nginx_server.root / "cache" / key).write_bytes(os.urandom(50 + i))
        run = run_py([sandbox.script(MAIN)], pythonpath=[tree], env=_env(nginx_server.url, "ro"))
        assert (run.stdout, run.stderr) == (EXPECTED, "")
        stats = read_stats()
        assert stats["miss_corrupt"] == MODULES and stats.get("hits_remote", 0) == 0

    def test_going_down_mid_run(self, nginx_server, sandbox, make_tree, run_py, read_stats):
        tree = make_tree(TREE)
        run_py([sandbox.script(MAIN)], pythonpath=[tree], env=_env(nginx_server.url, "rw"))
        killer = sandbox.script(
            f"""\
            import os
            def value(i):
                return __import__(f"pkg.m{{i}}", None, None, ["VALUE"]).VALUE
            first = [value(i) for i in range(10)]
            os.kill({nginx_server.process.pid}, 9)  # SIGKILL, without importing signal
            rest = [value(i) for i in range(10, {MODULES})]
            print(sum(first) + sum(rest))
            """,
            name="killer.py",
        )
        laptop = sandbox.root / "laptop"
        run = run_py(
            [killer], pythonpath=[tree], env=_env(nginx_server.url, "rw", PYCACHE_DIR=str(laptop))
        )
        assert (run.stdout, run.stderr) == (EXPECTED, "")
        stats = read_stats(laptop)
        assert stats["hits_remote"] >= 10 and stats["remote_errors"] == 1
        assert stats["hits_remote"] + stats["compiles"] == MODULES + 1

    def test_a_hung_server_costs_one_timeout(
        self, nginx_server, sandbox, make_tree, run_py, read_stats
    ):
        tree = make_tree(TREE)
        nginx_server.freeze()
        env = _env(nginx_server.url, "rw", PYCACHE_REMOTE_TIMEOUT="2000")
        run = run_py([sandbox.script(MAIN)], pythonpath=[tree], env=env, timeout=30)
        assert (run.stdout, run.stderr) == (EXPECTED, "")
        stats = read_stats()
        assert stats["remote_errors"] == 1 and stats["compiles"] == MODULES + 1

    def test_status_and_push(self, nginx_server, sandbox, make_tree, run_py, pycache_cli):
        tree = make_tree(TREE)
        run_py([sandbox.script(MAIN)], pythonpath=[tree], env={"PYCACHE_REMOTE": None})
        url = nginx_server.url + "?layout=subdirs"
        (tier,) = pycache_cli("status", "--json", env=_env(url, "rw")).json()["remotes"]
        assert tier["answers"] is True
        push = pycache_cli("push", env=_env(url, "rw"))
        assert push.returncode == 0 and f"{MODULES + 1} pushed" in push.stdout, push
        again = pycache_cli("push", env=_env(url, "rw"))
        assert f"0 pushed, {MODULES + 1} already there" in again.stdout, again
        assert len(nginx_server.files()) == MODULES + 1


class TestProtocolGarbage:
    """A peer that speaks no protocol at all: one error, then the remote is given up."""

    @pytest.mark.parametrize("scheme", ["redis", "http"])
    def test_imports_are_unharmed(self, scheme, sandbox, make_tree, run_py, read_stats):
        junk = JunkServer()
        try:
            tree = make_tree(TREE)
            url = f"{scheme}://127.0.0.1:{junk.port}/0"
            run = run_py([sandbox.script(MAIN)], pythonpath=[tree], env=_env(url, "rw"))
            assert (run.stdout, run.stderr) == (EXPECTED, "")
            stats = read_stats()
            assert stats["remote_errors"] == 1 and stats["compiles"] == MODULES + 1
        finally:
            junk.close()


class TestBackends:
    """The backends' own contracts, in-process, against the real servers."""

    def test_redis_round_trip_and_errors(self, redis_server):
        store = open_remote(redis_server.url, 1.0, writable=True)
        assert store.get("ab" * 20) is None
        assert store.put("ab" * 20, b"data") and store.get("ab" * 20) == b"data"
        assert list(store.iterate()) == ["ab" * 20]
        read_only = open_remote(redis_server.url, 1.0, writable=False)
        assert read_only.put("cd" * 20, b"x") is False and store.get("cd" * 20) is None
        redis_server.kill()
        with pytest.raises(RemoteError):
            store.get("ab" * 20)

    def test_http_round_trip_keep_alive_and_errors(self, nginx_server):
        store = HTTPStore.from_url(nginx_server.url + "?layout=subdirs", timeout=1.0)
        assert store.get("ab" * 20) is None
        assert store.put("ab" * 20, b"data") and store.get("ab" * 20) == b"data"
        assert store.contains("ab" * 20) and not store.contains("cd" * 20)
        nginx_server.kill()
        with pytest.raises(RemoteError):
            store.get("ab" * 20)

    def test_http_after_fork_uses_its_own_connection(self, nginx_server):
        store = HTTPStore.from_url(nginx_server.url, timeout=2.0)
        assert store.put("ab" * 20, b"parent")
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child reports through its exit code
            code = 0 if store.get("ab" * 20) == b"parent" and store.put("cd" * 20, b"kid") else 1
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
        assert store.get("cd" * 20) == b"kid" and store.get("ab" * 20) == b"parent"

    @pytest.mark.parametrize(
        "url, message",
        [
            ("http://127.0.0.1:1/x?layout=tree", "layout"),
            ("http://127.0.0.1:1/x?colour=red", "unknown option"),
            ("redis://127.0.0.1:1/0?ttl=-5", "ttl"),
        ],
    )
    def test_bad_options(self, url, message):
        with pytest.raises(ValueError, match=message):
            open_remote(url, 0.05, writable=True)

    def test_credentials_become_basic_auth_and_are_hidden(self):
        store = HTTPStore.from_url("https://ci:s%3Acret@cache.example/pyc", timeout=1)
        assert store.headers["Authorization"] == "Basic Y2k6czpjcmV0"
        assert store.netloc == "cache.example" and store.secure
