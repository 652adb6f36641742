"""Reading a spec file: YAML -> validated Spec -> System, or every located error at once."""

from __future__ import annotations

import copy
import difflib
import os
import stat
import sys
import types
from functools import cache
from typing import Annotated, Any, BinaryIO, Union, get_args, get_origin

from pydantic import BaseModel, Tag, ValidationError

from faultmesh.model.collector import quiet_collector
from faultmesh.model.spec import schema as S
from faultmesh.model.spec.build import Builder
from faultmesh.model.spec.errors import SpecError, SpecErrors
from faultmesh.model.spec.lint import SpecWarning, lint
from faultmesh.model.spec.templates import consequence, expand
from faultmesh.model.spec.yaml_source import Path, Source, read_yaml
from faultmesh.model.system import System

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
            node = node[step]
        elif (index == len(loc) - 1 and isinstance(node, dict) and isinstance(step, str)
              and not step.startswith("~")):
            # The last step names a key that is not there: a missing required key (a union
            # tag such as '~call' is pydantic's, never a key).
            path.append(step)
    return tuple(path), about_key


def _members(tp: Any) -> list[Any]:
    """The alternatives of a (possibly Annotated) union, each still carrying its Tag."""
    while get_origin(tp) is Annotated:
        tp = get_args(tp)[0]
    if get_origin(tp) in (Union, types.UnionType):
        return [m for arg in get_args(tp) for m in _members_keep_tag(arg)]
    return [tp]


def _members_keep_tag(tp: Any) -> list[Any]:
    if get_origin(tp) is Annotated and any(isinstance(m, Tag) for m in get_args(tp)[1:]):
        return [tp]
    return _members(tp)


def _untag(tp: Any) -> tuple[Any, str | None]:
    tag = None
    while get_origin(tp) is Annotated:
        tag = next((m.tag for m in get_args(tp)[1:] if isinstance(m, Tag)), tag)
        tp = get_args(tp)[0]
    return tp, tag


def _models_at(loc: tuple[Any, ...]) -> list[type[BaseModel]] | None:
    """The spec models a pydantic error location points into (None: cannot tell).

    Follows model fields, dict values, list items and the union tags pydantic puts in
    locations (``~call``), so an unknown key can be matched against the keys allowed *there*.
    """
    current: list[Any] = [S.Spec]
    for step in loc:
        following: list[Any] = []
        for tp in current:
            for member in _members(tp):
                inner, tag = _untag(member)
                if isinstance(step, str) and step.startswith("~"):
                    if tag == step:
                        following.append(inner)
                    continue
                origin = get_origin(inner)
                if isinstance(inner, type) and issubclass(inner, BaseModel):
                    for name, info in inner.model_fields.items():
                        if step in (name, info.alias):
                            following.append(info.annotation)
                elif origin is dict and isinstance(step, str):
                    following.append(get_args(inner)[1])
                elif origin is list and isinstance(step, int):
                    following.append(get_args(inner)[0])
        if not following:
            return None
        current = following
    models = [_untag(m)[0] for tp in current for m in _members(tp)]
    return [m for m in models if isinstance(m, type) and issubclass(m, BaseModel)]


def _keys_at(loc: tuple[Any, ...]) -> tuple[str, ...]:
    models = _models_at(loc) or []
    return tuple(dict.fromkeys(info.alias or name for m in models
                               for name, info in m.model_fields.items()))


def _message(error: Any, path: Path, source: Source) -> tuple[str, bool]:
    """A person's message for one pydantic error; and whether it points at a key."""
    kind, given = error["type"], error.get("input")
    if kind == "extra_forbidden":
        key = str(path[-1])
        # Hint from the keys allowed at this place: matching against every key of the
        # language told a user who put 'timeout' on a service "did you mean 'timeout'?".
        allowed = _keys_at(tuple(error["loc"])[:-1])
        if not allowed:
            close = difflib.get_close_matches(key, _known_keys(), n=1, cutoff=0.6)
            return f"unknown key {key!r}" + (f"; did you mean {close[0]!r}?" if close else ""), True
        # A key that is a whole word of an allowed one ('timeout' of 'queue_timeout') is a
        # misplaced key, not a misspelt one: the list of allowed keys serves it better.
        close = [c for c in difflib.get_close_matches(key, allowed, n=3, cutoff=0.6)
                 if key not in c.split("_")]
        if close:
            return f"unknown key {key!r}; did you mean {close[0]!r}?", True
        return f"unknown key {key!r} here; allowed: {', '.join(allowed)}", True
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


