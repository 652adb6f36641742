"""Fuzzing the loader, the simulator and the verifier with hypothesis (issue 15).

Three generators: YAML text (hostile characters, nesting, anchors), spec documents whose
values are mutated towards the extremes (0, negative, huge, tiny durations, wrong types), and
the zones of a spec's file path. The contract checked: a located ``SpecErrors`` or a System,
never another exception; a System that loads simulates and verifies without crashing.

``FAULTMESH_FUZZ_EXAMPLES`` sets the number of examples per test (CI: a few dozen; ``python
bench/fuzz.py`` runs thousands).
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from faultmesh.model.spec import SpecErrors, from_document, load, loads
from faultmesh.model.verify import properties_to_verify, verify
from faultmesh.simulations.engine.simulation import simulate

SPECS = Path(__file__).resolve().parent.parent / "specs"
EXAMPLES = int(os.environ.get("FAULTMESH_FUZZ_EXAMPLES", "25"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=EXAMPLES <= 50,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# A simulation of a mutated spec runs only when its load stays small, so a fuzz example
# never takes more than a moment: the point is crashes, not long runs.
MAX_RATE = 200.0
SIM_SECONDS = 1.0

EXTREMES: list[Any] = [
    0, 1, -1, 2, 100, 101, 1025, 10**4, 10**6, 10**12, 2**63, 0.0, 1e-9, 1e300, float("inf"),
    "0s", "1us", "1ns", "0ms", "1e9h", "-1s", "1e6/s", "0/s", "100%", "0%", "150%", "never",
    None, True, "", "x", [], {}, [1, 2], {"exponential": 0}, {"uniform": [5, 1]},
]


def _paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path into a document that holds a scalar."""
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in _paths(v, (*path, k))]
    if isinstance(node, list):
        return [p for i, v in enumerate(node) for p in _paths(v, (*path, i))]
    return [path]


def _set(document: Any, path: tuple[Any, ...], value: Any) -> None:
    for step in path[:-1]:
        document = document[step]
    document[path[-1]] = value


BASES = {name: yaml.safe_load((SPECS / name).read_text(encoding="utf-8"))
         for name in ("mm1.yaml", "zone_outage_shop.yaml", "chain.yaml")}

# Keys the fuzzer adds (valid spec keys, extreme values): counts, periods and policies.
EXTRA_KEYS: list[tuple[tuple[Any, ...], Any]] = [
    (("discovery",), {"mode": "client"}),
    (("defaults", "circuit_breaker"), {"failure_rate": "50%", "window": 20}),
    (("defaults", "call"), {"timeout": "1s", "retries": 2}),
]


@st.composite
def mutated_documents(draw: st.DrawFn) -> dict[str, Any]:
    name = draw(st.sampled_from(sorted(BASES)))
    document = copy.deepcopy(BASES[name])
    for path, value in draw(st.lists(st.sampled_from(EXTRA_KEYS), max_size=2)):
        node = document
        for step in path[:-1]:
            node = node.setdefault(step, {})
        node.setdefault(path[-1], copy.deepcopy(value))
    paths = _paths(document)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(paths))
        value = draw(st.one_of(st.sampled_from(EXTREMES), st.integers(),
                               st.floats(allow_nan=True)))
        _set(document, path, copy.deepcopy(value))
    return document


def _small_load(system: Any) -> bool:
    return sum(item.rate for item in system.workload) <= MAX_RATE


@FUZZ
@given(mutated_documents())
def test_mutated_specs_load_simulate_and_verify_or_are_refused(document: dict[str, Any]) -> None:
    try:
        system = from_document(document, "fuzz.yaml")
    except SpecErrors as exc:
        assert exc.errors and all(e.message for e in exc.errors)
        return
    # The same document through the YAML reader agrees with the in-memory one.
    text = yaml.safe_dump(document, allow_unicode=True)
    assert loads(text, "fuzz.yaml").name == system.name
    report = verify(system, properties_to_verify(system), timeout=5)
    assert report.verdict in ("holds", "violated", "unknown")
    if _small_load(system):
        scenario = next(iter(system.scenarios), None)
        try:
            run = simulate(system, scenario, duration=SIM_SECONDS, seed=0)
        except ValueError as exc:  # documented: the CLI reports it as bad input (exit 2)
            assert "warm-up" in str(exc)
            run = simulate(system, None, duration=SIM_SECONDS, seed=0)
        ledger = run.summary["requests"]
        assert ledger["started"] == sum(ledger[k] for k in
                                        ("ok", "error", "timeout", "rejected", "in_flight"))


YAML_PIECES = st.sampled_from([
    "system: x\n", "services:\n", "  a:\n", "    endpoints: {op: {}}\n", "[", "]", "{", "}",
    ": ", ", ", "- ", "&a ", "*a ", "<<: ", "!!python/object:os.system ", "\t", "\x00", "\x1b",
    "\ufeff", "é", "'", '"', "#", "\n", "---\n", "...\n", "? ", "|\n", ">\n", "%YAML 1.1\n",
    "1e309", "0x1F", "~", "null", "yes", "2001-12-14", "\\", "\udcff"[:0], "  ", "\r\n",
])


@FUZZ
@given(st.lists(YAML_PIECES, max_size=60).map("".join))
def test_yaml_text_gives_a_system_or_located_errors(text: str) -> None:
    try:
        loads(text, "fuzz.yaml")
    except SpecErrors as exc:
        for error in exc.errors:
            assert error.file == "fuzz.yaml" and error.message
            assert "<unicode string>" not in error.message and "position" not in error.message


@FUZZ
@given(st.integers(1, 400), st.sampled_from("[{"), st.booleans())
def test_nesting_is_refused_or_read_never_a_crash(depth: int, opener: str, closed: bool) -> None:
    closer = "]" if opener == "[" else "}"
    inner = "1" if opener == "[" else "k: 1"
    body = opener * depth + inner + (closer * depth if closed else "")
    try:
        loads("system: x\nservices: " + body + "\n", "fuzz.yaml")
    except SpecErrors as exc:
        assert all(e.line >= 1 for e in exc.errors)


@FUZZ
@given(st.binary(max_size=400))
def test_any_bytes_in_a_file_give_located_errors(tmp_path_factory: Any, raw: bytes) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "spec.yaml"
    path.write_bytes(raw)
    try:
        load(path)
    except SpecErrors as exc:
        assert exc.errors
