"""Stability sweeps and the stability map: recovery read from a run's timeline, the verifier's
boundary against the simulated one, the figure, and ``faultmesh sweep --stability``.

The acceptance grid is issue 11's example (``specs/retry_storm.yaml``: ``front -> back``, back
4 workers at 10 ms, a 50 ms per-try timeout, a 10 s +100 ms latency trigger) over 8 workload
rates x 8 retry counts, with fast settings: the trigger at 10 s, 40 s runs, one seed, and a
90 % target (the simulated outcomes are ~0 % or ~99 %: 90 % tells them apart whatever the
noise of a 5 s window at the spec's 99 %).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from matplotlib.collections import LineCollection

import faultmesh
from faultmesh.cli import main
from faultmesh.model.spec import from_document, to_document
from faultmesh.model.spec.edit import apply_changes
from faultmesh.model.system import System
from faultmesh.simulations.presentation.stability_plot import (
    BOUNDARY_GID,
    axis_label,
    boundary_segments,
    stability_map,
)
from faultmesh.simulations.sweeps import SweepInputError
from faultmesh.simulations.sweeps.plan import plan
from faultmesh.simulations.sweeps.stability import (
    RecoveryOptions,
    boundary_agreement,
    predicted,
    recovery,
    stability_table,
)

pd = pytest.importorskip("pandas")

ROOT = Path(__file__).resolve().parent.parent
STORM = ROOT / "specs" / "retry_storm.yaml"
RATES = [f"{25 * k}/s" for k in range(1, 9)]  # 25/s .. 200/s: up to half of back's capacity
RETRIES = list(range(8))
BACK_CAPACITY = 4 / 0.010  # back: 4 workers, 10 ms mean service time -> 400 attempts/s
FAST = RecoveryOptions(target=0.9, window=5.0)  # 90 %: far from both 0 % and the ~99 % baseline


def storm() -> System:
    """The example with its trigger moved to t = 10 s and a 5 s warm-up, in 40 s runs."""
    system = faultmesh.load(STORM)
    return from_document(apply_changes(to_document(system), {
        "scenarios.trigger.faults[0].at": "10s", "scenarios.trigger.warmup": "5s",
        "scenarios.trigger.duration": "40s"}), f"<{system.name}, trigger at 10 s>")


def axes(system: System) -> tuple[str, str]:
    """The two swept key paths: the entry's rate and its first call's retries."""
    service, endpoint = system.workload[0].entry.split(".")
    return "workload[0].rate", f"services.{service}.endpoints.{endpoint}.calls[0].retries"


@pytest.fixture(scope="module")
def storm_map() -> tuple[Any, float]:
    """The 8 x 8 acceptance grid, swept once for the tests below (and timed, for the report)."""
    import time

    system = storm()
    rate, retries = axes(system)
    start = time.perf_counter()
    runs = faultmesh.sweep(system, scenario="trigger", seeds=1, grid={rate: RATES,
                           retries: RETRIES}, stability=FAST, progress=False, workers=2)
    return stability_table(runs), time.perf_counter() - start


# --- recovery from a timeline (pure) -----------------------------------------------------------


def bins(values: list[float], per_bin: int = 100) -> tuple[list[float], list[float], list[float]]:
    """One-second bins of ``per_bin`` requests each, ``values[i]`` of them ok (as a share)."""
    return ([float(i) for i in range(len(values))], [float(per_bin)] * len(values),
            [v * per_bin for v in values])


def test_recovery_is_the_start_of_the_last_unbroken_good_stretch() -> None:
    # 0-4 fine, 5-9 the fault, 10-12 at 50 %, 13-19 fine: with 3 s windows, [12, 15) has
    # (50 + 100 + 100) / 300 = 83 % < 90 %, so the first window that passes (and all after it)
    # starts at 13 s: 3 s after the fault.
    starts, requests, ok = bins([1.0] * 5 + [0.0] * 5 + [0.5] * 3 + [1.0] * 7)
    at, before, after = recovery(starts, requests, ok, width=1.0, fault_start=5.0,
                                 fault_end=10.0, duration=20.0, target=0.9, window=3.0)
    assert at == 13.0
    assert before == 1.0
    assert after == pytest.approx((3 * 50 + 7 * 100) / 1000)


def test_a_relapse_at_the_end_is_not_a_recovery() -> None:
    starts, requests, ok = bins([1.0] * 10 + [1.0] * 6 + [0.2] * 4)
    at, _, _ = recovery(starts, requests, ok, width=1.0, fault_start=2.0, fault_end=4.0,
                        duration=20.0, target=0.9, window=3.0)
    assert at is None


def test_recovery_needs_a_window_after_the_fault_and_a_silent_window_is_down() -> None:
    starts, requests, ok = bins([1.0] * 10)
    assert recovery(starts, requests, ok, width=1.0, fault_start=5.0, fault_end=8.0,
                    duration=10.0, window=3.0)[0] is None  # only 2 s left
    assert recovery(starts, requests, ok, width=1.0, fault_start=2.0, fault_end=4.0,
                    duration=10.0, window=3.0)[0] == 4.0
    # Nothing ends in the last three seconds (requests hang): not recovered.
    requests[7] = ok[7] = requests[8] = ok[8] = requests[9] = ok[9] = 0.0
    assert recovery(starts, requests, ok, width=1.0, fault_start=2.0, fault_end=4.0,
                    duration=10.0, window=3.0)[0] is None


def test_windows_are_counted_in_bins_of_the_timeline() -> None:
    # 2 s bins: a 4 s window is two bins; the bin at 8 s is below target on its own (60 %) but
    # the window [8, 12) is at 80 % >= 75 %.
    starts = [0.0, 2.0, 4.0, 6.0, 8.0, 10.0, 12.0]
    requests = [10.0] * 7
    ok = [10.0, 0.0, 0.0, 5.0, 6.0, 10.0, 10.0]
    at, _, _ = recovery(starts, requests, ok, width=2.0, fault_start=2.0, fault_end=6.0,
                        duration=14.0, target=0.75, window=4.0)
    assert at == 8.0


# --- the boundary and the figure (synthetic tables) ----------------------------------------


def table(recovered: dict[tuple[int, int], float], says: dict[tuple[int, int], str]) -> Any:
    rows = [{"x": f"{10 * (i + 1)}/s", "y": j, "recovered": recovered[(i, j)],
             "time_to_recover_s": 2.0 if recovered[(i, j)] else math.nan,
             "predicted": says[(i, j)]} for (i, j) in sorted(recovered)]
    frame = pd.DataFrame(rows)
    frame.attrs["params"] = ["x", "y"]
    return frame


def boundary_lines(figure: Any) -> list[LineCollection]:
    """The verifier's boundary as drawn on the map (by its gid)."""
    return [c for c in figure.axes[0].collections
            if isinstance(c, LineCollection) and c.get_gid() == BOUNDARY_GID]


