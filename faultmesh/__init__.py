"""faultmesh: prove what holds, show what breaks, and watch it break.

The public API, for scripts and notebooks::

    import faultmesh

    system = faultmesh.load("specs/zone_outage_shop.yaml")   # frozen, validated System
    report = faultmesh.verify(system, failures=1)             # Report of Verdicts
    run = faultmesh.simulate(system, "zone-a-outage", seed=1) # Run: summary, DataFrames, plots
    faultmesh.replay(system, report["survives"])              # a counterexample, simulated
    runs = faultmesh.sweep(system, seeds=5, grid={...})       # DataFrame, one row per run
    faultmesh.plots.timeline(run)                             # matplotlib Figures

The two halves live beside this package in the repository and are installed under it:
``faultmesh.model`` (the formal model and the verifier; pure, no SimPy or matplotlib) and
``faultmesh.simulations`` (the SimPy engine, observation, presentation and sweeps). The command
line (``faultmesh.cli``) sits above both. Names load on first use, so ``import faultmesh`` is
cheap and the CLI starts quickly.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from faultmesh.model import (
        Report,
        SpecError,
        SpecErrors,
        System,
        Verdict,
        dump,
        json_schema,
        load,
        loads,
        verify,
    )
    from faultmesh.simulations import Run, UnknownScenario, simulate, summarize, sweep
    from faultmesh.simulations.presentation import plots
    from faultmesh.simulations.replay import replay

__version__ = "0.1.0"

# public name -> module that defines it (loaded on first access)
_EXPORTS: dict[str, str] = {
    "load": "faultmesh.model",
    "loads": "faultmesh.model",
    "dump": "faultmesh.model",
    "json_schema": "faultmesh.model",
    "verify": "faultmesh.model",
    "System": "faultmesh.model",
    "Report": "faultmesh.model",
    "Verdict": "faultmesh.model",
    "SpecError": "faultmesh.model",
    "SpecErrors": "faultmesh.model",
    "simulate": "faultmesh.simulations",
    "sweep": "faultmesh.simulations",
    "summarize": "faultmesh.simulations",
    "Run": "faultmesh.simulations",
    "UnknownScenario": "faultmesh.simulations",
    "replay": "faultmesh.simulations.replay",
}
_SUBMODULES = {"plots": "faultmesh.simulations.presentation.plots",
               "model": "faultmesh.model", "simulations": "faultmesh.simulations"}

__all__ = [
    "Report", "Run", "SpecError", "SpecErrors", "System", "UnknownScenario", "Verdict", "dump",
    "json_schema", "load", "loads", "plots", "replay", "simulate", "summarize", "sweep", "verify",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(import_module(_EXPORTS[name]), name)
    elif name in _SUBMODULES:
        value = import_module(_SUBMODULES[name])
    else:
        raise AttributeError(f"module 'faultmesh' has no attribute {name!r}")
    globals()[name] = value  # later lookups skip this hook
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS, *_SUBMODULES])
