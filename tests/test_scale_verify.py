"""The capacity analyses at size (issue 13): call chains deeper than Python's recursion limit,
loads beyond a float, and the deadline inside the certain-load passes.

Chains here are a few thousand services deep: each walk used to recurse once per call and
raised RecursionError near a thousand. Every test asserts results, never wall-clock times.
"""

from __future__ import annotations

import json
from fractions import Fraction

import pytest
from simhelp import Countdown

from faultmesh.model import properties as P
from faultmesh.model.distributions import Constant
from faultmesh.model.spec import loads
from faultmesh.model.system import (
    Call,
    Endpoint,
    FrozenMap,
    ParallelCalls,
    Service,
    System,
    Workload,
)
from faultmesh.model.verify import OutOfTime, verify
from faultmesh.model.verify.bursts import simultaneous
from faultmesh.model.verify.failures import FailureKinds
from faultmesh.model.verify.load import offered_load
from faultmesh.model.verify.pressure import CallTimes
from faultmesh.model.verify.thinning import Failing, certain_load

DEEP = 3000  # three times the default recursion limit


def chain(n: int, *, first: tuple[object, ...] | None = None, last: Service | None = None,
          concurrency: int | None = None) -> System:
    """s0 -> s1 -> ... -> s{n-1}: 1 ms each, 10 s timeouts; ``first`` replaces s0's steps,
    ``last`` replaces s{n-1}."""
    services = {}
    for i in range(n):
        steps = (Call(f"s{i + 1}", "handle", timeout=10.0),) if i + 1 < n else ()
        if i == 0 and first is not None:
            steps = first  # type: ignore[assignment]
        endpoint = Endpoint("handle", Constant(0.001), steps=steps)
        services[f"s{i}"] = Service(f"s{i}", FrozenMap({"handle": endpoint}),
                                    zones=("a", "b", "c"), workers=4, concurrency=concurrency)
    if last is not None:
        services[last.name] = last
    return System(FrozenMap(services), name=f"chain-{n}", zones=("a", "b", "c"),
                  workload=(Workload("s0", "handle", 10.0),))


def test_the_healthy_worst_case_and_failures_are_found_down_a_very_deep_chain() -> None:
    system = chain(DEEP)
    failing = Failing(system)
    assert failing.healthy_worst("s0.handle") == Fraction(DEEP, 1000)  # 1 ms a level
    assert not failing.endpoint_can_fail("s0.handle")
    # A queue limit at the bottom can refuse: every call above it can then fail.
    bottom = system.services[f"s{DEEP - 1}"]
    limited = Service(bottom.name, bottom.endpoints, zones=bottom.zones, workers=4, queue=2)
    failing = Failing(chain(DEEP, last=limited))
    assert failing.endpoint_can_fail("s0.handle")
    assert failing.endpoint_can_fail(f"s{DEEP // 2}.handle")


def test_a_service_shared_deep_below_parallel_calls_is_found_bursty() -> None:
    # s0 calls z (through "side") and s1 at once; z is also the bottom of s1's deep chain, so
    # one request can have two calls to z in flight. The chain's services are reached once.
    z = Service("z", FrozenMap({"handle": Endpoint("handle", Constant(0.001))}),
                zones=("a", "b", "c"))
    side = Service("side", FrozenMap({"handle": Endpoint(
        "handle", Constant(0.001), steps=(Call("z", "handle", timeout=10.0),))}),
        zones=("a", "b", "c"))
    fan = (ParallelCalls((Call("side", "handle", timeout=10.0),
                          Call("s1", "handle", timeout=10.0))),)
    base = chain(DEEP, first=fan)
    bottom = base.services[f"s{DEEP - 1}"]
    last = Service(bottom.name, FrozenMap({"handle": Endpoint(
        "handle", Constant(0.001), steps=(Call("z", "handle", timeout=10.0),))}),
        zones=("a", "b", "c"))
    system = chain(DEEP, first=fan, last=last)
    system = System(FrozenMap({**system.services, "z": z, "side": side}), name=system.name,
                    zones=system.zones, workload=system.workload)
    assert simultaneous(system) == frozenset({"z"})