def test_agreement_within_one_step_and_beyond() -> None:
    # 4 x 1 grid along x: simulated recovers at x0, x1; the verifier says holds at x0..x2.
    sim = {(0, 0): 1.0, (1, 0): 1.0, (2, 0): 0.0, (3, 0): 0.0}
    says = {(0, 0): "holds", (1, 0): "holds", (2, 0): "holds", (3, 0): "violated"}
    agreement = boundary_agreement(table(sim, says), "x", "y")
    assert agreement.disagree == [("30/s", 0)] and agreement.within_one_step
    says[(3, 0)] = "holds"  # x3 disagrees, and its only neighbour (x2) stayed down too
    agreement = boundary_agreement(table(sim, says), "x", "y")
    assert agreement.beyond_one_step == [("40/s", 0)] and not agreement.within_one_step
    unknown = boundary_agreement(table(sim, dict.fromkeys(says, "unknown")), "x", "y")
    assert unknown.predicted == 0 and not unknown.within_one_step


def test_boundary_segments_run_along_the_cell_edges_where_the_prediction_changes() -> None:
    # 2 x 2: holds only at (0, 0) -> one vertical edge at x = 0.5 and one horizontal at y = 0.5.
    says = {(0, 0): "holds", (1, 0): "violated", (0, 1): "violated", (1, 1): "violated"}
    assert sorted(map(sorted, boundary_segments(says))) == [
        [(-0.5, 0.5), (0.5, 0.5)], [(0.5, -0.5), (0.5, 0.5)]]
    assert boundary_segments({**says, (0, 0): "unknown"}) == []


def test_the_map_draws_the_boundary_and_labels_the_axes_with_units() -> None:
    sim = {(i, j): float(i + j < 3) for i in range(3) for j in range(3)}
    says = {k: "holds" if sum(k) < 3 else "violated" for k in sim}
    figure = stability_map(table(sim, says))
    ax = figure.axes[0]
    lines = boundary_lines(figure)
    assert len(lines) == 1 and len(lines[0].get_segments()) == len(boundary_segments(says)) > 0
    assert ax.get_xlabel() == "x (per s)" and ax.get_ylabel() == "y"
    texts = {t.get_text() for t in ax.texts}
    assert "down" in texts and "2s" in texts
    none = stability_map(table(sim, dict.fromkeys(says, "unknown")))
    assert not boundary_lines(none)
    assert axis_label("a.timeout", ["50ms", "100ms"]) == "a.timeout (ms)"
    assert axis_label("a.retries", [1, 2]) == "a.retries"


