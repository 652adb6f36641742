"""Sizes that must load and verify (issue 13): the node budget counts what aliases add, not an
honest document's own size; plain calls are built once; capacity's repair search and the
timeout repair stay bounded on topologies whose numbers explode."""

from __future__ import annotations

import random
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from faultmesh.model import properties as P
from faultmesh.model.spec import SpecErrors, loads
from faultmesh.model.spec.limits import MAX_REPLICAS, MAX_WORKERS
from faultmesh.model.spec.yaml_source import MAX_EXPANDED_NODES, read_yaml
from faultmesh.model.verify import verify
from faultmesh.model.verify.deadline import Deadline, OutOfTime
from faultmesh.model.verify.failures import FailureKinds
from faultmesh.model.verify.repairs import PlacementSolver, fewest_added, fewest_surviving


def test_an_honest_document_far_above_the_alias_budget_is_read() -> None:
    items = MAX_EXPANDED_NODES + 50_000
    source = read_yaml("x: [" + "1, " * items + "2]\n", "big.yaml")
    assert len(source.data["x"]) == items + 1


def test_aliases_are_budgeted_beyond_the_documents_own_nodes() -> None:
    own = "\n".join(f"k{i}: {i}" for i in range(MAX_EXPANDED_NODES // 4))  # ~100k own nodes
    block = "[" + ", ".join(["1"] * 1000) + "]"
    fine = own + f"\na: &a {block}\n" + "\n".join(f"u{i}: *a" for i in range(150)) + "\n"
    assert len(read_yaml(fine, "ok.yaml").data) > 150  # adds ~150k nodes: within the budget
    bomb = own + f"\na: &a {block}\n" + "\n".join(f"u{i}: *a" for i in range(250)) + "\n"
    with pytest.raises(SpecErrors, match=f"expands to more than {MAX_EXPANDED_NODES:,} nodes "
                                         "beyond its own"):
        read_yaml(bomb, "bomb.yaml")


SPEC = """
system: s
services:
  a: {endpoints: {x: {service_time: 1ms, calls: [b.y, b.y, %s]}}}
  b: {endpoints: {y: {service_time: 1ms}}}
"""


def test_plain_calls_to_one_endpoint_are_equal_and_a_bad_one_is_reported_everywhere() -> None:
    system = loads(SPEC % "b.y")
    first, second, third = system.services["a"].endpoints["x"].steps
    assert first == second == third
    with pytest.raises(SpecErrors) as caught:
        loads(SPEC.replace("b.y, b.y", "c.z, c.z") % "b.y")
    located = [e for e in caught.value.errors if "c.z" in e.message]
    assert len(located) == 2 and located[0].path != located[1].path


# --- capacity's repair search ------------------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(counts=st.lists(st.integers(0, 4), min_size=1, max_size=4),
       loads_=st.lists(st.integers(0, 3), min_size=4, max_size=4),
       zones=st.booleans(), failures=st.integers(0, 3), need=st.integers(1, 12))
def test_the_direct_placement_matches_the_solvers_optimum(
        counts: list[int], loads_: list[int], zones: bool, failures: int, need: int) -> None:
    names = tuple("abcd"[:len(counts)])
    if zones and failures >= len(names):
        return
    zone_load = dict(zip(names, loads_, strict=False))
    solver = PlacementSolver(names, zone_load, Deadline(60))
    vector = tuple(counts)
    direct = fewest_surviving(vector, tuple(zone_load[z] for z in names), zones, failures, need)
    assert direct is not None
    by_solver = solver._solve(("z3", vector, zones, failures, need), vector,
                              _constraint(zones, failures, need))
    assert by_solver is not None

    def objectives(new: tuple[int, ...]) -> tuple[int, int, int]:
        added = [n - c for n, c in zip(new, vector, strict=True)]
        return (sum(added), sum(a * zone_load[z] for a, z in zip(added, names, strict=True)),
                sum(a * i for i, a in enumerate(added)))

    assert objectives(direct) == objectives(by_solver)
    assert sum(direct) - sum(vector) == fewest_added(vector, zones, failures, need)


def _constraint(zones: bool, failures: int, need: int):  # type: ignore[no-untyped-def]
    import z3

    def constrain(new: list[z3.ArithRef]) -> z3.BoolRef:
        if not zones:
            return z3.Sum(new) - failures >= need
        m = len(new) - failures
        # Every set of `failures` zones leaves at least `need`: the plain statement.
        import itertools
        return z3.And(*[z3.Sum([n for i, n in enumerate(new) if i not in down]) >= need
                        for down in itertools.combinations(range(len(new)), len(new) - m)])
    return constrain


def test_the_repair_search_checks_the_deadline_inside_its_loop() -> None:
    solver = PlacementSolver(("a", "b", "c"), {"a": 1, "b": 1, "c": 1}, Deadline(0))
    kinds = FailureKinds.of(("instance", "zone"))
    with pytest.raises(OutOfTime):
        from fractions import Fraction
        solver.for_capacity("s", {"a": 1, "b": 1, "c": 1}, 1, Fraction(10**40), Fraction(4, 5),
                            kinds, 1)


@pytest.mark.parametrize("demand", [Fraction(7, 2), Fraction(37), Fraction(1234, 10),
                                    Fraction(905)])
@pytest.mark.parametrize("failures", [0, 1])
def test_the_repair_search_finds_what_trying_every_worker_count_finds(
        demand: Fraction, failures: int) -> None:
    zones = ("a", "b", "c")
    kinds = FailureKinds.of(("instance", "zone"))
    counts = {"a": 1, "b": 1, "c": 0}
    limit = Fraction(4, 5)
    solver = PlacementSolver(zones, dict.fromkeys(zones, 1), Deadline(60))
    change = solver.for_capacity("s", counts, 2, demand, limit, kinds, failures)
    assert change is not None
    found = (change.new_workers * change.replicas,
             change.replicas - 2 + change.new_workers - 2)
    best = None
    for w in range(2, 2 * int(demand / limit) + 4):  # every worker count, one by one
        need = int(demand / (limit * w)) + 1
        total = 2 + fewest_added((1, 1, 0), True, failures, need)
        candidate = (w * total, total - 2 + w - 2)
        best = candidate if best is None or candidate < best else best
    assert found == best


def test_the_repair_of_a_huge_load_is_found_and_sized_and_an_astronomical_one_refused() -> None:
    """Within the spec's limits (10,000 replicas, 10,000 workers) a repair is sized exactly;
    past them there is none, and the search says so at once rather than trying every
    worker count until the deadline."""
    solver = PlacementSolver(("a", "b", "c"), {"a": 1, "b": 1, "c": 1}, Deadline(60))
    kinds = FailureKinds.of(("instance", "zone"))
    demand = Fraction(10**7)
    change = solver.for_capacity("s", {"a": 1, "b": 1, "c": 1}, 4, demand, Fraction(4, 5),
                                 kinds, 1)
    assert change is not None
    survivors = change.replicas - max(change.new.values())  # the worst zone gone
    assert change.new_workers * survivors * Fraction(4, 5) > demand
    assert change.replicas <= MAX_REPLICAS and change.new_workers <= MAX_WORKERS
    assert solver.for_capacity("s", {"a": 1, "b": 1, "c": 1}, 4, Fraction(10**60),
                               Fraction(4, 5), kinds, 1) is None


def layered(n: int, seed: int = 7) -> str:
    """Each service calls the next and two later ones: repaired timeouts grow exponentially
    down the layers."""
    rng = random.Random(seed)
    lines = ["system: layered", "zones: [a, b, c]", "services:"]
    for i in range(n):
        later = list(range(i + 2, n))
        targets = ([i + 1] if i + 1 < n else []) + rng.sample(later, min(2, len(later)))
        calls = ", ".join(f"s{j}.handle" for j in targets)
        lines.append(f"  s{i}: {{replicas: 3, workers: 4, endpoints: {{handle: "
                     f"{{service_time: 1ms, calls: [{calls}]}}}}}}")
    lines += ["workload:", "  - {entry: s0.handle, rate: 100/s}"]
    return "\n".join(lines) + "\n"


def test_timeouts_that_would_have_to_exceed_any_sane_value_get_no_repair() -> None:
    # Raised timeouts cascade and triple down the layers: past 10^9 s no repair is offered,
    # where converting them to floats used to crash.
    system = loads(layered(700))
    verdict = verify(system, [P.TimeoutsNest()], timeout=120).verdicts[0]
    assert verdict.status == "violated"
    assert verdict.repair is None


def test_loading_a_spec_leaves_no_cyclic_garbage() -> None:
    """The loader's objects are freed as soon as they are dropped (reference counting), not
    left for a full collection: a recursive closure in the alias check once held every YAML
    node of the document in a reference cycle (800,000 objects per 20,000 services)."""
    import gc

    from faultmesh.model.spec import loads

    text = layered(300)
    gc.collect()
    loads(text)
    found = gc.collect()
    assert found < 100, found
