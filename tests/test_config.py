"""Unit tests for pycache.config: settings from an environ mapping."""

from __future__ import annotations

import os
import pwd

import pytest

from pycache.config import Config, from_environ, parse_bool
from pycache.exceptions import ConfigError

BOOLEAN_VARIABLES = {
    # variable: (attribute, default)
    "PYCACHE_DISABLE": ("disabled", False),
    "PYCACHE_DEBUG": ("debug", False),
    "PYCACHE_READONLY": ("readonly", False),
    "PYCACHE_INTREE": ("intree", True),
}


class TestParseBool:
    @pytest.mark.parametrize(
        "value", ["1", "true", "yes", "on", "TRUE", "True", "Yes", "ON", " 1 ", "on\n"]
    )
    def test_true(self, value):
        assert parse_bool("X", value, False) is True

    @pytest.mark.parametrize(
        "value", ["0", "false", "no", "off", "FALSE", "False", "No", "OFF", " 0", "off\t"]
    )
    def test_false(self, value):
        assert parse_bool("X", value, True) is False

    @pytest.mark.parametrize("value", [None, "", "   "])
    @pytest.mark.parametrize("default", [True, False])
    def test_unset_gives_default(self, value, default):
        assert parse_bool("X", value, default) is default

    @pytest.mark.parametrize("value", ["2", "maybe", "y", "n", "t", "f", "-1", "1.0", "enable"])
    def test_bad_value(self, value):
        with pytest.raises(ConfigError) as caught:
            parse_bool("PYCACHE_DEBUG", value, False)
        message = str(caught.value)
        assert "PYCACHE_DEBUG" in message
        assert repr(value) in message

    def test_error_is_a_value_error(self):
        with pytest.raises(ValueError):
            parse_bool("X", "bad", False)


class TestStoreDir:
    def test_xdg_cache_home(self):
        config = from_environ({"XDG_CACHE_HOME": "/xdg/cache", "HOME": "/home/me"})
        assert config.store_dir == os.path.join("/xdg/cache", "pycache")

    def test_relative_xdg_cache_home_ignored(self):
        # The XDG base-directory spec: relative paths are invalid and must be ignored.
        config = from_environ({"XDG_CACHE_HOME": "relative/cache", "HOME": "/home/me"})
        assert config.store_dir == os.path.join("/home/me", ".cache", "pycache")

    def test_empty_xdg_cache_home_ignored(self):
        config = from_environ({"XDG_CACHE_HOME": "", "HOME": "/home/me"})
        assert config.store_dir == os.path.join("/home/me", ".cache", "pycache")

    def test_home(self):
        assert from_environ({"HOME": "/home/me"}).store_dir == "/home/me/.cache/pycache"

    def test_relative_home_gives_no_store(self):
        assert from_environ({"HOME": "relative"}).store_dir is None

    def test_no_home_uses_the_password_database(self):
        expected = os.path.join(pwd.getpwuid(os.getuid()).pw_dir, ".cache", "pycache")
        assert from_environ({}).store_dir == expected

    def test_no_home_anywhere_gives_no_store(self, monkeypatch):
        def unknown_user(uid):
            raise KeyError(uid)

        monkeypatch.setattr(pwd, "getpwuid", unknown_user)
        assert from_environ({}).store_dir is None

    def test_pycache_dir_wins(self):
        config = from_environ(
            {"PYCACHE_DIR": "/srv/cache", "XDG_CACHE_HOME": "/xdg", "HOME": "/home/me"}
        )
        assert config.store_dir == "/srv/cache"

    def test_relative_pycache_dir_made_absolute(self, tmp_path, monkeypatch):
        monkeypatch.chdir(tmp_path)
        config = from_environ({"PYCACHE_DIR": "rel/store", "HOME": "/home/me"})
        assert config.store_dir == os.path.join(os.getcwd(), "rel", "store")
        assert os.path.isabs(config.store_dir)

    def test_pycache_dir_normalised(self):
        config = from_environ({"PYCACHE_DIR": "/srv/./cache/../store/"})
        assert config.store_dir == "/srv/store"

    def test_pycache_dir_tilde(self, monkeypatch):
        monkeypatch.setenv("HOME", "/home/tilde")
        config = from_environ({"PYCACHE_DIR": "~/store", "HOME": "/home/tilde"})
        assert config.store_dir == "/home/tilde/store"

    def test_empty_pycache_dir_is_unset(self):
        config = from_environ({"PYCACHE_DIR": "", "HOME": "/home/me"})
        assert config.store_dir == "/home/me/.cache/pycache"


