"""pycache.eviction and `pycache gc`: LRU within a size limit, never breaking an import."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from pycache import eviction
from pycache.config import parse_size
from pycache.eviction import LOW_WATER, Entry, collect, collect_if_due, plan
from pycache.exceptions import ConfigError
from pycache.stores.local import LocalStore

NOW = 1_700_000_000.0
DAY = 86400


def entries(*specs: tuple[str, int, float]) -> list[Entry]:
    return [Entry(key, size, used) for key, size, used in specs]


class TestPlan:
    def test_nothing_to_do_within_limits(self):
        found = entries(("a", 10, NOW), ("b", 10, NOW - DAY))
        assert plan(found, max_size=100, max_age=None, now=NOW) == []
        assert plan(found, max_size=None, max_age=None, now=NOW) == []

    def test_least_recently_used_go_first_down_to_the_low_water_mark(self):
        found = entries(
            ("new", 40, NOW), ("old", 40, NOW - 3 * DAY), ("mid", 40, NOW - DAY), ("x", 40, NOW)
        )
        victims = plan(found, max_size=100, max_age=None, now=NOW)
        assert [victim.key for victim in victims] == ["old", "mid"]
        assert 160 - sum(victim.size for victim in victims) <= 100 * LOW_WATER

    def test_max_age(self):
        found = entries(("fresh", 1, NOW - DAY), ("stale", 1, NOW - 8 * DAY))
        assert [v.key for v in plan(found, max_size=None, max_age=7 * DAY, now=NOW)] == ["stale"]

    def test_age_and_size_together(self):
        found = entries(("stale", 50, NOW - 9 * DAY), ("a", 50, NOW - 2), ("b", 50, NOW - 1))
        victims = plan(found, max_size=60, max_age=7 * DAY, now=NOW)
        assert [victim.key for victim in victims] == ["stale", "a"]

    def test_ties_are_broken_by_key_so_the_plan_is_deterministic(self):
        found = entries(("b", 10, NOW), ("a", 10, NOW), ("c", 10, NOW))
        assert [v.key for v in plan(found, max_size=15, max_age=None, now=NOW)] == ["a", "b"]


class TestParseSize:
    @pytest.mark.parametrize(
        ("text", "size"),
        [
            ("1048576", 1 << 20),
            ("500M", 500 << 20),
            ("1.5G", 3 << 29),
            ("2GiB", 2 << 30),
            ("10MB", 10 << 20),
            ("64k", 64 << 10),
            ("0", None),
        ],
    )
    def test_sizes(self, text, size):
        assert parse_size("PYCACHE_MAX_SIZE", text) == size

    @pytest.mark.parametrize("text", ["-1", "-5M", "lots", "5X", "", "M", "nan", "inf"])
    def test_bad_sizes(self, text):
        with pytest.raises(ConfigError, match="PYCACHE_MAX_SIZE=.* is not a size"):
            parse_size("PYCACHE_MAX_SIZE", text)


def _fill(store: LocalStore, count: int, size: int = 1000) -> list[str]:
    """``count`` entries, the first one used longest ago."""
    keys = [f"{index:040x}" for index in range(count)]
    for age, key in enumerate(reversed(keys)):
        assert store.put(key, b"x" * size)
        used = time.time() - (age + 1) * 3600
        os.utime(store.path_for(key), (used, used))
    return keys


class TestCollect:
    def test_evicts_the_least_recently_used_files(self, tmp_path):
        store = LocalStore(str(tmp_path / "store"))
        keys = _fill(store, 10)
        outcome = collect(store, max_size=5000, max_age=None)
        assert (outcome.entries_before, outcome.bytes_before) == (10, 10000)
        assert outcome.evicted == 6 and outcome.bytes_after <= 5000 * LOW_WATER
        assert sorted(store.iterate()) == sorted(keys[6:])

    def test_a_read_counts_as_a_use(self, tmp_path):
        store = LocalStore(str(tmp_path / "store"))
        keys = _fill(store, 4)
        now = time.time()
        os.utime(store.path_for(keys[0]), (now, os.stat(store.path_for(keys[0])).st_mtime))
        collect(store, max_size=2500, max_age=None)
        assert keys[0] in set(store.iterate()) and keys[1] not in set(store.iterate())

    def test_dry_run_removes_nothing(self, tmp_path):
        store = LocalStore(str(tmp_path / "store"))
        keys = _fill(store, 5)
        outcome = collect(store, max_size=1, max_age=None, dry_run=True)
        assert outcome.evicted == 5 and sorted(store.iterate()) == sorted(keys)

    def test_stale_temp_files_go_fresh_ones_stay(self, tmp_path):
        store = LocalStore(str(tmp_path / "store"))
        _fill(store, 1)
        fan = os.path.dirname(store.path_for("00" * 20))
        spool = os.path.join(store.root, "spool")  # a killed backfill helper's
        os.mkdir(spool)
        stale, fresh = os.path.join(fan, "a.1.2.tmp"), os.path.join(fan, "b.3.4.tmp")
        stale_spool, fresh_spool = os.path.join(spool, "1-a.tmp"), os.path.join(spool, "2-b.tmp")
        for path in (stale, fresh, stale_spool, fresh_spool):
            with open(path, "wb") as file:
                file.write(b"half")
        old = time.time() - 2 * eviction.STALE_TEMP_SECONDS
        os.utime(stale, (old, old))
        os.utime(stale_spool, (old, old))
        outcome = collect(store, max_size=None, max_age=None)
        assert outcome.temp_files_removed == 2
        assert not os.path.exists(stale) and os.path.exists(fresh)
        assert not os.path.exists(stale_spool) and os.path.exists(fresh_spool)


class TestCollectIfDue:
    def test_under_the_limit_only_the_estimate_grows(self, tmp_path):
        store = LocalStore(str(tmp_path / "store"))
        _fill(store, 4)
        assert collect_if_due(store.root, 100_000, 0) is not None  # unknown size: measured
        assert collect_if_due(store.root, 100_000, 1000) is None
        state = (tmp_path / "store" / "gc-state").read_text()
        assert int(state) == 5000  # 4000 measured + 1000 written
        assert len(list(store.iterate())) == 4

    def test_over_the_limit_the_store_is_trimmed(self, tmp_path):
        store = LocalStore(str(tmp_path / "store"))
        _fill(store, 20)
        collect_if_due(store.root, 100_000, 0)
        outcome = collect_if_due(store.root, 10_000, 5000)
        assert outcome is not None and outcome.bytes_after <= 10_000 * LOW_WATER
        assert int((tmp_path / "store" / "gc-state").read_text()) == outcome.bytes_after

    def test_skipped_while_another_process_collects(self, tmp_path):
        store = LocalStore(str(tmp_path / "store"))
        _fill(store, 20)
        holder = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import os, sys, time\n"
                "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
                "os.lockf(fd, os.F_LOCK, 0)\n"
                "print('locked', flush=True)\n"
                "time.sleep(60)\n",
                str(tmp_path / "store" / "gc.lock"),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
            assert collect_if_due(store.root, 1, 1000) is None
            assert len(list(store.iterate())) == 20
        finally:
            holder.kill()
            holder.wait()


TREE = {f"mod{i:02d}.py": f"VALUE = {i}\nDATA = {list(range(i * 20))!r}\n" for i in range(30)}
MAIN = (
    "import sys\nnames = sorted(n for n in {names!r})\n"
    "print(sum(__import__(n).VALUE for n in names))\n"
)


class TestEndToEnd:
    def test_ordinary_runs_keep_the_store_within_its_limit(
        self, sandbox, make_tree, run_py, read_stats
    ):
        tree = make_tree(TREE)
        names = [name[:-3] for name in TREE]
        main = sandbox.script(MAIN.format(names=names))
        expected = f"{sum(range(30))}\n"
        limit = 20_000
        env = {"PYCACHE_MAX_SIZE": str(limit)}
        for _ in range(3):
            assert run_py([main], pythonpath=[tree], env=env).stdout == expected
            size = sum(path.stat().st_size for path in sandbox.entry_files())
            assert size <= limit, size
        assert len(sandbox.entry_files()) < len(TREE)  # some were evicted

    def test_imports_stay_correct_while_gc_runs_with_a_tiny_limit(self, sandbox, make_tree, run_py):
        tree = make_tree(TREE)
        names = [name[:-3] for name in TREE]
        main = sandbox.script(MAIN.format(names=names))
        expected = f"{sum(range(30))}\n"
        env = sandbox.environ(boot=True, disable=False, pythonpath=[tree])
        importers = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    "import subprocess, sys\n"
                    "for _ in range(8):\n"
                    "    run = subprocess.run([sys.executable, sys.argv[1]], capture_output=True,"
                    " text=True)\n"
                    "    print(run.returncode, run.stdout.strip(), run.stderr.strip()[-200:])\n",
                    str(main),
                ],
                env=env,
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(3)
        ]
        collections = 0
        while any(process.poll() is None for process in importers):
            gc = sandbox.cli("gc", "--max-size", "1", "-q")
            assert gc.returncode == 0 and gc.stdout == "", gc
            collections += 1
        results = [line for process in importers for line in process.stdout.read().splitlines()]
        assert len(results) == 24, results
        assert all(line == f"0 {expected.strip()} " for line in results), results
        assert collections >= 1

    def test_cli(self, sandbox, make_tree, run_py):
        tree = make_tree(TREE)
        names = [name[:-3] for name in TREE]
        run_py([sandbox.script(MAIN.format(names=names))], pythonpath=[tree])
        count = len(sandbox.entry_files())
        dry = sandbox.cli("gc", "--max-size", "1", "--dry-run", "--json")
        assert dry.returncode == 0, dry
        report = json.loads(dry.stdout)
        assert report["evicted"] == count and report["dry_run"] is True
        assert len(sandbox.entry_files()) == count
        real = sandbox.cli("gc", "--max-age", "0")
        assert real.returncode == 0 and f"evicted {count} of {count} entries" in real.stdout
        assert sandbox.entry_files() == []
        for bad in (["--max-size", "-3"], ["--max-size", "huge"], ["--max-age", "-1"]):
            run = sandbox.cli("gc", *bad)
            assert run.returncode == 2 and run.stderr.startswith("pycache: gc: "), run
            assert "Traceback" not in run.stderr
        bad_env = sandbox.cli("gc", env={"PYCACHE_MAX_SIZE": "-1"})
        assert bad_env.returncode == 2 and "PYCACHE_MAX_SIZE" in bad_env.stderr
