"""Replaying a proof's counterexample as a simulation, and checking the two agree.

``verify`` says "this failure set takes these entries down". ``replay`` crashes exactly that
failure set for a window of the run (``Verdict.to_scenario``) and measures each entry's
availability inside the window, once discovery and breakers have had time to react. The proof
and the simulation agree when every entry predicted down is mostly down in the window and
every other entry stays up.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from faultmesh.model.verify.verdict import Verdict
from faultmesh.simulations.engine.simulation import simulate

if TYPE_CHECKING:
    from faultmesh.model.system import System
    from faultmesh.simulations.observation.results import Run
    from matplotlib.figure import Figure

# An entry predicted down must serve at most this share of its requests in the window; an
# entry predicted up at least this share. Far apart on purpose: the proof speaks of up/down,
# the simulation of rates, and the gap absorbs requests in flight when the failure starts.
DOWN_AT_MOST = 0.5
UP_AT_LEAST = 0.95


@dataclass(frozen=True)
class EntryReplay:
    entry: str
    predicted_down: bool
    availability: float | None  # inside the failure window; None without requests there

    @property
    def agrees(self) -> bool:
        if self.availability is None:
            return True  # nothing arrived in the window: nothing to contradict
        if self.predicted_down:
            return self.availability <= DOWN_AT_MOST
        return self.availability >= UP_AT_LEAST


@dataclass(frozen=True)
class Replay:
    verdict: Verdict
    run: Run
    window: tuple[float, float]
    entries: tuple[EntryReplay, ...]

    @property
    def agrees(self) -> bool:
        return all(e.agrees for e in self.entries)

    def to_json(self) -> dict[str, Any]:
        return {
            "property": self.verdict.name,
            "failures": list(self.verdict.counterexample.failures)
            if self.verdict.counterexample else [],
            "window_s": list(self.window),
            "agrees": self.agrees,
            "entries": [{"entry": e.entry, "predicted": "down" if e.predicted_down else "up",
                         "availability": e.availability, "agrees": e.agrees}
                        for e in self.entries],
        }

    def plot(self) -> Figure:
        from faultmesh.simulations.presentation import plots

        return plots.timeline(self.run)

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{html.escape(e.entry)}</td><td>{'down' if e.predicted_down else 'up'}</td>"
            f"<td>{'n/a' if e.availability is None else f'{e.availability:.1%}'}</td>"
            f"<td>{'✓' if e.agrees else '✗'}</td></tr>"
            for e in self.entries)
        head = "agrees with the proof" if self.agrees else "DISAGREES with the proof"
        failures = ", ".join(self.verdict.counterexample.failures) \
            if self.verdict.counterexample else ""
        return (f"<div><b>replay of {html.escape(self.verdict.name)}</b> "
                f"(crash {html.escape(failures)} during {self.window[0]:g}–{self.window[1]:g}s):"
                f" {head}<table><thead><tr><th>entry</th><th>predicted</th>"
                f"<th>availability in window</th><th>agrees</th></tr></thead>"
                f"<tbody>{rows}</tbody></table></div>")


def window_availability(run: Run, entry: str, start: float, end: float) -> float | None:
    """Share of the entry's requests that succeeded among those timed in [start, end)."""
    frame = run.timeline
    rows = frame[(frame["entry"] == entry) & (frame["time_s"] >= start) & (frame["time_s"] < end)]
    requests = int(rows["requests"].sum())
    return None if requests == 0 else float(rows["ok"].sum()) / requests


def replay(system: System, verdict: Verdict, *, at: float = 60.0, duration: float = 120.0,
           settle: float = 15.0, after: float = 60.0, seed: int = 0) -> Replay:
    """Simulate the verdict's counterexample and compare each entry with the prediction.

    ``settle`` seconds after the failure starts are left out of the comparison: requests in
    flight, client caches and breakers need a moment, which the proof does not model. The
    run goes on ``after`` seconds past the window, so the timeline shows the recovery too.
    """
    scenario = verdict.to_scenario(at=at, duration=duration, total=at + duration + after,
                                   warmup=min(10.0, at / 2))
    run = simulate(system, scenario, seed=seed)
    down = set(verdict.counterexample.down) if verdict.counterexample else set()
    start, end = at + settle, at + duration
    entries = tuple(EntryReplay(entry, entry in down, window_availability(run, entry, start, end))
                    for entry in system.entries)
    return Replay(verdict, run, (start, end), entries)
