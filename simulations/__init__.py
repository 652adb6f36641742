"""The simulator: SimPy runs of a System through failure scenarios.

``simulate(system, scenario, duration=..., seed=...) -> Run`` is the entry point. The folder
shows the split:

``engine/``        the SimPy engine's parts, composed by ``engine.simulation``
``observation/``   metrics, monitors, phases and the ``Run`` they produce
``presentation/``  plots, the HTML report and the terminal view (the engine never imports it)
``sweeps/``        many (system, scenario, seed) runs in parallel, and their tables
``breakers.py``, ``balancers.py``, ``outcomes.py``
                   pure logic with no SimPy: the breaker state machines, balancer choice and
                   the vocabulary of request outcomes (model-checked and unit-tested alone)
``replay.py``      a verifier counterexample run as a scenario

Heavy parts load on first use, so the pure modules import without SimPy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from faultmesh.simulations.engine.simulation import UnknownScenario, simulate
    from faultmesh.simulations.observation.results import Run
    from faultmesh.simulations.sweeps import summarize, sweep

__all__ = ["Run", "UnknownScenario", "simulate", "summarize", "sweep"]


def __getattr__(name: str) -> Any:
    if name in ("simulate", "UnknownScenario"):
        from faultmesh.simulations import engine

        return getattr(engine, name)
    if name == "Run":
        from faultmesh.simulations.observation.results import Run

        return Run
    if name in ("sweep", "summarize"):
        from faultmesh.simulations import sweeps

        return getattr(sweeps, name)
    raise AttributeError(f"module 'simulations' has no attribute {name!r}")
