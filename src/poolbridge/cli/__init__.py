"""The ``poolbridge`` command line (argparse, standard library only).

Subcommands live in a small registry. Adding one is a decorated function taking the parsed
``argparse.Namespace`` and returning the exit code::

    @subcommand("budget", help="...", args=[arg("--url", required=True)])
    def budget(ns: argparse.Namespace) -> int: ...

Names with a space nest (``"config show"`` is ``poolbridge config show``). A subcommand
defined in another module registers when that module is imported: list it in
``EXTENSION_MODULES`` (a module that does not exist yet is skipped), and keep heavy imports
(pytest, ORMs) inside the function so ``poolbridge --help`` stays fast.

Exit codes: 0 success, 1 failure, 2 bad input (configuration errors: the problems are printed
to stderr, no traceback).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from poolbridge.errors import ConfigError, PoolBridgeError

__all__ = [
    "EXTENSION_MODULES",
    "GROUP_HELP",
    "SUBCOMMANDS",
    "Subcommand",
    "arg",
    "group",
    "main",
    "subcommand",
]

#: modules whose import registers more subcommands with ``@subcommand`` (``check``, ``bench``,
#: ``budget`` ...): add yours here. ``poolbridge.cli.config`` holds ``config show/schema``.
EXTENSION_MODULES: tuple[str, ...] = (
    "poolbridge.cli.config",
    "poolbridge.cli.check",
    "poolbridge.cli.bench",
    "poolbridge.cli.budget",
)

Arg = tuple[tuple[str, ...], dict[str, Any]]
RunFn = Callable[[argparse.Namespace], int]


def arg(*flags: str, **kwargs: Any) -> Arg:
    """One ``add_argument`` call, as data: ``arg("--json", action="store_true", help=...)``."""
    return flags, kwargs


@dataclass(frozen=True)
class Subcommand:
    """A registered subcommand: its words, help line, arguments and function."""

    words: tuple[str, ...]
    help: str
    run: RunFn
    args: tuple[Arg, ...] = field(default=())
    description: str | None = None


SUBCOMMANDS: dict[tuple[str, ...], Subcommand] = {}
#: help lines of intermediate groups ("config" in "config show"); set with :func:`group`
GROUP_HELP: dict[tuple[str, ...], str] = {}


def group(name: str, *, help: str) -> None:
    """Give the group ``name`` (e.g. ``"config"``) a help line for ``poolbridge --help``."""
    GROUP_HELP[tuple(name.split())] = help


def subcommand(
    name: str, *, help: str, args: Sequence[Arg] = (), description: str | None = None
) -> Callable[[RunFn], RunFn]:
    """Register ``fn`` as ``poolbridge <name>``; the decorated function is returned as is."""

    def register(fn: RunFn) -> RunFn:
        words = tuple(name.split())
        SUBCOMMANDS[words] = Subcommand(words, help, fn, tuple(args), description or fn.__doc__)
        return fn

    return register


def _load_extensions() -> None:
    for module in EXTENSION_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name is None or not (module == exc.name or module.startswith(exc.name + ".")):
                raise  # the module exists but one of ITS imports is missing: a real error


def build_parser() -> argparse.ArgumentParser:
    """The argparse tree of every registered subcommand."""
    from poolbridge import __version__
    from poolbridge.engine.build import build_name

    parser = argparse.ArgumentParser(
        prog="poolbridge",
        description="One declarative async connection-pool config for every ORM and driver.",
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"poolbridge {__version__} (pool engine: {build_name()})",
    )
    groups: dict[tuple[str, ...], Any] = {
        (): parser.add_subparsers(dest="_cmd0", metavar="COMMAND")
    }
    parsers: dict[tuple[str, ...], argparse.ArgumentParser] = {(): parser}
    for words, cmd in sorted(SUBCOMMANDS.items()):
        for depth in range(1, len(words)):
            prefix = words[:depth]
            if prefix not in parsers:  # an intermediate group such as "config"
                help_line = GROUP_HELP.get(prefix, f"{' '.join(prefix)} subcommands")
                group = groups[words[: depth - 1]].add_parser(
                    prefix[-1], help=help_line, description=help_line
                )
                parsers[prefix] = group
                groups[prefix] = group.add_subparsers(dest=f"_cmd{depth}", metavar="COMMAND")
        sub = groups[words[:-1]].add_parser(
            words[-1], help=cmd.help, description=cmd.description or cmd.help
        )
        for flags, kwargs in cmd.args:
            sub.add_argument(*flags, **kwargs)
        sub.set_defaults(_run=cmd.run)
        parsers[words] = sub
    parser.set_defaults(_parsers=parsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``poolbridge`` console script and ``python -m poolbridge``."""
    _load_extensions()
    parser = build_parser()
    ns = parser.parse_args(argv)
    run: RunFn | None = getattr(ns, "_run", None)
    if run is None:  # "poolbridge" or "poolbridge config" alone: show the relevant help
        words = tuple(w for i in range(4) if (w := getattr(ns, f"_cmd{i}", None)) is not None)
        ns._parsers.get(words, parser).print_help(sys.stderr)
        return 2
    try:
        return run(ns)
    except ConfigError as exc:
        print(f"poolbridge: {exc}", file=sys.stderr)
        return 2
    except PoolBridgeError as exc:
        print(f"poolbridge: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. piped into head
        return 0


def print_json(data: Any) -> None:
    """Print ``data`` as indented JSON (non-JSON values via ``str``)."""
    print(json.dumps(data, indent=2, default=str))
