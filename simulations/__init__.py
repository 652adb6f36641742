"""The simulator: SimPy runs of a System through failure scenarios, and the CLI.

``simulations.simulate(system, scenario, duration=..., seed=...) -> Run`` is the entry point
(see ``simulations.engine``). It is imported on first use, so the pure modules
(``simulations.breakers``, ``simulations.balancers``) load without SimPy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from simulations.engine import UnknownScenario, simulate
    from simulations.results import Run
    from simulations.sweeps import summarize, sweep

__all__ = ["Run", "UnknownScenario", "simulate", "summarize", "sweep"]


def __getattr__(name: str) -> Any:
    if name in ("simulate", "UnknownScenario"):
        from simulations import engine

        return getattr(engine, name)
    if name == "Run":
        from simulations.results import Run

        return Run
    if name in ("sweep", "summarize"):
        from simulations import sweeps

        return getattr(sweeps, name)
    raise AttributeError(f"module 'simulations' has no attribute {name!r}")
