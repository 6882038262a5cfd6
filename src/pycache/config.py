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
``PYCACHE_REMOTE``     remote store URLs (``file:///``, ``redis://``, ``http(s)://``),
                       separated by commas or spaces; ``?mode=rw`` per URL
``PYCACHE_REMOTE_MODE``  ``ro`` (default) or ``rw`` for every remote
``PYCACHE_REMOTE_TIMEOUT``  connect/request timeout in milliseconds (default 50)
``PYCACHE_REMOTE_FLUSH_TIMEOUT``  seconds to wait for queued remote writes at exit (1)
``PYCACHE_CONFIG``     the config file (default ``$XDG_CONFIG_HOME/pycache/config``,
                       else ``~/.config/pycache/config``): ``NAME = value`` lines
                       with the names above; the environment wins
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
        "remote_flush_timeout",
        "remote_timeout",
        "remotes",
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
        remotes: "tuple[tuple[str, bool], ...]" = (),
        remote_timeout: float = 0.05,
        remote_flush_timeout: float = 1.0,
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
        #: ``(url, read_write)`` for each remote tier, in lookup order.
        self.remotes = remotes
        #: Seconds, for each remote connect and request.
        self.remote_timeout = remote_timeout
        #: Seconds the exit flush may wait for queued remote writes.
        self.remote_flush_timeout = remote_flush_timeout


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


_MODES = {"ro": False, "rw": True}
_SCHEMES = ("file://", "redis://", "rediss://", "http://", "https://")


def parse_remotes(value: str, default_rw: bool) -> "tuple[tuple[str, bool], ...]":
    """Return ``(url, read_write)`` pairs for ``PYCACHE_REMOTE``.

    A URL may carry ``mode=ro`` or ``mode=rw`` in its query, which wins over
    ``default_rw``; the option is removed from the URL. Raises ``ConfigError``.
    """
    from .exceptions import ConfigError

    remotes = []
    for url in value.replace(",", " ").split():
        lowered = url.lower()
        if not lowered.startswith(_SCHEMES) or len(url.partition("://")[2]) == 0:
            raise ConfigError(
                f"PYCACHE_REMOTE: {url!r} is not a file://, redis:// or http(s):// URL"
            )
        if lowered.startswith("file://") and not url[7:].startswith("/"):
            raise ConfigError(f"PYCACHE_REMOTE: {url!r} needs an absolute path (file:///...)")
        read_write = default_rw
        base, sep, query = url.partition("?")
        if sep:
            kept = []
            for option in query.split("&"):
                name, _, mode = option.partition("=")
                if name == "mode":
                    if mode not in _MODES:
                        raise ConfigError(f"PYCACHE_REMOTE: {url!r}: mode must be ro or rw")
                    read_write = _MODES[mode]
                elif option:
                    kept.append(option)
            url = base + ("?" + "&".join(kept) if kept else "")
        remotes.append((url, read_write))
    return tuple(remotes)


def _parse_seconds(name: str, value: str, scale: float) -> float:
    from .exceptions import ConfigError

    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not number >= 0 or number == float("inf"):
        raise ConfigError(f"{name}={value!r} is not a non-negative number")
    return number * scale


#: The settings a config file may hold (``PYCACHE_DISABLE`` and ``PYCACHE_DEBUG``
#: are read before it is, so they only work from the environment).
FILE_SETTINGS = frozenset(
    {
        "PYCACHE_DIR",
        "PYCACHE_READONLY",
        "PYCACHE_INTREE",
        "PYCACHE_MAX_SIZE",
        "PYCACHE_KEY",
        "PYCACHE_KEY_FILE",
        "PYCACHE_REMOTE",
        "PYCACHE_REMOTE_MODE",
        "PYCACHE_REMOTE_TIMEOUT",
        "PYCACHE_REMOTE_FLUSH_TIMEOUT",
    }
)


def config_file_path(environ: "Mapping[str, str]") -> "str | None":
    """Return where the config file is looked for: ``$PYCACHE_CONFIG``, else the XDG place."""
    explicit = environ.get("PYCACHE_CONFIG")
    if explicit:
        return os.path.expanduser(explicit)
    xdg = environ.get("XDG_CONFIG_HOME")
    if xdg and os.path.isabs(xdg):
        return os.path.join(xdg, "pycache", "config")
    home = environ.get("HOME")
    if home and os.path.isabs(home):
        return os.path.join(home, ".config", "pycache", "config")
    return None


def parse_config_text(text: str, where: str) -> "dict[str, str]":
    """Parse ``NAME = value`` lines (``#`` starts a comment line). Raises ``ConfigError``."""
    from .exceptions import ConfigError

    settings = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        name = name.strip()
        if not sep or name not in FILE_SETTINGS:
            raise ConfigError(f"{where}:{number}: expected NAME = value with a PYCACHE_ setting")
        settings[name] = value.strip()
    return settings


def _with_config_file(environ: "Mapping[str, str]") -> "Mapping[str, str]":
    """Return ``environ`` over the config file's settings (the environment wins)."""
    path = config_file_path(environ)
    if path is None:
        return environ
    try:
        with open(path, "rb") as file:
            data = file.read(1 << 20)
    except OSError as exc:
        if environ.get("PYCACHE_CONFIG"):  # named, so it must be there
            from .exceptions import ConfigError

            raise ConfigError(f"cannot read PYCACHE_CONFIG={path!r}: {exc.strerror}") from None
        return environ
    settings = parse_config_text(data.decode("utf-8", "replace"), path)
    settings.update(environ)
    return settings


def from_environ(environ: "Mapping[str, str]", *, strict: bool = False) -> "Config":
    """Return the configuration described by ``environ``.

    With ``strict`` a bad value raises ``ConfigError`` (for the command line);
    otherwise the default is used and the problem listed in ``Config.problems``.
    """
    problems: list[str] = []
    try:
        environ = _with_config_file(environ)
    except ValueError as exc:  # ConfigError
        if strict:
            raise
        problems.append(f"{exc}; ignoring the config file")

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
    remote_timeout = 0.05
    remote_flush_timeout = 1.0
    remotes: tuple[tuple[str, bool], ...] = ()
    if environ.get("PYCACHE_REMOTE", "").strip():
        for name, scale in (
            ("PYCACHE_REMOTE_TIMEOUT", 0.001),
            ("PYCACHE_REMOTE_FLUSH_TIMEOUT", 1.0),
        ):
            value = environ.get(name, "").strip()
            if not value:
                continue
            try:
                seconds = _parse_seconds(name, value, scale)
            except ValueError as exc:
                if strict:
                    raise
                problems.append(f"{exc}; using the default")
                continue
            if scale == 1.0:
                remote_flush_timeout = seconds
            else:
                remote_timeout = seconds
        mode = environ.get("PYCACHE_REMOTE_MODE", "").strip().lower() or "ro"
        if mode not in _MODES:
            from .exceptions import ConfigError

            problem = ConfigError(f"PYCACHE_REMOTE_MODE={mode!r} is not ro or rw")
            if strict:
                raise problem
            problems.append(f"{problem}; using ro")
            mode = "ro"
        try:
            remotes = parse_remotes(environ["PYCACHE_REMOTE"], _MODES[mode])
        except ValueError as exc:
            if strict:
                raise
            problems.append(f"{exc}; not using remote stores")
    return Config(
        remotes=remotes,
        remote_timeout=remote_timeout,
        remote_flush_timeout=remote_flush_timeout,
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
