"""Every notebook runs top to bottom, so the documentation never rots."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks() -> None:
    assert len(NOTEBOOKS) >= 4
    # issue 11's story (trigger -> collapse -> proof -> repair -> recovery -> map) is one of them
    assert "04_metastability" in {path.stem for path in NOTEBOOKS}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path: Path) -> None:
    book = nbformat.read(path, as_version=4)
    # Stored without outputs: the repository holds the code, the run makes the pictures.
    assert all(not cell.get("outputs") for cell in book.cells if cell.cell_type == "code")
    client = NotebookClient(book, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    images = sum("image/png" in output.get("data", {})
                 for cell in book.cells if cell.cell_type == "code"
                 for output in cell.get("outputs", []))
    assert images >= 1, "a notebook should show at least one plot"