# Checks that depend on a key's value: once the key is pruned, their findings may be invented
# (without 'zones' every zone is unknown; without 'replicas' cart-2 may not exist), so dropped.
_DEPENDENT_CHECKS = {
    "zones": ("unknown zone",),
    "replicas": ("unknown instance", "placement places"),
    "placement": ("unknown instance", "placement places", "unknown zone"),
    "workload": ("not a workload entry",),  # a surge's entry, checked against the workload
}


def _prune(data: Any, loc: tuple[Any, ...]) -> str | None:
    """Remove the optional key (or unknown key) that holds a validation error, in place.

    Walks up from the error to the nearest key that a model allows to be absent (past required
    keys: a bad call's required 'call' prunes the endpoint's 'calls'). Only keys of mappings
    are removed, never list items, so the paths of everything else stay valid. Returns the key
    removed, or None when there is none (every key up to the top is required).
    """
    for i in range(len(loc), 0, -1):
        step = loc[i - 1]
        if not isinstance(step, str) or step.startswith("~") or step == "[key]":
            continue
        models = _models_at(loc[: i - 1])
        if models is None:
            return None
        if not models:
            continue  # a name in a dict of services, endpoints...: look further up
        fields = {info.alias or name: info for m in models for name, info in m.model_fields.items()}
        if step in fields and fields[step].is_required():
            continue
        parent_path, _ = _data_path(data, loc[: i - 1])
        parent = data
        for part in parent_path:
            try:
                parent = parent[part]
            except (KeyError, IndexError, TypeError):
                return None
        if isinstance(parent, dict) and step in parent:
            del parent[step]
            return step
        return None
    return None


def _reference_errors(source: Source, exc: ValidationError) -> list[SpecError]:
    """Cross-reference errors of a spec that failed validation, so all come out at once.

    Without this a typo'd callee was only reported after every type error was fixed. The
    offending optional keys are pruned from a copy until the rest validates (or we give up),
    then the builder checks references at the original positions.
    """
    data = copy.deepcopy(source.data)
    pruned: set[str] = set()
    for _ in range(10):
        removed = [_prune(data, tuple(e["loc"])) for e in exc.errors(include_url=False)]
        if None in removed:
            return []
        pruned.update(k for k in removed if k is not None)
        try:
            spec = S.Spec.model_validate(data)
        except ValidationError as again:
            exc = again
            continue
        builder = Builder(spec, source)
        builder.build()
        unsure = tuple(m for key in pruned for m in _DEPENDENT_CHECKS.get(key, ()))
        return [e for e in builder.errors if not e.message.startswith(unsure)]
    return []


def loads(text: str, file: str = "<spec>") -> System:
    """Load a spec from YAML text; raises SpecErrors listing every located problem."""
    return loads_with_warnings(text, file)[0]


def loads_with_warnings(text: str, file: str = "<spec>") -> tuple[System, list[SpecWarning]]:
    """``loads``, and the located warnings of a spec that loads (``lint``): values that are
    almost certainly a unit mistake, endpoints without a service time."""
    # Nothing built while loading is garbage, and walking it again and again was a third of
    # the time of a large spec (``model.collector``): no collection until it is built.
    with quiet_collector(collect=False):
        return _loads_with_warnings(text, file)


def _loads_with_warnings(text: str, file: str) -> tuple[System, list[SpecWarning]]:
    source = read_yaml(text, file)
    if not isinstance(source.data, dict):
        raise SpecErrors([*source.errors, source.error(
            (), "a spec is a mapping with at least 'system' and 'services'")])
    broken = expand(source)
    try:
        spec = S.Spec.model_validate(source.data)
    except ValidationError as exc:
        # A value the YAML reader refused (a python/object tag) reads as null; the type error
        # pydantic then raises at the same place is noise next to the real message.
        refused = {e.path for e in source.errors if e.message.startswith("tag ")}
        found = [e for e in validation_errors(exc, source) if e.path not in refused
                 and not consequence(e.path, e.message, broken)]
        raise SpecErrors([*source.errors, *found, *_reference_errors(source, exc)]) from None
    builder = Builder(spec, source)
    system = builder.build()
    if source.errors or builder.errors:
        raise SpecErrors([*source.errors, *builder.errors])
    return system, lint(source)


STDIN = "-"


