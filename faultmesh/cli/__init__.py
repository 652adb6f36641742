"""The ``faultmesh`` command line.

Exit codes (the contract): 0 every property holds; 1 a property is violated; 2 bad input or
usage, with a message naming file, line and column; 3 inconclusive (solver unknown); 4 an
internal error (one line; the traceback with ``--debug``); 130 interrupted (Ctrl-C). Bad input
never shows a traceback. Each command lives in its own module of this package;
importing the module registers it.
"""

from __future__ import annotations

import sys
import traceback

from faultmesh.cli import importing as _importing  # noqa: F401  (registers its commands)
from faultmesh.cli import simulate as _simulate  # noqa: F401  (registers its commands)
from faultmesh.cli import spec as _spec  # noqa: F401  (registers its commands)
from faultmesh.cli import sweep as _sweep  # noqa: F401  (registers its commands)
from faultmesh.cli import verify as _verify  # noqa: F401  (registers its commands)
from faultmesh.cli.app import (
    EXIT_BAD_INPUT,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    BadInput,
    Options,
    app,
    err,
    print_spec_errors,
)
from faultmesh.model.extras import MissingExtra
from faultmesh.model.spec import SpecErrors


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point: runs the app and maps errors to exit codes."""
    Options.debug = False  # main() may run several times in one process (the tests)
    try:
        # Standalone mode prints usage errors itself (exit 2) and exits via SystemExit.
        app(args=argv, prog_name="faultmesh", standalone_mode=True)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except SpecErrors as exc:
        print_spec_errors(exc)
        return EXIT_BAD_INPUT
    except (BadInput, MissingExtra) as exc:  # an optional package missing is fixed by the user
        err.print(f"error: {exc}", markup=False)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:  # outside a command (typer maps one inside to exit 130)
        err.print("interrupted", markup=False)
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug or exhausted resources: never exit 1 ("violated")
        report_internal_error(exc)
        return EXIT_INTERNAL
    return EXIT_OK


def report_internal_error(exc: BaseException) -> None:
    """One line on stderr (the traceback too under ``--debug``)."""
    if Options.debug:
        traceback.print_exception(exc)
    detail = " ".join(str(exc).split())
    if len(detail) > 160:
        detail = detail[:157] + "..."
    err.print(f"internal error: {type(exc).__name__}" + (f": {detail}" if detail else "")
              + ("" if Options.debug else " (run with --debug for the traceback)"),
              markup=False)


if __name__ == "__main__":
    sys.exit(main())
