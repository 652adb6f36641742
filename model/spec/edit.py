"""Editing spec data by key path: ``services.cart.placement`` or ``...calls[0].timeout``.

Repairs (``Repair.changes``) and sweeps (``--set``) both speak in key paths into the spec
document (``model.spec.to_document``); this module writes such changes into a copy of it.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def parse_key(path: str) -> list[str | int]:
    """``services.a.endpoints.x.calls[0].timeout`` -> ``['services', 'a', ..., 0, 'timeout']``."""
    steps: list[str | int] = []
    position = 0
    for match in _STEP.finditer(path):
        gap = path[position:match.start()]
        if gap not in ("", ".") or (gap == "." and (match.group(1) is None or not steps)) \
                or (gap == "" and steps and match.group(1) is not None):
            raise ValueError(f"cannot read key path {path!r}")
        steps.append(match.group(1) if match.group(1) is not None else int(match.group(2)))
        position = match.end()
    if not steps or position != len(path):
        raise ValueError(f"cannot read key path {path!r}")
    return steps


def apply_changes(document: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of spec data with each ``key path -> value`` change written in.

    A call written as a bare ``"svc.endpoint"`` string is expanded to ``{call: ...}`` first, so
    a field can be set on it. Missing mapping keys are created; list indices must exist.
    """
    out: dict[str, Any] = copy.deepcopy(dict(document))
    for path, value in changes.items():
        steps = parse_key(path)
        node: Any = out
        for i, step in enumerate(steps[:-1]):
            following = steps[i + 1]
            if isinstance(step, int):
                if not isinstance(node, list) or not 0 <= step < len(node):
                    raise KeyError(f"{path}: no item {step}")
                if isinstance(node[step], str) and isinstance(following, str):
                    node[step] = {"call": node[step]}
                node = node[step]
            else:
                if not isinstance(node, dict):
                    raise KeyError(f"{path}: {step!r} is not in a mapping")
                if step not in node or node[step] is None:
                    node[step] = [] if isinstance(following, int) else {}
                node = node[step]
        node[steps[-1]] = copy.deepcopy(value)
    return out


__all__ = ["apply_changes", "parse_key"]
