"""The documented Jupyter install gives a working notebook: ``pip install -e '.[notebook]'``.

The README sends users to notebooks/; neither quick-start command installs Jupyter. The
``notebook`` extra does: its packages import, ``jupyter lab`` starts (its version), and a kernel
runs the quickstart notebook's opening cells (imports, loading the spec). Running
every notebook top to bottom is tests/test_notebooks.py's job; this one stays cheap.
"""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
EXTRAS = PYPROJECT["project"]["optional-dependencies"]
IMPORT_NAMES = {"pyyaml": "yaml"}  # distributions whose import name differs


def packages(extra: str) -> set[str]:
    """The distributions an extra installs, its faultmesh[...] references followed."""
    names: set[str] = set()
    for requirement in EXTRAS[extra]:
        name, inner = re.match(r"([\w.-]+)(?:\[([\w,]+)\])?", requirement).groups()  # type: ignore[union-attr]
        if name == "faultmesh":
            for other in (inner or "").split(","):
                names |= packages(other)
        else:
            names.add(name.lower())
    return names


def test_the_notebook_extra_brings_jupyter_and_its_packages_import() -> None:
    wanted = packages("notebook")
    assert {"jupyterlab", "ipykernel", "nbclient", "matplotlib", "pandas"} <= wanted
    for name in sorted(wanted):
        importlib.import_module(IMPORT_NAMES.get(name, name.replace("-", "_")))
    # CI installs the test extra: it carries the notebook extra, so this runs there too.
    assert any(r.startswith("faultmesh[") and "notebook" in r for r in EXTRAS["test"])


def test_jupyter_lab_starts() -> None:
    done = subprocess.run([sys.executable, "-m", "jupyterlab", "--version"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert re.match(r"\d+\.\d+", done.stdout.strip())


def test_a_kernel_runs_the_quickstart_opening() -> None:
    path = ROOT / "notebooks" / "01_quickstart.ipynb"
    book = nbformat.read(path, as_version=4)
    code = [cell for cell in book.cells if cell.cell_type == "code"]
    book.cells = code[:2]  # imports and loading the spec: seconds, not the notebook's minutes
    NotebookClient(book, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    printed = "".join(output.get("text", "") for cell in book.cells
                      for output in cell.get("outputs", []))
    assert re.search(r"online_boutique \d+ services", printed), printed
