"""Stability sweeps: did each grid point recover from its scenario's trigger, and did the
verifier predict it?

A stability sweep runs a scenario whose faults (or surges) are the *trigger*, at every point of
a grid. Each run's recovery is read from the entry's per-bin timeline after the last fault ends
(``recovery``, a pure function of the bins): the entry *recovers at* the earliest time ``t``
from which every ``window``-long stretch of the run has availability at least ``target``, up to
the end of the run; ``time_to_recover_s`` is ``t`` minus the end of the last fault. A run whose
last window still misses the target did not recover (a metastable point keeps failing after
the trigger is gone). ``within``, when set (by the option or the spec's ``recovers``
property), further asks that recovery happen within that many seconds.

Beside the simulation, every point's System is given to the verifier's ``overload_recovery``
property (the fluid model: does any overloaded state sustain itself at the nominal workload?);
its status is the point's ``predicted`` column (``holds``: predicted to recover). Both land in
the runs frame (``recovered``, ``time_to_recover_s``, ``availability_before``,
``availability_after``, ``predicted``); ``stability_table`` folds them per grid point and
``boundary_agreement`` says whether the verifier's boundary lies within one grid step of the
simulated one. ``faultmesh.plots.stability_map`` draws it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, TypedDict

from faultmesh.model.properties import Recovers
from faultmesh.simulations.sweeps.errors import SweepInputError

if TYPE_CHECKING:
    import pandas as pd

    from faultmesh.model.system import System
    from faultmesh.simulations.observation.results import Run

DEFAULT_TARGET = 0.99
DEFAULT_WINDOW = 5.0  # seconds: long enough that one unlucky second is not a relapse
# The columns a stability sweep adds to the runs frame (metrics: averaged by ``summarize``)
STABILITY_METRICS = ("recovered", "time_to_recover_s", "availability_before",
                     "availability_after")
PREDICTED = "predicted"
UNKNOWN = "unknown"


@dataclass(frozen=True)
class RecoveryOptions:
    """What counts as recovered: ``entry`` back to ``target`` availability over every
    ``window`` seconds to the end of the run (within ``within`` seconds of the last fault's end,
    when set). Unset, they come from ``resolve``. ``predict``: also ask the verifier
    (``overload_recovery``) at each point."""

    entry: str | None = None
    target: float | None = None
    window: float = DEFAULT_WINDOW
    within: float | None = None
    predict: bool = True


class Recovery(TypedDict):
    """One run's recovery from its trigger (a run summary's ``recovery`` key)."""

    entry: str
    target: float
    window_s: float
    fault_end_s: float
    recovered: bool
    recovered_at_s: float | None
    time_to_recover_s: float | None
    availability_before: float | None
    availability_after: float | None
    predicted: str


def _availability(requests: Sequence[float], ok: Sequence[float]) -> float | None:
    total = sum(requests)
    return None if total <= 0 else sum(ok) / total


def recovery(starts: Sequence[float], requests: Sequence[float], ok: Sequence[float], *,
             width: float, fault_start: float, fault_end: float, duration: float,
             warmup: float = 0.0, target: float = DEFAULT_TARGET,
             window: float = DEFAULT_WINDOW) -> tuple[float | None, float | None, float | None]:
    """From one entry's timeline bins: (recovered at, availability before, availability after).

    ``starts[i]`` is bin i's start (bins ``width`` seconds long, the last possibly cut by
    ``duration``); ``requests``/``ok`` its counts (requests that ended in the bin). Only the
    bins that start at or after ``fault_end`` count for recovery. Recovered at = the start of
    the earliest such bin from which every run of ``window`` seconds of bins has availability
    at least ``target``; a window in which no request ended counts as down (requests that hang
    are not a recovery). None when the last window misses it, or when fewer than ``window``
    seconds are left after the fault. Before = over the bins in
    [``warmup``, ``fault_start``); after = over the bins from ``fault_end`` to the end.
    """
    if width <= 0:
        raise ValueError("bin width must be positive")
    after = [i for i, s in enumerate(starts) if s >= fault_end - 1e-9]
    before = [i for i, s in enumerate(starts) if s >= warmup - 1e-9 and s + width <= fault_start
              + 1e-9]
    availability_before = _availability([requests[i] for i in before], [ok[i] for i in before])
    availability_after = _availability([requests[i] for i in after], [ok[i] for i in after])
    size = max(1, round(window / width))
    if len(after) < size:
        return None, availability_before, availability_after
    # Windows [j, j + size) over the bins after the fault; scanning from the last one back,
    # the recovery point is the first window of the final unbroken run of passing windows.
    recovered_at: float | None = None
    for j in range(len(after) - size, -1, -1):
        chosen = after[j:j + size]
        value = _availability([requests[i] for i in chosen], [ok[i] for i in chosen])
        if value is None or value < target:
            break
        recovered_at = starts[after[j]]
    return recovered_at, availability_before, availability_after


def trigger_window(system: System, scenario: str | None,
                   duration: float | None) -> tuple[float, float, float]:
    """(first fault start, last fault end, run length) of a scenario, checked for a stability
    sweep: there is one, it has faults, and they all end (``check_room`` checks the length)."""
    if scenario is None:
        raise SweepInputError("--stability needs a --scenario whose faults are the trigger")
    found = system.scenarios[scenario]
    if not found.faults:
        raise SweepInputError(f"--stability: scenario {scenario!r} has no faults: nothing "
                              "triggers an overload, so there is nothing to recover from")
    ends = [fault.end for fault in found.faults]
    if any(end is None for end in ends):
        raise SweepInputError(f"--stability: a fault of scenario {scenario!r} lasts to the end "
                              "of the run (no 'for'); recovery is measured after it ends")
    length = duration if duration is not None else found.duration
    if length is None:
        length = 60.0  # the engine's default run length
    last = max(end for end in ends if end is not None)
    return min(fault.at for fault in found.faults), last, length


def resolve(system: System, scenario: str | None, options: RecoveryOptions) -> RecoveryOptions:
    """The options with the entry, target and bound filled in, checked.

    The entry is the option's, else the one a ``recovers`` property of the spec names, else
    the only workload entry; ``target`` and ``within`` left unset come from that property
    (else 99 % and no bound).
    """
    trigger_window(system, scenario, None)  # a scenario with a trigger that ends
    recovers = [p for p in system.properties if isinstance(p, Recovers)]
    entries = list(dict.fromkeys(w.entry for w in system.workload))
    entry = options.entry
    chosen = next((p for p in recovers if entry is None or p.entry == entry), None)
    if entry is None:
        if chosen is not None:
            entry = chosen.entry
        elif len(entries) == 1:
            entry = entries[0]
        else:
            raise SweepInputError(
                "--stability: the spec has several workload entries and no 'recovers' "
                "property naming the one to watch; add one (recovers: {entry: SVC.EP}) or "
                "pass RecoveryOptions(entry=...)")
    if entry not in entries:
        raise SweepInputError(f"--stability: {entry} is not a workload entry of "
                              f"{system.name} (it has {', '.join(entries)})")
    target = options.target if options.target is not None else \
        chosen.to if chosen is not None else DEFAULT_TARGET
    within = options.within if options.within is not None else \
        chosen.within if chosen is not None else None
    if not 0 < target <= 1:
        raise SweepInputError(f"--stability: the target availability must be in (0, 1], "
                              f"got {target!r}")
    if options.window <= 0:
        raise SweepInputError("--stability: the window must be positive")
    if within is not None and within < 0:
        raise SweepInputError("--stability: the recovery bound must not be negative")
    return replace(options, entry=entry, target=target, within=within)


def check_room(system: System, scenario: str | None, duration: float | None,
               options: RecoveryOptions) -> None:
    """Refuse a run too short to see recovery: at least one window after the last fault."""
    _, last, length = trigger_window(system, scenario, duration)
    if length < last + options.window:
        raise SweepInputError(
            f"--stability: the runs last {length:g}s and the trigger ends at {last:g}s; "
            f"recovery needs at least {options.window:g}s after it (a longer --duration)")


def predicted(system: System) -> str:
    """The verifier's status of ``overload_recovery`` on this System (``unknown`` while the
    verifier has no checker for it)."""
    from faultmesh.model import verify
    from faultmesh.model.properties import OverloadRecovery

    return str(verify(system, properties=[OverloadRecovery()]).verdicts[0].status)


def recovery_of(run: Run, system: System, scenario: str | None,
                options: RecoveryOptions) -> Recovery:
    """A finished run's recovery (and, with ``options.predict``, the verifier's prediction)."""
    summary = run.summary
    entry = options.entry or next(iter(summary["entries"]))
    target = options.target if options.target is not None else DEFAULT_TARGET
    # The trigger as the scenario states it (surges included); planning made sure the run
    # outlasts it by a window.
    first, last, _ = trigger_window(system, scenario, summary["duration_s"])
    frame = run.timeline
    rows = frame[frame["entry"] == entry]
    starts = [float(s) for s in rows["time_s"]]
    width = starts[1] - starts[0] if len(starts) > 1 else summary["duration_s"]
    at, before, after = recovery(
        starts, [float(x) for x in rows["requests"]], [float(x) for x in rows["ok"]],
        width=width, fault_start=first, fault_end=last, duration=summary["duration_s"],
        warmup=float(summary["warmup_s"]), target=target, window=options.window)
    time_to_recover = None if at is None else max(0.0, at - last)
    recovered = time_to_recover is not None and (options.within is None
                                                 or time_to_recover <= options.within)
    return {"entry": entry, "target": target, "window_s": options.window,
            "fault_end_s": last, "recovered": recovered, "recovered_at_s": at,
            "time_to_recover_s": time_to_recover, "availability_before": before,
            "availability_after": after,
            "predicted": predicted(system) if options.predict else UNKNOWN}


def columns_of(record: Mapping[str, Any]) -> dict[str, Any]:
    """A run record's stability columns (empty for a run of an ordinary sweep)."""
    found = record.get("recovery")
    if not isinstance(found, Mapping):
        return {}

    def number(value: Any) -> float:
        return math.nan if value is None else float(value)

    return {"recovered": float(bool(found["recovered"])),
            "time_to_recover_s": number(found["time_to_recover_s"]),
            "availability_before": number(found["availability_before"]),
            "availability_after": number(found["availability_after"]),
            PREDICTED: str(found.get("predicted", UNKNOWN))}


