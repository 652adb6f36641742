"""The spec language: YAML in (``load``), YAML out (``dump``), JSON Schema for editors.

Names load on first use (PEP 562): ``from faultmesh.model.spec import SpecErrors`` costs the
errors module alone, so a command line that only prints its help never builds the pydantic
schema (the largest part of start-up).
"""

from __future__ import annotations

import sys
from importlib import import_module
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from faultmesh.model.spec.dump import dump, to_document
    from faultmesh.model.spec.errors import SpecError, SpecErrors
    from faultmesh.model.spec.lint import SpecWarning
    from faultmesh.model.spec.load import (
        from_document,
        load,
        load_with_warnings,
        loads,
        loads_with_warnings,
    )
    from faultmesh.model.spec.schema import json_schema

# public name -> the module of this package that defines it
_EXPORTS: dict[str, str] = {
    "dump": "dump", "to_document": "dump", "SpecError": "errors", "SpecErrors": "errors",
    "SpecWarning": "lint", "from_document": "load", "load": "load",
    "load_with_warnings": "load", "loads": "load", "loads_with_warnings": "load",
    "json_schema": "schema",
}

__all__ = ["SpecError", "SpecErrors", "SpecWarning", "dump", "from_document", "json_schema",
           "load", "load_with_warnings", "loads", "loads_with_warnings", "to_document"]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = import_module(f"{__name__}.{_EXPORTS[name]}")
    # Bind every export of that module at once: importing ``spec.load`` sets this package's
    # ``load`` to the submodule, which would otherwise shadow the function of that name.
    globals().update({k: getattr(module, k) for k, m in _EXPORTS.items() if m == _EXPORTS[name]})
    return globals()[name]


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


class _SpecPackage(ModuleType):
    """Keeps ``load`` and ``dump`` the functions when their submodules are imported.

    Importing ``faultmesh.model.spec.load`` makes Python bind the submodule as this package's
    ``load`` attribute; a function and its module share the name, so the function is bound
    in its place (the submodule stays reachable through ``sys.modules``).
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if (isinstance(value, ModuleType) and value.__name__ == f"{__name__}.{name}"
                and _EXPORTS.get(name) == name):
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _SpecPackage
