"""What verification answers: a Verdict per property, gathered in a Report."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Status = Literal["holds", "violated", "unknown"]


@dataclass(frozen=True)
class Counterexample:
    """A smallest witness that a property fails.

    ``failures`` are failed components (``zone:a``, ``instance:cart-0``); ``down`` what they take
    down (``frontend.checkout``); ``chain`` the path that explains it (services or
    ``service.endpoint`` names, caller first); ``numbers`` the quantities involved.
    """

    failures: tuple[str, ...] = ()
    down: tuple[str, ...] = ()
    chain: tuple[str, ...] = ()
    numbers: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"failures": list(self.failures), "down": list(self.down)}
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

    @property
    def exit_code(self) -> int:
        return {"holds": 0, "violated": 1, "unknown": 3}[self.verdict]

    def __getitem__(self, name: str) -> Verdict:
        for v in self.verdicts:
            if v.name == name:
                return v
        raise KeyError(name)

    def to_json(self) -> dict[str, Any]:
        return {"system": self.system, "verdict": self.verdict,
                "properties": [v.to_json() for v in self.verdicts]}
