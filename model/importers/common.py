"""What every importer shares: the spec draft with its header and assumptions, input reading.

An importer reads deployment files (manifests, a Compose file, traces) into a ``Draft``: spec
data plus, for each key it had to guess, a comment saying so, plus the header that opens the
written file (where each part came from, every assumption, every kind skipped). ``Draft.text()``
writes it through the one spec writer (``model.spec.dump.dump_document``) and ``Draft.system()``
loads that text back through ``model.spec`` so an import is only ever handed out valid.

Problems are ``SpecError`` values (file, line, column): ``Draft.warn`` records what was skipped
(the import goes on), ``ImportFailed`` (a ``SpecErrors``) stops it for unusable input.

Calls between services are found in environment variables whose value names another service:
``http://svc:port/path`` and ``svc:port`` anywhere, a bare ``svc`` (or its cluster DNS name,
``svc.ns.svc.cluster.local``) when the variable's name ends in ``_ADDR``, ``_ADDRESS``,
``_HOST``, ``_URL``, ``_URI``, ``_ENDPOINT`` or ``_SERVICE``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from faultmesh.model.spec.dump import KeyPath, dump_document
from faultmesh.model.spec.errors import SpecError, SpecErrors
from faultmesh.model.spec.load import loads
from faultmesh.model.spec.yaml_source import Source
from faultmesh.model.system import System

ASSUMED = "assumed"  # every comment on a guessed key starts with this word (merges rely on it)
ENDPOINT = "serve"  # the one endpoint of a service whose operations the input does not name
MAX_INPUT_BYTES = 64 * 1024 * 1024

ImportFailed = SpecErrors
"""Unusable input: located errors, exit 2."""


def spec_name(raw: str) -> str:
    """A name the spec accepts (letters, digits, ``_``, ``-``) for any upstream name."""
    name = re.sub(r"[^A-Za-z0-9_-]+", "_", raw.strip()).strip("_-")
    if not name:
        return "unnamed"
    return name if re.match(r"[A-Za-z0-9_]", name) else f"_{name}"


@dataclass
class Draft:
    """A spec being imported: data, comments on assumed keys, header lines, warnings."""

    system: str
    document: dict[str, Any] = field(default_factory=dict)
    comments: dict[KeyPath, str] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)
    assumptions: list[str] = field(default_factory=list)
    warnings: list[SpecError] = field(default_factory=list)
    skipped: dict[str, list[str]] = field(default_factory=dict)  # kind -> where

    def __post_init__(self) -> None:
        self.document.setdefault("system", spec_name(self.system))

    # --- building ---------------------------------------------------------------------------

    def put(self, path: KeyPath, value: Any, comment: str | None = None) -> None:
        """Set the value at ``path`` (creating mappings on the way), with an optional comment."""
        node: Any = self.document
        for key in path[:-1]:
            node = node.setdefault(key, {}) if isinstance(node, dict) else node[key]
        node[path[-1]] = value
        if comment:
            self.comments[path] = comment

    def assume(self, path: KeyPath, value: Any, why: str) -> None:
        """Set a value the input did not give; it carries an ``# assumed: why`` comment."""
        self.put(path, value, f"{ASSUMED}: {why}")

    def get(self, path: KeyPath, default: Any = None) -> Any:
        node: Any = self.document
        for key in path:
            found = (key in node if isinstance(node, dict) else
                     isinstance(node, list) and isinstance(key, int) and key < len(node))
            if found:
                node = node[key]
            else:
                return default
        return node

    def warn(self, file: str, line: int, column: int, message: str) -> None:
        self.warnings.append(SpecError(file, line, column, "", message))

    def skip(self, kind: str, where: str) -> None:
        self.skipped.setdefault(kind, []).append(where)

    # --- output -----------------------------------------------------------------------------

    def header(self) -> list[str]:
        lines = [f"{self.document['system']}: imported by `faultmesh import`.", "",
                 "Where each part came from:"]
        lines += [f"  - {source}" for source in self.sources]
        lines += ["", "Assumptions (keys set by assumption carry an '# assumed' comment):"]
        lines += [f"  - {item}" for item in self.assumptions] or ["  - none"]
        if self.skipped:
            lines += ["", "Skipped (not modelled):"]
            lines += [f"  - {kind}: {', '.join(where)}" for kind, where in
                      sorted(self.skipped.items())]
        return [*lines, ""]

    def ordered(self) -> dict[str, Any]:
        """The document with its top-level keys in the order the spec documents them."""
        order = ("system", "zones", "network", "discovery", "orchestration", "defaults",
                 "services", "workload", "properties", "scenarios")
        doc = self.document
        for service in (doc.get("services") or {}).values():
            if isinstance(service, dict) and "endpoints" in service:
                service["endpoints"] = service.pop("endpoints")  # last, as specs write it
        return {key: doc[key] for key in (*order, *doc) if key in doc}

    def text(self) -> str:
        return dump_document(self.ordered(), header=self.header(), comments=self.comments)

    def system_model(self) -> System:
        """Load the written text back: the import is valid (raises SpecErrors otherwise)."""
        return loads(self.text(), f"<import of {self.document['system']}>")


