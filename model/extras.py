"""faultmesh's optional dependencies (the extras of its distribution), and what a missing one says.

The core install verifies and simulates. Tables, Parquet files and plots need the ``data`` extra,
Dask sweeps the ``dask`` extra, the hypothesis strategies the ``strategies`` extra. Code that
needs one imports it inside ``requires``::

    with requires("data"):
        import pandas as pd

so a missing package becomes ``MissingExtra``: one line naming the extra to install, which the
command line prints as bad input (exit 2) without a traceback. ``check`` asks before any work
is done, so a command fails at once rather than after a long run.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from contextlib import contextmanager

# extra -> the top-level import names it provides (pyproject.toml's
# [project.optional-dependencies] lists the distributions; tests/test_layout.py keeps the two
# in step)
EXTRAS: dict[str, tuple[str, ...]] = {
    "data": ("pandas", "pyarrow", "matplotlib"),
    "dask": ("dask", "distributed"),
    "strategies": ("hypothesis",),
}


class MissingExtra(ImportError):
    """An optional package is not installed; the message says which extra brings it."""

    def __init__(self, package: str, extra: str, purpose: str | None = None):
        self.package, self.extra = package, extra
        needs = f"{purpose} needs" if purpose else "this needs"
        super().__init__(f"{needs} {package}, which is not installed; install faultmesh's "
                         f"'{extra}' extra: pip install 'faultmesh[{extra}]'", name=package)


@contextmanager
def requires(extra: str, purpose: str | None = None) -> Iterator[None]:
    """Turn the failed import of a package of ``extra`` into ``MissingExtra``.

    Only a package of that extra counts as missing: any other import error (a module of our
    own, a broken install) propagates unchanged, so a real defect is never hidden behind
    "install the extra".
    """
    packages = EXTRAS[extra]
    try:
        yield
    except ModuleNotFoundError as exc:
        top = (exc.name or "").partition(".")[0]
        if top not in packages:
            raise
        raise MissingExtra(top, extra, purpose) from exc


def check(extra: str, purpose: str | None = None) -> None:
    """Raise ``MissingExtra`` unless every package of ``extra`` can be imported."""
    for package in EXTRAS[extra]:
        if _missing(package):
            raise MissingExtra(package, extra, purpose)


def _missing(package: str) -> bool:
    try:
        return importlib.util.find_spec(package) is None
    except ValueError:  # in sys.modules as None: deliberately made unimportable
        return True
