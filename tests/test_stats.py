"""Unit tests for pycache.stats: the counters file, its lines, locking and compaction."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pycache
from pycache import stats
from pycache.stats import COUNTERS, append, decode_lines, encode_line, read_totals, reset

FUZZ = settings(max_examples=300, deadline=None)

ZEROS = dict.fromkeys(COUNTERS, 0)

counts_strategy = st.dictionaries(
    st.sampled_from(COUNTERS) | st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12),
    st.integers(0, 10**18 - 1),
)


def totals(**counts):
    return dict(ZEROS, **counts)


class TestEncodeLine:
    def test_format(self):
        line = encode_line({"misses": 3, "hits": 12, "compiles": 2, "miss_new": 3})
        assert line == b"pycache-stats-v1 compiles=2 hits=12 miss_new=3 misses=3\n"

    def test_zero_counters_omitted(self):
        assert encode_line({"hits": 0, "misses": 1}) == b"pycache-stats-v1 misses=1\n"

    @given(counts=counts_strategy)
    @FUZZ
    def test_round_trip(self, counts):
        nonzero = {name: value for name, value in counts.items() if value}
        assert decode_lines(encode_line(counts)) == nonzero


class TestDecodeLines:
    def test_sums_lines(self):
        text = encode_line({"hits": 1, "misses": 2}) + encode_line({"hits": 10, "compiles": 3})
        assert decode_lines(text) == {"hits": 11, "misses": 2, "compiles": 3}

    @pytest.mark.parametrize(
        "garbage",
        [
            b"",
            b"\n\n",
            b"hits=5\n",
            b"pycache-stats-v2 hits=5\n",
            b"PYCACHE-STATS-V1 hits=5\n",
            b"pycache-stats-v1 hits=5 misses=\n",  # torn mid-line
            b"pycache-stats-v1 hits=-5\n",
            b"pycache-stats-v1 hits=5x\n",
            b"pycache-stats-v1 hits=0x10\n",
            b"pycache-stats-v1 hits=1000000000000000000\n",  # 19 digits
            b"pycache-stats-v1 hits\n",
            b"\xff\xfe\x00 binary junk\n",
        ],
    )
    def test_garbage_skipped(self, garbage):
        good = encode_line({"hits": 7, "compiles": 1})
        assert decode_lines(good + garbage + good) == {"hits": 14, "compiles": 2}

    def test_torn_last_line_skipped(self):
        good = encode_line({"hits": 7})
        assert decode_lines(good + b"pycache-stats-v1 hits=5 mis") == {"hits": 7}

    def test_bad_field_discards_the_whole_line(self):
        # A torn line may have lost digits of its last field: trust none of it.
        assert decode_lines(b"pycache-stats-v1 hits=5 misses=x compiles=2\n") == {}

    def test_other_line_endings(self):
        assert decode_lines(b"pycache-stats-v1 hits=1\r\npycache-stats-v1 hits=2\r") == {"hits": 3}

    @given(text=st.binary(max_size=300))
    @FUZZ
    def test_arbitrary_bytes(self, text):
        decoded = decode_lines(text)
        assert all(type(name) is str for name in decoded)
        assert all(type(value) is int and value >= 0 for value in decoded.values())

    @given(lines=st.lists(counts_strategy, max_size=5), junk=st.binary(max_size=60))
    @FUZZ
    def test_junk_between_good_lines_costs_nothing(self, lines, junk):
        expected: dict = {}
        for counts in lines:
            for name, value in counts.items():
                if value:
                    expected[name] = expected.get(name, 0) + value
        text = b"".join(encode_line(counts) for counts in lines)
        assert decode_lines(text + b"\n" + junk.replace(b"pycache", b"") + b"\n") == expected


class TestAppend:
    def test_creates_private_file_and_directories(self, tmp_path):
        path = tmp_path / "store" / "sub" / "stats"
        old_umask = os.umask(0o022)
        try:
            append(str(path), {"hits": 2})
        finally:
            os.umask(old_umask)
        assert path.read_bytes() == b"pycache-stats-v1 hits=2\n"
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700

    def test_accumulates(self, tmp_path):
        path = str(tmp_path / "stats")
        append(path, {"hits": 2, "hits_by_stat": 2})
        append(path, {"misses": 1, "miss_new": 1, "compiles": 1})
        append(path, {"hits": 3, "hits_by_content": 3})
        assert read_totals(path) == totals(
            hits=5, hits_by_stat=2, hits_by_content=3, misses=1, miss_new=1, compiles=1
        )

    def test_nothing_to_add_writes_nothing(self, tmp_path):
        path = tmp_path / "stats"
        append(str(path), {})
        append(str(path), {"hits": 0})
        assert not path.exists()

    def test_unwritable_raises(self, tmp_path):
        blocker = tmp_path / "blocker"
        blocker.write_bytes(b"")
        with pytest.raises(OSError):
            append(str(blocker / "stats"), {"hits": 1})
        assert blocker.read_bytes() == b""

    def test_compaction_preserves_totals(self, tmp_path, monkeypatch):
        monkeypatch.setattr(stats, "_COMPACT_AT", 300)
        path = tmp_path / "stats"
        line_length = len(encode_line({"hits": 1, "compiles": 10}))
        sizes = []
        for _ in range(100):
            append(str(path), {"hits": 1, "compiles": 10})
            sizes.append(path.stat().st_size)
        assert read_totals(str(path)) == totals(hits=100, compiles=1000)
        assert max(sizes) <= 300 + line_length
        assert min(sizes[10:]) < 100  # compacted to one line at least once
        assert path.read_bytes().count(b"\n") < 300 // line_length + 2

    def test_compaction_keeps_the_file_private(self, tmp_path, monkeypatch):
        monkeypatch.setattr(stats, "_COMPACT_AT", 50)
        path = tmp_path / "stats"
        for _ in range(5):
            append(str(path), {"misses": 1})
        assert read_totals(str(path))["misses"] == 5
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert os.listdir(tmp_path) == ["stats"]

    def test_concurrent_processes(self, tmp_path):
        path = str(tmp_path / "store" / "stats")
        go = tmp_path / "go"
        processes, rounds, compact_at = 6, 150, 4000
        src_dir = os.path.dirname(os.path.dirname(pycache.__file__))
        # Each child reports how many of its appends raised (see
        # stats._locked_open's retry limit): those add nothing, the rest must
        # all be counted exactly once, across several compactions.
        script = (
            "import os, sys, time\n"
            f"sys.path.insert(0, {src_dir!r})\n"
            "from pycache import stats\n"
            f"stats._COMPACT_AT = {compact_at}\n"
            f"while not os.path.exists({str(go)!r}):\n"
            "    time.sleep(0.001)\n"
            "failed = 0\n"
            f"for _ in range({rounds}):\n"
            "    try:\n"
            f"        stats.append({path!r}, {{'hits': 1, 'compiles': 2, 'store_writes': 3}})\n"
            "    except OSError:\n"
            "        failed += 1\n"
            "print(failed)\n"
        )
        env = {
            "PATH": os.environ.get("PATH", ""),
            "PYCACHE_DISABLE": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        children = [
            subprocess.Popen(
                [sys.executable, "-c", script],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for _ in range(processes)
        ]
        go.write_bytes(b"")
        failed = 0
        for child in children:
            out, err = child.communicate(timeout=120)
            assert child.returncode == 0, err.decode()
            failed += int(out)
        appended = processes * rounds - failed
        assert appended > processes * rounds // 2
        assert read_totals(path) == totals(
            hits=appended, compiles=2 * appended, store_writes=3 * appended
        )
        assert os.path.getsize(path) <= compact_at + 100  # it was compacted
        assert sorted(os.listdir(os.path.dirname(path))) == ["stats"]


class TestReadTotals:
    def test_missing_file_is_all_zero(self, tmp_path):
        assert read_totals(str(tmp_path / "stats")) == ZEROS

    def test_every_counter_present_unknown_ones_dropped(self, tmp_path):
        path = tmp_path / "stats"
        path.write_bytes(b"pycache-stats-v1 hits=4 from_the_future=9\n")
        assert read_totals(str(path)) == totals(hits=4)
        assert list(read_totals(str(path))) == list(COUNTERS)

    def test_counters_list(self):
        assert {"hits", "misses", "compiles", "miss_corrupt", "store_write_errors"} <= set(COUNTERS)
        assert len(set(COUNTERS)) == len(COUNTERS)


class TestReset:
    def test_zeroes_everything(self, tmp_path):
        path = str(tmp_path / "stats")
        append(path, {"hits": 5, "misses": 2})
        reset(path)
        assert read_totals(path) == ZEROS
        append(path, {"hits": 1})
        assert read_totals(path) == totals(hits=1)

    def test_missing_directory_is_fine(self, tmp_path):
        path = tmp_path / "no-store" / "stats"
        reset(str(path))
        assert not path.parent.exists()
        assert read_totals(str(path)) == ZEROS