@dataclass
class Manifest:
    """One Kubernetes object, with where it sits (for messages)."""

    data: dict[str, Any]
    source: Source
    path: tuple[Any, ...]  # inside the document (a List's items are ("items", i))

    @property
    def kind(self) -> str:
        return str(self.data.get("kind", ""))

    @property
    def name(self) -> str:
        meta = self.data.get("metadata")
        return str(meta.get("name", "")) if isinstance(meta, dict) else ""

    def where(self, *path: Any) -> tuple[str, int, int]:
        line, column = self.source.locate((*self.path, *path))
        return self.source.file, line, column

    def label(self) -> str:
        file, line, _ = self.where()
        return f"{self.kind or '?'}/{self.name or '?'} ({file}:{line})"


# --- reading input files ------------------------------------------------------------------------


def expand_paths(paths: Iterable[str | os.PathLike[str]], suffixes: tuple[str, ...],
                 draft: Draft) -> list[Path]:
    """Files to read: each path itself, or a directory's files with one of ``suffixes``
    (recursively, sorted); other files in a directory are listed as skipped."""
    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for child in sorted(p for p in path.rglob("*") if p.is_file()):
                if child.name.lower().endswith(suffixes):
                    out.append(child)
                else:
                    draft.skip("files that are not " + "/".join(suffixes), str(child))
        elif path.exists():
            out.append(path)
        else:
            raise ImportFailed([SpecError(str(path), 0, 0, "", "no such file or directory")])
    return out


def read_text(path: Path) -> str:
    """A file's text (UTF-8), refused with a located error when it cannot be read."""
    name = str(path)
    try:
        if path.stat().st_size > MAX_INPUT_BYTES:
            raise ImportFailed([SpecError(name, 0, 0, "", f"is larger than {MAX_INPUT_BYTES:,} "
                                          "bytes")])
        raw = path.read_bytes()
    except OSError as exc:
        raise ImportFailed([SpecError(name, 0, 0, "", f"cannot read: {exc.strerror}")]) from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ImportFailed([SpecError(name, line, column, "",
                                      f"is not UTF-8 text ({exc.reason})")]) from None


# --- calls from environment variables -------------------------------------------------------------

ADDRESS_NAMES = ("_ADDR", "_ADDRESS", "_HOST", "_HOSTNAME", "_URL", "_URI", "_ENDPOINT",
                 "_SERVICE")
_HOST_PORT = re.compile(r"^([A-Za-z0-9][A-Za-z0-9.-]*):(\d{1,5})(/.*)?$")
_DNS_SUFFIX = re.compile(r"^([a-z0-9][a-z0-9-]*)(\.[a-z0-9-]+)?(\.svc(\.cluster\.local)?)?\.?$")


def _host_name(host: str) -> str:
    """``cart.shop.svc.cluster.local`` -> ``cart``; other hosts unchanged (lower case)."""
    host = host.lower()
    match = _DNS_SUFFIX.match(host)
    if match and (match[2] is None or match[3] is not None):
        return match[1]
    return host


