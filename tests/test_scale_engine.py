"""The engine's handling of Python's garbage collector around a run (``model.collector``):
tuned while the run goes, restored after it however it ends, and no growth run after run."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from faultmesh.model.collector import YOUNG_THRESHOLD, quiet_collector
from faultmesh.model.spec.load import load
from faultmesh.simulations import simulate

SPECS = Path(__file__).resolve().parent.parent / "specs"


@pytest.fixture(scope="module")
def mm1():  # type: ignore[no-untyped-def]
    return load(SPECS / "mm1.yaml")


def test_during_a_run_the_model_is_frozen_and_young_passes_are_rare(mm1) -> None:  # type: ignore[no-untyped-def]
    before = gc.get_threshold()
    seen: list[tuple[tuple[int, int, int], int]] = []
    simulate(mm1, duration=5, seed=1,
             progress=lambda now, total: seen.append((gc.get_threshold(), gc.get_freeze_count())))
    assert seen
    assert all(t[0] >= YOUNG_THRESHOLD and t[1:] == before[1:] for t, _ in seen)
    assert all(frozen > 0 for _, frozen in seen)
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


@pytest.mark.parametrize("stop", [KeyboardInterrupt, RuntimeError])
def test_the_collector_is_restored_when_a_run_is_stopped(mm1, stop: type[BaseException]) -> None:  # type: ignore[no-untyped-def]
    before = gc.get_threshold()

    def interrupt(now: float, total: float) -> None:
        raise stop

    with pytest.raises(stop):
        simulate(mm1, duration=5, seed=1, progress=interrupt)
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
    assert gc.isenabled()


def test_an_existing_freeze_is_left_alone() -> None:
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        with quiet_collector():
            pass
        assert gc.get_freeze_count() == frozen  # not unfrozen by us
    finally:
        gc.unfreeze()


def test_a_disabled_collector_stays_disabled() -> None:
    gc.disable()
    try:
        with quiet_collector():
            assert not gc.isenabled()
        assert not gc.isenabled()
        assert gc.get_freeze_count() == 0
    finally:
        gc.enable()


def test_repeated_runs_do_not_accumulate_objects(mm1) -> None:  # type: ignore[no-untyped-def]
    def live_after_run() -> int:
        simulate(mm1, duration=20, seed=3)
        gc.collect()
        return len(gc.get_objects())

    live_after_run()  # first run: caches, lazily imported modules
    baseline = live_after_run()
    counts = [live_after_run() for _ in range(4)]
    # Keeping even the returned Run alive would add over a hundred objects per run; a leak
    # of the run's requests, thousands.
    assert max(counts) - baseline < 50, (baseline, counts)


def test_what_a_block_without_collection_built_leaves_no_young_generation_to_walk() -> None:
    """Objects built inside a block without collection (a loaded spec) end in the oldest
    generation as a whole, not in the young one the next allocation would make the collector
    walk; they are still collectable (nothing stays frozen)."""
    gc.collect()
    with quiet_collector(collect=False):
        built = [{"i": i} for i in range(200_000)]
    young = len(gc.get_objects(generation=0))
    assert young < 5_000, young
    assert gc.get_freeze_count() == 0
    assert any(o is built for o in gc.get_objects(generation=2))
    del built
