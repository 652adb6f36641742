"""Bad uses of templates, labels, call forms, mixes and sessions: located errors, exit 2.

Each case edits one valid spec (``BASE``) and must raise ``SpecErrors`` whose errors include
one at the expected line, column and key path with the expected words; ``faultmesh validate``
must exit 2 with ``file:line:col`` and no traceback.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from faultmesh.model.spec import SpecErrors, loads

BASE = """\
system: lang
templates:
  db:
    workers: 4
    endpoints:
      Get: {}
services:
  front:
    endpoints:
      Home:
        calls:
          - {call: cache.Get, fallback: store.Get}
          - one_of: [{call: cache.Get, weight: 3}, {call: store.Get, weight: 1}]
  cache: {extends: db}
  store: {extends: db}
workload:
  - {entry: front.Home, rate: 10/s}
"""

CASES = {
    "unknown template": (
        ("  cache: {extends: db}", "  cache: {extends: dbx}"),
        14, 20, "services.cache.extends", "unknown template 'dbx'; did you mean 'db'?"),
    "extends cycle": (
        ("    workers: 4", "    extends: db2\n    workers: 4",
         "      Get: {}", "      Get: {}\n  db2: {extends: db}"),
        8, 18, "templates.db2.extends", "cycle: db -> db2 -> db"),
    "weight zero": (
        ("weight: 3}", "weight: 0}"),
        13, 48, "services.front.endpoints.Home.calls[1].one_of[0].weight", "greater than 0"),
    "weight negative": (
        ("weight: 1}", "weight: -2}"),
        13, 78, "services.front.endpoints.Home.calls[1].one_of[1].weight", "greater than 0"),
    "fallback to itself": (
        ("fallback: store.Get", "fallback: cache.Get"),
        12, 41, "services.front.endpoints.Home.calls[0].fallback", "calls 'cache.Get' again"),
    "sessions without steps": (
        ("  - {entry: front.Home, rate: 10/s}", "  - sessions: {users: 5, steps: []}"),
        17, 33, "workload[0].sessions.steps", "at least 1 item"),
    "label collision": (
        ("      Get: {}", "      'GET /x': {}\n      'GET x': {}"),
        7, 7, "templates.db.endpoints.GET x", "becomes the name 'GET_x', which 'GET /x'"),
    "template bad value": (
        ("    workers: 4", "    workers: many"),
        4, 14, "templates.db.workers", "valid integer"),
    "merged bad value names the service": (
        ("    workers: 4", "    workers: many"),
        4, 14, "services.cache.workers", "valid integer"),
    "mix weight zero": (
        ("  - {entry: front.Home, rate: 10/s}", "  - {rate: 10/s, mix: {front.Home: 0}}"),
        17, 36, "workload[0].mix.front.Home", "greater than 0"),
    "mix unknown entry": (
        ("  - {entry: front.Home, rate: 10/s}", "  - {rate: 10/s, mix: {front.Hme: 1}}"),
        17, 35, "workload[0].mix.front.Hme", "no endpoint 'Hme'"),
    "group with both lists": (
        ("          - {call: cache.Get, fallback: store.Get}",
         "          - group: {probability: 0.5, calls: [cache.Get], parallel: [store.Get]}"),
        12, 20, "services.front.endpoints.Home.calls[0].group", "exactly one of 'parallel'"),
    "fallback inside one_of": (
        ("{call: store.Get, weight: 1}", "{call: store.Get, weight: 1, fallback: cache.Get}"),
        13, 91, "services.front.endpoints.Home.calls[1].one_of[1].fallback",
        "a fallback is a step of its own"),
}


def edited(edit: tuple[str, ...]) -> str:
    """BASE with each (old, new) pair of ``edit`` replaced (each old text occurs once)."""
    text = BASE
    for old, new in zip(edit[::2], edit[1::2], strict=True):
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return text


def test_base_is_valid() -> None:
    system = loads(BASE)
    assert system.services["cache"].workers == 4


@pytest.mark.parametrize("case", list(CASES))
def test_located_error(case: str) -> None:
    edit, line, column, path, words = CASES[case]
    with pytest.raises(SpecErrors) as caught:
        loads(edited(edit), "lang.yaml")
    found = [(e.line, e.column, e.path, e.message) for e in caught.value.errors]
    assert any((e.line, e.column, e.path) == (line, column, path) and words in e.message
               for e in caught.value.errors), found


@pytest.mark.parametrize("case", ["unknown template", "extends cycle", "fallback to itself",
                                  "sessions without steps", "label collision"])
def test_validate_exits_2_with_position(case: str, tmp_path: Path) -> None:
    edit, line, column, _, _ = CASES[case]
    spec = tmp_path / "lang.yaml"
    spec.write_text(edited(edit))
    done = subprocess.run([sys.executable, "-m", "faultmesh", "validate", str(spec)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert f"lang.yaml:{line}:{column}:" in done.stderr
    assert "Traceback" not in done.stderr