def _refuse(name: str, message: str) -> SpecErrors:
    return SpecErrors([SpecError(name, 0, 0, "", message)])


def read_spec_bytes(path: str | os.PathLike[str]) -> tuple[str, bytes]:
    """(name to report, content) of a spec file, or of stdin for ``-``; at most
    MAX_SPEC_BYTES are read from anything.

    Only regular files (or symlinks to them) are opened: a FIFO would block until a writer
    came, and a device (``/dev/zero``) never ends. The file's size is not trusted either
    (devices, pipes and ``/proc`` files report 0), so the read itself is bounded.
    """
    name = os.fspath(path)
    if name == STDIN:
        return "<stdin>", _bounded_read("<stdin>", sys.stdin.buffer)
    try:
        info = os.stat(name)
    except OSError as exc:
        raise _refuse(name, f"cannot read: {exc.strerror}") from None
    if stat.S_ISDIR(info.st_mode):
        raise _refuse(name, "is a directory, not a spec file")
    if not stat.S_ISREG(info.st_mode):
        kind = ("a pipe (FIFO)" if stat.S_ISFIFO(info.st_mode) else
                "a device" if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode) else
                "a socket" if stat.S_ISSOCK(info.st_mode) else "not a regular file")
        raise _refuse(name, f"is {kind}, not a regular file; to read a stream, pass it on "
                      "standard input as '-'")
    if info.st_size > MAX_SPEC_BYTES:
        raise _refuse(name, f"is {info.st_size:,} bytes; a spec may be at most "
                      f"{MAX_SPEC_BYTES:,}")
    try:
        # O_NONBLOCK: the file could be swapped for a FIFO between the stat and the open.
        fd = os.open(name, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise _refuse(name, "is not a regular file")
            return name, _bounded_read(name, handle)
    except OSError as exc:
        raise _refuse(name, f"cannot read: {exc.strerror}") from None


def _bounded_read(name: str, handle: BinaryIO) -> bytes:
    raw = handle.read(MAX_SPEC_BYTES + 1)
    if len(raw) > MAX_SPEC_BYTES:
        raise _refuse(name, f"holds more than {MAX_SPEC_BYTES:,} bytes; a spec may be at most "
                      f"{MAX_SPEC_BYTES:,}")
    return raw


def load(path: str | os.PathLike[str]) -> System:
    """Load a spec file (``-``: standard input); raises SpecErrors (located), also for a
    file that cannot be read or is not a regular file."""
    return load_with_warnings(path)[0]


def load_with_warnings(path: str | os.PathLike[str]) -> tuple[System, list[SpecWarning]]:
    """``load``, and the located warnings of the spec (see ``loads_with_warnings``)."""
    name, raw = read_spec_bytes(path)
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise SpecErrors([SpecError(name, 1, 1, "", "starts with a UTF-16 byte-order mark; "
                                    "save the spec as UTF-8")])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        # Name the line and column of the first bad byte (was reported without a position).
        line_start = raw.rfind(b"\n", 0, exc.start) + 1
        line = raw.count(b"\n", 0, exc.start) + 1
        column = len(raw[line_start:exc.start].decode("utf-8")) + 1
        raise SpecErrors([SpecError(name, line, column, "", f"is not UTF-8 text: byte "
                                    f"0x{raw[exc.start]:02x} ({exc.reason})")]) from None
    return loads_with_warnings(text, name)


def from_document(data: Any, file: str = "<document>") -> System:
    """Build a System from spec data already in memory (a dict as YAML would give).

    Errors carry the key path but no line numbers, since there is no file text.
    """
    with quiet_collector(collect=False):  # as ``loads``: nothing built here is garbage
        return _from_document(data, file)


def _from_document(data: Any, file: str) -> System:
    source = Source(file, data)
    if not isinstance(data, dict):
        raise SpecErrors([source.error((), "a spec is a mapping")])
    source.data = data = copy.deepcopy(data)  # expanded in place: the caller's stays as given
    broken = expand(source)
    try:
        spec = S.Spec.model_validate(data)
    except ValidationError as exc:
        raise SpecErrors([*source.errors, *(e for e in validation_errors(exc, source)
                                            if not consequence(e.path, e.message, broken))]
                         ) from None
    builder = Builder(spec, source)
    system = builder.build()
    if source.errors or builder.errors:
        raise SpecErrors([*source.errors, *builder.errors])
    return system
