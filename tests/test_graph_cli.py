"""``faultmesh graph`` and ``faultmesh validate`` as a user runs them.

The Online Boutique picture must show every caller->callee pair of the upstream call graph
(specs/topologies/online_boutique.csv); dot output must parse as a graph; optional calls are
dashed, asynchronous ones dotted; ``--highlight`` marks services; usage errors exit 2.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import networkx as nx
import pydot
import pytest
from shop_example import SHOP_YAML

from faultmesh.model.graph import call_graph, to_dot, to_mermaid
from faultmesh.model.spec import load, loads

ROOT = Path(__file__).resolve().parents[1]
SPECS = sorted((ROOT / "specs").glob("*.yaml"))
BOUTIQUE = ROOT / "specs" / "online_boutique.yaml"
TOPOLOGIES = ROOT / "specs" / "topologies"


def faultmesh(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("faultmesh")
    command = [exe] if exe else [sys.executable, "-m", "faultmesh.cli"]
    return subprocess.run([*command, *args], capture_output=True, text=True, cwd=cwd,
                          timeout=120, check=False)


@pytest.fixture
def shop_file(tmp_path: Path) -> Path:
    path = tmp_path / "shop.yaml"
    path.write_text(SHOP_YAML, encoding="utf-8")
    return path


# --- reading the pictures back ----------------------------------------------------------------

_MERMAID_NODE = re.compile(r'^  (\w+)(?:\["([^"]*)"\]|\(\["([^"]*)"\]\))$')
_MERMAID_EDGE = re.compile(r'^  (\w+) (-->|-\.->)\|"([^"]*)"\| (\w+)$')
_MERMAID_STYLE = re.compile(r"^  linkStyle (\d+) (.+)$")


def parse_mermaid(text: str) -> tuple[dict[str, str], list[dict[str, str]], list[str]]:
    """(id -> node name, edges in order, other lines); fails on anything unexpected."""
    lines = text.splitlines()
    assert lines[0] == "flowchart LR"
    names: dict[str, str] = {}
    edges: list[dict[str, str]] = []
    other: list[str] = []
    for line in lines[1:]:
        if m := _MERMAID_NODE.match(line):
            label = m[2] if m[2] is not None else m[3]
            names[m[1]] = re.sub(r" x\d+$", "", label)  # 'cart x2': 2 replicas
        elif m := _MERMAID_EDGE.match(line):
            edges.append({"from": m[1], "arrow": m[2], "label": m[3], "to": m[4]})
        elif _MERMAID_STYLE.match(line) or line.startswith(("  classDef ", "  class ")):
            other.append(line)
        else:
            pytest.fail(f"unexpected mermaid line: {line!r}")
    for edge in edges:
        assert edge["from"] in names and edge["to"] in names, edge
    return names, edges, other


def mermaid_pairs(text: str) -> set[tuple[str, str]]:
    names, edges, _ = parse_mermaid(text)
    return {(names[e["from"]], names[e["to"]]) for e in edges}


_DOT_ID = r'"((?:[^"\\]|\\.)*)"'
_DOT_NODE = re.compile(rf"^  {_DOT_ID} \[(.*)\];$")
_DOT_EDGE = re.compile(rf"^  {_DOT_ID} -> {_DOT_ID} \[(.*)\];$")


def parse_dot(text: str) -> nx.DiGraph:
    """Read our dot output back into networkx by its structure (every line accounted for);
    Graphviz's own grammar (pydot) must read the same nodes and edges."""
    lines = text.splitlines()
    assert re.match(rf"^digraph {_DOT_ID} \{{$", lines[0]), lines[0]
    assert lines[-1] == "}"
    graph = nx.DiGraph()
    for line in lines[1:-1]:
        if line.startswith(("  rankdir=", "  node [", "  edge [")):
            continue
        if m := _DOT_EDGE.match(line):
            assert m[1] in graph and m[2] in graph, f"edge before its nodes: {line}"
            graph.add_edge(m[1], m[2], **_attrs(m[3]))
        elif m := _DOT_NODE.match(line):
            graph.add_node(m[1], **_attrs(m[2]))
        else:
            pytest.fail(f"unexpected dot line: {line!r}")
    other = graphviz_reading(text)
    assert (set(other.nodes), set(other.edges)) == (set(graph.nodes), set(graph.edges)), \
        "Graphviz's grammar reads the dot output differently"
    return graph