def referenced_hosts(name: str, value: str) -> list[str]:
    """Host names an environment variable's value points at (URL, host:port, or a bare host
    under an address-like variable name)."""
    hosts: list[str] = []
    address_like = name.upper().endswith(ADDRESS_NAMES)
    for token in re.split(r"[\s,;]+", value.strip()):
        if not token:
            continue
        if "://" in token:
            try:
                host = urlsplit(token).hostname
            except ValueError:
                host = None
            if host:
                hosts.append(_host_name(host))
            continue
        match = _HOST_PORT.match(token)
        if match:
            hosts.append(_host_name(match[1]))
        elif address_like and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9.-]*", token):
            hosts.append(_host_name(token))
    return hosts


@dataclass(frozen=True)
class Edge:
    """A call from one service to another, found in the input, with the evidence for it."""

    caller: str
    callee: str
    evidence: str  # e.g. "env CART_SERVICE_ADDR=cartservice:7070"


def add_service_calls(draft: Draft, edges: Iterable[Edge]) -> None:
    """Each caller's one endpoint calls each callee's one endpoint, in order of the callee's
    name (the input gives no order), each call commented with its evidence."""
    by_caller: dict[str, dict[str, Edge]] = {}
    for edge in edges:
        by_caller.setdefault(edge.caller, {}).setdefault(edge.callee, edge)
    for caller, callees in by_caller.items():
        base = ("services", caller, "endpoints", ENDPOINT, "calls")
        calls = [f"{callee}.{ENDPOINT}" for callee in sorted(callees)]
        draft.put(base, calls)
        for i, callee in enumerate(sorted(callees)):
            draft.comments[(*base, i)] = f"{ASSUMED}: from {callees[callee].evidence}"


def service_skeleton(draft: Draft, name: str) -> None:
    """A service with its one assumed endpoint and service time."""
    draft.put(("services", name), draft.get(("services", name)) or {})
    draft.assume(("services", name, "endpoints", ENDPOINT, "service_time"),
                 {"exponential": "1ms"}, "the input gives no service time")
    draft.comments.setdefault(("services", name, "endpoints", ENDPOINT),
                              f"{ASSUMED}: one endpoint; the input names no operations")


def workers_from_cpu(cpu: Any) -> int | None:
    """Workers from a CPU quantity (``500m``, ``2``, ``1.5``): one per whole CPU, at least 1."""
    if cpu is None:
        return None
    text = str(cpu).strip()
    try:
        cores = float(text[:-1]) / 1000 if text.endswith("m") else float(text)
    except ValueError:
        return None
    return max(1, int(cores))


def finish_common(draft: Draft, entries: list[tuple[str, str]], why_entries: str) -> None:
    """Defaults, workload and properties every service-level import ends with.

    ``entries`` are (entry service, workload source) pairs.
    """
    if "defaults" not in draft.document:
        draft.assume(("defaults", "call", "timeout"), "1s", "the input sets no call timeout")
    services = draft.document.get("services", {})
    if not services:
        return
    workload = [{"entry": f"{entry}.{ENDPOINT}", "rate": "10/s", "source": spec_name(source)}
                for entry, source in entries if entry in services]
    if workload:
        draft.put(("workload",), workload)
        for i in range(len(workload)):
            draft.comments[("workload", i, "rate")] = f"{ASSUMED}: the input gives no load"
        draft.assumptions.append(f"workload entries: {why_entries}; 10/s each")
    else:
        draft.assumptions.append("no workload entry could be told from the input: add one "
                                 "under 'workload' to check 'survives'")
    draft.assume(("properties",), [{"survives": {"failures": 1}}],
                 "a first question: does one failure take an entry down?")


def readiness_of(period: Any, failures: Any, initial_delay: Any) -> dict[str, Any]:
    """A readiness mapping from probe settings in seconds (``initial_delay`` only when the
    spec language has it)."""
    from faultmesh.model.spec.schema import ReadinessSpec

    out: dict[str, Any] = {"period": _seconds(period, 10), "failures": max(1, _int(failures, 3))}
    if "initial_delay" in ReadinessSpec.model_fields:
        out["initial_delay"] = _seconds(initial_delay, 0)
    return out


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _seconds(value: Any, default: float) -> str:
    number = value if isinstance(value, int | float) and not isinstance(value, bool) else default
    return f"{number:g}s"
