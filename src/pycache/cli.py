"""The ``pycache`` command line. The only module that writes to stdout/stderr.

Exit codes: 0 ok; 1 something was found or failed; 2 usage or bad input;
``run`` returns the command's own exit code, or 126/127 when it cannot be
started, like a shell.
"""

from __future__ import annotations

import os
import sys

from . import __version__
from .config import Config, from_environ
from .exceptions import ConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import Callable, Sequence

# argparse, json and typing are imported where they are used: `pycache run`
# must start the wrapped command without paying for them (about 10 ms).

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
    return _run(list(args.command))


def _run(command: list[str]) -> int:
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
        import json

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
        import json

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
        remote = [name for name in stats.COUNTERS if "remote" in name]
        width = max(len(name) for name in remote) + 2
        for name in remote:
            print(f"  {name.replace('_', ' '):<{width}}{totals[name]:>10}")
    return EXIT_OK


def cmd_gc(args: argparse.Namespace) -> int:
    from . import eviction
    from .config import parse_size
    from .exceptions import ConfigError
    from .stores.local import LocalStore

    config = _config()
    store_dir = _store_dir(config)
    try:
        max_size = (
            parse_size("--max-size", args.max_size)
            if args.max_size is not None
            else config.max_size
        )
    except ConfigError as exc:
        raise _Fail(f"gc: {exc}") from exc
    if args.max_age is not None and not args.max_age >= 0:
        raise _Fail(f"gc: --max-age must be a number of days >= 0, not {args.max_age}")
    max_age = args.max_age * 86400 if args.max_age is not None else None
    store = LocalStore(store_dir, writable=not args.dry_run)
    if not store.trusted:
        raise _Fail(f"gc: not touching {store_dir}: it is not yours alone", EXIT_FAILED)
    outcome = eviction.collect(store, max_size=max_size, max_age=max_age, dry_run=args.dry_run)
    if args.json:
        import json

        print(json.dumps({**outcome.as_json(), "dry_run": args.dry_run}, indent=2))
    elif not args.quiet:
        verb = "would evict" if args.dry_run else "evicted"
        limit = _human(max_size) if max_size is not None else "none"
        print(
            f"{verb} {outcome.evicted} of {outcome.entries_before} entries, "
            f"freeing {_human(outcome.freed)}; store now {outcome.entries_after} entries, "
            f"{_human(outcome.bytes_after)} (limit {limit})"
        )
        if outcome.temp_files_removed:
            print(
                f"{'would remove' if args.dry_run else 'removed'} "
                f"{outcome.temp_files_removed} stale temp files"
            )
    if outcome.errors:
        print(f"pycache: gc: {outcome.errors} entries could not be removed", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    from . import verifier

    if args.store:
        from .stores.local import LocalStore

        store_dir = _store_dir(_config())
        store = LocalStore(store_dir, writable=args.repair)
        if not store.trusted:
            raise _Fail(f"verify: not touching {store_dir}: it is not yours alone", EXIT_FAILED)
        reports = verifier.verify_store(store, repair=args.repair)
        problems = [] if args.repair else reports
    else:
        if args.repair:
            raise _Fail("verify: --repair goes with --store")
        try:
            reports = verifier.verify_paths(args.paths or ["."])
        except OSError as exc:
            raise _Fail(f"verify: {exc.filename}: {exc.strerror}") from exc
        problems = [report for report in reports if report.status in verifier.PROBLEMS]
    counts: dict[str, int] = {}
    for report in reports:
        counts[report.status] = counts.get(report.status, 0) + 1
    if args.json:
        import json

        files = [report._asdict() for report in reports]
        print(json.dumps({"files": files, "counts": counts, "repaired": args.repair}, indent=2))
    else:
        for report in reports:
            if report.status != verifier.FRESH and not args.quiet:
                print(f"{report.path}: {report.status}: {report.reason}")
        if not args.quiet:
            summary = ", ".join(f"{count} {status}" for status, count in sorted(counts.items()))
            what = "store problems" if args.store else "pycs"
            verb = "removed" if args.repair else "found"
            print(f"{len(reports)} {what} {verb}" + (f": {summary}" if summary else ""))
    return EXIT_FAILED if problems else EXIT_OK


def cmd_clean(args: argparse.Namespace) -> int:
    from . import cleaner

    try:
        removals = cleaner.clean(
            args.paths or ["."],
            dry_run=args.dry_run,
            orphans_only=args.orphans_only,
            include_sourceless=args.include_sourceless,
        )
    except OSError as exc:
        raise _Fail(f"clean: {exc.filename}: {exc.strerror}") from exc
    failed = [removal for removal in removals if removal.error]
    freed = sum(removal.size for removal in removals if not removal.error)
    verb = "would remove" if args.dry_run else "removed"
    if args.json:
        import json

        report = {
            "removed": [removal.path for removal in removals if not removal.error],
            "failed": {removal.path: removal.error for removal in failed},
            "files": len(removals) - len(failed),
            "bytes": freed,
            "dry_run": args.dry_run,
        }
        print(json.dumps(report, indent=2))
    elif not args.quiet:
        for removal in removals:
            if not removal.error:
                print(f"{verb} {removal.path} ({removal.why})")
        print(f"{verb} {len(removals) - len(failed)} files, freeing {_human(freed)}")
    for removal in failed:
        print(f"pycache: clean: cannot remove {removal.path}: {removal.error}", file=sys.stderr)
    return EXIT_FAILED if failed else EXIT_OK


def _source_of(pyc_path: str) -> str:
    directory, name = os.path.split(os.path.abspath(pyc_path))
    if os.path.basename(directory) == "__pycache__":
        return os.path.join(os.path.dirname(directory), name.split(".", 1)[0] + ".py")
    return os.path.splitext(os.path.join(directory, name))[0] + ".py"


def cmd_inspect(args: argparse.Namespace) -> int:
    from . import inspector

    failed = 0
    results = []
    for path in args.files:
        try:
            with open(path, "rb") as file:
                data = file.read()
            info = inspector.describe(data)
        except OSError as exc:
            print(f"pycache: inspect: {path}: {exc.strerror}", file=sys.stderr)
            failed += 1
            continue
        except inspector.InspectError as exc:
            print(f"pycache: inspect: {path}: {exc}", file=sys.stderr)
            failed += 1
            continue
        info["path"] = path
        source = _source_of(path)
        try:
            with open(source, "rb") as file:
                st = os.fstat(file.fileno())
                text = file.read()
            info["source"] = source
            info["freshness"] = inspector.freshness(
                info, source=text, mtime=st.st_mtime, size=st.st_size
            )
        except OSError:
            info["source"] = None
        code = None
        if info["loadable_here"]:
            try:
                code = inspector.load_code(data)
            except inspector.InspectError as exc:
                print(f"pycache: inspect: {path}: {exc}", file=sys.stderr)
                failed += 1
                continue
            info["code"] = inspector.code_summary(code)
        results.append(info)
        if args.json:
            continue
        print(
            f"{path}: CPython {info['version']} pyc (magic {info['magic']}, "
            f"{info['magic_bytes']}), {info['header_size']}-byte header"
        )
        if "flags" in info:
            print(f"  flags: {info['flags']:#x} ({info['mode']})")
        if "source_hash" in info:
            print(f"  source hash: {info['source_hash']}")
        else:
            size = f", size {info['source_size']} bytes" if "source_size" in info else ""
            print(f"  source mtime: {info['source_mtime']} ({info['source_mtime_utc']}){size}")
        if info["source"] is not None:
            print(f"  source: {info['source']}: {info['freshness']}")
        else:
            print("  source: not found beside it")
        if code is None:
            here = inspector.running_version()
            print(f"  needs CPython {info['version']} to load (this is {here})")
        else:
            print("  code:")
            for line in info["code"]:
                print(f"    {line}")
            if args.dis:
                import dis

                dis.dis(code)
    if args.json:
        import json

        print(json.dumps(results[0] if len(args.files) == 1 and results else results, indent=2))
    return EXIT_USAGE if failed else EXIT_OK


def _parser() -> argparse.ArgumentParser:
    import argparse

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

    gc = commands.add_parser(
        "gc", help="evict least-recently-used entries to keep the store within its size"
    )
    gc.add_argument(
        "--max-size",
        metavar="SIZE",
        help="size limit, e.g. 500M or 2G (default: PYCACHE_MAX_SIZE, else 1G; 0: none)",
    )
    gc.add_argument(
        "--max-age", type=float, metavar="DAYS", help="also evict entries unused for DAYS days"
    )
    gc.add_argument("--dry-run", action="store_true", help="report, remove nothing")
    gc.add_argument("--json", action="store_true", help="print one JSON object")
    gc.add_argument("-q", "--quiet", action="store_true", help="print nothing unless it fails")
    gc.set_defaults(func=cmd_gc)

    verify = commands.add_parser(
        "verify", help="say which pycs CPython would use, and whether the store is sound"
    )
    verify.add_argument("paths", nargs="*", metavar="PATH", help="trees or pycs (default: .)")
    verify.add_argument(
        "--store", action="store_true", help="check the store's entries and index files instead"
    )
    verify.add_argument("--repair", action="store_true", help="with --store: remove bad files")
    verify.add_argument("--json", action="store_true", help="print one JSON object")
    verify.add_argument("-q", "--quiet", action="store_true", help="print nothing; exit code only")
    verify.set_defaults(func=cmd_verify)

    clean = commands.add_parser(
        "clean", help="remove __pycache__ directories, legacy and orphaned pycs"
    )
    clean.add_argument("paths", nargs="*", metavar="PATH", help="trees to clean (default: .)")
    clean.add_argument("--dry-run", action="store_true", help="list what would go")
    clean.add_argument("--orphans-only", action="store_true", help="only pycs whose source is gone")
    clean.add_argument(
        "--include-sourceless",
        action="store_true",
        help="also legacy pycs with no .py beside them (shipped on purpose by some)",
    )
    clean.add_argument("--json", action="store_true", help="print one JSON object")
    clean.add_argument("-q", "--quiet", action="store_true", help="print only failures")
    clean.set_defaults(func=cmd_clean)

    inspect = commands.add_parser("inspect", help="decode a pyc's header (any CPython) and code")
    inspect.add_argument("files", nargs="+", metavar="FILE.pyc")
    inspect.add_argument("--dis", action="store_true", help="disassemble (this Python's pycs)")
    inspect.add_argument("--json", action="store_true", help="print JSON")
    inspect.set_defaults(func=cmd_inspect)

    from . import compile_cmd  # `pycache compile`: arguments and output live there

    compile_cmd.add_parser(commands)

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
    words = list(sys.argv[1:] if argv is None else argv)
    if words[:1] == ["run"] and words[1:2] not in (["-h"], ["--help"]):
        # The common case goes straight to exec, without building the parser.
        return _dispatch(lambda: _run(words[1:]))
    parser = _parser()
    try:
        args = parser.parse_args(words)
    except SystemExit as exc:  # argparse exits 2 on bad usage, 0 for --help
        return int(exc.code or 0)
    return _dispatch(lambda: args.func(args))


def _dispatch(command: Callable[[], int]) -> int:
    """Run ``command``, turning the errors we expect into messages and exit codes."""
    try:
        return command()
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
