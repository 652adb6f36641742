"""``faultmesh verify`` per the contract: exit codes 0/1/2/3, one JSON object of the documented
shape with ``--json``, a table plus counterexamples and repairs otherwise, ``--graph``
drawings, and bad input (unknown property, bad options, bad spec) as exit 2 without traceback.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from faultmesh.cli import main

SPECS = Path(__file__).resolve().parent.parent / "specs"

CYCLE = {
    "system": "cyclic",
    "services": {
        "a": {"depends_on": ["b"], "endpoints": {"x": {"calls": ["b.y"]}}},
        "b": {"depends_on": ["a"], "endpoints": {"y": {"calls": ["a.x"]}}},
    },
    "workload": [{"entry": "a.x", "rate": "1/s"}],
}
HEALTHY = {
    "system": "healthy",
    "zones": ["a", "b"],
    "services": {
        "web": {"replicas": 2, "endpoints": {"home": {
            "signature": {"errors": ["Unavailable", "DeadlineExceeded"]},
            "service_time": "1ms",
            "calls": [{"call": "db.Get", "timeout": "100ms", "retries": 1,
                       "retry_other_instance": True}]}}},
        "db": {"replicas": 2, "endpoints": {"Get": {"service_time": "2ms"}}},
    },
    "workload": [{"entry": "web.home", "rate": "10/s", "timeout": "1s"}],
    "properties": [{"timeouts_nest": {}}, {"retry_amplification": {"max": 2}},
                   {"staleness": {}}],
}


def write(tmp_path: Path, doc: dict[str, Any], name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_holds_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "verify", str(write(tmp_path, HEALTHY)))
    assert code == 0
    assert "healthy: holds" in out
    for name in ("startup_order", "call_cycles", "errors_covered", "timeouts_nest",
                 "retry_amplification", "staleness"):
        assert name in out


def test_json_shape(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "verify", str(write(tmp_path, CYCLE)), "--json")
    assert code == 1
    report = json.loads(out)  # exactly one JSON object on stdout
    assert set(report) == {"system", "verdict", "properties"}
    assert report["system"] == "cyclic" and report["verdict"] == "violated"
    for prop in report["properties"]:
        assert set(prop) == {"name", "kind", "status", "counterexample", "explanation",
                             "seconds", "repair"}
        assert prop["status"] in ("holds", "violated", "unknown")
        assert isinstance(prop["seconds"], float)
    by_name = {p["name"]: p for p in report["properties"]}
    startup = by_name["startup_order"]
    assert startup["status"] == "violated"
    assert startup["counterexample"]["failures"] == []
    assert startup["counterexample"]["down"] == []
    assert startup["counterexample"]["chain"] in (["a", "b", "a"], ["b", "a", "b"])
    assert set(startup["repair"]) == {"description", "changes"}
    assert by_name["call_cycles"]["counterexample"]["chain"] in (
        ["a.x", "b.y", "a.x"], ["b.y", "a.x", "b.y"])


def test_property_narrows_and_adds_defaults(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "verify", str(write(tmp_path, CYCLE)), "--json",
                       "--property", "errors_covered", "--property", "breaker")
    assert code == 0
    names = [p["name"] for p in json.loads(out)["properties"]]
    assert names == ["errors_covered", "breaker"]


def test_unknown_property_is_bad_input(tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "verify", str(write(tmp_path, HEALTHY)),
                         "--property", "timeout_nest")
    assert code == 2
    assert out == ""
    assert "did you mean 'timeouts_nest'?" in err
    assert "startup_order" in err and "breaker" in err  # lists the known kinds
    assert "Traceback" not in err


@pytest.mark.parametrize("args,message", [
    (["--timeout", "-1"], "--timeout"),
    (["--failures", "-2"], "--failures"),
    (["--graph", "svg"], "--graph"),
    (["--graph", "dot", "--json"], "--graph"),
])
def test_bad_options_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                            args: list[str], message: str) -> None:
    code, _, err = run(capsys, "verify", str(write(tmp_path, HEALTHY)), *args)
    assert code == 2
    assert message in err
    assert "Traceback" not in err


def test_bad_spec_exit_2_with_location(tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    doc = {"system": "bad", "services": {"a": {"endpoints": {"x": {"calls": ["b.y"]}}}}}
    code, _, err = run(capsys, "verify", str(write(tmp_path, doc)))
    assert code == 2
    assert "spec.yaml" in err and "unknown service 'b'" in err
    missing = run(capsys, "verify", str(tmp_path / "nope.yaml"))
    assert missing[0] == 2


def test_timeout_zero_is_unknown_exit_3(tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "verify", str(write(tmp_path, HEALTHY)), "--timeout", "0",
                       "--json")
    assert code == 3
    report = json.loads(out)
    assert report["verdict"] == "unknown"
    assert {p["status"] for p in report["properties"]} == {"unknown"}


def test_human_output_shows_counterexample_repair_and_graph(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "verify", str(write(tmp_path, CYCLE)), "--graph", "mermaid")
    assert code == 1
    # The drawing alone on stdout (it pipes into mermaid or dot), the table on stderr.
    assert "violated" in err and "violated" not in out
    assert "chain:" in err and "repair:" in err
    assert "flowchart LR" in out and "classDef down" in out
    code, out, _ = run(capsys, "verify", str(write(tmp_path, CYCLE)), "--graph", "dot",
                       "--property", "startup_order")
    assert code == 1
    assert "digraph" in out and "#c0392b" in out


def test_failures_option_adds_survives(tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "verify", str(write(tmp_path, HEALTHY)), "--failures", "1",
                       "--json", "--property", "survives")
    report = json.loads(out)
    assert [p["kind"] for p in report["properties"]] == ["survives"]
    assert code == {"holds": 0, "violated": 1, "unknown": 3}[report["verdict"]]


@pytest.mark.parametrize("path", sorted(SPECS.glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_specs_exit_codes_match_json(path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "verify", str(path), "--json", "--timeout", "30")
    report = json.loads(out)
    assert code == {"holds": 0, "violated": 1, "unknown": 3}[report["verdict"]]
    assert report["verdict"] != "unknown"
