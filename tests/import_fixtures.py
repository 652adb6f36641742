"""Shared by the import tests: where the upstream fixtures are, and running the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from faultmesh.cli import main

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"
REPO = Path(__file__).resolve().parents[1]

needs_fixtures = pytest.mark.skipif(not FIXTURES.is_dir(),
                                    reason=f"upstream fixtures not found at {FIXTURES}")


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err
