"""The formal model of a microservice system M = (S, C, D, O).

``load(path) -> System`` reads a spec; ``verify(system) -> Report`` proves or refutes its
properties with Z3 (Z3 itself loads only when a checker needs it). Nothing here imports SimPy
or matplotlib.

Names load on first use (PEP 562), so importing one module of the model (``model.units``,
``model.spec.errors``) does not load the spec loader and its pydantic schema: the command line
starts without them. ``verify`` is the function, never the subpackage of the same name:
importing the subpackage records it as an attribute of this package, which the module class
below ignores (the subpackage stays reachable as ``sys.modules["faultmesh.model.verify"]``).
"""

from __future__ import annotations

import sys
import types
from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from faultmesh.model.spec.dump import dump
    from faultmesh.model.spec.errors import SpecError, SpecErrors
    from faultmesh.model.spec.load import load, loads
    from faultmesh.model.spec.schema import json_schema
    from faultmesh.model.system import System
    from faultmesh.model.verify import Report, Verdict, verify

# public name -> module that defines it (loaded on first access)
_EXPORTS: dict[str, str] = {
    "SpecError": "faultmesh.model.spec.errors", "SpecErrors": "faultmesh.model.spec.errors",
    "dump": "faultmesh.model.spec.dump", "json_schema": "faultmesh.model.spec.schema",
    "load": "faultmesh.model.spec.load", "loads": "faultmesh.model.spec.load",
    "System": "faultmesh.model.system", "Report": "faultmesh.model.verify.verdict",
    "Verdict": "faultmesh.model.verify.verdict",
}

__all__ = ["Report", "SpecError", "SpecErrors", "System", "Verdict", "dump", "json_schema", "load",
           "loads", "verify"]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(_EXPORTS[name]), name)
    globals()[name] = value  # later lookups skip this hook
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS, "verify"])


class _Model(types.ModuleType):
    """This package's module type: ``verify`` always names the function."""

    @property
    def verify(self) -> Any:
        return import_module("faultmesh.model.verify").verify

    @verify.setter
    def verify(self, value: Any) -> None:
        pass  # the import system recording the subpackage: the name keeps the function


sys.modules[__name__].__class__ = _Model