# --- planning a stability sweep --------------------------------------------------------------


def test_a_stability_sweep_needs_a_trigger_that_ends_with_room_after_it() -> None:
    system = storm()
    with pytest.raises(SweepInputError, match="needs a --scenario"):
        plan(system, seeds=1, stability=True)
    with pytest.raises(SweepInputError, match="recovery needs at least 5s after it"):
        plan(system, scenario="trigger", duration="22s", seeds=1, stability=True)
    document = to_document(system)
    del document["scenarios"]["trigger"]["faults"][0]["for"]
    endless = from_document(document, "<endless>")
    with pytest.raises(SweepInputError, match="lasts to the end of the run"):
        plan(endless, scenario="trigger", seeds=1, stability=True)
    planned = plan(system, scenario="trigger", seeds=1, stability=FAST)
    assert planned.recovery is not None and planned.recovery.entry == system.workload[0].entry
    assert planned.to_json()["stability"]["target"] == 0.9
    assert "stability" not in plan(system, scenario="trigger", seeds=1).to_json()


# --- the acceptance grid ---------------------------------------------------------------------


def test_the_simulated_boundary_is_the_fluid_one_within_a_grid_step(storm_map: Any) -> None:
    # Hand computation (no verifier): once the backlog makes every attempt time out, back is
    # asked for (retries + 1) x rate attempts per second, every one served; it recovers only
    # when that is below its 400/s. The simulation must agree within one grid step.
    found, _ = storm_map
    rate, retries = axes(storm())
    fluid = found.assign(predicted=[
        "holds" if (n + 1) * float(r.removesuffix("/s")) < BACK_CAPACITY else "violated"
        for r, n in zip(found[rate], found[retries], strict=True)])
    agreement = boundary_agreement(fluid, rate, retries)
    assert agreement.within_one_step, agreement
    assert 8 <= int((found["recovered"] > 0.5).sum()) <= 56  # both sides are on the map
    assert len(found) == 64
    stayed = found[found["recovered"] == 0]
    assert (stayed["availability_after"] < 0.1).all()  # a collapse, not a near miss
    assert found.loc[found["recovered"] == 1, "time_to_recover_s"].notna().all()


def test_the_verifier_boundary_is_within_a_grid_step_of_the_simulated_one(
        storm_map: Any) -> None:
    if predicted(storm()) == "unknown":
        pytest.skip("the verifier has no overload_recovery checker yet")
    found, seconds = storm_map
    rate, retries = axes(storm())
    agreement = boundary_agreement(found, rate, retries)
    assert agreement.within_one_step, agreement
    figure = stability_map(found, rate, retries)
    lines = boundary_lines(figure)
    assert lines and len(lines[0].get_segments()) >= 1
    print(f"8 x 8 stability map in {seconds:.1f}s; {len(agreement.disagree)} points differ")


# --- the command line ------------------------------------------------------------------------


def test_sweep_stability_writes_the_map_and_says_so(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "storm.yaml"
    spec.write_text(faultmesh.dump(storm()))
    rate, retries = axes(storm())
    code = main(["sweep", str(spec), "--scenario", "trigger", "--seeds", "1", "--backend",
                 "serial", "--set", f"{rate}=50/s,150/s", "--set", f"{retries}=1,3",
                 "--stability", "--out", str(tmp_path / "out")])
    captured = capsys.readouterr()
    assert code in (0, 1), captured.err
    maps = list((tmp_path / "out").glob("stability_map_*.png"))
    assert len(maps) == 1 and maps[0].stat().st_size > 0
    assert "stability: recovered at 3 of 4 points" in captured.err
    assert str(maps[0]) in captured.err.replace("\n", "")
    assert "recovered" in captured.out and "predicted" in captured.out


def test_sweep_stability_without_a_scenario_is_bad_input(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "storm.yaml"
    spec.write_text(faultmesh.dump(storm()))
    code = main(["sweep", str(spec), "--seeds", "1", "--set", "workload[0].rate=50/s",
                 "--stability"])
    captured = capsys.readouterr()
    assert code == 2
    assert "needs a --scenario" in captured.err and "Traceback" not in captured.err