def graphviz_reading(text: str) -> nx.DiGraph:
    """The dot text as pydot's Graphviz grammar reads it (IDs without their outer quotes)."""
    with warnings.catch_warnings():  # pydot's grammar uses pyparsing's deprecated names
        warnings.simplefilter("ignore", DeprecationWarning)
        parsed = pydot.graph_from_dot_data(text)
    assert parsed is not None and len(parsed) == 1, "pydot cannot read the dot output"

    def unquote(name: str) -> str:
        return name[1:-1] if len(name) >= 2 and name[0] == name[-1] == '"' else name

    return nx.relabel_nodes(nx.DiGraph(nx.nx_pydot.from_pydot(parsed[0])), unquote)


def test_the_graphviz_cross_check_sees_what_the_line_parser_misses() -> None:
    # Two statements on one line: the line parser takes them for one node, Graphviz for two.
    text = 'digraph "g" {\n  "a" [label="x"]; "b" [label="y"];\n}\n'
    assert set(graphviz_reading(text).nodes) == {"a", "b"}
    with pytest.raises(AssertionError, match="Graphviz's grammar reads"):
        parse_dot(text)


def _attrs(text: str) -> dict[str, str]:
    pairs = re.findall(r'(\w+)=("(?:[^"\\]|\\.)*"|[^,\s]+)', text)
    return {key: value.strip('"') for key, value in pairs}


# --- Online Boutique against the upstream call graph ------------------------------------------


def boutique_pairs_from_csv() -> set[tuple[str, str]]:
    system = load(BOUTIQUE)
    sources = {w.source for w in system.workload}
    assert sources == {"loadgenerator"}  # the spec gives every workload item this source
    (source,) = sources
    with open(TOPOLOGIES / "online_boutique.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return {(source if r["caller"] == "loadgenerator" else r["caller"], r["callee"])
            for r in rows}


@pytest.fixture(scope="module")
def boutique_mermaid() -> str:
    result = faultmesh("graph", str(BOUTIQUE), "--format", "mermaid")
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_boutique_mermaid_shows_all_17_pairs(boutique_mermaid: str) -> None:
    expected = boutique_pairs_from_csv()
    assert len(expected) == 17
    assert mermaid_pairs(boutique_mermaid) == expected


def test_boutique_edges_are_labelled_with_the_grpc_methods(boutique_mermaid: str) -> None:
    names, edges, _ = parse_mermaid(boutique_mermaid)
    labels = {(names[e["from"]], names[e["to"]]): e["label"].split(", ") for e in edges}
    with open(TOPOLOGIES / "online_boutique.csv", newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row["protocol"] == "gRPC":
                method = row["operation"].rsplit("/", 1)[-1]
                assert method in labels[row["caller"], row["callee"]], row


def test_boutique_dot_has_the_same_edges() -> None:
    result = faultmesh("graph", str(BOUTIQUE), "--format", "dot")
    assert result.returncode == 0, result.stderr
    graph = parse_dot(result.stdout)
    assert set(graph.edges) == boutique_pairs_from_csv()
    assert graph.nodes["loadgenerator"]["shape"] == "ellipse"  # a workload source, not a service
    # the upstream ad call is optional (100 ms deadline, error swallowed): dashed
    assert graph.edges["frontend", "adservice"].get("style") == "dashed"


def test_default_format_is_dot() -> None:
    result = faultmesh("graph", str(BOUTIQUE))
    assert result.returncode == 0
    assert result.stdout.startswith('digraph "online_boutique" {')


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.name)
def test_every_shipped_spec_draws_its_call_graph(spec: Path) -> None:
    system = load(spec)
    expected = set(call_graph(system).edges)
    assert set(parse_dot(to_dot(system)).edges) == expected
    assert mermaid_pairs(to_mermaid(system)) == expected


# --- line styles --------------------------------------------------------------------------------


def test_dot_styles_optional_dashed_async_dotted(shop_file: Path) -> None:
    result = faultmesh("graph", str(shop_file), "--format", "dot")
    assert result.returncode == 0, result.stderr
    graph = parse_dot(result.stdout)
    assert graph.edges["cart", "pricing"]["style"] == "dashed"  # optional: true
    assert graph.edges["cart", "audit"]["style"] == "dotted"  # async: true
    for solid in [("frontend", "cart"), ("cart", "redis"), ("cart", "a"), ("cart", "b")]:
        assert "style" not in graph.edges[solid], solid
    assert graph.edges["cart", "pricing"]["label"] == "Quote"
    assert graph.nodes["cart"]["label"] == "cart x2"


