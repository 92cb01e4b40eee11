"""What every command module shares: its options, argument types, the store and errors."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

from ..errors import StoreNotFoundError

if TYPE_CHECKING:
    from ..store import Store

PROG = "nbtrail"

Handler = Callable[[argparse.Namespace], int]


class UsageError(Exception):
    """A command line that argparse rejected; ``main`` turns it into exit status 2."""


class ArgumentParser(argparse.ArgumentParser):
    """An argparse parser whose errors become one ``nbtrail: error:`` line, not usage text."""

    def error(self, message: str) -> NoReturn:
        """Raise instead of printing the usage and exiting, so ``main`` can return 2."""
        raise UsageError(f"{message} (see '{self.prog} --help')")


@dataclass(frozen=True)
class Options:
    """The option groups a command may take as argparse parents."""

    store: argparse.ArgumentParser
    json: argparse.ArgumentParser


def shared_options() -> Options:
    """``--store`` and ``--json``, accepted at every level so they may follow the command."""
    # SUPPRESS keeps a subcommand's unset default from overwriting a value given before it.
    store = ArgumentParser(add_help=False, allow_abbrev=False)
    store.add_argument(
        "--store", metavar="PATH", default=argparse.SUPPRESS,
        help="the store folder (default: $NBTRAIL_HOME, else .nbtrail at the git root "
             "or in the current folder)",
    )
    json_opt = ArgumentParser(add_help=False, allow_abbrev=False)
    json_opt.add_argument("--json", action="store_true",
                          help="print JSON (NaN and infinities as strings) instead of text")
    return Options(store=store, json=json_opt)


def add_command(commands: Any, name: str, handler: Handler | None,
                parents: Sequence[argparse.ArgumentParser] = (), **kwargs: Any
                ) -> argparse.ArgumentParser:
    """A subcommand ``name`` of ``commands`` that runs ``handler`` (None for a group)."""
    parser: argparse.ArgumentParser = commands.add_parser(
        name, parents=list(parents), allow_abbrev=False, **kwargs)
    if handler is not None:
        parser.set_defaults(handler=handler)
    return parser


class DeprecatedFlag(argparse.Action):
    """A hidden old spelling of a boolean flag: sets the new one and warns once."""

    def __init__(self, option_strings: Sequence[str], dest: str, *, new: str,
                 removed_in: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, help=argparse.SUPPRESS, **kwargs)
        self.new, self.removed_in = new, removed_in

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        """Set the flag and say which spelling to use instead."""
        setattr(namespace, self.dest, True)
        print(f"{PROG}: warning: {option_string} is deprecated and goes away in nbtrail "
              f"{self.removed_in}; use {self.new}", file=sys.stderr)


def print_error(message: str) -> None:
    """One ``nbtrail: error: ...`` line on stderr."""
    print(f"{PROG}: error: {message}", file=sys.stderr)


def progress_line(line: str) -> None:
    """A progress line of a long command on stderr, so stdout stays the result."""
    print(f"{PROG}: {line}", file=sys.stderr, flush=True)


def store_location(args: argparse.Namespace) -> str | None:
    """``--store`` as given (a folder, its database file or a URL), else ``None``."""
    return getattr(args, "store", None) or None


def open_store(args: argparse.Namespace, *, must_exist: bool = True,
               read_only: bool = False) -> Store:
    """The store ``--store`` names, else the configured one.

    With ``must_exist`` it raises ``StoreNotFoundError`` where nothing was logged yet, rather
    than reading (which would create the folder); commands that log, such as a sweep
    worker, create it.
    """
    from ..store import open_store as open_location

    store = open_location(store_location(args), read_only=read_only)
    if must_exist and not store.exists():
        where = ("given with --store" if getattr(args, "store", None)
                 else "found from NBTRAIL_HOME or the current folder")
        raise StoreNotFoundError(
            f"no nbtrail store at {store.location} ({where}); pass --store PATH or set "
            "NBTRAIL_HOME to a folder where runs were logged"
        )
    return store


# -- argument types ---------------------------------------------------------------------


def non_negative_int(text: str) -> int:
    """An argparse type: a whole number, 0 or more."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or more, got {value}")
    return value


def positive_int(text: str) -> int:
    """An argparse type: a whole number, 1 or more."""
    value = non_negative_int(text)
    if value == 0:
        raise argparse.ArgumentTypeError("expected 1 or more, got 0")
    return value


def finite_float(text: str) -> float:
    """An argparse type: a finite number."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text}")
    return value


def non_negative_float(text: str) -> float:
    """An argparse type: a finite number, 0 or more."""
    value = finite_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or more, got {text}")
    return value


def positive_float(text: str) -> float:
    """An argparse type: a finite number above 0."""
    value = finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value
