"""``pycache compile``: its arguments, their checks, and what it prints.

The compiling itself is ``pycache.compiler``; this module turns the command
line into ``compiler.Options``, shows progress on a terminal and prints the
failures and the summary. Exit codes: 0 every file compiled or up to date;
1 some file failed (syntax error, unreadable source, unwritable destination);
2 bad usage or a path that does not exist.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any, TextIO

__all__ = ["add_parser", "run"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad usage or input: one line on stderr, exit code 2."""


def _levels(text: str) -> list[int]:
    try:
        levels = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of levels: {text!r}") from None
    if not levels or any(level not in (0, 1, 2) for level in levels):
        raise argparse.ArgumentTypeError(f"levels are 0, 1 or 2, comma-separated: {text!r}")
    return levels


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more: {text!r}")
    return value


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """Register ``compile`` on the ``pycache`` command's subparsers."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "compile",
        help="compile .py files ahead of time, into the store or into __pycache__",
        description="Compile every .py file under PATHs into the PyCache store "
        "(default) or into CPython-compatible pycs. Exit codes: 0 ok; 1 a file "
        "failed to compile or write; 2 bad usage or a missing path.",
    )
    parser.add_argument("paths", nargs="*", metavar="PATH", help="files and directories")
    parser.add_argument("--stdlib", action="store_true", help="add this interpreter's stdlib")
    parser.add_argument(
        "--site-packages", action="store_true", help="add this interpreter's site-packages"
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--in-tree", action="store_true", help="write CPython pycs into __pycache__")
    where.add_argument(
        "--legacy", action="store_true", help="write pycs beside the sources (compileall -b)"
    )
    parser.add_argument(
        "--prefix",
        metavar="DIR",
        help="with --in-tree: write pycs under DIR, in the sys.pycache_prefix layout",
    )
    parser.add_argument(
        "--invalidation-mode",
        choices=("timestamp", "checked-hash", "unchecked-hash"),
        help="pyc kind for --in-tree/--legacy (default timestamp, "
        "checked-hash when SOURCE_DATE_EPOCH is set)",
    )
    parser.add_argument(
        "-O",
        dest="levels",
        type=_levels,
        action="append",
        metavar="LEVELS",
        help="optimization levels, e.g. 0,1,2 (default: this interpreter's)",
    )
    parser.add_argument(
        "-j", dest="jobs", type=_count, default=0, metavar="N", help="workers (0: all cores)"
    )
    parser.add_argument(
        "-x", "--exclude", metavar="REGEX", help="skip files whose path matches REGEX"
    )
    parser.add_argument("-r", dest="depth", type=_count, metavar="N", help="maximum depth")
    parser.add_argument("-l", dest="no_recursion", action="store_true", help="do not recurse")
    parser.add_argument("-f", "--force", action="store_true", help="compile even if up to date")
    parser.add_argument("-q", "--quiet", action="store_true", help="print failures only")
    parser.add_argument(
        "-i",
        dest="list_file",
        metavar="FILE",
        help="also compile the files listed in FILE (-: stdin)",
    )
    parser.add_argument("-d", dest="ddir", metavar="DIR", help="co_filename: DIR/relative path")
    parser.add_argument("-s", dest="stripdir", metavar="DIR", help="co_filename: strip DIR")
    parser.add_argument("-p", dest="prependdir", metavar="DIR", help="co_filename: prepend DIR")
    parser.add_argument(
        "-e", dest="limit_dir", metavar="DIR", help="skip symlinks that point outside DIR"
    )
    parser.add_argument(
        "--hardlink-dupes",
        action="store_true",
        help="hard-link pycs of different levels that are identical",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    parser.set_defaults(func=run)
    return parser


def _interpreter_paths(args: argparse.Namespace) -> list[str]:
    if not (args.stdlib or args.site_packages):
        return []  # without a sysconfig import
    import sysconfig

    paths = sysconfig.get_paths()
    found: list[str] = []
    if args.stdlib:
        found.append(paths["stdlib"])
    if args.site_packages:
        found.extend(paths[name] for name in ("purelib", "platlib"))
    return [path for i, path in enumerate(found) if path not in found[:i] and os.path.isdir(path)]


def _listed(list_file: str) -> list[str]:
    try:
        if list_file == "-":
            text = sys.stdin.read()
        else:
            with open(list_file, encoding="utf-8") as handle:
                text = handle.read()
    except OSError as exc:
        raise UsageError(f"compile: cannot read {list_file}: {exc.strerror}") from exc
    return [line.strip() for line in text.splitlines() if line.strip()]


def _options(args: argparse.Namespace, store_dir: str | None, secret: bytes | None) -> Any:
    from . import compiler

    in_tree = args.in_tree or args.prefix is not None
    if args.prefix is not None and args.legacy:
        raise UsageError("compile: --prefix cannot be used with --legacy")
    destination = (
        compiler.LEGACY if args.legacy else compiler.IN_TREE if in_tree else compiler.STORE
    )
    if args.ddir is not None and (args.stripdir is not None or args.prependdir is not None):
        raise UsageError("compile: -d cannot be used with -s or -p")
    levels: list[int] = []
    for group in args.levels or [[sys.flags.optimize]]:
        levels.extend(level for level in group if level not in levels)
    if destination == compiler.STORE:
        if args.ddir or args.stripdir or args.prependdir or args.invalidation_mode:
            raise UsageError(
                "compile: -d, -s, -p and --invalidation-mode apply to --in-tree and --legacy pycs"
            )
        if args.hardlink_dupes:
            raise UsageError("compile: --hardlink-dupes applies to --in-tree pycs")
        if store_dir is None:
            raise UsageError("compile: no store directory: set PYCACHE_DIR (HOME is unset)")
    if destination == compiler.LEGACY and len(levels) > 1:
        raise UsageError("compile: --legacy writes one pyc per source: give one -O level")
    if args.hardlink_dupes and len(levels) < 2:
        raise UsageError("compile: --hardlink-dupes needs more than one -O level")
    mode = args.invalidation_mode or compiler.default_invalidation_mode(os.environ)
    return compiler.Options(
        destination=destination,
        store_dir=store_dir if destination == compiler.STORE else None,
        secret=secret if destination == compiler.STORE else None,
        prefix=os.path.abspath(args.prefix) if args.prefix is not None else None,
        invalidation_mode=mode,
        levels=tuple(levels),
        force=args.force,
        hardlink_dupes=args.hardlink_dupes,
        ddir=args.ddir,
        stripdir=args.stripdir,
        prependdir=args.prependdir,
    )


class _Progress:
    """A one-line progress bar on a terminal: count, files per second, ETA."""

    WIDTH = 30

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.started = time.monotonic()
        self.shown = 0.0
        self.drawn = False

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - self.shown < 0.1:
            return
        self.shown = now
        elapsed = max(now - self.started, 1e-6)
        rate = done / elapsed
        filled = self.WIDTH * done // total if total else self.WIDTH
        eta = f"{(total - done) / rate:.0f}s" if rate > 0 and done < total else "-"
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        self.stream.write(f"\r[{bar}] {done}/{total} files  {rate:.0f}/s  ETA {eta} ")
        self.stream.flush()
        self.drawn = True

    def finish(self) -> None:
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()


def run(args: argparse.Namespace) -> int:
    """Run ``pycache compile``; return the exit code."""
    try:
        return _run(args)
    except UsageError as exc:
        print(f"pycache: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _store_config() -> tuple[str | None, bytes | None]:
    """The store directory and signing secret the environment configures."""
    from .config import from_environ
    from .exceptions import ConfigError

    try:
        config = from_environ(os.environ, strict=True)
    except ConfigError as exc:
        raise UsageError(str(exc)) from exc
    if config.readonly:
        raise UsageError("compile: PYCACHE_READONLY is set; the store cannot be written")
    return config.store_dir, config.secret


def _run(args: argparse.Namespace) -> int:
    import re

    from . import compiler

    paths = list(args.paths) + _interpreter_paths(args)
    if args.list_file is not None:
        paths.extend(_listed(args.list_file))
    if not paths:
        raise UsageError("compile: no PATH given (or --stdlib, --site-packages, -i FILE)")
    uses_store = not (args.in_tree or args.legacy or args.prefix is not None)
    store_dir, secret = _store_config() if uses_store else (None, None)
    options = _options(args, store_dir, secret)
    try:
        exclude = re.compile(args.exclude) if args.exclude is not None else None
    except re.error as exc:
        raise UsageError(f"compile: bad -x pattern {args.exclude!r}: {exc}") from exc
    depth = args.depth if args.depth is not None else 0 if args.no_recursion else None
    failures: list[compiler.Failure] = []
    try:
        sources = compiler.find_sources(
            paths,
            max_depth=depth if depth is not None else compiler.DEFAULT_MAX_DEPTH,
            exclude=exclude,
            limit_dir=args.limit_dir,
            options=options,
            failures=failures,
        )
    except FileNotFoundError as exc:
        raise UsageError(f"compile: {exc.args[0]}: no such file or directory") from exc

    progress = None
    if not args.quiet and sys.stderr.isatty():
        progress = _Progress(sys.stderr)
    summary = compiler.compile_tree(sources, options, jobs=args.jobs, progress=progress)
    if progress is not None:
        progress.finish()
    summary.failures[:0] = failures
    summary.failed += len(failures)
    for failure in summary.failures:
        print(failure, file=sys.stderr)
    if args.json:
        print(json.dumps(summary.as_json()))
    elif progress is not None:
        print(
            f"{summary.files} files: {summary.compiled} compiled, {summary.up_to_date} up to "
            f"date, {summary.failed} failed in {summary.seconds:.2f} s",
            file=sys.stderr,
        )
    return EXIT_FAILED if summary.failed else EXIT_OK
