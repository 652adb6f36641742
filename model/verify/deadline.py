"""A time budget shared by everything one ``verify`` call does, and the one answer when it runs out.

``verify`` makes one ``Deadline`` for the whole call and hands it to every checker in turn, so
``--timeout`` bounds all of verify, not each property: a property that starts after the budget
is spent is ``unknown`` at once. Z3 is handed what is left of it (``z3_ms``); the combinatorial
loops (failure enumeration, cones, repairs) call ``check()``, which raises ``OutOfTime`` once the
budget is spent. When the budget is spent before a checker decides, whether between steps
(``expired``, ``check``) or inside Z3 (a ``check()`` answering ``unknown`` because its timeout
fired, ``ran_out``), the checker answers ``out_of_time``: status ``unknown``, never ``holds``,
with the same explanation for every property kind (``verify.checker`` turns an ``OutOfTime``
escaping a checker into that answer). A repair search cut short leaves the verdict decided and
says ``REPAIR_OUT_OF_TIME`` instead.
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


# Loops call ``Deadline.check`` once per step; reading the clock every 64th call keeps a
# million-step loop's overhead to milliseconds while overshooting by at most 64 cheap steps.
_CHECK_STRIDE = 64


class OutOfTime(Exception):
    """Raised by ``Deadline.check`` inside a loop once the budget is spent."""


class Deadline:
    """``seconds`` for one verify call (all of its properties), counted from when it is made."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.end = time.perf_counter() + seconds
        self._calls = 0

    def left(self) -> float:
        return max(0.0, self.end - time.perf_counter())

    def expired(self) -> bool:
        return self.left() <= 0.0

    def check(self) -> None:
        """Raise ``OutOfTime`` if the budget is spent (the clock is read every few calls)."""
        self._calls += 1
        if self._calls % _CHECK_STRIDE == 1 and self.expired():
            raise OutOfTime

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


__all__ = ["REPAIR_OUT_OF_TIME", "Deadline", "OutOfTime", "out_of_time"]