def test_mermaid_styles_optional_dashed_async_dotted(shop_file: Path) -> None:
    result = faultmesh("graph", str(shop_file), "--format", "mermaid")
    assert result.returncode == 0, result.stderr
    names, edges, other = parse_mermaid(result.stdout)
    index = {(names[e["from"]], names[e["to"]]): i for i, e in enumerate(edges)}
    styles = dict(re.match(r"  linkStyle (\d+) (.+)", line).groups() for line in other
                  if line.startswith("  linkStyle"))
    optional, asynchronous = index["cart", "pricing"], index["cart", "audit"]
    assert edges[optional]["arrow"] == "-.->" and edges[asynchronous]["arrow"] == "-.->"
    assert styles[str(optional)] == "stroke-dasharray: 6 4"
    assert styles[str(asynchronous)] == "stroke-dasharray: 2 3"
    assert styles[str(optional)] != styles[str(asynchronous)]
    assert edges[index["frontend", "cart"]]["arrow"] == "-->"
    assert str(index["frontend", "cart"]) not in styles


def test_an_edge_is_dashed_only_when_every_call_over_it_is_optional() -> None:
    system = loads("""\
system: mixed
services:
  front:
    endpoints:
      a: {calls: [{call: back.x, optional: true}]}
      b: {calls: [back.y]}
      c: {calls: [{call: side.z, optional: true}, {call: side.z, async: true}]}
  back: {endpoints: {x: {}, y: {}}}
  side: {endpoints: {z: {}}}
""")
    graph = parse_dot(to_dot(system))
    assert "style" not in graph.edges["front", "back"]
    assert graph.edges["front", "back"]["label"] == "x, y"
    # neither all optional nor all asynchronous: drawn solid
    assert "style" not in graph.edges["front", "side"]


# --- --highlight ------------------------------------------------------------------------------


def test_highlight_marks_nodes_in_dot(shop_file: Path) -> None:
    result = faultmesh("graph", str(shop_file), "--highlight", "cart", "--highlight", "redis")
    assert result.returncode == 0, result.stderr
    graph = parse_dot(result.stdout)
    marked = {n for n, data in graph.nodes(data=True) if data.get("color") == "#c0392b"}
    assert marked == {"cart", "redis"}
    assert graph.nodes["cart"]["fillcolor"] == "#f8c9c4"
    assert graph.edges["cart", "redis"].get("color") == "#c0392b"  # both ends down
    assert "color" not in graph.edges["frontend", "cart"]


def test_highlight_marks_nodes_in_mermaid(shop_file: Path) -> None:
    result = faultmesh("graph", str(shop_file), "--format", "mermaid", "--highlight", "cart")
    assert result.returncode == 0, result.stderr
    names, _, other = parse_mermaid(result.stdout)
    ids = {name: node_id for node_id, name in names.items()}
    assert f"  class {ids['cart']} down" in other
    assert any(line.startswith("  classDef down ") for line in other)
    unmarked = faultmesh("graph", str(shop_file), "--format", "mermaid").stdout
    assert "classDef" not in unmarked


def test_highlight_of_an_unknown_service_is_bad_input(shop_file: Path) -> None:
    result = faultmesh("graph", str(shop_file), "--highlight", "crat")
    assert result.returncode == 2
    assert "unknown services: crat" in result.stderr
    assert "Traceback" not in result.stderr


def test_mermaid_ids_stay_distinct() -> None:
    # Found by this suite: 'redis-cart' and 'redis_cart' both became n_redis_cart, and the
    # two services were drawn as one node.
    system = loads("""\
system: clash
services:
  app: {endpoints: {x: {calls: [redis-cart.get, redis_cart.get, redis_cart_2.get]}}}
  redis-cart: {endpoints: {get: {}}}
  redis_cart: {endpoints: {get: {}}}
  redis_cart_2: {endpoints: {get: {}}}
""")
    names, edges, _ = parse_mermaid(to_mermaid(system, highlight={"redis_cart"}))
    assert sorted(names.values()) == ["app", "redis-cart", "redis_cart", "redis_cart_2"]
    assert len(names) == 4 and len(edges) == 3
    assert mermaid_pairs(to_mermaid(system)) == {
        ("app", "redis-cart"), ("app", "redis_cart"), ("app", "redis_cart_2")}


