"""Editing a spec document by key path: ``services.cart.placement`` or ``...calls[0].timeout``.

Repairs (``Repair.changes``, applied by ``Repair.apply``) and sweeps (``--set PATH=V1,V2``) both
speak in key paths into the resolved spec document (``model.spec.to_document``: every default
written out); this module is the one editor both use, so they follow the same rules.

Paths are keys separated by ``.`` with list items as ``[index]``. A path must lead somewhere:
every step but the last must exist (the last may be a key the document omits, such as a
workload ``timeout``), and a path that does not is an ``EditError`` naming the step that is
wrong and what is there instead. ``defaults.*`` is refused: in a resolved document the defaults
have already been written into every service and call, so changing them would change nothing.

The resolved document repeats a few values; an edit changes what it names and keeps the rest
consistent, moving no replica it was not asked to move:

- a new ``services.S.replicas`` (without ``services.S.placement``) scales S's placement:
  existing replicas stay in their zones, a new one goes to the zone with the fewest of S's
  replicas (earlier zones first on ties), and one taken away leaves the zone with the most
  (later zones first). From a round-robin spread this gives the round-robin spread of the new
  count, the placement a spec that names only ``replicas`` gets.
- a new ``services.S.placement`` (or one zone's count, ``services.S.placement.b``) without
  ``services.S.replicas`` sets ``replicas`` to the number it places.
- new ``zones`` keep every placement that is not changed too, except that replicas in a zone no
  longer listed move to the listed zones, fewest first (a repair that adds a zone moves
  nothing; a sweep that removes one re-spreads what was there).
- a new ``orchestration.restart`` or ``readiness`` (or a key under it) reaches every service
  that had the old value, since that is where the resolved document wrote it.

A call written as a bare ``"svc.endpoint"`` string is expanded to ``{call: ...}`` when a key
under it is set.
"""

from __future__ import annotations

import copy
import difflib
import re
from collections.abc import Iterable, Mapping
from typing import Any

from faultmesh.model.spec.errors import format_path
from faultmesh.model.spec.limits import MAX_REPLICAS

KeyPath = tuple[str | int, ...]

_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")

_DEFAULTS_HINT = (
    "'defaults' has no effect here: the document being edited has every default resolved into "
    "the services and calls; set the value where it applies, e.g. "
    "services.SVC.endpoints.EP.calls[0].timeout or services.SVC.load_balancer")

# orchestration keys the resolved document copies into every service that uses them
_INHERITED = ("restart", "readiness")


class EditError(ValueError):
    """A key path that cannot be read or set; ``path`` is the path as written, ``message`` what
    is wrong with it (naming the step)."""

    def __init__(self, path: str, message: str):
        self.path, self.message = path, message
        super().__init__(f"{path}: {message}" if path else message)


def parse_key(path: str) -> list[str | int]:
    """``services.a.endpoints.x.calls[0].timeout`` -> ``['services', 'a', ..., 0, 'timeout']``."""
    steps: list[str | int] = []
    position = 0
    for match in _STEP.finditer(path):
        gap = path[position:match.start()]
        if gap not in ("", ".") or (gap == "." and (match.group(1) is None or not steps)) \
                or (gap == "" and steps and match.group(1) is not None):
            break
        steps.append(match.group(1) if match.group(1) is not None else int(match.group(2)))
        position = match.end()
    else:
        if steps and position == len(path):
            return steps
    raise EditError(path, "cannot read this key path: write keys separated by '.' and list "
                    "items as [index], e.g. services.cart.endpoints.get.calls[0].timeout")


def _describe(node: Any) -> str:
    if isinstance(node, dict):
        return "a mapping"
    if isinstance(node, list):
        return f"a list of {len(node)}"
    if isinstance(node, bool):
        return "a boolean"
    if isinstance(node, int | float):
        return "a number"
    return "a string" if isinstance(node, str) else "empty"


