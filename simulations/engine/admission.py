"""What a run is checked against before it starts: its scenario, found by name, and its cost
(``model.cost``: a run that cannot finish is refused, a long one warned about).
``simulation.simulate`` calls these; the CLI resolves the scenario itself first.
"""

from __future__ import annotations

import difflib

from faultmesh.model.faults import Scenario
from faultmesh.model.system import System


class UnknownScenario(ValueError):
    """The spec has no scenario of that name."""

    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        self.known = known
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        listing = ", ".join(known) if known else "none"
        super().__init__(f"unknown scenario {name!r}{hint} (scenarios: {listing})")


def resolve_scenario(system: System, scenario: str | Scenario | None) -> Scenario | None:
    if scenario is None or isinstance(scenario, Scenario):
        return scenario
    if scenario not in system.scenarios:
        raise UnknownScenario(scenario, list(system.scenarios))
    return system.scenarios[scenario]


def check_cost(system: System, scenario: Scenario | None, seconds: float) -> None:
    """Refuse a run that cannot finish; warn before a long one (see ``model.cost``)."""
    import warnings

    from faultmesh.model.cost import LongRun, estimate, long_run, refusal, too_fast

    cost = estimate(system, scenario, seconds)
    refused = refusal(cost)
    if refused is not None:
        raise refused
    for _, message in too_fast(system):
        warnings.warn(message, LongRun, stacklevel=3)
    said = long_run(cost)
    if said is not None:
        warnings.warn(said, LongRun, stacklevel=3)