def test_quotes_in_labels_are_escaped() -> None:
    system = loads('system: "q"\nservices:\n  a: {endpoints: {x: {calls: [b.y]}}}\n'
                   "  b: {endpoints: {y: {}}}\n"
                   'workload: [{entry: a.x, rate: 1, source: "my-client"}]\n')
    assert set(parse_dot(to_dot(system)).edges) == {("my-client", "a"), ("a", "b")}


# --- usage errors -----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["png", "svg", "DOT", ""])
def test_unknown_format_exits_2(fmt: str, shop_file: Path) -> None:
    result = faultmesh("graph", str(shop_file), "--format", fmt)
    assert result.returncode == 2
    assert "--format takes dot or mermaid" in result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.stderr


def test_graph_of_a_bad_spec_is_located(tmp_path: Path) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text("system: x\nservices:\n  a: {endpoints: {e: {calls: [b.e]}}}\n")
    result = faultmesh("graph", str(spec), "--format", "mermaid")
    assert result.returncode == 2
    assert f"{spec}:3:31:" in result.stderr and "unknown service 'b'" in result.stderr
    assert "Traceback" not in result.stderr


def test_graph_without_a_spec_is_a_usage_error() -> None:
    result = faultmesh("graph")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


# --- validate -----------------------------------------------------------------------------------


def test_validate_every_shipped_spec() -> None:
    result = faultmesh("validate", *map(str, SPECS))
    assert result.returncode == 0, result.stderr
    ok_lines = [line for line in result.stdout.splitlines() if line.startswith("ok  ")]
    assert len(ok_lines) == len(SPECS)
    for spec, line in zip(SPECS, ok_lines, strict=True):
        assert line.startswith(f"ok  {spec}: ")
    assert result.stderr == ""


def test_validate_with_a_relative_glob() -> None:
    result = subprocess.run("faultmesh validate specs/*.yaml", shell=True, cwd=ROOT,
                            capture_output=True, text=True, timeout=120, check=False)
    if shutil.which("faultmesh") is None:  # pragma: no cover
        pytest.skip("faultmesh is not on PATH")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("\n") == len(SPECS)


def test_validate_json_shape(shop_file: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("system: x\nservices:\n  a: {replicas: 0, endpoints: {e: {calls: [b.e]}}}\n")
    result = faultmesh("validate", "--json", str(shop_file), str(bad))
    assert result.returncode == 2
    report = json.loads(result.stdout)  # exactly one JSON object on stdout
    assert list(report) == ["files"]
    good_entry, bad_entry = report["files"]
    shop = load(shop_file)
    assert good_entry == {
        "file": str(shop_file), "valid": True, "system": "shop",
        "services": len(shop.services),
        "endpoints": sum(len(s.endpoints) for s in shop.services.values()),
        "instances": len(shop.instances),
    }
    assert bad_entry["file"] == str(bad) and bad_entry["valid"] is False
    assert [set(e) for e in bad_entry["errors"]] == [{"line", "column", "path", "message"}] * 2
    first, second = bad_entry["errors"]
    assert (first["line"], first["column"], first["path"]) == (3, 17, "services.a.replicas")
    assert (second["line"], second["column"]) == (3, 44)  # the b of b.e
    assert "unknown service 'b'" in second["message"]


def test_validate_json_all_valid() -> None:
    result = faultmesh("validate", "--json", *map(str, SPECS))
    assert result.returncode == 0
    files = json.loads(result.stdout)["files"]
    assert [f["file"] for f in files] == list(map(str, SPECS))
    assert all(f["valid"] is True for f in files)
    for f in files:
        assert {"system", "services", "endpoints", "instances"} <= set(f)
        assert all(isinstance(f[k], int) and f[k] > 0
                   for k in ("services", "endpoints", "instances"))


def test_validate_json_for_an_unreadable_file(tmp_path: Path) -> None:
    result = faultmesh("validate", "--json", str(tmp_path / "missing.yaml"))
    assert result.returncode == 2
    (entry,) = json.loads(result.stdout)["files"]
    assert entry["valid"] is False
    assert entry["errors"][0]["line"] == 0
    assert "No such file" in entry["errors"][0]["message"]


def test_validate_without_arguments_is_a_usage_error() -> None:
    result = faultmesh("validate")
    assert result.returncode == 2
    assert "Missing argument" in result.stderr
