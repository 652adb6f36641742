"""The one strongly-connected-components helper (``model.graph``), checked against networkx.

Every cycle question of the verifier (call cycles, startup order, retry cycles, cones, offered
load) and the topology drawing's layering go through it, so it is pinned here: the same
partition as networkx on random graphs, callees-first order, and no recursion on deep chains.
"""

from __future__ import annotations

import networkx as nx
from hypothesis import given, settings
from hypothesis import strategies as st

from faultmesh.model.graph import component_index, components, strongly_connected


@st.composite
def graphs(draw: st.DrawFn) -> list[list[int]]:
    n = draw(st.integers(0, 12))
    if n == 0:
        return []
    return [draw(st.lists(st.integers(0, n - 1), max_size=4, unique=True)) for _ in range(n)]


@settings(max_examples=150)
@given(graphs())
def test_same_components_as_networkx_callees_first(succ: list[list[int]]) -> None:
    found = strongly_connected(succ)
    graph = nx.DiGraph()
    graph.add_nodes_from(range(len(succ)))
    graph.add_edges_from((v, w) for v, targets in enumerate(succ) for w in targets)
    assert sorted(map(sorted, found)) == sorted(
        sorted(c) for c in nx.strongly_connected_components(graph))
    # Callees first: an edge leaving a component points to one listed earlier.
    position = {v: i for i, component in enumerate(found) for v in component}
    for v, targets in enumerate(succ):
        for w in targets:
            assert position[w] <= position[v]


def test_a_deep_chain_does_not_recurse() -> None:
    # A 50,000-long call chain closed into one cycle: far beyond the recursion limit.
    n = 50_000
    chain = [[v + 1] for v in range(n - 1)] + [[]]
    assert len(strongly_connected(chain)) == n
    assert strongly_connected(chain)[0] == [n - 1]  # the last callee comes first
    ring = [[(v + 1) % n] for v in range(n)]
    assert [len(c) for c in strongly_connected(ring)] == [n]


def test_named_components_include_nodes_without_edges() -> None:
    successors = {"a": ["b"], "b": ["a", "c"]}
    found = components(successors, ["d"])
    assert sorted(map(sorted, found)) == [["a", "b"], ["c"], ["d"]]
    index = component_index(successors)
    assert index["a"] == index["b"] != index["c"]
    assert "d" not in index
    # Targets given as one-shot iterators are read once, not lost.
    assert component_index({"x": iter(["y"]), "y": iter(["x"])}) == {"x": 0, "y": 0}
