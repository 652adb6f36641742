"""The ``faultmesh`` command line.

Exit codes (the contract): 0 every property holds; 1 a property is violated; 2 bad input or
usage, with a message naming file, line and column; 3 inconclusive (solver unknown). Bad input
never shows a traceback. Each command lives in its own module of this package;
importing the module registers it.
"""

from __future__ import annotations

import sys

from faultmesh.cli import simulate as _simulate  # noqa: F401  (registers its commands)
from faultmesh.cli import spec as _spec  # noqa: F401  (registers its commands)
from faultmesh.cli import sweep as _sweep  # noqa: F401  (registers its commands)
from faultmesh.cli import verify as _verify  # noqa: F401  (registers its commands)
from faultmesh.cli.app import EXIT_BAD_INPUT, EXIT_OK, BadInput, app, err, print_spec_errors
from faultmesh.model.extras import MissingExtra
from faultmesh.model.spec import SpecErrors


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point: runs the app and maps errors to exit codes."""
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
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
