"""What every command shares: the typer app, consoles, exit codes, input and output helpers."""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from typer.core import TyperCommand, TyperGroup

from faultmesh.model import files
from faultmesh.model.spec.errors import SpecErrors

if TYPE_CHECKING:
    from faultmesh.model.system import System

EXIT_OK, EXIT_VIOLATED, EXIT_BAD_INPUT, EXIT_UNKNOWN = 0, 1, 2, 3
# A failure of faultmesh itself (a bug, or the machine ran out of memory): never 1, which
# would read as "a property is violated". 130: stopped by Ctrl-C, as a shell reports SIGINT.
EXIT_INTERNAL, EXIT_INTERRUPTED = 4, 130
# The process exit code of an overall verdict: the model answers holds/violated/unknown, the
# command line alone knows these numbers (DESIGN: 0 holds, 1 violated, 3 inconclusive).
VERDICT_EXIT: dict[str, int] = {"holds": EXIT_OK, "violated": EXIT_VIOLATED,
                                "unknown": EXIT_UNKNOWN}

# Typer 0.16+ carries its own click (typer._click) whose exceptions derive from TyperException;
# before, they were click's own.
UsageProblem: type[Exception] = getattr(typer, "TyperException", None) or __import__(
    "click").ClickException


class Group(TyperGroup):
    """The command group, with click's usage errors in the program's one style: the usage
    line, then ``error: message`` (lower case, as every other message), exit 2."""

    def main(self, args: Sequence[str] | None = None, *rest: Any, **extra: Any) -> Any:
        standalone = extra.pop("standalone_mode", True)
        extra["standalone_mode"] = False  # exceptions come here; shown below if standalone
        if not standalone:
            return super().main(args, *rest, **extra)
        try:
            code = super().main(args, *rest, **extra)
        except UsageProblem as exc:
            code = getattr(exc, "exit_code", 2)
            if type(exc).__name__ == "NoArgsIsHelpError":  # a bare command: its help
                exc.show()  # type: ignore[attr-defined]
                sys.exit(code)
            context = getattr(exc, "ctx", None)
            if context is not None:
                typer.echo(context.get_usage(), err=True)
                typer.echo(f"Try '{context.command_path} --help' for help.\n", err=True)
            typer.echo(f"error: {exc.format_message()}", err=True)  # type: ignore[attr-defined]
            sys.exit(code)
        except typer.Abort:
            typer.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        """The command list with each command's whole summary (click cuts it to fit a line)."""
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit=UNCUT)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def get_command(self, ctx: Any, name: str) -> Any:
        command = super().get_command(ctx, name)
        # typer builds every command as a TyperCommand (it has no default class to set): give
        # each the help of ours (its behaviour is TyperCommand's; only the help text differs).
        if type(command) is TyperCommand:
            command.__class__ = Command
        return command

    def list_commands(self, ctx: Any) -> list[str]:
        """The commands in the order of a user's work (as the README lists them)."""
        names = super().list_commands(ctx)
        return sorted(names, key=lambda name: (COMMAND_ORDER.index(name)
                                               if name in COMMAND_ORDER else len(COMMAND_ORDER)))


COMMAND_ORDER = ("validate", "verify", "simulate", "sweep", "graph", "schema", "import")
UNCUT = 10_000  # a summary limit no first sentence reaches


class Command(TyperCommand):
    """A command whose help speaks the README's language: ``SPEC`` or ``SPEC...`` for its
    arguments, and values named by metavar (``N``, ``DIR``), never by Python type (typer's
    ``{spec}``, ``<path>``, ``<list[str]>``: a type left without a metavar reads as click
    names it, ``TEXT``, ``INTEGER``, ``PATH``)."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":
                name = _argument_name(param)
                pieces.append(name if param.required else f"[{name}]")
        return pieces

    def format_options(self, ctx: Any, formatter: Any) -> None:
        arguments, options = [], []
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if param.param_type_name == "argument":
                arguments.append((_argument_name(param), record[1]))
            else:
                options.append((PYTHON_TYPE.sub(_click_metavar, record[0]), record[1]))
        for title, rows in (("Arguments", arguments), ("Options", options)):
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)


PYTHON_TYPE = re.compile(r"<(?:list\[)?(\w+)\]?>")
CLICK_METAVARS = {"str": "TEXT", "int": "INTEGER", "float": "FLOAT", "path": "PATH",
                  "bool": "BOOLEAN"}


def _click_metavar(match: re.Match[str]) -> str:
    return CLICK_METAVARS.get(match[1], match[1].upper())


def _argument_name(param: Any) -> str:
    name: str = param.metavar or (param.name or "").upper()
    return name + ("..." if param.nargs != 1 and not name.endswith("...") else "")


def plural(count: int, noun: str) -> str:
    """``1 service``, ``2 services``: counts in messages agree with their nouns."""
    return f"{count:,} {noun}" if count == 1 else f"{count:,} {noun}s"


app = typer.Typer(
    cls=Group,
    name="faultmesh",
    help="Prove what holds, show what breaks, and watch it break: microservice topologies "
    "verified with Z3 and simulated under failures.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


class Options:
    """Options of the whole program, set by the top-level callback before a command runs."""

    debug = False


def _print_version(value: bool) -> None:
    if value:
        from faultmesh import __version__

        print(f"faultmesh {__version__}")
        raise typer.Exit(0)


@app.callback()
def _global_options(
    debug: Annotated[bool, typer.Option(
        "--debug", envvar="FAULTMESH_DEBUG",
        help="show the full traceback of an internal error (exit 4)")] = False,
    version: Annotated[bool, typer.Option(
        "--version", callback=_print_version, is_eager=True,
        help="print the version and exit")] = False,
) -> None:
    Options.debug = debug


out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


class BadInput(Exception):
    """A usage or input problem the user can fix; printed without a traceback, exit 2."""


def bad_input(message: str) -> NoReturn:
    raise BadInput(message)


def load_spec(path: Path) -> System:
    """Load a spec; its warnings (likely unit mistakes, missing service times) go to stderr
    as ``warning: file:line:col: ...`` and change no exit code."""
    # Imported here: the loader (pydantic and the spec schema) is most of start-up, and
    # ``--help`` or a usage error needs none of it.
    from faultmesh.model.spec.load import load_with_warnings

    system, warnings = load_with_warnings(path)
    for warning in warnings:
        err.print(f"warning: {warning}", markup=False)
    return system


def print_spec_errors(errors: SpecErrors) -> None:
    for error in errors.errors:
        err.print(f"error: {error}", markup=False)
    count = len(errors.errors)
    err.print(f"{count} error{'s' if count != 1 else ''}", markup=False)


SpecArg = Annotated[Path, typer.Argument(metavar="SPEC", help="topology spec (YAML)",
                                          show_default=False)]


def write_atomic(path: Path, text: str) -> None:
    """``model.files.write_atomic``, with an unwritable path reported as bad input (exit 2)."""
    try:
        files.write_atomic(path, text)
    except OSError as exc:
        raise BadInput(f"cannot write {path}: {exc.strerror or exc}") from None