class TestBooleans:
    def test_defaults(self):
        config = from_environ({"HOME": "/home/me"})
        assert (config.disabled, config.debug, config.readonly, config.intree) == (
            False,
            False,
            False,
            True,
        )
        assert config.problems == ()

    @pytest.mark.parametrize("variable", sorted(BOOLEAN_VARIABLES))
    @pytest.mark.parametrize("value", ["1", "0", "yes", "off"])
    def test_each_variable(self, variable, value):
        attribute, default = BOOLEAN_VARIABLES[variable]
        config = from_environ({"HOME": "/home/me", variable: value}, strict=True)
        assert getattr(config, attribute) is (value in ("1", "yes"))
        for other, (other_attribute, other_default) in BOOLEAN_VARIABLES.items():
            if other != variable:
                assert getattr(config, other_attribute) is other_default

    @pytest.mark.parametrize("variable", sorted(BOOLEAN_VARIABLES))
    def test_bad_value_strict_raises(self, variable):
        with pytest.raises(ConfigError, match=variable):
            from_environ({"HOME": "/home/me", variable: "perhaps"}, strict=True)

    @pytest.mark.parametrize("variable", sorted(BOOLEAN_VARIABLES))
    def test_bad_value_lenient_uses_default_and_reports(self, variable):
        attribute, default = BOOLEAN_VARIABLES[variable]
        config = from_environ({"HOME": "/home/me", variable: "perhaps"})
        assert getattr(config, attribute) is default
        assert len(config.problems) == 1
        assert variable in config.problems[0]
        assert f"using {int(default)}" in config.problems[0]

    def test_every_problem_listed(self):
        config = from_environ(
            {
                "HOME": "/home/me",
                "PYCACHE_DEBUG": "2",
                "PYCACHE_INTREE": "nah",
                "PYCACHE_DISABLE": "1",
            }
        )
        assert config.disabled is True
        assert len(config.problems) == 2
        assert "PYCACHE_DEBUG" in config.problems[0]
        assert "PYCACHE_INTREE" in config.problems[1]

    def test_does_not_read_the_process_environment(self, monkeypatch):
        monkeypatch.setenv("PYCACHE_DISABLE", "1")
        monkeypatch.setenv("PYCACHE_DIR", "/from/process")
        config = from_environ({"HOME": "/home/me"})
        assert config.disabled is False
        assert config.store_dir == "/home/me/.cache/pycache"


class TestConfig:
    def test_constructor_defaults(self):
        config = Config(store_dir="/s")
        assert (config.store_dir, config.disabled, config.debug) == ("/s", False, False)
        assert (config.readonly, config.intree, config.problems) == (False, True, ())


class TestSigningSecret:
    def test_no_secret_by_default(self):
        config = from_environ({"HOME": "/home/me"})
        assert (config.secret, config.secret_unusable) == (None, False)

    def test_key_from_the_environment(self):
        config = from_environ({"HOME": "/home/me", "PYCACHE_KEY": "s3cret"})
        assert config.secret == b"s3cret" and not config.problems

    def test_key_file_without_its_trailing_newline(self, tmp_path):
        key_file = tmp_path / "key"
        key_file.write_bytes(b"\x00binary\xffsecret\n")
        config = from_environ({"HOME": "/home/me", "PYCACHE_KEY_FILE": str(key_file)})
        assert config.secret == b"\x00binary\xffsecret"

    @pytest.mark.parametrize(
        ("setup", "message"),
        [
            ("both", "not both"),
            ("missing", "cannot read PYCACHE_KEY_FILE"),
            ("directory", "cannot read PYCACHE_KEY_FILE"),
            ("empty", "is empty"),
        ],
    )
    def test_unusable_secret(self, tmp_path, setup, message):
        key_file = tmp_path / "key"
        environ = {"HOME": "/home/me", "PYCACHE_KEY_FILE": str(key_file)}
        if setup == "both":
            key_file.write_bytes(b"k")
            environ["PYCACHE_KEY"] = "k"
        elif setup == "directory":
            key_file.mkdir()
        elif setup == "empty":
            key_file.write_bytes(b"\n")
        with pytest.raises(ConfigError, match=message):
            from_environ(environ, strict=True)
        # On the import path: one problem, no secret, and the store is off limits
        # (never a silent fall-back to trusting unsigned entries).
        config = from_environ(environ)
        assert (config.secret, config.secret_unusable) == (None, True)
        assert len(config.problems) == 1 and message in config.problems[0]
        assert "not using the store" in config.problems[0]