def stability_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per grid point: the parameters, ``runs``, ``recovered`` (the share of seeds that
    recovered), ``time_to_recover_s`` (mean over the seeds that did; NaN if none did),
    ``availability_before``/``_after`` (means) and ``predicted`` (the verifier's status)."""
    import pandas as pd

    if "recovered" not in runs:
        raise ValueError("not a stability sweep: the runs have no 'recovered' column "
                         "(sweep with stability=True)")
    params = [p for p in runs.attrs.get("params", []) if p in runs]
    rows = []
    for _, group in runs.groupby("point", sort=True):
        row: dict[str, Any] = {"point": group["point"].iloc[0]}
        row.update({p: group[p].iloc[0] for p in params})
        row["runs"] = len(group)
        row["recovered"] = float(group["recovered"].mean())
        times = group.loc[group["recovered"] > 0, "time_to_recover_s"].dropna()
        row["time_to_recover_s"] = float(times.mean()) if len(times) else math.nan
        for column in ("availability_before", "availability_after"):
            row[column] = float(group[column].astype(float).mean())
        row[PREDICTED] = group[PREDICTED].iloc[0]
        rows.append(row)
    table = pd.DataFrame(rows)
    table.attrs.update({k: v for k, v in runs.attrs.items() if k in ("params", "system")})
    return table


@dataclass(frozen=True)
class Agreement:
    """How the verifier's predicted boundary compares with the simulated one on a 2-D grid.

    A point *disagrees* when the verifier's ``predicted`` (holds = recovers) differs from the
    simulation (recovered by a majority of its seeds). A disagreement is *within one step*
    when a grid neighbour (one step along either axis) was simulated as the verifier predicted
    this point: the boundary is then off by at most one grid step there.
    """

    points: int
    predicted: int  # points with a holds/violated prediction (not unknown)
    disagree: list[tuple[Any, Any]] = field(default_factory=list)
    beyond_one_step: list[tuple[Any, Any]] = field(default_factory=list)

    @property
    def within_one_step(self) -> bool:
        return self.predicted == self.points and not self.beyond_one_step


def simulated_recovers(recovered: float) -> bool:
    """A point recovered when a majority of its seeds did."""
    return recovered > 0.5


def boundary_agreement(table: pd.DataFrame, rows: str, cols: str) -> Agreement:
    """Compare ``predicted`` with the simulated outcome on the grid ``rows`` x ``cols`` of a
    ``stability_table``."""
    row_values = list(dict.fromkeys(table[rows]))
    col_values = list(dict.fromkeys(table[cols]))
    simulated: dict[tuple[int, int], bool] = {}
    verdict: dict[tuple[int, int], str] = {}
    for _, r in table.iterrows():
        key = (row_values.index(r[rows]), col_values.index(r[cols]))
        simulated[key] = simulated_recovers(float(r["recovered"]))
        verdict[key] = str(r[PREDICTED])
    known = {k: v == "holds" for k, v in verdict.items() if v in ("holds", "violated")}
    disagree, far = [], []
    for (i, j), says in known.items():
        if simulated[(i, j)] == says:
            continue
        point = (row_values[i], col_values[j])
        disagree.append(point)
        neighbours = [(i + di, j + dj) for di, dj in ((1, 0), (-1, 0), (0, 1), (0, -1))]
        if not any(simulated.get(n) == says for n in neighbours):
            far.append(point)
    return Agreement(len(simulated), len(known), disagree, far)


__all__ = ["DEFAULT_TARGET", "DEFAULT_WINDOW", "PREDICTED", "STABILITY_METRICS", "UNKNOWN",
           "Agreement", "Recovery", "RecoveryOptions", "boundary_agreement", "check_room",
           "columns_of", "predicted", "recovery", "recovery_of", "resolve",
           "simulated_recovers", "stability_table", "trigger_window"]