def test_call_times_are_found_down_a_very_deep_chain_with_concurrency_limits() -> None:
    system = chain(DEEP, concurrency=8)
    load = offered_load(system)
    times = CallTimes(system, load, FailureKinds.of(("instance",)), 1)
    # s0 waits on the 1 ms service of every level below it (queueing adds a little).
    assert (DEEP - 1) / 1000 <= times.of_endpoint("s0.handle") < DEEP / 1000 * 1.5
    verdict = verify(system, [P.Capacity(failures=1)], timeout=600).verdicts[0]
    assert "ran out of time" not in verdict.explanation  # decided (concurrency held while
    assert verdict.status in ("holds", "unknown")  # waiting on 10 s timeouts may be unproved)


def astronomical(n: int = 700) -> System:
    """Each service calls the next three times: s{n-1} receives 100 x 3^(n-1) requests/s,
    beyond the largest float (3^700 is about 10^334)."""
    lines = ["system: astronomical", "zones: [a, b, c]", "services:"]
    for i in range(n):
        calls = f", calls: [{{call: s{i + 1}.handle, repeat: 3}}]" if i + 1 < n else ""
        lines.append(f"  s{i}: {{replicas: 3, workers: 4, queue: 10, endpoints: "
                     f"{{handle: {{service_time: 1ms{calls}}}}}}}")
    lines += ["workload:", "  - {entry: s0.handle, rate: 100/s}"]
    return loads("\n".join(lines) + "\n")


def test_a_load_beyond_any_float_is_a_violation_with_a_readable_number() -> None:
    verdict = verify(astronomical(), [P.Capacity(failures=1)], timeout=600).verdicts[0]
    assert verdict.status == "violated", verdict.explanation
    assert verdict.counterexample is not None
    json.dumps(verdict.counterexample.numbers, allow_nan=False)  # no inf or nan in the JSON
    assert "e+" in verdict.explanation  # the load, written in powers of ten


def test_the_certain_load_looks_at_its_deadline_inside_its_passes() -> None:
    system = chain(200)
    load = offered_load(system)
    sure = certain_load(system, load, deadline=Countdown(10**9))
    assert sure.endpoints[f"s{199}.handle"] == 10
    with pytest.raises(OutOfTime):
        certain_load(system, load, deadline=Countdown(2))


