"""The spec language: YAML in (``load``), YAML out (``dump``), JSON Schema for editors."""

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

__all__ = ["SpecError", "SpecErrors", "SpecWarning", "dump", "from_document", "json_schema",
           "load", "load_with_warnings", "loads", "loads_with_warnings", "to_document"]
