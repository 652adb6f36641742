"""The topology as graphs: the service call graph (networkx) and its dot/mermaid renderings.

``call_graph`` has one edge per caller->callee service pair, labelled with the operations
(endpoints) called over it; external workload sources are nodes too, so the picture shows who
calls the entry services. ``endpoint_graph`` has one node per ``service.endpoint`` and is what
cycle checks and chain analyses walk.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

import networkx as nx
from faultmesh.model.system import System


@dataclass
class EdgeInfo:
    operations: list[str] = field(default_factory=list)
    optional: bool = True  # every call over the edge is optional
    asynchronous: bool = True  # every call over the edge is asynchronous


def call_graph(system: System) -> nx.DiGraph:
    """Services (and workload sources) as nodes; an edge per caller->callee pair."""
    graph = nx.DiGraph()
    for name, service in system.services.items():
        graph.add_node(name, kind="service", replicas=service.replicas)
    for w in system.workload:
        if w.source not in graph:
            graph.add_node(w.source, kind="source", replicas=0)
        _add(graph, w.source, w.service, w.endpoint, optional=False, asynchronous=False)
    for name, service in system.services.items():
        for endpoint in service.endpoints.values():
            for call in endpoint.calls():
                _add(graph, name, call.service, call.endpoint, optional=call.optional,
                     asynchronous=call.asynchronous)
    return graph


def _add(graph: nx.DiGraph, caller: str, callee: str, operation: str, *, optional: bool,
         asynchronous: bool) -> None:
    if not graph.has_edge(caller, callee):
        graph.add_edge(caller, callee, info=EdgeInfo())
    info: EdgeInfo = graph.edges[caller, callee]["info"]
    if operation not in info.operations:
        info.operations.append(operation)
    info.optional &= optional
    info.asynchronous &= asynchronous


def endpoint_graph(system: System, *, synchronous_only: bool = True) -> nx.DiGraph:
    """``service.endpoint`` nodes; an edge per call (async calls skipped unless asked for)."""
    graph = nx.DiGraph()
    for name, service in system.services.items():
        for ep_name, endpoint in service.endpoints.items():
            graph.add_node(f"{name}.{ep_name}")
            for call in endpoint.calls():
                if synchronous_only and call.asynchronous:
                    continue
                graph.add_edge(f"{name}.{ep_name}", call.target, call=call)
    return graph


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(system: System, highlight: Collection[str] = ()) -> str:
    """Graphviz dot; ``highlight`` names services (drawn red) to show a counterexample."""
    graph = call_graph(system)
    lines = [f"digraph {_quote(system.name)} {{", "  rankdir=LR;",
             '  node [shape=box, style="rounded,filled", fillcolor="#eef3fb", '
             'fontname="Helvetica"];',
             '  edge [fontname="Helvetica", fontsize=10];']
    for node, data in graph.nodes(data=True):
        attrs = [f"label={_quote(_node_label(node, data))}"]
        if data["kind"] == "source":
            attrs.append('shape=ellipse, fillcolor="#f4f4f4"')
        if node in highlight:
            attrs.append('fillcolor="#f8c9c4", color="#c0392b", penwidth=2')
        lines.append(f"  {_quote(node)} [{', '.join(attrs)}];")
    for caller, callee, data in graph.edges(data=True):
        info: EdgeInfo = data["info"]
        attrs = [f"label={_quote(', '.join(info.operations))}"]
        if info.asynchronous:
            attrs.append("style=dotted")
        elif info.optional:
            attrs.append("style=dashed")
        if caller in highlight and callee in highlight:
            attrs.append('color="#c0392b", penwidth=2')
        lines.append(f"  {_quote(caller)} -> {_quote(callee)} [{', '.join(attrs)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _node_label(node: str, data: dict[str, object]) -> str:
    replicas = data.get("replicas", 0)
    return f"{node} x{replicas}" if isinstance(replicas, int) and replicas > 1 else node


def _mermaid_id(node: str) -> str:
    return "n_" + "".join(ch if ch.isalnum() else "_" for ch in node)


def _mermaid_ids(nodes: Collection[str]) -> dict[str, str]:
    """Distinct mermaid ids: 'redis-cart' and 'redis_cart' both spell n_redis_cart, and the
    two services were drawn as one node; a later one gets a numeric suffix instead."""
    ids: dict[str, str] = {}
    taken: set[str] = set()
    for node in nodes:
        candidate, n = _mermaid_id(node), 1
        while candidate in taken:
            n += 1
            candidate = f"{_mermaid_id(node)}_{n}"
        ids[node] = candidate
        taken.add(candidate)
    return ids


def _mermaid_text(text: str) -> str:
    return text.replace('"', "#quot;").replace("|", "#124;")


def to_mermaid(system: System, highlight: Collection[str] = ()) -> str:
    """A mermaid flowchart; optional calls dashed, asynchronous calls dotted."""
    graph = call_graph(system)
    ids = _mermaid_ids(list(graph.nodes))
    lines = ["flowchart LR"]
    for node, data in graph.nodes(data=True):
        label = _mermaid_text(_node_label(node, data))
        shape = f'(["{label}"])' if data["kind"] == "source" else f'["{label}"]'
        lines.append(f"  {ids[node]}{shape}")
    styles = []
    for index, (caller, callee, data) in enumerate(graph.edges(data=True)):
        info: EdgeInfo = data["info"]
        label = _mermaid_text(", ".join(info.operations))
        arrow = "-.->" if info.optional or info.asynchronous else "-->"
        lines.append(f'  {ids[caller]} {arrow}|"{label}"| {ids[callee]}')
        if info.asynchronous:
            styles.append(f"  linkStyle {index} stroke-dasharray: 2 3")
        elif info.optional:
            styles.append(f"  linkStyle {index} stroke-dasharray: 6 4")
        elif caller in highlight and callee in highlight:
            styles.append(f"  linkStyle {index} stroke:#c0392b,stroke-width:2px")
    lines.extend(styles)
    if highlight:
        lines.append("  classDef down fill:#f8c9c4,stroke:#c0392b,stroke-width:2px")
        marked = [ids[n] for n in graph.nodes if n in highlight]
        if marked:
            lines.append(f"  class {','.join(marked)} down")
    return "\n".join(lines) + "\n"