def check_key(document: Mapping[str, Any], path: str | KeyPath) -> KeyPath:
    """The steps of ``path``; raises EditError unless it can be set in ``document``.

    Every step but the last must exist; the last may be a key the document omits (an unlimited
    ``queue``, a workload ``timeout``), which validating the edited document then accepts or
    refuses. A bare call string counts as the mapping it abbreviates.
    """
    text = path if isinstance(path, str) else format_path(path)
    steps = tuple(parse_key(path)) if isinstance(path, str) else tuple(path)
    if steps[:1] == ("defaults",):
        raise EditError(text, _DEFAULTS_HINT)
    node: Any = document
    for depth, step in enumerate(steps):
        where = format_path(steps[:depth]) or "the spec"
        if isinstance(step, int):
            if not isinstance(node, list):
                raise EditError(text, f"{where} is {_describe(node)}, not a list: [{step}] "
                                "does not apply")
            if step >= len(node):
                raise EditError(text, f"{where} has {len(node)} item"
                                f"{'s' if len(node) != 1 else ''}; [{step}] is out of range")
            node = node[step]
            continue
        if isinstance(node, str) and _is_call_list(steps[:depth - 1]):
            node = {"call": node}
        if not isinstance(node, dict):
            raise EditError(text, f"{where} is {_describe(node)}, not a mapping: no key "
                            f"{step!r}")
        if step not in node:
            if depth == len(steps) - 1:
                break
            close = difflib.get_close_matches(step, [str(k) for k in node], n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else \
                f"; it has {', '.join(map(repr, list(node)[:12]))}" if node else ""
            raise EditError(text, f"unknown key {step!r} in {where}{hint}")
        node = node[step]
    return steps


def _is_call_list(steps: KeyPath) -> bool:
    return bool(steps) and steps[-1] in ("calls", "parallel")


def _assign(document: Any, steps: KeyPath, value: Any) -> None:
    node = document
    for depth, step in enumerate(steps[:-1]):
        child = node[step]
        if isinstance(child, str) and isinstance(step, int) and _is_call_list(steps[:depth]):
            child = node[step] = {"call": child}
        node = child
    node[steps[-1]] = copy.deepcopy(value)


def _copy(value: Any) -> Any:
    """A deep copy of spec data: plain dicts, lists and scalars are copied directly (several
    times faster than ``copy.deepcopy``, which a 10,000-service repair felt); anything else
    goes through ``deepcopy``."""
    kind = type(value)
    if kind is dict:
        return {k: _copy(v) for k, v in value.items()}
    if kind is list:
        return [_copy(v) for v in value]
    if kind in (str, int, float, bool) or value is None:
        return value
    return copy.deepcopy(value)


def apply_changes(document: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of the resolved spec document with each ``key path -> value`` change written in,
    and the values it repeats kept consistent (see the module's docstring).

    Raises EditError, naming the path, for a path that does not lead anywhere in the document.
    The values themselves are not checked here: ``from_document`` does that.
    """
    out: dict[str, Any] = _copy(dict(document))
    paths = {key: check_key(out, key) for key in changes}
    old_zones = out.get("zones")
    for key, steps in paths.items():
        value = changes[key]
        if steps[0] == "orchestration" and len(steps) >= 2 and steps[1] in _INHERITED:
            _spread_orchestration(out, steps, value)
        _assign(out, steps, value)
    services = out.get("services")
    if not isinstance(services, dict):
        return out
    zones = out.get("zones")
    new_zones: list[str] | None = zones if zones != old_zones and _names(zones) else None
    # Grouped once by service: a repair may change thousands of services.
    by_service: dict[Any, list[KeyPath]] = {}
    for steps in paths.values():
        if len(steps) >= 2 and steps[0] == "services":
            by_service.setdefault(steps[1], []).append(steps)
    for name, service in services.items():
        if not isinstance(service, dict):
            continue
        named = by_service.get(name, [])
        replicas_named = any(steps[2:] == ("replicas",) for steps in named)
        placement_named = any(steps[2:3] == ("placement",) for steps in named)
        if placement_named:
            if not replicas_named:
                _replicas_follow_placement(service)
            continue
        if new_zones is not None:
            _leave_removed_zones(service, new_zones)
        if replicas_named and isinstance(zones, list):
            _scale_placement(service, zones)
    return out


def _names(zones: Any) -> bool:
    return isinstance(zones, list) and bool(zones) and all(isinstance(z, str) for z in zones)


def _spread_orchestration(document: dict[str, Any], steps: KeyPath, value: Any) -> None:
    """Write an orchestration change into every service that had the old value too."""
    old = document["orchestration"].get(steps[1])
    for service in (document.get("services") or {}).values():
        if isinstance(service, dict) and steps[1] in service and service[steps[1]] == old:
            try:
                check_key(service, steps[1:])
            except EditError:
                continue  # a different shape there ("never"): that service is left alone
            _assign(service, steps[1:], value)


def _counts(placement: Any) -> dict[str, int] | None:
    """A placement's counts, or None when it is not a mapping of zone -> count."""
    if not isinstance(placement, dict) or not all(
            isinstance(n, int) and not isinstance(n, bool) and n >= 0
            for n in placement.values()):
        return None
    return dict(placement)


def _replicas_follow_placement(service: dict[str, Any]) -> None:
    counts = _counts(service.get("placement"))
    if counts is not None:
        service["replicas"] = sum(counts.values())


def _leave_removed_zones(service: dict[str, Any], zones: list[str]) -> None:
    counts = _counts(service.get("placement"))
    if counts is None:
        return
    moving = sum(n for z, n in counts.items() if z not in zones)
    kept = {z: n for z, n in counts.items() if z in zones}
    service["placement"] = _add(kept, zones, moving)


def _scale_placement(service: dict[str, Any], zones: Iterable[str]) -> None:
    """Bring the placement to the new ``replicas``, moving none of the replicas that stay."""
    replicas = service.get("replicas")
    counts = _counts(service.get("placement"))
    if counts is None:
        return
    if isinstance(replicas, bool) or not isinstance(replicas, int) \
            or not 1 <= replicas <= MAX_REPLICAS:
        # The value is refused when the document is validated; a placement kept beside it would
        # only add a second complaint about the same mistake.
        service.pop("placement", None)
        return
    order = [z for z in zones if isinstance(z, str)]
    order += [z for z in counts if z not in order]
    have = sum(counts.values())
    if replicas > have:
        counts = _add(counts, order, replicas - have)
    else:
        for _ in range(have - replicas):
            most = max(reversed(order), key=lambda z: counts.get(z, 0))
            counts[most] -= 1
    service["placement"] = {z: counts[z] for z in order if counts.get(z)}


def _add(counts: dict[str, int], zones: list[str], count: int) -> dict[str, int]:
    """``count`` more replicas, each in the zone with the fewest (earlier zones on ties).

    Computed as the water level those one-by-one choices reach, not one by one (a repair
    adding a thousand replicas over a thousand zones made that a million steps per service):
    every zone below the level rises to it, and what is left goes one each to the zones at
    the level, earliest first."""
    out = {z: counts.get(z, 0) for z in zones}
    out.update({z: n for z, n in counts.items() if z not in out})
    if count > 0 and zones:
        low = sorted(out[z] for z in zones)
        k, below = 1, low[0]  # the k lowest zones, ``below`` replicas in all
        while k < len(low) and k * low[k] - below <= count:
            below += low[k]
            k += 1
        level = (count + below) // k  # the k lowest all reach it (the next zone is higher)
        left = count + below - level * k
        for z in zones:
            if out[z] < level:
                out[z] = level
        for z in zones:
            if left and out[z] == level:
                out[z] += 1
                left -= 1
    return {z: n for z, n in out.items() if n}


__all__ = ["EditError", "KeyPath", "apply_changes", "check_key", "parse_key"]
