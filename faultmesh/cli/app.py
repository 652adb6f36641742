"""What every command shares: the typer app, consoles, exit codes, input and output helpers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console

from faultmesh import model
from faultmesh.model import files
from faultmesh.model.spec import SpecErrors

EXIT_OK, EXIT_VIOLATED, EXIT_BAD_INPUT, EXIT_UNKNOWN = 0, 1, 2, 3
# The process exit code of an overall verdict: the model answers holds/violated/unknown, the
# command line alone knows these numbers (DESIGN: 0 holds, 1 violated, 3 inconclusive).
VERDICT_EXIT: dict[str, int] = {"holds": EXIT_OK, "violated": EXIT_VIOLATED,
                                "unknown": EXIT_UNKNOWN}

app = typer.Typer(
    name="faultmesh",
    help="Prove what holds, show what breaks, and watch it break: microservice topologies "
    "verified with Z3 and simulated under failures.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


class BadInput(Exception):
    """A usage or input problem the user can fix; printed without a traceback, exit 2."""


def bad_input(message: str) -> NoReturn:
    raise BadInput(message)


def load_spec(path: Path) -> model.System:
    return model.load(path)


def print_spec_errors(errors: SpecErrors) -> None:
    for error in errors.errors:
        err.print(f"error: {error}", markup=False)
    count = len(errors.errors)
    err.print(f"{count} error{'s' if count != 1 else ''}", markup=False)


SpecArg = Annotated[Path, typer.Argument(help="topology spec (YAML)", show_default=False)]


def write_atomic(path: Path, text: str) -> None:
    """``model.files.write_atomic``, with an unwritable path reported as bad input (exit 2)."""
    try:
        files.write_atomic(path, text)
    except OSError as exc:
        raise BadInput(f"cannot write {path}: {exc.strerror or exc}") from None
