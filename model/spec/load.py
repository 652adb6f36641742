"""Reading a spec file: YAML -> validated Spec -> System, or every located error at once."""

from __future__ import annotations

import difflib
import os
from functools import cache
from typing import Any

from pydantic import ValidationError

from model.spec import schema as S
from model.spec.build import Builder
from model.spec.errors import SpecError, SpecErrors
from model.spec.yaml_source import Path, Source, read_yaml
from model.system import System

# Larger files are refused before parsing: no real topology needs this much YAML.
MAX_SPEC_BYTES = 16 * 1024 * 1024


@cache
def _known_keys() -> tuple[str, ...]:
    return tuple(sorted(S.all_keys()))


def _data_path(data: Any, loc: tuple[Any, ...]) -> tuple[Path, bool]:
    """Map a pydantic error location onto a path into the YAML data.

    Pydantic inserts union tags (``~call``), type names and ``[key]`` into locations; we keep
    only the steps that exist in the data. Returns (path, whether the error is about a key).
    """
    path: list[Any] = []
    node = data
    about_key = False
    for index, step in enumerate(loc):
        if step == "[key]":
            about_key = True
            continue
        in_dict = isinstance(node, dict) and step in node
        in_list = isinstance(node, list) and isinstance(step, int) and 0 <= step < len(node)
        if in_dict or in_list:
            path.append(step)
            node = node[step]  # type: ignore[index]
        elif index == len(loc) - 1 and isinstance(node, dict) and isinstance(step, str):
            # The last step names a key that is not there: a missing required key.
            path.append(step)
    return tuple(path), about_key


def _message(error: Any, path: Path, source: Source) -> tuple[str, bool]:
    """A person's message for one pydantic error; and whether it points at a key."""
    kind, given = error["type"], error.get("input")
    if kind == "extra_forbidden":
        key = str(path[-1])
        close = difflib.get_close_matches(key, _known_keys(), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"unknown key {key!r}{hint}", True
    if kind == "missing":
        return f"missing required key {path[-1]!r}", True
    if kind in ("unknown_property",):
        keys = list(given) if isinstance(given, dict) else []
        known = tuple(S.PROPERTY_MODELS)
        if len(keys) == 1:
            hint = _hint(str(keys[0]), known) or "; known: " + ", ".join(known)
            return f"unknown property {keys[0]!r}{hint}", True
        return f"a property is a one-key mapping {{kind: {{...}}}} with kind one of " \
               f"{', '.join(known)}", False
    if kind == "value_error":
        return str(error["msg"]).removeprefix("Value error, "), False
    if kind == "string_pattern_mismatch":
        pattern = error.get("ctx", {}).get("pattern")
        if pattern == S.REF_PATTERN:
            return f"expected 'service.endpoint', got {given!r}", False
        return (f"{given!r} is not a valid name: use letters, digits, '_' and '-' "
                "(no dots or colons)"), False
    msg = str(error["msg"])
    if given is not None and not isinstance(given, dict | list):
        msg += f", got {given!r}"
    return msg, False


def _hint(word: str, candidates: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def validation_errors(exc: ValidationError, source: Source) -> list[SpecError]:
    errors = []
    for error in exc.errors(include_url=False):
        path, about_key = _data_path(source.data, tuple(error["loc"]))
        message, key = _message(error, path, source)
        errors.append(source.error(path, message, key=key or about_key))
    # A union reports one error per variant; keep the ones deepest in the file per path.
    return _dedupe(errors)


def _dedupe(errors: list[SpecError]) -> list[SpecError]:
    seen: set[tuple[str, str]] = set()
    out = []
    for e in errors:
        if (e.path, e.message) not in seen:
            seen.add((e.path, e.message))
            out.append(e)
    return out


def loads(text: str, file: str = "<spec>") -> System:
    """Load a spec from YAML text; raises SpecErrors listing every located problem."""
    source = read_yaml(text, file)
    if not isinstance(source.data, dict):
        raise SpecErrors([*source.errors, source.error(
            (), "a spec is a mapping with at least 'system' and 'services'")])
    try:
        spec = S.Spec.model_validate(source.data)
    except ValidationError as exc:
        raise SpecErrors([*source.errors, *validation_errors(exc, source)]) from None
    builder = Builder(spec, source)
    system = builder.build()
    if source.errors or builder.errors:
        raise SpecErrors([*source.errors, *builder.errors])
    return system


def load(path: str | os.PathLike[str]) -> System:
    """Load a spec file; raises SpecErrors (located) or OSError (unreadable file)."""
    name = os.fspath(path)
    if os.path.isdir(name):
        raise SpecErrors([SpecError(name, 0, 0, "", "is a directory, not a spec file")])
    try:
        size = os.path.getsize(name)
    except OSError as exc:
        raise SpecErrors([SpecError(name, 0, 0, "", f"cannot read: {exc.strerror}")]) from None
    if size > MAX_SPEC_BYTES:
        raise SpecErrors([SpecError(name, 0, 0, "", f"is {size:,} bytes; a spec may be at most "
                                    f"{MAX_SPEC_BYTES:,}")])
    try:
        with open(name, encoding="utf-8") as handle:
            text = handle.read()
    except UnicodeDecodeError as exc:
        raise SpecErrors([SpecError(name, 0, 0, "", f"is not UTF-8 text ({exc.reason})")]) from None
    except OSError as exc:
        raise SpecErrors([SpecError(name, 0, 0, "", f"cannot read: {exc.strerror}")]) from None
    return loads(text, name)


def from_document(data: Any, file: str = "<document>") -> System:
    """Build a System from spec data already in memory (a dict as YAML would give).

    Errors carry the key path but no line numbers, since there is no file text.
    """
    source = Source(file, data)
    if not isinstance(data, dict):
        raise SpecErrors([source.error((), "a spec is a mapping")])
    try:
        spec = S.Spec.model_validate(data)
    except ValidationError as exc:
        raise SpecErrors(validation_errors(exc, source)) from None
    builder = Builder(spec, source)
    system = builder.build()
    if builder.errors:
        raise SpecErrors(builder.errors)
    return system
