"""Importers: deployment files people already have -> spec documents (no simulation here).

One module per source: ``k8s`` (Kubernetes manifests, with the Istio kinds in them handled by
``istio``), ``compose`` (Docker Compose), ``traces`` (Jaeger and OTLP JSON). Each returns a
``common.Draft``: spec data, comments on the keys it assumed, and a header saying where each
part came from. ``merge`` folds a draft into an existing spec without losing a user's key.
"""

from faultmesh.model.importers.common import Draft, ImportFailed

__all__ = ["Draft", "ImportFailed"]
