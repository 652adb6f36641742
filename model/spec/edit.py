"""Editing spec data by key path: ``services.cart.placement`` or ``...calls[0].timeout``.

Repairs (``Repair.changes``) and sweeps (``--set``) both speak in key paths into the spec
document (``model.spec.to_document``); this module writes such changes into a copy of it.
"""

from __future__ import annotations

from model.verify.sites import apply_changes, parse_key

__all__ = ["apply_changes", "parse_key"]
