"""The command-line side of remote tiers: ``pycache status`` lines and ``pycache push``."""

from __future__ import annotations

import time
from typing import Any

from .config import Config
from .stores.base import Store
from .stores.remote import open_remote, redact

__all__ = ["PushResult", "push", "push_urls", "tier_lines", "tier_report"]

_PROBE_KEY = "0" * 64


def _answers(store: Store) -> bool:
    """Ask ``store`` whether it answers, once, within its own timeout."""
    for name in ("probe", "ping"):
        method = getattr(store, name, None)
        if method is not None:
            try:
                return bool(method())
            except Exception:
                return False
    try:
        store.get(_PROBE_KEY)  # answers None for a miss and for a failure alike
    except Exception:
        return False
    return bool(getattr(store, "available", True))


def tier_report(config: Config) -> list[dict[str, Any]]:
    """Describe each remote tier: URL (password hidden), mode, whether it answers."""
    tiers = []
    for url, read_write in config.remotes:
        tier: dict[str, Any] = {"url": redact(url), "mode": "rw" if read_write else "ro"}
        started = time.monotonic()
        try:
            store = open_remote(url, config.remote_timeout, writable=read_write)
        except Exception as exc:
            tier.update(answers=False, error=f"{type(exc).__name__}: {exc}")
        else:
            tier["answers"] = _answers(store)
            store.close()
        tier["probe_ms"] = round(1000 * (time.monotonic() - started), 1)
        tiers.append(tier)
    return tiers


def tier_lines(tiers: list[dict[str, Any]]) -> list[str]:
    """Return the lines ``pycache status`` shows for ``tiers``."""
    lines = []
    for number, tier in enumerate(tiers, 1):
        state = "answers" if tier["answers"] else f"does not answer {tier.get('error', '')}"
        lines.append(f"  remote {number}:    {tier['url']} ({tier['mode']}) {state.rstrip()}")
    return lines


class PushResult:
    """What ``push`` did for one remote."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.pushed = self.skipped = self.failed = 0
        self.error: str | None = None

    def __str__(self) -> str:
        if self.error is not None:
            done = f" after {self.pushed} pushed" if self.pushed or self.skipped else ""
            return f"{self.url}: failed{done}: {self.error}"
        return (
            f"{self.url}: {self.pushed} pushed, {self.skipped} already there, {self.failed} failed"
        )


def push_urls(config: Config, extra: list[str] | None) -> list[str]:
    """Return the URLs ``pycache push`` writes to. Raises ``ConfigError`` if there are none."""
    from .config import parse_remotes
    from .exceptions import ConfigError

    if extra:
        return [url for url, _ in parse_remotes(" ".join(extra), True)]
    urls = [url for url, read_write in config.remotes if read_write]
    if not urls:
        raise ConfigError(
            "no read-write remote: set PYCACHE_REMOTE with PYCACHE_REMOTE_MODE=rw "
            "(or ?mode=rw), or pass --remote URL"
        )
    return urls


def push(urls: list[str], config: Config, store_dir: str) -> list[PushResult]:
    """Upload every local entry to each of ``urls`` (skipping entries already there)."""
    from .stores.local import LocalStore

    local = LocalStore(store_dir, writable=False)
    results = []
    for url in urls:
        result = PushResult(redact(url))
        results.append(result)
        try:
            remote = open_remote(url, max(config.remote_timeout, 1.0), writable=True)
        except Exception as exc:
            result.error = f"{type(exc).__name__}: {exc}"
            continue
        contains = getattr(remote, "contains", None)
        try:
            for key in local.iterate():
                if contains is not None and contains(key):
                    result.skipped += 1
                    continue
                data = local.get(key)
                if data is None:
                    continue
                if remote.put(key, data):
                    result.pushed += 1
                else:
                    result.failed += 1
        except Exception as exc:  # unreachable, hung or not speaking its protocol: stop here
            result.error = f"{type(exc).__name__}: {exc}"
        remote.close()
    return results
