"""Running out of time: every checker answers it the same way (``deadline.out_of_time``).

A checker whose budget is spent answers ``unknown`` (never ``holds``), and the explanation
names the kind, the budget and what to do, worded alike for every property kind.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from faultmesh.model import properties as P
from faultmesh.model.spec import load
from faultmesh.model.system import ConsecutiveBreakerPolicy, RateBreakerPolicy
from faultmesh.model.verify import CHECKERS, Deadline, verify
from faultmesh.model.verify.breaker import prove
from faultmesh.model.verify.deadline import out_of_time

SPECS = Path(__file__).resolve().parent.parent / "specs"


def test_every_checker_out_of_time_says_the_same() -> None:
    system = load(SPECS / "zone_outage_shop.yaml")
    verify(system, [])  # loads every checker module
    assert set(CHECKERS) == set(P.STATIC_KINDS)
    for kind in P.STATIC_KINDS:
        prop = P.PROPERTY_TYPES[kind]()
        verdict = CHECKERS[kind](system, prop, Deadline(0))
        assert verdict.status == "unknown", kind
        assert verdict.explanation == (f"{kind}: ran out of time (budget 0s) before "
                                       "deciding; raise --timeout")


def test_out_of_time_names_where_and_the_budget() -> None:
    verdict = out_of_time(P.BreakerSafety(), Deadline(90), "the inductive step at k=2")
    assert verdict.status == "unknown"
    assert verdict.explanation == ("breaker: ran out of time in the inductive step at k=2 "
                                   "(budget 1m 30s) before deciding; raise --timeout")


@pytest.mark.parametrize("policy", [ConsecutiveBreakerPolicy(5, 30.0),
                                    RateBreakerPolicy(0.5, 10, 5, 10.0, 2)])
def test_a_breaker_proof_cut_short_is_unknown_for_lack_of_time(
        policy: ConsecutiveBreakerPolicy | RateBreakerPolicy) -> None:
    result = prove(policy, Deadline(0))
    assert result.status == "unknown"
    assert result.timed_out
    assert prove(policy, Deadline(60)).status == "holds"


def test_deadline_ran_out_reads_the_solver_reason() -> None:
    plenty = Deadline(60)
    assert plenty.ran_out("timeout") and plenty.ran_out("canceled")
    assert not plenty.ran_out("(incomplete quantifiers)")
    assert Deadline(0).ran_out("(incomplete quantifiers)")
