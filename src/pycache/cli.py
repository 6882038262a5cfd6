"""The ``pycache`` command line. The only module that writes to stdout/stderr.

Exit codes: 0 ok; 1 something was found or failed; 2 usage or bad input;
``run`` returns the command's own exit code, or 126/127 when it cannot be
started, like a shell.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Sequence

from . import __version__
from .config import Config, from_environ
from .exceptions import ConfigError

__all__ = ["main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
_PTH_NAME = "pycache-enable.pth"
# site.py executes .pth lines that start with "import". The try/except keeps a
# stale .pth (PyCache uninstalled, or a broken install) from printing an error
# at every interpreter start.
_PTH_LINE = (
    "import sys; exec('try:\\n from pycache._activate import activate\\n"
    "except Exception:\\n pass\\nelse:\\n activate()')\n"
)


class _Fail(Exception):
    """A problem to report as one message and an exit code."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


def _boot_dir() -> str:
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "_boot")


def _site_packages() -> str:
    import sysconfig

    return sysconfig.get_paths()["purelib"]


def _in_venv() -> bool:
    return sys.prefix != getattr(sys, "base_prefix", sys.prefix)


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"  # pragma: no cover


def _config() -> Config:
    try:
        return from_environ(os.environ, strict=True)
    except ConfigError as exc:
        raise _Fail(str(exc)) from exc


def _store_dir(config: Config) -> str:
    if config.store_dir is None:
        raise _Fail("no store directory: set PYCACHE_DIR (HOME is unset)")
    return config.store_dir


def cmd_run(args: argparse.Namespace) -> int:
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise _Fail("run: no command given (usage: pycache run -- COMMAND [ARGS...])")
    _config()  # report a bad setting here, before it is silently ignored in every child
    env = dict(os.environ)
    boot = _boot_dir()
    existing = env.get("PYTHONPATH")
    env["PYTHONPATH"] = boot + (os.pathsep + existing if existing else "")
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvpe(command[0], command, env)
    except FileNotFoundError:
        print(f"pycache run: {command[0]}: command not found", file=sys.stderr)
        return 127
    except PermissionError:
        print(f"pycache run: {command[0]}: permission denied", file=sys.stderr)
        return 126
    except OSError as exc:
        print(f"pycache run: {command[0]}: {exc.strerror}", file=sys.stderr)
        return 126
    return EXIT_OK  # pragma: no cover - execvpe does not return


def cmd_enable(args: argparse.Namespace) -> int:
    if not _in_venv() and not args.system:
        raise _Fail(
            f"{sys.prefix} is not a virtual environment; "
            "use --system to enable PyCache for this interpreter anyway"
        )
    target = os.path.join(_site_packages(), _PTH_NAME)
    try:
        with open(target, "w", encoding="utf-8") as handle:
            handle.write(_PTH_LINE)
    except OSError as exc:
        raise _Fail(f"cannot write {target}: {exc.strerror}", EXIT_FAILED) from exc
    print(f"PyCache enabled for {sys.prefix} ({target})")
    return EXIT_OK


def cmd_disable(args: argparse.Namespace) -> int:
    target = os.path.join(_site_packages(), _PTH_NAME)
    try:
        os.unlink(target)
    except FileNotFoundError:
        print(f"PyCache was not enabled for {sys.prefix}")
        return EXIT_OK
    except OSError as exc:
        raise _Fail(f"cannot remove {target}: {exc.strerror}", EXIT_FAILED) from exc
    print(f"PyCache disabled for {sys.prefix}")
    return EXIT_OK


def _usage(store_dir: str) -> tuple[int, int]:
    from .stores.local import LocalStore

    return LocalStore(store_dir).usage()


def cmd_status(args: argparse.Namespace) -> int:
    from ._activate import is_active

    config = _config()
    pth = os.path.join(_site_packages(), _PTH_NAME)
    enabled = os.path.exists(pth)
    via_run = any(
        os.path.abspath(entry) == _boot_dir()
        for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep)
        if entry
    )
    entries, size = _usage(config.store_dir) if config.store_dir else (0, 0)
    report = {
        "active": is_active(),
        "enabled_for_environment": enabled,
        "environment": sys.prefix,
        "pth_file": pth if enabled else None,
        "under_pycache_run": via_run,
        "disabled_by_env": config.disabled,
        "readonly": config.readonly,
        "signed_entries": config.secret is not None,
        "store": config.store_dir,
        "entries": entries,
        "size_bytes": size,
    }
    if config.remotes:
        from . import remotes_cli

        report["remotes"] = remotes_cli.tier_report(config)
    if args.json:
        print(json.dumps(report, indent=2))
        return EXIT_OK
    if config.disabled:
        state = "off (PYCACHE_DISABLE is set)"
    elif report["active"]:
        state = "on in this process"
    elif enabled or via_run:
        state = "on for new Python processes"
    else:
        state = "off (run `pycache enable` or use `pycache run -- COMMAND`)"
    print(f"PyCache {__version__}: {state}")
    print(f"  environment: {sys.prefix} ({'enabled' if enabled else 'not enabled'} via .pth)")
    print(f"  pycache run: {'yes' if via_run else 'no'}")
    print(f"  store:       {config.store_dir or '(none: HOME and PYCACHE_DIR unset)'}")
    print(f"  entries:     {entries}")
    print(f"  size:        {_human(size)}")
    if config.readonly:
        print("  mode:        read-only (PYCACHE_READONLY)")
    if config.secret is not None:
        print("  signing:     on (entries must carry a valid HMAC; PYCACHE_KEY/PYCACHE_KEY_FILE)")
    if config.remotes:
        from . import remotes_cli

        for line in remotes_cli.tier_lines(report["remotes"]):  # type: ignore[arg-type]
            print(line)
    return EXIT_OK


