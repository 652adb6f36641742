"""Bad client-side mitigation keys (retry budget, retry throttling, hedging, deadlines) give one
located error each, and ``faultmesh validate`` exits 2 with ``file:line:col`` and no
traceback. Each case edits one line of a valid spec; the expected position is written out and
the text found there is checked too."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from faultmesh.model.spec import SpecErrors, loads

BASE = """\
system: mitigated
defaults:
  call: {timeout: 100ms}
services:
  front:
    propagate_deadline: true
    endpoints:
      home:
        calls:
          - {call: back.get, hedge: {delay: 20ms, max_attempts: 3}, deadline: 300ms}
  back:
    retry_budget: {percent: 20%, min_concurrency: 3}
    retry_throttling: {max_tokens: 10, token_ratio: 0.1}
    endpoints:
      get: {service_time: 1ms}
workload:
  - {entry: front.home, rate: 10/s}
"""

HEDGED_CALL = "          - {call: back.get, hedge: {delay: 20ms, max_attempts: 3}, deadline: 300ms}"
BUDGET = "    retry_budget: {percent: 20%, min_concurrency: 3}"
THROTTLING = "    retry_throttling: {max_tokens: 10, token_ratio: 0.1}"
DEFAULTS = "  call: {timeout: 100ms}"

# (old line, new line, line, column, text at that position, words of the message)
CASES = {
    "negative budget percent": (
        BUDGET, "    retry_budget: {percent: -20%, min_concurrency: 3}",
        12, 29, "-20%", "between 0 and 1"),
    "budget percent above 100%": (
        BUDGET, "    retry_budget: {percent: 120%}", 12, 29, "120%", "between 0 and 1"),
    "negative min_concurrency": (
        BUDGET, "    retry_budget: {percent: 20%, min_concurrency: -1}",
        12, 51, "-1", "greater than or equal to 0"),
    "max_tokens of zero": (
        THROTTLING, "    retry_throttling: {max_tokens: 0, token_ratio: 0.1}",
        13, 36, "0", "greater than 0"),
    "max_tokens above 1000": (
        THROTTLING, "    retry_throttling: {max_tokens: 1001}", 13, 36, "1001",
        "less than or equal to 1000"),
    "token_ratio of zero": (
        THROTTLING, "    retry_throttling: {max_tokens: 10, token_ratio: 0}",
        13, 53, "0", "greater than 0"),
    "hedge delay above the timeout": (
        HEDGED_CALL, "          - {call: back.get, hedge: {delay: 150ms}}",
        10, 45, "150ms", "hedge delay above the timeout"),
    "hedge delay equal to the timeout": (
        HEDGED_CALL, "          - {call: back.get, timeout: 20ms, hedge: {delay: 20ms}}",
        10, 60, "20ms", "hedge delay above the timeout"),
    "hedge with retries": (
        HEDGED_CALL, "          - {call: back.get, retries: 2, hedge: {delay: 20ms}}",
        10, 39, "2", "hedges or retries, never both"),
    "hedge with no attempts": (
        HEDGED_CALL, "          - {call: back.get, hedge: {delay: 20ms, max_attempts: 0}}",
        10, 65, "0", "greater than or equal to 1"),
    "more hedged attempts than gRPC makes": (
        HEDGED_CALL, "          - {call: back.get, hedge: {delay: 20ms, max_attempts: 6}}",
        10, 65, "6", "less than or equal to 5"),
    "defaults hedge with defaults retries": (
        DEFAULTS, "  call: {timeout: 100ms, retries: 2, hedge: {delay: 20ms}}",
        3, 35, "2", "hedges or retries, never both"),
    "zero deadline": (
        HEDGED_CALL, "          - {call: back.get, deadline: 0s}", 10, 40, "0s",
        "greater than 0"),
    "negative deadline": (
        HEDGED_CALL, "          - {call: back.get, deadline: -1s}", 10, 40, "-1s",
        "must not be negative"),
    "propagate_deadline not a boolean": (
        "    propagate_deadline: true", "    propagate_deadline: sometimes", 6, 25,
        "sometimes", "boolean"),
}


def edit(old: str, new: str) -> str:
    assert BASE.count(old) == 1, old
    return BASE.replace(old, new)


def test_the_base_spec_is_valid() -> None:
    system = loads(BASE)
    back = system.services["back"]
    assert back.retry_budget is not None and back.retry_budget.percent == 20.0
    assert back.retry_throttling is not None and back.retry_throttling.max_tokens == 10
    call = next(system.services["front"].endpoints["home"].calls())
    assert call.hedge is not None and call.hedge.max_attempts == 3
    assert call.deadline == 0.3 and call.retries == 0


@pytest.mark.parametrize("case", list(CASES))
def test_one_located_error(case: str) -> None:
    old, new, line, column, text, words = CASES[case]
    source = edit(old, new)
    with pytest.raises(SpecErrors) as caught:
        loads(source, "spec.yaml")
    errors = caught.value.errors
    assert len(errors) == 1, [str(e) for e in errors]
    error = errors[0]
    assert (error.line, error.column) == (line, column), str(error)
    found = source.splitlines()[line - 1][column - 1:]
    assert found.startswith(text), (found, text)
    assert words in error.message


def test_a_default_hedge_undercut_by_a_calls_timeout_points_at_that_timeout() -> None:
    source = edit(DEFAULTS, "  call: {timeout: 100ms, hedge: {delay: 20ms}}").replace(
        HEDGED_CALL, "          - {call: back.get, timeout: 10ms}")
    with pytest.raises(SpecErrors) as caught:
        loads(source, "spec.yaml")
    (error,) = caught.value.errors
    assert (error.line, error.column) == (10, 39)
    assert source.splitlines()[9][38:].startswith("10ms")
    assert "hedge delay above the timeout" in error.message and "10ms" in error.message


def test_a_hedged_call_does_not_inherit_the_defaults_retries() -> None:
    source = edit(DEFAULTS, "  call: {timeout: 100ms, retries: 3}")
    system = loads(source)
    call = next(system.services["front"].endpoints["home"].calls())
    assert call.retries == 0 and call.hedge is not None


def test_validate_exits_2_with_the_position(tmp_path: Path) -> None:
    old, new, line, column, _, words = CASES["hedge delay above the timeout"]
    path = tmp_path / "bad.yaml"
    path.write_text(edit(old, new))
    done = subprocess.run([sys.executable, "-m", "faultmesh", "validate", str(path)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 2
    assert f"bad.yaml:{line}:{column}:" in done.stderr
    assert words in done.stderr
    assert "Traceback" not in done.stderr
