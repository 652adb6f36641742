"""Sizes that grew without bound before (issue 15): sweep plans and rate-breaker windows.

``sweep --seeds 3000000`` planned silently for minutes: a sweep is now counted before it is
planned, refused past ``MAX_RUNS`` (exit 2) and announced otherwise. A rate breaker allocated
a byte per call of its window for every edge or instance: its window is now run-length
encoded, so its memory follows the changes of outcome inside the window, not its size.
"""

from __future__ import annotations

import random
import tracemalloc
from collections import deque
from pathlib import Path

import pytest

from faultmesh.cli import main
from faultmesh.model.system import RateBreakerPolicy
from faultmesh.simulations.breakers import CircuitBreaker
from faultmesh.simulations.sweeps import SweepInputError
from faultmesh.simulations.sweeps.plan import MAX_RUNS, plan, planned_runs

SPECS = Path(__file__).resolve().parent.parent / "specs"
MM1 = SPECS / "mm1.yaml"


# --- sweeps ------------------------------------------------------------------------------------


def test_planned_runs_multiplies_scenarios_values_and_seeds() -> None:
    assert planned_runs({}, 5) == 5
    assert planned_runs({"a": [1, 2, 3], "b": [1, 2]}, 4, scenarios=2) == 48


@pytest.mark.parametrize(("seeds", "grid", "said"), [
    (3_000_000, None, "3,000,000 runs (1 grid point x --seeds 3,000,000)"),
    (2, {"services.server.workers": list(range(1, 301)),
         "workload[0].rate": [f"{r}/s" for r in range(1, 301)]},
     "180,000 runs (90,000 grid points x --seeds 2)"),
])
def test_a_sweep_past_the_bound_is_refused_before_planning(
        seeds: int, grid: dict[str, list[object]] | None, said: str) -> None:
    with pytest.raises(SweepInputError) as caught:
        plan(MM1, seeds=seeds, grid=grid)
    assert said in str(caught.value)
    assert f"at most {MAX_RUNS:,}" in str(caught.value)


def test_the_bound_itself_is_allowed() -> None:
    assert len(plan(MM1, seeds=MAX_RUNS, duration="1s").runs) == MAX_RUNS


def test_sweep_cli_refuses_too_many_seeds_with_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["sweep", str(MM1), "--seeds", "3000000"])
    err = capsys.readouterr().err
    assert code == 2
    assert "3,000,000 runs" in err and "--seeds" in err
    assert "Traceback" not in err


def test_sweep_cli_says_how_many_runs_before_starting(
        capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["sweep", str(MM1), "--seeds", "2", "--duration", "1s", "--backend", "serial",
                 "--set", "services.server.workers=1,2"])
    err = capsys.readouterr().err
    assert code == 0
    announced = err.index("sweep mm1: 4 runs planned (2 grid points x 2 seeds)")
    assert announced < err.index("4 runs\n")


# --- rate breaker window -------------------------------------------------------------------


def policy(window: int, **extra: float) -> RateBreakerPolicy:
    options: dict[str, float] = {"failure_rate": 0.5, "min_calls": 10, "open_for": 10.0,
                                 "half_open_calls": 2, **extra}
    return RateBreakerPolicy(window=window, **options)  # type: ignore[arg-type]


def allocated_by(make: object) -> int:
    tracemalloc.start()
    try:
        keep = make()  # type: ignore[operator]
        size, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del keep
    return size


def test_a_breaker_memory_does_not_grow_with_its_window() -> None:
    small = allocated_by(lambda: CircuitBreaker(policy(10)))
    large = allocated_by(lambda: CircuitBreaker(policy(100_000)))
    assert large < small + 1024  # a byte per call of the window was 100 kB


def test_steady_traffic_keeps_the_window_to_a_few_runs() -> None:
    breaker = CircuitBreaker(policy(100_000))
    now = 0.0
    for i in range(300_000):
        now += 0.001
        assert breaker.allow(now)
        # One failure in a thousand calls: far below the 50 % threshold.
        breaker.record(now, ok=i % 1000 != 0)
    runs = breaker._runs  # type: ignore[attr-defined]
    assert isinstance(runs, deque)
    assert len(runs) <= 2 * 100 + 1  # 100 failures in the window, each between ok runs
    assert breaker.state == "closed"


class NaiveRateWindow:
    """The window as a plain list of the last ``window`` outcomes (the definition)."""

    def __init__(self, p: RateBreakerPolicy) -> None:
        self.p = p
        self.calls: list[tuple[bool, bool]] = []
        self.state = "closed"
        self.opened_at = 0.0

    def record(self, now: float, ok: bool, duration: float) -> None:
        slow = self.p.slow_call_duration is not None and duration > self.p.slow_call_duration
        self.calls = [*self.calls, (not ok, slow)][-self.p.window:]
        n = len(self.calls)
        if n < min(self.p.min_calls, self.p.window):
            return
        failed = sum(f for f, _ in self.calls)
        slowed = sum(s for _, s in self.calls)
        if failed / n >= self.p.failure_rate or slowed / n >= self.p.slow_call_rate:
            self.state = "open"
            self.opened_at = now


@pytest.mark.parametrize("window", [1, 2, 7, 50])
def test_run_length_window_opens_exactly_when_the_definition_does(window: int) -> None:
    p = policy(window, min_calls=5, slow_call_duration=1.0, slow_call_rate=0.6)
    rng = random.Random(window)
    for _ in range(40):
        breaker = CircuitBreaker(p)
        naive = NaiveRateWindow(p)
        burst = rng.random()
        for step in range(400):
            ok = rng.random() > burst * 0.6
            duration = rng.choice([0.5, 2.0]) if rng.random() < burst else 0.5
            breaker.record(float(step), ok, duration)
            naive.record(float(step), ok, duration)
            assert breaker.state == naive.state, (window, step)
            if naive.state == "open":
                break
