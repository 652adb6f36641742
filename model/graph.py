"""The topology as graphs: the service call graph and its dot/mermaid renderings, and the one
strongly-connected-components algorithm every cycle question uses.

``call_graph`` (networkx) has one edge per caller->callee service pair, labelled with the
operations (endpoints) called over it; external workload sources are nodes too, so the picture
shows who calls the entry services.

``strongly_connected`` is Tarjan's algorithm over integer successor lists, written iteratively
so a 10,000-deep call chain does not reach Python's recursion limit; ``components`` and
``component_index`` run it over named nodes. Components come callees first (each after every
component it reaches): reversed, they are a topological order of the condensed graph.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from faultmesh.model.system import System

if TYPE_CHECKING:
    import networkx as nx


@dataclass
class EdgeInfo:
    operations: list[str] = field(default_factory=list)
    optional: bool = True  # every call over the edge is optional
    asynchronous: bool = True  # every call over the edge is asynchronous


def call_graph(system: System) -> nx.DiGraph:
    """Services (and workload sources) as nodes; an edge per caller->callee pair."""
    import networkx as nx  # only drawings need it; the verifier's cycle checks do not

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


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _only(graph: nx.DiGraph, only: Collection[str] | None) -> nx.DiGraph:
    """The graph restricted to the ``only`` nodes (all of it when None)."""
    return graph if only is None else graph.subgraph([n for n in graph.nodes if n in only])


def to_dot(system: System, highlight: Collection[str] = (),
           only: Collection[str] | None = None) -> str:
    """Graphviz dot; ``highlight`` names services (drawn red) to show a counterexample;
    ``only`` restricts the drawing to those nodes (and the edges between them)."""
    graph = _only(call_graph(system), only)
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


def to_mermaid(system: System, highlight: Collection[str] = (),
               only: Collection[str] | None = None) -> str:
    """A mermaid flowchart; optional calls dashed, asynchronous calls dotted; ``only``
    restricts it to those nodes (and the edges between them)."""
    graph = _only(call_graph(system), only)
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


def strongly_connected(succ: Sequence[Sequence[int]]) -> list[list[int]]:
    """Tarjan's strongly connected components of nodes ``0..len(succ)-1``, iteratively.

    Each component comes after every component it reaches (callees first).
    """
    n = len(succ)
    index = [-1] * n
    low = [0] * n
    on_stack = [False] * n
    stack: list[int] = []
    components_found: list[list[int]] = []
    counter = 0
    for root in range(n):
        if index[root] != -1:
            continue
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack[root] = True
        work = [(root, 0)]  # the explicit call stack: (node, next successor to visit)
        while work:
            v, i = work[-1]
            if i < len(succ[v]):
                work[-1] = (v, i + 1)
                w = succ[v][i]
                if index[w] == -1:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack[w] = True
                    work.append((w, 0))
                elif on_stack[w] and index[w] < low[v]:
                    low[v] = index[w]
                continue
            work.pop()
            if work:
                u = work[-1][0]
                if low[v] < low[u]:
                    low[u] = low[v]
            if low[v] == index[v]:
                component = []
                while True:
                    w = stack.pop()
                    on_stack[w] = False
                    component.append(w)
                    if w == v:
                        break
                components_found.append(component)
    return components_found


def components(successors: Mapping[str, Iterable[str]],
               nodes: Iterable[str] = ()) -> list[list[str]]:
    """``strongly_connected`` over named nodes: ``nodes`` and every node of ``successors``."""
    out = {u: list(targets) for u, targets in successors.items()}
    names = list(dict.fromkeys([*nodes, *out, *(v for targets in out.values() for v in targets)]))
    position = {name: i for i, name in enumerate(names)}
    succ = [[position[v] for v in out.get(name, ())] for name in names]
    return [[names[i] for i in component] for component in strongly_connected(succ)]


def component_index(successors: Mapping[str, Iterable[str]],
                    nodes: Iterable[str] = ()) -> dict[str, int]:
    """Each node's component number: two nodes share one iff each reaches the other."""
    return {name: i for i, members in enumerate(components(successors, nodes))
            for name in members}
