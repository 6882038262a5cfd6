"""``PYCACHE_DEBUG=1`` tracing for the import path.

``logging`` costs milliseconds to import, so it is loaded only when tracing is
switched on, and then at once: importing it lazily from inside an import would
re-enter the loader. Tracing never raises.
"""

TYPE_CHECKING = False
if TYPE_CHECKING:
    import logging

__all__ = ["enable", "enabled", "trace", "warn_once"]

_logger: "logging.Logger | None" = None


def enable(on: bool = True) -> None:
    """Switch tracing to stderr on or off for this process."""
    global _logger
    if not on:
        _logger = None
        return
    import logging

    logger = logging.getLogger("pycache")
    if not any(getattr(handler, "_pycache", False) for handler in logger.handlers):
        handler = logging.StreamHandler()
        handler._pycache = True  # type: ignore[attr-defined]
        handler.setFormatter(logging.Formatter("pycache: %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    _logger = logger


def enabled() -> bool:
    """Say whether tracing is on."""
    return _logger is not None


def trace(message: str, *args: object) -> None:
    """Log ``message % args`` to stderr if tracing is on; otherwise do nothing, cheaply."""
    if _logger is None:
        return
    try:
        _logger.debug(message, *args)
    except Exception:  # a broken stderr must not break an import
        pass


_warned: "set[str]" = set()


def warn_once(topic: str, message: str) -> None:
    """Tell the user ``message`` once per process and ``topic``, as a ``RuntimeWarning``.

    For problems a user must hear about even without ``PYCACHE_DEBUG`` (an
    untrusted store). Never raises, even under ``-W error``.
    """
    trace("%s", message)
    if topic in _warned:
        return
    _warned.add(topic)
    try:
        import warnings

        warnings.warn(f"pycache: {message}", RuntimeWarning, stacklevel=2)
    except Exception:
        pass
