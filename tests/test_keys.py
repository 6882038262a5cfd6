"""Unit tests for pycache.keys: what decides a module's content address."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pycache import keys
from pycache._entry import ENTRY_FORMAT_VERSION, KEY_SIZE
from pycache.keys import cache_key, compile_context, key_hex

FUZZ = settings(max_examples=300, deadline=None)

SOURCE = b"def f(x):\n    assert x\n    return x + 1\n"


@pytest.fixture
def debug_ranges_on(monkeypatch):
    """The default compile settings, whatever the environment running the tests says."""
    monkeypatch.delitem(sys._xoptions, "no_debug_ranges", raising=False)
    monkeypatch.delenv("PYTHONNODEBUGRANGES", raising=False)


class TestCacheKey:
    def test_length(self):
        assert KEY_SIZE == 20
        assert len(cache_key(SOURCE, compile_context())) == KEY_SIZE

    def test_deterministic(self):
        assert cache_key(SOURCE, compile_context()) == cache_key(SOURCE, compile_context())

    def test_same_source_at_two_paths_same_key(self, tmp_path):
        first = tmp_path / "a" / "mod.py"
        second = tmp_path / "b" / "other.py"
        for path in (first, second):
            path.parent.mkdir()
            path.write_bytes(SOURCE)
        context = compile_context()
        assert cache_key(first.read_bytes(), context) == cache_key(second.read_bytes(), context)

    def test_every_source_byte_matters(self):
        context = compile_context()
        original = cache_key(SOURCE, context)
        variants = set()
        for position in range(len(SOURCE)):
            changed = bytearray(SOURCE)
            changed[position] ^= 0x01
            variants.add(cache_key(bytes(changed), context))
        assert original not in variants
        assert len(variants) == len(SOURCE)

    @pytest.mark.parametrize("variant", [SOURCE + b"\n", SOURCE[:-1], b"", b"\0" + SOURCE])
    def test_appending_or_removing_bytes_matters(self, variant):
        context = compile_context()
        assert cache_key(variant, context) != cache_key(SOURCE, context)

    def test_context_matters(self):
        assert cache_key(SOURCE, compile_context(0)) != cache_key(SOURCE, compile_context(1))

    @given(first=st.binary(max_size=64), second=st.binary(max_size=64))
    @FUZZ
    def test_distinct_sources_distinct_keys(self, first, second):
        context = compile_context()
        assert (cache_key(first, context) == cache_key(second, context)) == (first == second)

    def test_definition_is_stable(self):
        # Stored entries outlive releases: changing the key function without
        # bumping ENTRY_FORMAT_VERSION would orphan every store. Pinned value.
        assert cache_key(b"x = 1\n", b"ctx\0").hex() == "c1c93acd867f0eb7781a06beb839d7cc36a71b74"
        expected = hashlib.blake2b(
            b"ctx\0" + SOURCE, digest_size=KEY_SIZE, person=b"pycache-key"
        ).digest()
        assert cache_key(SOURCE, b"ctx\0") == expected


class TestCompileContext:
    def test_default_is_the_running_optimization_level(self):
        assert compile_context() == compile_context(sys.flags.optimize)

    def test_optimization_levels_differ(self):
        contexts = {compile_context(level) for level in (0, 1, 2)}
        assert len(contexts) == 3

    def test_names_interpreter_and_format(self):
        context = compile_context(0)
        assert importlib.util.MAGIC_NUMBER.hex().encode() in context
        assert sys.implementation.cache_tag.encode() in context
        assert f"pycache-entry-v{ENTRY_FORMAT_VERSION}\0".encode() in context

    def test_format_version_matters(self, monkeypatch):
        before = compile_context(0)
        monkeypatch.setattr(keys, "ENTRY_FORMAT_VERSION", ENTRY_FORMAT_VERSION + 1)
        after = compile_context(0)
        assert after != before
        assert cache_key(SOURCE, after) != cache_key(SOURCE, before)

    def test_no_debug_ranges_xoption_matters(self, monkeypatch, debug_ranges_on):
        before = compile_context(0)
        monkeypatch.setitem(sys._xoptions, "no_debug_ranges", True)
        after = compile_context(0)
        assert b"no_debug_ranges=0" in before
        assert b"no_debug_ranges=1" in after
        assert cache_key(SOURCE, after) != cache_key(SOURCE, before)

    @pytest.mark.skipif(sys.flags.ignore_environment, reason="-E: the variable has no effect")
    def test_no_debug_ranges_environment_matters(self, monkeypatch, debug_ranges_on):
        before = compile_context(0)
        monkeypatch.setenv("PYTHONNODEBUGRANGES", "1")
        assert compile_context(0) != before
        assert b"no_debug_ranges=1" in compile_context(0)

    def test_empty_environment_value_is_unset(self, monkeypatch, debug_ranges_on):
        # CPython ignores PYTHONNODEBUGRANGES= (empty), so the key must too.
        before = compile_context(0)
        monkeypatch.setenv("PYTHONNODEBUGRANGES", "")
        assert compile_context(0) == before

    @pytest.mark.parametrize("flag", ["-E", "-I"])
    def test_environment_ignored_when_the_interpreter_ignores_it(self, flag):
        # Under -E/-I CPython compiles with debug ranges whatever
        # PYTHONNODEBUGRANGES says; a key claiming otherwise would be shared with
        # processes that really compile without them.
        src_dir = os.path.dirname(os.path.dirname(keys.__file__))
        script = (
            f"import sys; sys.path.insert(0, {src_dir!r}); "
            "from pycache.keys import compile_context; "
            "sys.stdout.write(compile_context(0).decode())"
        )
        env = dict(os.environ, PYTHONNODEBUGRANGES="1", PYCACHE_DISABLE="1")
        env.pop("PYTHONPATH", None)
        with_env = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
        )
        ignoring_env = subprocess.run(
            [sys.executable, flag, "-c", script],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        assert "no_debug_ranges=1" in with_env.stdout
        assert "no_debug_ranges=0" in ignoring_env.stdout

    def test_is_prefix_free(self):
        # The context is hashed in front of the source, so no context may be a
        # prefix of another: it always ends with its last field's terminator.
        contexts = [compile_context(level) for level in (0, 1, 2)]
        assert all(context.endswith(b"\0") for context in contexts)
        assert all(context.count(b"\0") == 5 for context in contexts)


class TestKeyHex:
    def test_is_lower_case_hex_of_the_key(self):
        key = cache_key(SOURCE, compile_context())
        text = key_hex(key)
        assert text == key.hex()
        assert len(text) == 2 * KEY_SIZE
        assert bytes.fromhex(text) == key
