"""``PYCACHE_DEBUG=1`` tracing for the import path.

``logging`` costs milliseconds to import, so it is loaded only when tracing is
switched on, and then at once: importing it lazily from inside an import would
re-enter the loader. Tracing never raises.
"""

TYPE_CHECKING = False
if TYPE_CHECKING:
    import logging

__all__ = ["enable", "enabled", "trace"]

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
