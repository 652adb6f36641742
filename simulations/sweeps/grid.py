"""The grid of a sweep: ``--set PATH=V1,V2,...`` read into ``{key path: [values]}``.

A path is a key path into the spec document in ``model.spec.edit``'s grammar (the one repairs
speak too): ``services.cart.replicas``, ``workload[0].rate``,
``services.frontend.endpoints.home.calls[0].timeout``. Values are read as YAML scalars (``2``,
``250ms``, ``true``, ``{exponential: 2ms}``), split on the commas outside brackets and quotes.
Whether a path exists in the spec is checked when the sweep is planned (``plan``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import yaml

from faultmesh.model.spec.edit import EditError, KeyPath, parse_key
from faultmesh.model.spec.errors import format_path
from faultmesh.simulations.sweeps.errors import SweepInputError


def parse_path(text: str) -> KeyPath:
    """``services.a.calls[0].timeout`` -> ``('services', 'a', 'calls', 0, 'timeout')``."""
    try:
        return tuple(parse_key(text.strip()))
    except EditError as exc:
        raise SweepInputError(exc.message) from None


def canonical_path(text: str) -> str:
    """The one spelling of a path (``workload[0].rate``), so two spellings are one key."""
    return format_path(parse_path(text))


def split_values(text: str) -> list[str]:
    """Split ``V1,V2,...`` on the commas outside brackets and quotes."""
    items: list[str] = []
    depth, quote, start = 0, "", 0
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            items.append(text[start:i])
            start = i + 1
    items.append(text[start:])
    return [item.strip() for item in items]


def parse_value(text: str) -> Any:
    """One value, read as YAML (``2`` -> 2, ``250ms`` -> '250ms', ``true`` -> True)."""
    if not text:
        raise SweepInputError("empty value")
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SweepInputError(f"cannot read {text!r} as a YAML value: {problem}") from None


def parse_set(text: str) -> tuple[str, list[Any]]:
    """``PATH=V1,V2,...`` -> (path, [values]); raises SweepInputError naming the --set."""
    path, sep, values = text.partition("=")
    if not sep:
        raise SweepInputError(f"--set {text}: expected PATH=V1,V2,... (no '=' found)")
    path = path.strip()
    try:
        parse_path(path)
        parsed = [parse_value(v) for v in split_values(values)]
    except SweepInputError as exc:
        raise SweepInputError(f"--set {text}: {exc}") from None
    if len(set(map(canonical, parsed))) != len(parsed):
        raise SweepInputError(f"--set {text}: a value is repeated")
    return path, parsed


def parse_grid(sets: Iterable[str]) -> dict[str, list[Any]]:
    """Several ``--set`` texts -> an ordered grid ``{path: [values]}``."""
    grid: dict[str, list[Any]] = {}
    for text in sets:
        path, values = parse_set(text)
        key = canonical_path(path)
        if key in grid:
            raise SweepInputError(f"--set {text}: {key} is already set by another --set")
        grid[key] = values
    return grid


def canonical(value: Any) -> str:
    """A value as text that is equal exactly when the values are (run ids, repeats)."""
    return json.dumps(value, sort_keys=True, default=str)


def setting(path: str, value: Any) -> str:
    """How a user would have written one value of the grid: ``--set PATH=VALUE``."""
    shown = value if isinstance(value, str) else yaml.safe_dump(
        value, default_flow_style=True, width=10**6).strip().removesuffix("\n...")
    return f"--set {path}={shown}"


__all__ = ["canonical", "canonical_path", "parse_grid", "parse_path", "parse_set",
           "parse_value", "setting", "split_values"]
