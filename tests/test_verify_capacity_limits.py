"""`capacity` with ``queue``/``concurrency`` limits and uneven balancing, against theory, an
independent computation and the simulator.

* The loss formulas: Erlang B and M/M/s/L against the birth-death chain solved numerically
  (``capacity_oracle.chain_loss``), and the simulator's measured rejected share within a 99.9 %
  confidence interval of the formula (Erlang B also for constant service times: the formula is
  insensitive to the distribution).
* Where no formula is exact (constant service times with a queue) the verifier answers
  ``unknown`` between its bounds, and the simulator measures a loss below its upper estimate.
* Consistent hashing: the verifier's ring is the engine's (same constants and hash, and the
  shares match the engine's choices over many keys); the busiest instance's utilization is
  what the simulator measures.
* Rejected attempts are retried: the verifier's fixed point equals the oracle's.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from capacity_oracle import chain_loss, oracle_rejected
from hypothesis import given, settings
from hypothesis import strategies as st
from simhelp import assert_within, replicate

from faultmesh.model.properties import Capacity
from faultmesh.model.spec import from_document
from faultmesh.model.system import System
from faultmesh.model.verify import verify
from faultmesh.model.verify.blocking import erlang_b, mmsl_loss
from faultmesh.model.verify.load import offered_load
from faultmesh.model.verify.pressure import ServiceModel
from faultmesh.model.verify.shares import VNODES, consistent_hash_shares, ring_point
from faultmesh.simulations import balancers, simulate

SEEDS = range(1, 6)


def station(*, workers: int = 1, queue: int | None = None, concurrency: int | None = None,
            replicas: int = 1, service_time: Any = {"exponential": "10ms"},  # noqa: B006
            rate: str = "60/s", balancer: str = "round_robin") -> System:
    body: dict[str, Any] = {"replicas": replicas, "workers": workers, "load_balancer": balancer,
                            "endpoints": {"q": {"service_time": service_time}}}
    if queue is not None:
        body["queue"] = queue
    if concurrency is not None:
        body["concurrency"] = concurrency
    return from_document({"system": "limits", "services": {"db": body},
                          "workload": [{"entry": "db.q", "rate": rate}]})


def capacity(system: System, *, failures: int = 0, utilization: float = 1.0,
             rejected: float = 0.001) -> Any:
    prop = Capacity(failures=failures, of=("instance",), utilization=utilization,
                    rejected=rejected)
    return verify(system, [prop], timeout=60).verdicts[0]


def rejected_share(run: Any) -> float:
    db = run.summary["services"]["db"]
    return db["rejected"] / db["requests"]


# ---------------------------------------------------------------------------------------------
# Formulas against the chain
# ---------------------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(servers=st.integers(1, 6), queue=st.integers(0, 12), load=st.floats(0.05, 12))
def test_loss_formulas_match_the_birth_death_chain(servers: int, queue: int,
                                                   load: float) -> None:
    expected = chain_loss(servers, servers + queue, load, 1.0)
    assert mmsl_loss(servers, servers + queue, load) == pytest.approx(expected, abs=1e-9)
    if queue == 0:
        assert erlang_b(servers, load) == pytest.approx(expected, abs=1e-9)


def test_long_queues_at_high_load_stay_finite() -> None:
    assert mmsl_loss(4, 4 + 5000, 40.0) == pytest.approx(0.9, rel=1e-9)  # 1 - s/a
    assert mmsl_loss(4, 4 + 5000, 0.5) == 0.0


# ---------------------------------------------------------------------------------------------
# Limits: the verdict, and the simulator
# ---------------------------------------------------------------------------------------------


def test_a_full_instance_rejects_what_erlang_b_says_and_capacity_sees_it() -> None:
    # 4 workers, no queue, 300/s x 10 ms = 3 busy workers: 75 % utilization, which the old
    # check passed, but Erlang B(4, 3) = 20.6 % of the requests find every worker busy.
    system = station(workers=4, queue=0, rate="300/s")
    verdict = capacity(system)
    assert verdict.status == "violated", verdict.explanation
    assert "Erlang B with 4 servers" in verdict.explanation
    theory = erlang_b(4, 3.0)
    assert verdict.counterexample.numbers["rejected"] == pytest.approx(theory)
    assert verdict.counterexample.numbers["utilization"] == pytest.approx(0.75)
    measured = replicate(system, SEEDS, rejected_share, duration=30.0, warmup=2.0)
    assert_within(measured, theory, "Erlang B(4, 3)")


def test_erlang_b_holds_for_constant_service_times_too() -> None:
    system = station(workers=2, queue=0, service_time="10ms", rate="100/s")
    verdict = capacity(system, rejected=0.5)
    assert verdict.status == "holds"  # exact: the loss formula is insensitive
    measured = replicate(system, SEEDS, rejected_share, duration=30.0, warmup=2.0)
    assert_within(measured, erlang_b(2, 1.0), "Erlang B(2, 1), constant service")


def test_mm1k_with_a_queue_limit() -> None:
    system = station(workers=1, queue=2, rate="60/s")
    theory = mmsl_loss(1, 3, 0.6)
    assert theory == pytest.approx(0.6**3 * 0.4 / (1 - 0.6**4))
    verdict = capacity(system)
    assert verdict.status == "violated" and "M/M/1/3" in verdict.explanation
    assert capacity(system, rejected=0.1).status == "holds"  # 9.93 % <= 10 %
    measured = replicate(system, SEEDS, rejected_share, duration=30.0, warmup=2.0)
    assert_within(measured, theory, "M/M/1/3")


def test_a_concurrency_limit_without_calls_bounds_the_room() -> None:
    # concurrency 2 on 4 workers: at most 2 requests at once, an Erlang-B system on 2 servers.
    system = station(workers=4, concurrency=2, rate="100/s")
    verdict = capacity(system, rejected=0.9)
    assert verdict.status == "holds"
    assert "Erlang B with 2 servers" in capacity(system).explanation
    measured = replicate(system, SEEDS, rejected_share, duration=30.0, warmup=2.0)
    assert_within(measured, erlang_b(2, 1.0), "concurrency 2")


def test_no_exact_formula_gives_unknown_and_the_estimate_errs_high() -> None:
    # Constant service with a queue (M/D/1/3): the M/M/1/3 figure is an upper estimate only.
    system = station(workers=1, queue=2, service_time="10ms", rate="60/s")
    verdict = capacity(system)
    assert verdict.status == "unknown", verdict.explanation
    assert "approximate" in verdict.explanation
    measured = replicate(system, SEEDS, rejected_share, duration=30.0, warmup=2.0)
    assert max(measured) < mmsl_loss(1, 3, 0.6)
    # Far beyond what the instance can carry, the universal bound 1 - s/a proves it.
    overloaded = station(workers=1, queue=2, service_time="10ms", rate="300/s")
    assert capacity(overloaded, utilization=10.0).status == "violated"


def test_rejected_attempts_are_retried_to_a_fixed_point() -> None:
    system = from_document({
        "system": "retry", "services": {
            "front": {"replicas": 2, "workers": 8, "endpoints": {"home": {"calls": [
                {"call": "db.q", "retries": 2, "timeout": "1s"}]}}},
            "db": {"workers": 2, "queue": 0,
                   "endpoints": {"q": {"service_time": {"exponential": "10ms"}}}}},
        "workload": [{"entry": "front.home", "rate": "100/s"}]})
    # db is fed by front's calls, not straight by the Poisson workload: the Erlang figure is
    # only its high bound (callers may space their calls), and the target lies between.
    verdict = capacity(system)
    assert verdict.status == "unknown" and "28.18%" in verdict.explanation
    once = erlang_b(2, 1.0)
    p = ServiceModel(system, "db", offered_load(system), None).rejection(100.0).high
    assert p > once  # the retries add load
    assert p == pytest.approx(oracle_rejected(system, "db", 100.0), abs=1e-9)
    assert p == pytest.approx(erlang_b(2, 1.0 * (1 + p + p * p)), abs=1e-9)


# ---------------------------------------------------------------------------------------------
# Consistent hashing
# ---------------------------------------------------------------------------------------------


def test_the_ring_is_the_engines() -> None:
    assert VNODES == balancers.VNODES
    for name in ("db-0", "cart-12", "zone-x"):
        for r in (0, 1, 63):
            assert ring_point(name, r) == balancers._point(name, r)


@pytest.mark.parametrize("names", [["db-0", "db-1", "db-2"], ["db-0", "db-2"],
                                   ["cart-0", "cart-1", "cart-2", "cart-3"]])
def test_ring_shares_match_the_engines_choices(names: list[str]) -> None:
    class Named:
        def __init__(self, name: str) -> None:
            self.name = name

    ring = balancers.ConsistentHash()
    candidates = [Named(n) for n in names]
    keys = 200_000
    counts = dict.fromkeys(names, 0)
    for key in range(keys):
        counts[ring.choose(candidates, key).name] += 1
    shares = consistent_hash_shares(names)
    assert sum(shares.values()) == 1
    for name in names:  # binomial sd < 0.0012 at 200,000 keys
        assert counts[name] / keys == pytest.approx(float(shares[name]), abs=0.005)


def test_uneven_ring_overloads_one_replica_and_the_simulation_agrees() -> None:
    # 270/s x 10 ms = 2.7 busy workers on 3: 90 % on average, which an even-spread check
    # passes against 95 %; the ring gives db-2 36.06 % of the keys: 97.4 %.
    system = station(replicas=3, rate="270/s", balancer="consistent_hash")
    share = consistent_hash_shares(["db-0", "db-1", "db-2"])["db-2"]
    verdict = capacity(system, utilization=0.95)
    assert verdict.status == "violated", verdict.explanation
    assert "db-2" in verdict.explanation
    numbers = verdict.counterexample.numbers
    assert numbers["share"] == pytest.approx(float(share))
    assert numbers["utilization"] == pytest.approx(2.7 * float(share))
    # Request keys are the same in every seed, so one long run (81,000 keys: the share's
    # binomial sd is 0.0017) says more than several short ones.
    instances = simulate(system, None, duration=300.0, seed=1).summary["services"]["db"][
        "instances"]
    total = sum(i["requests"] for i in instances.values())
    assert instances["db-2"]["requests"] / total == pytest.approx(float(share), abs=0.007)
    assert instances["db-2"]["utilization"] == pytest.approx(2.7 * float(share), abs=0.03)
    assert instances["db-2"]["utilization"] > 0.95  # the violation, seen


def test_consistent_hash_failures_are_searched_for_the_worst_survivor() -> None:
    # Losing db-1 hands its keys to its ring neighbours; the worst single failure is the one
    # leaving the largest share, which the verifier finds among all of them.
    system = station(replicas=3, rate="100/s", balancer="consistent_hash", workers=2)
    verdict = capacity(system, failures=1, utilization=0.2)  # 0.18 with all three up
    worst = max((max(consistent_hash_shares([n for n in ("db-0", "db-1", "db-2")
                                             if n != gone]).values()), gone)
                for gone in ("db-0", "db-1", "db-2"))
    assert verdict.status == "violated"
    assert verdict.counterexample.failures == (f"instance:{worst[1]}",)
    assert verdict.counterexample.numbers["share"] == pytest.approx(float(worst[0]))
    assert math.isclose(verdict.counterexample.numbers["utilization"],
                        float(worst[0]) * 1.0 / 2)


# ---------------------------------------------------------------------------------------------
# Repairs under limits
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("workers", "queue", "rate"), [(4, 0, "300/s"), (1, 2, "60/s"),
                                                        (2, 0, "150/s")])
def test_repairs_bring_losses_within_target_with_the_fewest_slots(workers: int, queue: int,
                                                                  rate: str) -> None:
    system = station(workers=workers, queue=queue, rate=rate, replicas=2)
    verdict = capacity(system, failures=1)
    assert verdict.status == "violated" and verdict.repair is not None
    repaired = verdict.repair.apply(system)
    assert capacity(repaired, failures=1).status == "holds"
    db = repaired.services["db"]
    slots = db.replicas * db.workers
    load = float(repaired.workload[0].rate)
    # No (replicas, workers) with fewer slots keeps the survivor of one failure within 0.1 %.
    for r in range(2, slots + 1):
        for w in range(workers, slots // r + 1):
            if r * w < slots:
                assert oracle_rejected(station(workers=w, queue=queue, rate=rate,
                                               replicas=r), "db", load / (r - 1)) > 0.001
