"""Fold an imported draft into an existing spec without losing a key the user wrote.

Rules, key by key (``merge``): a key the existing spec lacks is added from the import; a key
the existing spec has is kept, unless its line carries an ``# assumed`` comment (an earlier
import guessed it), in which case the import's value replaces it. Endpoints are merged by name;
an existing service whose endpoints were all assumed (one ``serve`` from a Kubernetes import)
takes the imported endpoints instead, and every call to a dropped endpoint is re-pointed at
the callee's first imported endpoint. Comments of the existing file are kept on the keys they
were on (end-of-line ones, and whole-line ones above a key), and its opening comment block is
kept above the import's header.
"""

from __future__ import annotations

import copy
from typing import Any

from faultmesh.model.importers.common import ASSUMED, Draft
from faultmesh.model.spec.dump import KeyPath, dump_document
from faultmesh.model.spec.yaml_source import Source, read_yaml


def _comment_of(line: str) -> str | None:
    """The end-of-line comment of a YAML line (outside quotes), or None."""
    quote: str | None = None
    for i, char in enumerate(line):
        if quote:
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[i + 1:].strip()
    return None


def existing_comments(text: str, source: Source) -> tuple[list[str], dict[KeyPath, str],
                                                          dict[KeyPath, list[str]]]:
    """(opening comment block, end-of-line comments by key path, comment lines above keys)."""
    lines = text.splitlines()
    header: list[str] = []
    for row in lines:
        if row.startswith("#"):
            header.append(row[1:].removeprefix(" "))
        elif row.strip():
            break
    eol: dict[KeyPath, str] = {}
    before: dict[KeyPath, list[str]] = {}
    first_line: dict[int, KeyPath] = {}
    for path, (line, _column) in sorted(source.key_marks.items(), key=lambda kv: kv[1]):
        first_line.setdefault(line, path)
    for line_number, path in first_line.items():
        text_line = lines[line_number - 1] if line_number - 1 < len(lines) else ""
        comment = _comment_of(text_line.split(":", 1)[1] if ":" in text_line else "")
        if comment:
            eol[path] = comment
        above: list[str] = []
        index = line_number - 2
        while index >= len(header) and lines[index].strip().startswith("#"):
            above.insert(0, lines[index].strip()[1:].removeprefix(" "))
            index -= 1
        if above:
            before[path] = above
    return header, eol, before


def _assumed(path: KeyPath, eol: dict[KeyPath, str]) -> bool:
    return eol.get(path, "").startswith(ASSUMED)


def merge(existing_text: str, file: str, draft: Draft) -> tuple[str, list[str]]:
    """The existing spec with the draft folded in, as text; and what was kept or replaced."""
    source = read_yaml(existing_text, file)
    header, eol, before = existing_comments(existing_text, source)
    merged: dict[str, Any] = copy.deepcopy(source.data) if isinstance(source.data, dict) else {}
    notes: list[str] = []
    comments = dict(eol)
    imported = draft.ordered()
    services = merged.setdefault("services", {})
    renamed: dict[str, str] = {}
    for name, incoming in (imported.get("services") or {}).items():
        mine = services.get(name)
        if not isinstance(mine, dict):
            services[name] = incoming
            _copy_comments(draft.comments, comments, ("services", name))
            continue
        endpoints = mine.get("endpoints") or {}
        all_assumed = endpoints and all(_assumed(("services", name, "endpoints", e), eol)
                                        for e in endpoints)
        theirs = incoming.get("endpoints") or {}
        if all_assumed and theirs:
            first = next(iter(theirs))
            for old in endpoints:
                if old not in theirs:
                    renamed[f"{name}.{old}"] = f"{name}.{first}"
            mine["endpoints"] = {}
            notes.append(f"{name}: assumed endpoints replaced by {', '.join(theirs)}")
        mine.setdefault("endpoints", {})
        for endpoint, body in theirs.items():
            base = ("services", name, "endpoints", endpoint)
            if endpoint not in mine["endpoints"]:
                mine["endpoints"][endpoint] = body
                _copy_comments(draft.comments, comments, base)
                continue
            for key, value in body.items():
                if key not in mine["endpoints"][endpoint] or _assumed((*base, key), eol):
                    mine["endpoints"][endpoint][key] = value
                    comments.pop((*base, key), None)
                    _copy_comments(draft.comments, comments, (*base, key))
                else:
                    notes.append(f"kept your {name}.{endpoint} {key}")
        for key, value in incoming.items():
            if key == "endpoints":
                continue
            if key not in mine or _assumed(("services", name, key), eol):
                mine[key] = value
                comments.pop(("services", name, key), None)
                _copy_comments(draft.comments, comments, ("services", name, key))
    _repoint(merged, renamed)
    for key in ("workload", "scenarios", "properties", "defaults", "zones"):
        if key not in merged and key in imported:
            merged[key] = imported[key]
            _copy_comments(draft.comments, comments, (key,))
        elif key == "workload" and key in imported and _assumed_workload(merged, eol):
            merged[key] = imported[key]
            _copy_comments(draft.comments, comments, (key,))
            notes.append("assumed workload replaced by the imported one")
    lines = [*header, "", *[f"merged: {line}" for line in draft.header() if line]]
    return dump_document(merged, header=lines, comments=comments, before=before), notes


def _assumed_workload(merged: dict[str, Any], eol: dict[KeyPath, str]) -> bool:
    items = merged.get("workload") or []
    return bool(items) and all(_assumed(("workload", i, "rate"), eol) for i in range(len(items)))


def _copy_comments(source: dict[KeyPath, str], target: dict[KeyPath, str],
                   prefix: KeyPath) -> None:
    for path, comment in source.items():
        if path[:len(prefix)] == prefix:
            target[path] = comment


def _repoint(document: dict[str, Any], renamed: dict[str, str]) -> None:
    """Calls to endpoints that were replaced now name the replacement."""
    if not renamed:
        return
    for service in (document.get("services") or {}).values():
        for endpoint in (service.get("endpoints") or {}).values():
            calls = endpoint.get("calls") or []
            for i, call in enumerate(calls):
                calls[i] = _renamed(call, renamed)
    for item in document.get("workload") or []:
        if isinstance(item, dict) and item.get("entry") in renamed:
            item["entry"] = renamed[item["entry"]]


def _renamed(call: Any, renamed: dict[str, str]) -> Any:
    if isinstance(call, str):
        return renamed.get(call, call)
    if isinstance(call, dict) and "parallel" in call:
        return {**call, "parallel": [_renamed(c, renamed) for c in call["parallel"]]}
    if isinstance(call, dict) and call.get("call") in renamed:
        return {**call, "call": renamed[call["call"]]}
    return call
