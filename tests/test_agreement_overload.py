"""``overload_recovery`` against the simulator on generated systems (``overload_systems``).

Every ``holds`` among ``SYSTEMS`` generated systems is simulated with a large trigger (a
latency of three per-try timeouts on the service with the highest storm utilization, for
5 s) and the entry's availability, once the fluid drain time the verifier's figures give plus
``MARGIN`` has passed, must be back within ``TOLERANCE`` of its level before the trigger: no
disagreement is allowed. Every ``VIOLATED_SAMPLE``-th ``violated`` is replayed (its
counterexample's trigger) and must leave the entry down; the verdict errs on the safe side,
so a replay that recovers is a counted disagreement, allowed up to ``VIOLATED_OPEN`` of the
sample (``bench/overload.py`` replays them all).
"""

from __future__ import annotations

import collections
import random

from overload_systems import overload_spec, trial

from faultmesh.model import properties as P
from faultmesh.model.spec import from_document
from faultmesh.model.verify import Deadline
from faultmesh.model.verify.overload import check

SYSTEMS = 200
SEED = 7
VIOLATED_SAMPLE = 4  # every 4th violated verdict is replayed in CI
VIOLATED_OPEN = 0.3  # share of the replayed sample allowed to recover (a cautious verdict)


def test_holds_never_fails_to_recover_and_violated_replays_stay_down() -> None:
    rng = random.Random(SEED)
    counts: collections.Counter[tuple[str, bool]] = collections.Counter()
    findings = []
    violated_seen = 0
    for index in range(SYSTEMS):
        system = from_document(overload_spec(rng, index), f"<generated {index}>")
        verdict = check(system, P.OverloadRecovery(), Deadline(60))
        assert verdict.status in ("holds", "violated"), verdict.explanation
        if verdict.status == "violated":
            violated_seen += 1
            if violated_seen % VIOLATED_SAMPLE:
                continue
        result = trial(system, verdict, seed=index)
        counts[(result.status, result.agrees)] += 1
        if not result.agrees:
            findings.append(f"#{index} {result.status}: {result.detail}; {verdict.explanation}")
    holds = counts[("holds", True)] + counts[("holds", False)]
    replayed = counts[("violated", True)] + counts[("violated", False)]
    # Both verdicts are common among the generated systems: the test can see either fail.
    assert holds >= SYSTEMS // 5 and violated_seen >= SYSTEMS // 5, (holds, violated_seen)
    assert counts[("holds", False)] == 0, findings
    assert counts[("violated", False)] <= VIOLATED_OPEN * replayed, findings
