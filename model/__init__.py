"""The formal model of a microservice system M = (S, C, D, O).

``load(path) -> System`` reads a spec; ``verify(system) -> Report`` proves or refutes its
properties with Z3. Nothing here imports SimPy or matplotlib.
"""

from model.spec import SpecError, SpecErrors, dump, json_schema, load, loads
from model.system import System

__all__ = ["SpecError", "SpecErrors", "System", "dump", "json_schema", "load", "loads", "verify"]


def __getattr__(name: str) -> object:
    # The verifier pulls in Z3; import it only when asked for.
    if name == "verify":
        from model.verify import verify

        return verify
    raise AttributeError(name)
