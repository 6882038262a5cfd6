"""Configuration from the environment: pure functions of an environ mapping.

=====================  ========================================================
``PYCACHE_DIR``        store directory (default ``$XDG_CACHE_HOME/pycache``,
                       else ``~/.cache/pycache``)
``PYCACHE_DISABLE``    ``1`` turns PyCache off for this run
``PYCACHE_DEBUG``      ``1`` logs every hit, miss and fallback to stderr
``PYCACHE_READONLY``   ``1`` reads the store but never writes it
``PYCACHE_INTREE``     ``0`` ignores existing ``__pycache__`` pycs
``PYCACHE_MAX_SIZE``   store size limit, enforced at exit (default ``1G``; ``0`` = none)
``PYCACHE_KEY``        a secret: sign entries with HMAC-SHA256, read only signed
``PYCACHE_KEY_FILE``   the same, the secret read from a file
=====================  ========================================================

Booleans accept ``1/true/yes/on`` and ``0/false/no/off`` (any case); an empty
value means unset.
"""

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Mapping

__all__ = ["Config", "from_environ", "parse_bool"]

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


def parse_bool(name: str, value: "str | None", default: bool) -> bool:
    """Return the boolean ``value`` of variable ``name``.

    Raises ``ConfigError`` for a value that is neither true nor false.
    """
    if value is None or value.strip() == "":
        return default
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    from .exceptions import ConfigError  # imported late: start-up never needs it

    raise ConfigError(f"{name}={value!r} is not a boolean (use 1 or 0)")


DEFAULT_MAX_SIZE = 1 << 30  # 1 GiB, like ccache's 5 GB default scaled to bytecode
_SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


class Config:
    """Resolved settings. ``store_dir`` is ``None`` when no store location is known."""

    __slots__ = (
        "debug",
        "disabled",
        "intree",
        "max_size",
        "problems",
        "readonly",
        "secret",
        "secret_unusable",
        "store_dir",
    )

    def __init__(
        self,
        *,
        store_dir: "str | None",
        disabled: bool = False,
        debug: bool = False,
        readonly: bool = False,
        intree: bool = True,
        max_size: "int | None" = DEFAULT_MAX_SIZE,
        secret: "bytes | None" = None,
        secret_unusable: bool = False,
        problems: "tuple[str, ...]" = (),
    ) -> None:
        self.store_dir = store_dir
        self.disabled = disabled
        self.debug = debug
        self.readonly = readonly
        self.intree = intree
        #: The store's size limit in bytes (``None``: no limit).
        self.max_size = max_size
        #: The entry-signing secret (``PYCACHE_KEY``/``PYCACHE_KEY_FILE``), if any.
        self.secret = secret
        #: A secret was asked for but cannot be had: the store must not be used.
        self.secret_unusable = secret_unusable
        #: What was wrong with the environment, for ``strict=False`` callers to report.
        self.problems = problems


def _default_store_dir(environ: "Mapping[str, str]") -> "str | None":
    xdg = environ.get("XDG_CACHE_HOME")
    if xdg and os.path.isabs(xdg):  # the XDG spec says relative values are ignored
        return os.path.join(xdg, "pycache")
    home = environ.get("HOME")
    if not home:
        try:
            import pwd

            home = pwd.getpwuid(os.getuid()).pw_dir
        except (ImportError, KeyError, OSError):
            return None
    if not home or not os.path.isabs(home):
        return None
    return os.path.join(home, ".cache", "pycache")


def parse_size(name: str, value: str) -> "int | None":
    """Return the byte count of ``value`` (``500M``, ``1.5G``, ``2GiB``, ``1048576``).

    ``0`` means no limit (``None``). Units are binary (K = 1024). Raises
    ``ConfigError`` for a negative or malformed size.
    """
    text = value.strip().upper()
    for suffix in ("IB", "B"):
        if text.endswith(suffix) and text[: -len(suffix)][-1:] in "KMGT":
            text = text[: -len(suffix)]
            break
    unit = _SIZE_UNITS.get(text[-1:], None) if text[-1:].isalpha() else 1
    number = text[:-1] if text[-1:].isalpha() else text
    try:
        size = float(number) * unit if unit is not None else -1.0
    except ValueError:
        size = -1.0
    if unit is None or size < 0 or size != size or size == float("inf"):
        from .exceptions import ConfigError

        raise ConfigError(
            f"{name}={value!r} is not a size (use e.g. 500M, 1.5G or a number of bytes)"
        )
    return int(size) or None


def _read_secret(environ: "Mapping[str, str]") -> "bytes | None":
    """Return the signing secret the environment asks for, or ``None``.

    Raises ``ConfigError`` if it asks for one that cannot be had.
    """
    from .exceptions import ConfigError

    key = environ.get("PYCACHE_KEY") or None
    key_file = environ.get("PYCACHE_KEY_FILE") or None
    if key is not None and key_file is not None:
        raise ConfigError("set PYCACHE_KEY or PYCACHE_KEY_FILE, not both")
    if key is not None:
        return os.fsencode(key)
    if key_file is None:
        return None
    try:
        with open(os.path.expanduser(key_file), "rb") as file:
            secret = file.read().rstrip(b"\r\n")
    except OSError as exc:
        raise ConfigError(f"cannot read PYCACHE_KEY_FILE={key_file!r}: {exc.strerror}") from None
    if not secret:
        raise ConfigError(f"PYCACHE_KEY_FILE={key_file!r} is empty")
    return secret


def from_environ(environ: "Mapping[str, str]", *, strict: bool = False) -> "Config":
    """Return the configuration described by ``environ``.

    With ``strict`` a bad value raises ``ConfigError`` (for the command line);
    otherwise the default is used and the problem listed in ``Config.problems``.
    """
    problems: list[str] = []

    def boolean(name: str, default: bool) -> bool:
        try:
            return parse_bool(name, environ.get(name), default)
        except ValueError as exc:  # ConfigError
            if strict:
                raise
            problems.append(f"{exc}; using {int(default)}")
            return default

    store_dir = environ.get("PYCACHE_DIR") or None
    if store_dir is not None:
        store_dir = os.path.abspath(os.path.expanduser(store_dir))
    else:
        store_dir = _default_store_dir(environ)
    max_size: int | None = DEFAULT_MAX_SIZE
    size_text = environ.get("PYCACHE_MAX_SIZE")
    if size_text:
        try:
            max_size = parse_size("PYCACHE_MAX_SIZE", size_text)
        except ValueError as exc:  # ConfigError
            if strict:
                raise
            problems.append(f"{exc}; using the default, 1G")
    secret = None
    secret_unusable = False
    if environ.get("PYCACHE_KEY") or environ.get("PYCACHE_KEY_FILE"):
        try:
            secret = _read_secret(environ)
        except ValueError as exc:  # ConfigError
            if strict:
                raise
            # Never fall back to trusting unsigned entries: leave the store alone.
            problems.append(f"{exc}; not using the store")
            secret_unusable = True
    return Config(
        store_dir=store_dir,
        max_size=max_size,
        secret=secret,
        secret_unusable=secret_unusable,
        disabled=boolean("PYCACHE_DISABLE", False),
        debug=boolean("PYCACHE_DEBUG", False),
        readonly=boolean("PYCACHE_READONLY", False),
        intree=boolean("PYCACHE_INTREE", True),
        problems=tuple(problems),
    )