def test_a_repair_s_system_built_directly_is_the_spec_round_trip() -> None:
    """``with_call_fields`` (staleness builds its repaired System with it, without dumping
    and reloading 100,000 services) gives what writing the same keys into the spec and
    loading it again gives, on generated systems with every step form."""
    from hypothesis import HealthCheck, given, settings

    from faultmesh.model.spec import from_document, to_document
    from faultmesh.model.spec.edit import apply_changes
    from faultmesh.model.strategies import spec_documents
    from faultmesh.model.verify.sites import call_sites, with_call_fields

    forms = {"step": 0, "member": 0}

    @settings(max_examples=40, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(spec_documents(min_services=2, max_services=4, max_calls=3, call_forms=True,
                          probabilities=True, scenarios=False))
    def one(document: dict[str, object]) -> None:
        system = from_document(document)
        changes: dict[str, object] = {}
        fields: dict[object, dict[str, object]] = {}
        for i, site in enumerate(call_sites(system, include_never=True)):
            forms["member" if site.member is not None else "step"] += 1
            mine = fields.setdefault(site, {})
            if i % 2 == 0:
                changes[site.key("retries")] = mine["retries"] = site.call.retries + 1
            changes[site.key("retry_other_instance")] = True
            mine["retry_other_instance"] = True
            if i % 3 == 0:
                changes[site.key("timeout")] = mine["timeout"] = site.call.timeout + 0.25
            if site.call.circuit_breaker is not None:
                changes[site.key("circuit_breaker")] = "none"
                mine["circuit_breaker"] = None
        slow = from_document(apply_changes(to_document(system), changes))
        assert with_call_fields(system, fields.items()) == slow  # type: ignore[arg-type]

    one()
    assert forms["step"] > 10 and forms["member"] > 10, forms


def test_breaking_a_service_whose_every_incoming_attempt_can_fail_changes_no_certain_load(
) -> None:
    """capacity skips finding a service's own certain load anew when breaking it changes
    nothing (``CertainLoads.breaking_changes_nothing``); on generated acyclic systems with
    limits, breakers and call forms, the certain loads with and without it broken are equal
    whenever it says so, for several sets of other broken services."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from faultmesh.model.spec import from_document
    from faultmesh.model.strategies import spec_documents
    from faultmesh.model.verify.certainty import CertainLoads

    said = {"same": 0, "other": 0}

    @settings(max_examples=60, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(spec_documents(min_services=2, max_services=5, max_calls=3, call_forms=True,
                          probabilities=True, scenarios=False, limits=True,
                          network_latency=True), st.randoms(use_true_random=False))
    def one(document: dict[str, object], rng: object) -> None:
        system = from_document(document)
        nominal = offered_load(system)
        certain = CertainLoads(system, nominal, {}, Countdown(10**9))
        if not certain.acyclic:
            return
        names = list(system.services)
        for name in names:
            others = [n for n in names if n != name]
            half = rng.sample(others, len(others) // 2)  # type: ignore[attr-defined]
            for broken in ((), tuple(others), tuple(half)):
                if not certain.breaking_changes_nothing(name, frozenset((*broken, name))):
                    said["other"] += 1
                    continue
                said["same"] += 1

                def sure(extra: tuple[str, ...], broken: tuple[str, ...] = broken
                         ) -> dict[str, Fraction]:
                    return certain_load(system, nominal, (*broken, *extra), None, None,
                                        certain.walks).endpoints
                assert sure((name,)) == sure(()), (name, broken)

    one()
    assert said["same"] >= 10 and said["other"] >= 10, said


def test_the_one_walk_pass_without_cycles_finds_the_general_pass_s_certain_loads() -> None:
    """Without call cycles capacity's certain loads come from one callers-first walk sharing
    what every pass finds (``thinning.Walks``); on generated acyclic systems with limits,
    breakers, probabilities and every step form it finds the loads the general pass finds
    (the same endpoints loaded, each figure within float rounding), for several broken sets
    and accepted shares."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from faultmesh.model.spec import from_document
    from faultmesh.model.strategies import spec_documents
    from faultmesh.model.verify.certainty import CertainLoads
    from faultmesh.model.verify.thinning import Walks

    compared = {"loads": 0}

    @settings(max_examples=60, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(spec_documents(min_services=2, max_services=6, max_calls=3, call_forms=True,
                          probabilities=True, scenarios=False, limits=True, breakers=True,
                          network_latency=True), st.randoms(use_true_random=False))
    def one(document: dict[str, object], rng: object) -> None:
        system = from_document(document)
        nominal = offered_load(system)
        if not CertainLoads(system, nominal, {}, Countdown(10**9)).acyclic:
            return
        names = list(system.services)
        walks = Walks()
        for _ in range(3):
            broken = rng.sample(names, rng.randrange(len(names)))  # type: ignore[attr-defined]
            accepts = {n: rng.choice([1.0, 0.9, 0.5]) for n in names}  # type: ignore[attr-defined]
            fast = certain_load(system, nominal, broken, accepts, None, walks).endpoints
            general = certain_load(system, nominal, broken, accepts).endpoints
            assert set(fast) == set(general), (broken, fast, general)
            for key, value in general.items():
                assert abs(fast[key] - value) <= value * Fraction(1, 10**9), (key, fast, general)
            compared["loads"] += len(general)

    one()
    assert compared["loads"] > 100, compared


def test_the_worst_cases_are_found_once_per_system_not_once_per_call(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """staleness asks whether each retrying call nests (its callee's worst case) and every
    timeout check asks for the worst cases: on a chain of 300 calls that all retry on another
    instance they are computed once for the whole verify, not once per call (which was
    quadratic in the calls)."""
    from faultmesh.model.verify import timeouts

    computed = []
    real = timeouts._worst_cases

    def counting(system: System) -> dict[str, Fraction]:
        computed.append(system.name)
        return real(system)

    monkeypatch.setattr(timeouts, "_worst_cases", counting)
    lines = ["system: retrying", "zones: [a, b]", "defaults:",
             "  call: {timeout: 1s, retries: 1}",
             "  service: {replicas: 2, endpoint_defaults: {service_time: 1ms}}", "services:"]
    for i in range(300):
        call = (f", calls: [{{call: s{i + 1}.handle, retry_other_instance: true}}]"
                if i + 1 < 300 else "")
        lines.append(f"  s{i}: {{endpoints: {{handle: {{service_time: 1ms{call}}}}}}}")
    lines += ["workload: [{entry: s0.handle, rate: 1/s}]",
              "properties: [{staleness: {}}, {timeouts_nest: {}}]"]
    system = loads("\n".join(lines) + "\n")
    report = verify(system)
    assert {v.kind for v in report.verdicts} >= {"staleness", "timeouts_nest"}
    assert computed.count("retrying") == 1, len(computed)


def test_retries_compounded_past_any_printable_integer_are_worded_and_left_out_of_json(
        tmp_path: object, capsys: pytest.CaptureFixture[str]) -> None:
    """A chain of 2,200 calls with 100 retries each multiplies attempts to ~10^4400: more
    digits than Python will print an integer with. The explanation writes it in scientific
    notation and the JSON leaves the number out (as capacity does with loads past a float);
    neither it nor the timeouts (which would have to nest past 10^9 s) gets a repair, and
    each verdict says why."""
    from pathlib import Path

    from faultmesh.cli import main
    from faultmesh.model.verify.wording import number

    assert number(Fraction(10) ** 5000 * 3) == "3e+5000"
    n = 2200
    lines = ["system: compounding", "defaults:", "  call: {timeout: 1s, retries: 100}",
             "services:"]
    for i in range(n):
        call = f", calls: [s{i + 1}.handle]" if i + 1 < n else ""
        lines.append(f"  s{i}: {{endpoints: {{handle: {{service_time: 1ms{call}}}}}}}")
    lines += ["workload: [{entry: s0.handle, rate: 1/s}]",
              "properties: [{retry_amplification: {max: 8}}, {timeouts_nest: {}}]"]
    spec = Path(str(tmp_path)) / "compounding.yaml"
    spec.write_text("\n".join(lines) + "\n", encoding="utf-8")
    code = main(["verify", str(spec), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 1
    verdict = next(v for v in out["properties"] if v["kind"] == "retry_amplification")
    assert verdict["status"] == "violated"
    assert "e+44" in verdict["explanation"], verdict["explanation"][:200]
    assert "attempts" not in verdict["counterexample"]["numbers"]
    # No repair, and the verdict says why (rather than leaving the repair out silently).
    assert verdict.get("repair") is None
    assert verdict["explanation"].endswith(
        "no repair searched: 2,199 calls retry, more than the 2,000 the optimiser takes")
    nest = next(v for v in out["properties"] if v["kind"] == "timeouts_nest")
    assert nest["status"] == "violated" and nest.get("repair") is None
    assert "no repair by raising timeouts: nested, they would pass" in nest["explanation"]


def test_services_whose_failure_sets_empty_the_same_services_share_one_broken_set() -> None:
    """Each service's worst failure set names its own instances, so there are as many sets
    as services; the services they leave with nothing seldom differ. The broken sets built
    from them are one object per distinct case, not a union of every saturated service per
    service (quadratic at 100,000 services)."""
    from faultmesh.model.verify.certainty import CertainLoads
    from faultmesh.model.verify.failures import instance_unit, zone_unit
    from faultmesh.model.verify.pressure import ServiceModel

    lines = ["system: shared", "zones: [a, b]", "services:"]
    for i in range(40):
        call = f", calls: [s{i + 1}.handle]" if i + 1 < 40 else ""
        lines.append(f"  s{i}: {{replicas: 4, workers: 1, endpoints: {{handle: "
                     f"{{service_time: 100ms{call}}}}}}}")
    lines += ["  lonely: {placement: {a: 1}, endpoints: {handle: {service_time: 1ms}}}",
              "workload: [{entry: s0.handle, rate: 100/s}]"]
    system = loads("\n".join(lines) + "\n")
    load = offered_load(system)
    kinds = FailureKinds.of(("instance", "zone"))
    times = CallTimes(system, load, kinds, 2)
    profiles = {name: ServiceModel(system, name, load, times).profile(kinds, 2)
                for name in system.services}
    certain = CertainLoads(system, load, profiles, Countdown(10**9))
    found = [certain.broken(2, (zone_unit("a"), instance_unit(f"s{i}", 1))) for i in range(40)]
    assert all(gone == {"lonely"} for _, gone in found)
    assert all(everyone == found[0][0] for everyone, _ in found)
    assert len({id(everyone) for everyone, _ in found}) == 1
