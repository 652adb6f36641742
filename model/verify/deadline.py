"""A time budget shared by the solver calls of one property, and the one answer when it runs out.

Every checker gets a ``Deadline``; Z3 is handed what is left of it (``z3_ms``). When the budget
is spent before the checker decides, whether between steps (``expired``) or inside Z3 (a
``check()`` answering ``unknown`` because its timeout fired, ``ran_out``), the checker answers
``out_of_time``: status ``unknown``, never ``holds``, with the same explanation for every
property kind. A repair search cut short leaves the verdict decided and says
``REPAIR_OUT_OF_TIME`` instead.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from faultmesh.model.units import format_duration
from faultmesh.model.verify.verdict import Verdict

if TYPE_CHECKING:
    from faultmesh.model.properties import Property

# Z3's reason_unknown() when its timeout fired (or a resource limit cancelled the search).
_SOLVER_OUT_OF_TIME = ("timeout", "canceled")

REPAIR_OUT_OF_TIME = "the repair search ran out of time"


class Deadline:
    """``seconds`` to decide one property, counted from when the deadline is made."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.end = time.perf_counter() + seconds

    def left(self) -> float:
        return max(0.0, self.end - time.perf_counter())

    def expired(self) -> bool:
        return self.left() <= 0.0

    def z3_ms(self) -> int:
        """Milliseconds left, as Z3's ``timeout`` parameter wants (at least 1)."""
        return max(1, int(self.left() * 1000))

    def ran_out(self, reason_unknown: str) -> bool:
        """Is a solver's ``unknown`` (its ``reason_unknown()``) this deadline running out?

        Otherwise the solver gave up for a reason of its own (an incomplete theory, say),
        which more time would not fix.
        """
        return self.expired() or reason_unknown in _SOLVER_OUT_OF_TIME


def out_of_time(prop: Property, deadline: Deadline, where: str = "") -> Verdict:
    """The verdict of a checker whose time ran out before it decided: ``unknown``.

    ``where`` names what was left open (``"the inductive step for breaker ..."``).
    """
    during = f" in {where}" if where else ""
    return Verdict(prop.name, prop.kind, "unknown",
                   f"{prop.kind}: ran out of time{during} (budget "
                   f"{format_duration(deadline.seconds)}) before deciding; raise --timeout")


__all__ = ["REPAIR_OUT_OF_TIME", "Deadline", "out_of_time"]
