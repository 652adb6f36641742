"""one_of, group and fallback steps: their meaning in the verifier, checked against the engine.

Each form is loaded, verified (availability shares, survives, offered load, worst-case time)
and simulated with some callees crashed; the simulated share of served requests must lie in
the Wilson interval of the verifier's share (differential: either side wrong fails the test).
"""

from __future__ import annotations

from fractions import Fraction

import pytest
from agreement import wilson
from simhelp import spec

from faultmesh.model import properties as P
from faultmesh.model.faults import Crash, Scenario, parse_target
from faultmesh.model.spec import dump, from_document, loads, to_document
from faultmesh.model.system import Fallback, Group, OneOf, System
from faultmesh.model.verify import verify
from faultmesh.model.verify.cones import availability
from faultmesh.model.verify.load import offered_load
from faultmesh.model.verify.timeouts import worst_cases

BASE = """
system: forms
services:
  front:
    endpoints:
      Home:
        service_time: 1ms
        calls: [{step}]
  a: {{endpoints: {{X: {{service_time: 1ms}}}}}}
  b: {{endpoints: {{Y: {{service_time: 1ms}}}}}}
workload: [{{entry: front.Home, rate: 200/s}}]
"""

ONE_OF = "{one_of: [{call: a.X, weight: 3}, {call: b.Y, weight: 1}]}"
FALLBACK = "{call: a.X, fallback: b.Y}"
GROUP_PARALLEL = "{group: {probability: 0.2, parallel: [a.X, b.Y]}}"
GROUP_CALLS = "{group: {probability: 0.5, calls: [a.X, b.Y]}}"


def forms(step: str) -> System:
    return spec(BASE.format(step=step))


def simulated_share(system: System, down: tuple[str, ...], seed: int = 1) -> tuple[int, int]:
    from faultmesh.simulations import simulate

    faults = tuple(Crash(at=0.0, duration=1e6, target=parse_target(f"service:{s}"))
                   for s in down)
    run = simulate(system, Scenario("forms", faults, 20.0, 1.0), seed=seed)
    entry = run.summary["entries"]["front.Home"]
    return entry["ok"], entry["requests"]


CASES = [
    (ONE_OF, ("b",), 0.75),
    (ONE_OF, ("a",), 0.25),
    (ONE_OF, ("a", "b"), 0.0),
    (FALLBACK, ("a",), 1.0),
    (FALLBACK, ("b",), 1.0),
    (FALLBACK, ("a", "b"), 0.0),
    (GROUP_PARALLEL, ("b",), 0.8),
    (GROUP_CALLS, ("a",), 0.5),
]


@pytest.mark.parametrize(("step", "down", "share"), CASES)
def test_availability_agrees_with_the_engine(step: str, down: tuple[str, ...],
                                             share: float) -> None:
    system = forms(step)
    predicted = availability(system, set(down))["front.Home"]
    assert predicted == pytest.approx(share)
    ok, n = simulated_share(system, down)
    low, high = wilson(ok, n)
    assert low <= predicted <= high, f"simulated {ok}/{n}, verifier {predicted}"


@pytest.mark.parametrize(("step", "kind"), [(ONE_OF, OneOf), (FALLBACK, Fallback),
                                             (GROUP_PARALLEL, Group), (GROUP_CALLS, Group)])
def test_each_form_loads_and_dumps_to_the_same_system(step: str, kind: type) -> None:
    system = forms(step)
    assert isinstance(system.endpoint("front.Home").steps[0], kind)
    assert loads(dump(system)) == system
    # Every call of the form stays visible to checkers that walk all calls.
    assert {c.target for c in system.endpoint("front.Home").calls()} == {"a.X", "b.Y"}


def survives(system: System) -> str:
    prop = P.Survives(name="survives", failures=1, of=("instance",))
    return verify(system, [prop], timeout=10).verdicts[0].status


def test_survives_one_of_and_fallback_are_down_only_when_every_callee_is() -> None:
    # One failure kills a or b, never both: a one_of / fallback over them survives it ...
    assert survives(with_front_replicas(forms(ONE_OF))) == "holds"
    assert survives(with_front_replicas(forms(FALLBACK))) == "holds"
    # ... while a plain required call into b does not.
    assert survives(with_front_replicas(forms("b.Y"))) == "violated"


def test_survives_fallback_counterexample_kills_both_sides() -> None:
    system = with_front_replicas(forms(FALLBACK))
    prop = P.Survives(name="survives", failures=2, of=("instance",))
    verdict = verify(system, [prop], timeout=10).verdicts[0]
    assert verdict.status == "violated"
    assert verdict.counterexample is not None
    assert set(verdict.counterexample.failures) == {"instance:a-0", "instance:b-0"}
    assert verdict.counterexample.down == ("front.Home",)


def test_load_splits_by_weight_group_probability_and_fallback_takes_all() -> None:
    load = offered_load(forms(ONE_OF)).endpoints
    assert load["a.X"] == 150 and load["b.Y"] == 50
    load = offered_load(forms(GROUP_PARALLEL)).endpoints
    assert load["a.X"] == 40 and load["b.Y"] == 40
    load = offered_load(forms(FALLBACK)).endpoints  # conservative: all the primary's failures
    assert load["a.X"] == 200 and load["b.Y"] == 200


def test_worst_case_time_one_of_worst_branch_fallback_in_sequence() -> None:
    timed = "{call: a.X, timeout: 300ms}"
    one_of = forms("{one_of: [{call: a.X, timeout: 300ms}, {call: b.Y, timeout: 100ms}]}")
    assert worst_cases(one_of)["front.Home"] == Fraction(1, 1000) + Fraction(3, 10)
    fallback = forms(timed[:-1] + ", fallback: {call: b.Y, timeout: 100ms}}")
    assert worst_cases(fallback)["front.Home"] == Fraction(1, 1000) + Fraction(4, 10)
    group = forms("{group: {probability: 0.5, calls: [{call: a.X, timeout: 300ms}, "
                  "{call: b.Y, timeout: 100ms}]}}")
    assert worst_cases(group)["front.Home"] == Fraction(1, 1000) + Fraction(4, 10)


def test_fallback_engine_sends_the_fallback_only_after_a_failure() -> None:
    from faultmesh.simulations import simulate

    healthy = simulate(forms(FALLBACK), Scenario("ok", (), 10.0, 1.0), seed=2).summary
    assert healthy["entries"]["front.Home"]["availability"] == 1.0
    assert healthy["calls"]["front->a"]["calls"] > 0
    assert healthy["calls"]["front->b"]["calls"] == 0
    crash = (Crash(at=0.0, duration=1e6, target=parse_target("service:a")),)
    broken = simulate(forms(FALLBACK), Scenario("a down", crash, 10.0, 1.0), seed=2).summary
    assert broken["calls"]["front->b"]["calls"] == broken["calls"]["front->a"]["calls"]


def with_front_replicas(system: System, replicas: int = 3) -> System:
    """The system with ``front`` replicated, so only its callees can be the weak point."""
    document = to_document(system)
    service = document["services"]["front"]
    service["replicas"] = replicas
    service["placement"] = {"default": replicas}
    return from_document(document)
