"""``faultmesh verify`` on a real-sized system: a summary by default, every item on request.

The spec is TrainTicket-sized (tests/present_topology.py: 64 services, 84 entries behind one
gateway with a single replica, every call waiting 1 s), so ``survives`` takes all 84 entries
down and the ``timeouts_nest`` repair changes 180 timeouts: lists a person cannot read whole.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from present_topology import write_trainticket_like
from rich.console import Console
from test_graph_cli import parse_mermaid

from faultmesh.cli import main
from faultmesh.model.graph import call_graph
from faultmesh.model.spec import load
from faultmesh.model.verify.wording import SUMMARY_LIMIT, change_summary, grouped_names


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_trainticket_like(tmp_path_factory.mktemp("tt") / "trainticket.yaml")


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_default_output_is_short(spec: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "verify", str(spec), "--failures", "2")
    assert code == 1
    lines = out.splitlines()
    assert len(lines) <= 40, out
    # The down entries grouped and counted, the repair's 180 timeouts in one counted line.
    assert "84 entries on 1 service: ts-ui-dashboard.{api00" in out
    assert re.search(r"180 timeout changes on \d+ services: set to \S+ … \S+", out), out
    assert "ts-ui-dashboard.api83" not in out
    assert "`--full` or `--json` for all" in out
    # Every property still has its row.
    for name in ("startup_order", "call_cycles", "errors_covered", "survives", "timeouts_nest"):
        assert re.search(rf"^\s*{name}\s+(holds|violated)", out, re.M), name


def test_short_on_an_80_column_terminal(spec: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    import faultmesh.cli.verify as verify_cli

    buffer = io.StringIO()
    terminal = Console(file=buffer, force_terminal=True, width=80, color_system=None)
    monkeypatch.setattr(verify_cli, "out", terminal)
    code = main(["verify", str(spec), "--failures", "2"])
    capsys.readouterr()
    assert code == 1
    text = buffer.getvalue()
    assert "84 entries on 1 service" in text
    assert len(text.splitlines()) <= 40, text
    assert max(len(line.rstrip()) for line in text.splitlines()[:30]) <= 80


def test_full_and_json_give_every_item(spec: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, full, _ = run(capsys, "verify", str(spec), "--failures", "2", "--full")
    for k in range(84):
        assert f"ts-ui-dashboard.api{k:02d}" in full
    assert len(re.findall(r"^\s+services\.\S+\.timeout: ", full, re.M)) == 180
    assert "for all)" not in full
    _, text, _ = run(capsys, "verify", str(spec), "--failures", "2", "--json")
    report = json.loads(text)
    survives = next(p for p in report["properties"] if p["kind"] == "survives")
    assert len(survives["counterexample"]["down"]) == 84
    timeouts = next(p for p in report["properties"] if p["kind"] == "timeouts_nest")
    assert len(timeouts["repair"]["changes"]) == 180


def test_graph_draws_the_neighbourhood(spec: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "verify", str(spec), "--property", "survives", "--graph",
                         "mermaid")
    assert code == 1 and "survives" in err
    drawing = "\n".join(line for line in out.splitlines() if not line.startswith("%%"))
    names, edges, _ = parse_mermaid(drawing)
    graph = call_graph(load(spec))
    # The counterexample is the gateway's one instance: the gateway, who calls it (the
    # workload's source) and what it calls, nothing else.
    gateway = "ts-ui-dashboard"
    expected = {gateway, *graph.predecessors(gateway), *graph.successors(gateway)}
    assert set(names.values()) == expected
    assert len(expected) < graph.number_of_nodes() / 2
    drawn = {(names[e["from"]], names[e["to"]]) for e in edges}
    assert drawn == {(u, v) for u, v in graph.edges if u in expected and v in expected}
    _, whole, _ = run(capsys, "verify", str(spec), "--property", "survives", "--graph",
                      "mermaid", "--graph-scope", "all")
    names, _, _ = parse_mermaid("\n".join(line for line in whole.splitlines()
                                          if not line.startswith("%%")))
    assert set(names.values()) == set(graph.nodes)


def test_bad_graph_scope_is_usage_error(spec: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "verify", str(spec), "--graph-scope", "wide")
    assert code == 2 and "--graph-scope takes near or all" in err


def test_grouped_names() -> None:
    short = [f"a.x{i}" for i in range(SUMMARY_LIMIT)]
    assert grouped_names(short) == ", ".join(short)
    many = [f"a.x{i}" for i in range(8)] + ["b.y", "c.z", "c.w"]
    assert grouped_names(many) == "11 entries on 3 services: a (8), c (2), b (1)"


def test_change_summary_counts_by_key() -> None:
    few = {"services.a.replicas": 2}
    assert change_summary(few) == ["services.a.replicas: 2"]
    many: dict[str, object] = {f"services.s{i}.endpoints.H.calls[0].timeout": 1.0 + i
                               for i in range(10)}
    many |= {"services.s0.replicas": 3, "services.s0.placement": {"a": 2, "b": 1},
             "services.s1.replicas": 3, "services.s1.placement": {"a": 1, "b": 2}}
    lines = change_summary(many)
    assert lines[0] == "10 timeout changes on 10 services: set to 1s … 10s"
    assert lines[1] == "2 replicas changes on 2 services (s0, s1): set to 3"
    assert len(lines) == 2
