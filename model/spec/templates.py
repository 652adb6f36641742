"""Expanding a spec's shorthands before validation: service templates and operation labels.

A service's keys are merged, lowest first, from ``defaults.service``, then each template it
``extends`` (a name or a list; a template may extend others, resolved the same way first),
then its own keys. The merge is deep for mappings (an ``endpoints`` mapping gains the template's
endpoints, a ``signature`` keeps the keys it does not override) and replaces everything else:
a later list or scalar wins whole. Inside the merged service, ``endpoint_defaults`` is merged
under every endpoint the same way. So replicas, workers, zones, signature errors and the
settings all endpoints share are written once.

Positions travel with the values: a key a service got from a template is located at the
template's line, under the service's path, so a bad merged value names both.

Endpoint names that are not plain names (``"GET /api/v1/orders/{id}"``) become one: every run
of other characters turns into ``_``, and the original is kept as the endpoint's ``label``.
Two keys that turn into the same name are an error (no silent collision). A reference
``service.<label>`` (a call, a workload entry, a property's entry) is rewritten to the name.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from faultmesh.model.spec.yaml_source import Path, Source

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]*$")
_OTHER = re.compile(r"[^A-Za-z0-9_-]+")


def plain_name(text: str) -> str:
    """The endpoint name for an operation label: runs of other characters become ``_``."""
    name = _OTHER.sub("_", text).strip("_")
    return name.lstrip("-") or "_"


def deep_merge(low: Any, high: Any) -> Any:
    """``high`` over ``low``: mappings merge key by key, anything else is replaced whole."""
    if isinstance(low, dict) and isinstance(high, dict):
        out = dict(low)
        for key, value in high.items():
            out[key] = deep_merge(low[key], value) if key in low else copy.deepcopy(value)
        return out
    return copy.deepcopy(high)


def _origins(value: Any, root: Path, sub: Path, into: dict[Path, Path]) -> None:
    """Record, for each sub-path of ``value``, the path in the file it came from."""
    into[sub] = (*root, *sub)
    if isinstance(value, dict):
        for key, item in value.items():
            _origins(item, root, (*sub, key), into)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _origins(item, root, (*sub, index), into)


class Expander:
    """Expands one document in place, adding positions and located errors to its Source."""

    def __init__(self, source: Source) -> None:
        self.source = source
        data = source.data
        self.data: dict[str, Any] = data if isinstance(data, dict) else {}
        templates = self.data.get("templates")
        self.templates: dict[str, Any] = templates if isinstance(templates, dict) else {}
        self.resolved: dict[str, list[tuple[Path, Any]]] = {}
        # Services whose templates could not be resolved: keys they miss are not news.
        self.broken: set[str] = set()

    def fail(self, path: Path, message: str, *, key: bool = False) -> None:
        self.source.errors.append(self.source.error(path, message, key=key))

    # --- templates ----------------------------------------------------------------------

    def _extends(self, body: dict[str, Any], path: Path) -> list[tuple[str, Path]]:
        names = body.get("extends")
        if names is None:
            return []
        if isinstance(names, str):
            return [(names, (*path, "extends"))]
        if isinstance(names, list) and all(isinstance(n, str) for n in names):
            return [(n, (*path, "extends", i)) for i, n in enumerate(names)]
        return []  # the schema reports the type

    def layers(self, name: str, at: Path, trail: tuple[str, ...]) -> list[tuple[Path, Any]]:
        """The layers template ``name`` contributes, lowest first (its own last)."""
        if name in trail:
            cycle = " -> ".join((*trail[trail.index(name):], name))
            self.fail(at, f"templates extend each other in a cycle: {cycle}")
            return []
        if name not in self.templates:
            from faultmesh.model.spec.build import did_you_mean

            known = ", ".join(self.templates) or "none are defined"
            self.fail(at, f"unknown template {name!r}{did_you_mean(name, self.templates)}"
                      f" (templates: {known})")
            return []
        if name in self.resolved:
            return self.resolved[name]
        body = self.templates[name]
        if not isinstance(body, dict):
            return []
        path: Path = ("templates", name)
        out: list[tuple[Path, Any]] = []
        for parent, where in self._extends(body, path):
            out.extend(self.layers(parent, where, (*trail, name)))
        out.append((path, body))
        self.resolved[name] = out
        return out

    def service(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        path: Path = ("services", name)
        layers: list[tuple[Path, Any]] = []
        defaults = self.data.get("defaults")
        if isinstance(defaults, dict) and isinstance(defaults.get("service"), dict):
            layers.append((("defaults", "service"), defaults["service"]))
        for template, where in self._extends(body, path):
            errors = len(self.source.errors)
            layers.extend(self.layers(template, where, ()))
            if len(self.source.errors) > errors:
                self.broken.add(name)
        if not layers and "endpoint_defaults" not in body:
            return body
        merged: Any = {}
        origin: dict[Path, Path] = {}
        for root, layer in [*layers, (path, body)]:
            layer = {k: v for k, v in layer.items() if k != "extends"}
            merged = deep_merge(merged, layer)
            _origins(layer, root, (), origin)
        if "extends" in body:
            merged["extends"] = body["extends"]
        endpoints = merged.get("endpoints")
        shared = merged.get("endpoint_defaults")
        if isinstance(endpoints, dict) and isinstance(shared, dict):
            for ep_name, ep in list(endpoints.items()):
                if isinstance(ep, dict) or ep is None:
                    own = ep or {}
                    endpoints[ep_name] = deep_merge(shared, own)
                    sub = ("endpoints", ep_name)
                    paths: dict[Path, Path] = {}
                    _origins(shared, (), (), paths)
                    for rest in paths:
                        found = origin.get(("endpoint_defaults", *rest))
                        if rest and found is not None and not _within(own, rest):
                            origin[(*sub, *rest)] = found
        self._copy_marks(path, origin)
        return merged

    def _copy_marks(self, path: Path, origin: dict[Path, Path]) -> None:
        source = self.source
        for sub, where in origin.items():
            target = (*path, *sub)
            if where == target:
                continue
            for marks in (source.value_marks, source.key_marks):
                if where in marks:
                    marks[target] = marks[where]

    # --- labels ---------------------------------------------------------------------------

    def labels(self, owner: Path, body: dict[str, Any]) -> dict[str, str]:
        """Give non-name endpoint keys a name and a label; the label -> name map."""
        endpoints = body.get("endpoints")
        if not isinstance(endpoints, dict):
            return {}
        if all(isinstance(k, str) and _NAME.match(k) for k in endpoints):
            return {}
        renamed: dict[str, Any] = {}
        by_label: dict[str, str] = {}
        taken: dict[str, str] = {}
        base: Path = (*owner, "endpoints")
        for key, value in endpoints.items():
            text = str(key)
            name = text if _NAME.match(text) else plain_name(text)
            if name in taken:
                self.fail((*base, key), f"endpoint {text!r} becomes the name {name!r}, which "
                          f"{taken[name]!r} already has; give one of them another name and "
                          "keep the operation as its 'label'", key=True)
                continue
            taken[name] = text
            if name != text:
                by_label[text] = name
                if isinstance(value, dict):
                    value = {"label": text, **value}
                elif value is None:
                    value = {"label": text}
                self._move_marks((*base, key), (*base, name))
            renamed[name] = value
        body["endpoints"] = renamed
        for name, value in renamed.items():
            if isinstance(value, dict) and isinstance(value.get("label"), str):
                by_label.setdefault(value["label"], name)
        return by_label

    def _move_marks(self, old: Path, new: Path) -> None:
        n = len(old)
        for marks in (self.source.value_marks, self.source.key_marks):
            for path in [p for p in marks if p[:n] == old]:
                marks[(*new, *path[n:])] = marks[path]

    # --- the whole ------------------------------------------------------------------------

    def expand(self) -> None:
        services = self.data.get("services")
        if not isinstance(services, dict):
            return
        labels: dict[str, dict[str, str]] = {}
        # Templates first, so a label's name (and a collision) is settled where it is written.
        defaults = self.data.get("defaults")
        if isinstance(defaults, dict) and isinstance(defaults.get("service"), dict):
            self.labels(("defaults", "service"), defaults["service"])
        for name, body in self.templates.items():
            if isinstance(body, dict):
                self.labels(("templates", name), body)
        for name, body in list(services.items()):
            if isinstance(body, dict):
                services[name] = merged = self.service(str(name), body)
                found = self.labels(("services", name), merged)
                if found:
                    labels[str(name)] = found
        workload = self.data.get("workload")
        if isinstance(workload, dict):  # one item written as a mapping
            self.data["workload"] = [workload]
            self._move_marks(("workload",), ("workload", 0))
        if labels:
            self._rewrite_refs(labels)

    def _rewrite_refs(self, labels: dict[str, dict[str, str]]) -> None:
        def ref(text: Any) -> Any:
            if not isinstance(text, str):
                return text
            service, dot, rest = text.partition(".")
            return f"{service}.{labels[service][rest]}" if (
                dot and service in labels and rest in labels[service]) else text

        def call_item(item: Any) -> Any:
            if isinstance(item, str):
                return ref(item)
            if not isinstance(item, dict):
                return item
            out = dict(item)
            for key in ("call", "fallback"):
                if key in out:
                    out[key] = call_item(out[key]) if key == "fallback" else ref(out[key])
            for key in ("parallel", "one_of", "calls"):
                if isinstance(out.get(key), list):
                    out[key] = [call_item(c) for c in out[key]]
            if isinstance(out.get("group"), dict):
                out["group"] = call_item(out["group"])
            return out

        for body in self.data["services"].values():
            endpoints = body.get("endpoints") if isinstance(body, dict) else None
            for ep in (endpoints or {}).values() if isinstance(endpoints, dict) else ():
                if isinstance(ep, dict) and isinstance(ep.get("calls"), list):
                    ep["calls"] = [call_item(c) for c in ep["calls"]]
        for item in self.data.get("workload") or ():
            if isinstance(item, dict):
                if "entry" in item:
                    item["entry"] = ref(item["entry"])
                if isinstance(item.get("mix"), dict):
                    item["mix"] = {ref(k): v for k, v in item["mix"].items()}
                sessions = item.get("sessions")
                if isinstance(sessions, dict) and isinstance(sessions.get("steps"), list):
                    sessions["steps"] = [ref(s) for s in sessions["steps"]]
        for prop in self.data.get("properties") or ():
            if isinstance(prop, dict):
                for body in prop.values():
                    if isinstance(body, dict) and "entry" in body:
                        body["entry"] = ref(body["entry"])


def _within(data: Any, sub: Path) -> bool:
    """Does ``data`` hold the path ``sub``?"""
    node = data
    for step in sub:
        inside = (step in node) if isinstance(node, dict) else (
            isinstance(node, list) and isinstance(step, int) and 0 <= step < len(node))
        if not inside:
            return False
        node = node[step]
    return True


def expand(source: Source) -> set[str]:
    """Expand templates, endpoint defaults and labels of ``source.data`` in place; the
    services whose ``extends`` failed (their missing keys follow from that error)."""
    expander = Expander(source)
    expander.expand()
    return expander.broken


def consequence(path: str, message: str, broken: set[str]) -> bool:
    """Is this error only a consequence of a service's failed ``extends``?"""
    return message.startswith("missing required key") and any(
        path.startswith(f"services.{name}.") for name in broken)
