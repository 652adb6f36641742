"""What verification answers: a Verdict per property, gathered in a Report."""

from __future__ import annotations

import html
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from faultmesh.model.faults import Crash, Fault, Scenario, parse_target
from faultmesh.model.units import format_duration

if TYPE_CHECKING:
    from faultmesh.model.system import System

Status = Literal["holds", "violated", "unknown"]


@dataclass(frozen=True)
class Counterexample:
    """A smallest witness that a property fails.

    ``failures`` are failed components (``zone:a``, ``instance:cart-0``); ``down`` what they take
    down (``frontend.checkout``); ``degraded`` the entries they do not take down but make fail
    some requests, with the share those still serve (``{"frontend.home": 0.9}``: reached only
    through calls made with probability below 1); ``chain`` the path that explains it
    (services or ``service.endpoint`` names, caller first); ``numbers`` the quantities involved;
    ``trigger`` the faults (from t = 0) that tip the system into the counterexample's state when
    failing components alone do not describe it (an overload that sustains itself).
    """

    failures: tuple[str, ...] = ()
    down: tuple[str, ...] = ()
    chain: tuple[str, ...] = ()
    numbers: dict[str, float] = field(default_factory=dict)
    degraded: dict[str, float] = field(default_factory=dict)
    trigger: tuple[Fault, ...] = ()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"failures": list(self.failures), "down": list(self.down)}
        if self.trigger:
            from faultmesh.model.spec.dump import _fault as fault_document

            out["trigger"] = [fault_document(f) for f in self.trigger]
        if self.degraded:
            out["degraded"] = dict(self.degraded)
        if self.chain:
            out["chain"] = list(self.chain)
        if self.numbers:
            out["numbers"] = dict(self.numbers)
        return out


@dataclass(frozen=True)
class Repair:
    """The smallest change found that makes the property hold.

    ``changes`` maps spec key paths (``services.cart.placement.b``) to their new values, so a
    tool can apply them; ``description`` says it in words.
    """

    description: str
    changes: dict[str, Any] = field(default_factory=dict)

    def apply(self, system: System) -> System:
        """The system with this repair's changes written into its spec."""
        from faultmesh.model.spec import from_document, to_document
        from faultmesh.model.spec.edit import apply_changes

        return from_document(apply_changes(to_document(system), self.changes),
                             f"<{system.name} repaired>")

    def to_json(self) -> dict[str, Any]:
        return {"description": self.description, "changes": dict(self.changes)}


@dataclass(frozen=True)
class Verdict:
    name: str
    kind: str
    status: Status
    explanation: str
    counterexample: Counterexample | None = None
    repair: Repair | None = None
    seconds: float = 0.0

    def to_scenario(self, *, at: float = 60.0, duration: float = 120.0,
                    total: float | None = None, warmup: float = 10.0) -> Scenario:
        """The counterexample as a scenario: its failures crash at ``at`` for ``duration``.

        Replaying it in the simulator shows dynamically what the proof predicted: the entries
        in ``counterexample.down`` lose availability during the window, the others do not. An
        empty failure set (a service overloaded with nothing failed) replays as the plain
        workload over the same window: the nominal run is the counterexample.
        """
        if self.counterexample is None:
            raise ValueError(f"{self.name} has no counterexample to replay ({self.status})")
        faults: tuple[Fault, ...] = tuple(
            Crash(at=at, duration=duration, target=parse_target(failure))
            for failure in self.counterexample.failures)
        if self.counterexample.trigger:
            # A trigger keeps its own length; the run goes on long enough to see what follows.
            faults += tuple(replace(f, at=at + f.at) for f in self.counterexample.trigger)
        end = total if total is not None else at + duration + max(60.0, at)
        return Scenario(f"replay-{self.name}", faults, end, warmup)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "status": self.status,
            "counterexample": self.counterexample.to_json() if self.counterexample else None,
            "explanation": self.explanation,
            "repair": self.repair.to_json() if self.repair else None,
            "seconds": round(self.seconds, 6),
        }


def overall(statuses: list[Status]) -> Status:
    """violated beats unknown beats holds."""
    if "violated" in statuses:
        return "violated"
    if "unknown" in statuses:
        return "unknown"
    return "holds"


@dataclass(frozen=True)
class Report:
    system: str
    verdicts: tuple[Verdict, ...]

    @property
    def verdict(self) -> Status:
        return overall([v.status for v in self.verdicts])

    def __getitem__(self, name: str) -> Verdict:
        for v in self.verdicts:
            if v.name == name:
                return v
        raise KeyError(name)

    def to_json(self) -> dict[str, Any]:
        return {"system": self.system, "verdict": self.verdict,
                "properties": [v.to_json() for v in self.verdicts]}

    def _repr_html_(self) -> str:
        """A table for Jupyter: one row per property, coloured by status."""
        colours = {"holds": "#1e8449", "violated": "#c0392b", "unknown": "#b9770e"}
        rows = []
        for v in self.verdicts:
            ce = v.counterexample
            witness = ""
            if ce is not None:
                parts = []
                if ce.failures:
                    parts.append("failures: " + ", ".join(ce.failures))
                if ce.down:
                    parts.append("down: " + ", ".join(ce.down))
                if ce.degraded:
                    parts.append("degraded: " + ", ".join(f"{e} ({share:.2%})"
                                                          for e, share in ce.degraded.items()))
                if ce.chain:
                    parts.append("chain: " + " → ".join(ce.chain))
                witness = "<br>".join(html.escape(p) for p in parts)
            repair = html.escape(v.repair.description) if v.repair else ""
            rows.append(
                f"<tr><td>{html.escape(v.name)}</td>"
                f"<td style='color:{colours[v.status]};font-weight:bold'>{v.status}</td>"
                f"<td>{format_duration(v.seconds)}</td><td>{html.escape(v.explanation)}</td>"
                f"<td>{witness}</td><td>{repair}</td></tr>"
            )
        colour = colours[self.verdict]
        return (
            f"<div><b>{html.escape(self.system)}</b>: "
            f"<span style='color:{colour};font-weight:bold'>{self.verdict}</span>"
            "<table><thead><tr><th>property</th><th>status</th><th>time</th>"
            "<th>explanation</th><th>counterexample</th><th>repair</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table></div>"
        )
