"""The formal model of a microservice system M = (S, C, D, O).

``load(path) -> System`` reads a spec; ``verify(system) -> Report`` proves or refutes its
properties with Z3 (Z3 itself loads only when a checker needs it). Nothing here imports SimPy
or matplotlib.
"""

from faultmesh.model.spec import SpecError, SpecErrors, dump, json_schema, load, loads
from faultmesh.model.system import System

# Imported last and by name: ``model.verify`` must be the function, not the subpackage of the
# same name that this import loads.
from faultmesh.model.verify import Report, Verdict, verify

__all__ = ["Report", "SpecError", "SpecErrors", "System", "Verdict", "dump", "json_schema", "load",
           "loads", "verify"]