def cmd_stats(args: argparse.Namespace) -> int:
    from . import stats

    store_dir = _store_dir(_config())
    stats_path = os.path.join(store_dir, "stats")
    if args.reset:
        try:
            stats.reset(stats_path)
        except OSError as exc:
            raise _Fail(f"cannot reset {stats_path}: {exc.strerror}", EXIT_FAILED) from exc
        print("statistics reset")
        return EXIT_OK
    try:
        totals: dict[str, int] = stats.read_totals(stats_path)
    except OSError as exc:
        raise _Fail(f"cannot read {stats_path}: {exc.strerror}", EXIT_FAILED) from exc
    entries, size = _usage(store_dir)
    totals["entries"] = entries
    totals["size_bytes"] = size
    if args.json:
        print(json.dumps(totals, indent=2))
        return EXIT_OK
    lookups = totals["hits"] + totals["misses"]
    rate = f" ({100 * totals['hits'] / lookups:.1f}%)" if lookups else ""
    print(f"store: {store_dir}")
    print(f"  hits                {totals['hits']:>10}{rate}")
    print(f"    by stat           {totals['hits_by_stat']:>10}")
    print(f"    by content        {totals['hits_by_content']:>10}")
    print(f"  misses              {totals['misses']:>10}")
    for reason, label in (
        ("miss_new", "new source"),
        ("miss_changed", "changed source"),
        ("miss_missing", "entry gone"),
        ("miss_corrupt", "corrupt entry"),
        ("miss_unsigned", "unsigned entry"),
    ):
        print(f"    {label:<18}{totals[reason]:>10}")
    print(f"  from __pycache__    {totals['intree_pyc']:>10}")
    print(f"  compiles            {totals['compiles']:>10}")
    print(f"  store writes        {totals['store_writes']:>10}")
    print(f"  write errors        {totals['store_write_errors']:>10}")
    print(f"  entries             {entries:>10}")
    print(f"  size                {_human(size):>10}")
    if any(totals[name] for name in stats.COUNTERS if "remote" in name):
        print("remote tiers:")
        for name in stats.COUNTERS:
            if "remote" in name:
                print(f"  {name.replace('_', ' '):<20}{totals[name]:>10}")
    return EXIT_OK


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pycache", description="A content-addressed bytecode cache for CPython."
    )
    parser.add_argument("--version", action="version", version=f"pycache {__version__}")
    commands = parser.add_subparsers(dest="name", metavar="COMMAND")
    commands.required = True

    run = commands.add_parser(
        "run", help="run COMMAND with PyCache active in it and every Python it starts"
    )
    run.add_argument("command", nargs=argparse.REMAINDER, metavar="-- COMMAND [ARGS...]")
    run.set_defaults(func=cmd_run)

    enable = commands.add_parser("enable", help="turn PyCache on for this environment (.pth)")
    enable.add_argument(
        "--system", action="store_true", help="allow enabling outside a virtual environment"
    )
    enable.set_defaults(func=cmd_enable)

    disable = commands.add_parser("disable", help="turn PyCache off for this environment")
    disable.set_defaults(func=cmd_disable)

    status = commands.add_parser("status", help="say whether PyCache is active, and where")
    status.add_argument("--json", action="store_true", help="print one JSON object")
    status.set_defaults(func=cmd_status)

    stats = commands.add_parser("stats", help="show hit/miss counters and store size")
    stats.add_argument("--json", action="store_true", help="print one JSON object")
    stats.add_argument("--reset", action="store_true", help="set the counters to zero")
    stats.set_defaults(func=cmd_stats)

    push = commands.add_parser("push", help="upload the local entries to read-write remotes")
    push.add_argument(
        "--remote", action="append", metavar="URL", help="push here instead (repeatable)"
    )
    push.set_defaults(func=_cmd_push)
    return parser


def _cmd_push(args: argparse.Namespace) -> int:
    from . import remotes_cli

    config = _config()
    store_dir = _store_dir(config)
    try:
        urls = remotes_cli.push_urls(config, args.remote)
    except ConfigError as exc:
        raise _Fail(str(exc)) from exc
    results = remotes_cli.push(urls, config, store_dir)
    for result in results:
        print(result)
    return EXIT_FAILED if any(r.failed or r.error for r in results) else EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on bad usage, 0 for --help
        return int(exc.code or 0)
    try:
        code: int = args.func(args)
        return code
    except _Fail as exc:
        print(f"pycache: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `pycache stats | head`: stop quietly, like other tools
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except OSError:
            pass
        return EXIT_FAILED
