"""Endpoint labels where a person reads endpoint names: verify's counterexample chain, the
simulate entry table, and (beside the contract's keys) the JSON of both."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from faultmesh.cli import main

# The entry calls its store with a timeout shorter than the store's own call: timeouts_nest
# is violated along front.home -> store.Get, both labelled; the store's Raw endpoint is not.
SPEC = """
system: labelled
services:
  front:
    endpoints:
      home:
        label: GET /home
        service_time: 1ms
        calls: [{call: store.Get, timeout: 100ms}]
  store:
    endpoints:
      Get:
        label: store.Store/Get
        service_time: 1ms
        calls: [{call: store.Raw, timeout: 1s}]
      Raw: {service_time: 1ms}
workload: [{entry: front.home, rate: 20/s}]
properties:
  - timeouts_nest: {}
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _unlabelled(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if "label:" not in line)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(list(args))
    return code, capsys.readouterr().out


def test_verify_chain_shows_labels(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, "verify", str(_write(tmp_path, SPEC)))
    assert code == 1
    chain = [line for line in out.splitlines() if line.strip().startswith("chain:")]
    assert chain, out
    assert "front.home (GET /home)" in chain[0]
    assert "store.Get (store.Store/Get)" in chain[0]
    # the labels lengthen the line, not the output
    _, plain = run(capsys, "verify", str(_write(tmp_path, _unlabelled(SPEC))))
    assert "(GET /home)" not in plain
    assert len(plain.splitlines()) == len(out.splitlines())


def test_verify_json_counterexample_names_labels(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, out = run(capsys, "verify", str(_write(tmp_path, SPEC)), "--json")
    nest = next(p for p in json.loads(out)["properties"] if p["kind"] == "timeouts_nest")
    ce = nest["counterexample"]
    assert ce["chain"] == ["front.home", "store.Get"]  # the contract's names, unchanged
    assert ce["labels"] == {"front.home": "GET /home", "store.Get": "store.Store/Get"}
    # unlabelled specs print what they always did: no labels key
    _, plain = run(capsys, "verify", str(_write(tmp_path, _unlabelled(SPEC))), "--json")
    for prop in json.loads(plain)["properties"]:
        assert "labels" not in (prop["counterexample"] or {})


def test_simulate_entry_table_has_an_operation_column(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = str(_write(tmp_path, SPEC))
    _, out = run(capsys, "simulate", spec, "--duration", "5s", "--seed", "1")
    header = next(line for line in out.splitlines() if line.strip().startswith("entry"))
    assert "operation" in header.split()
    row = next(line for line in out.splitlines() if line.strip().startswith("front.home "))
    assert "GET /home" in row
    _, plain = run(capsys, "simulate", str(_write(tmp_path, _unlabelled(SPEC))),
                   "--duration", "5s", "--seed", "1")
    header = next(line for line in plain.splitlines() if line.strip().startswith("entry"))
    assert "operation" not in header.split()


def test_simulate_json_entries_carry_their_label(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, out = run(capsys, "simulate", str(_write(tmp_path, SPEC)), "--duration", "5s",
                 "--seed", "1", "--json")
    entry = json.loads(out)["entries"]["front.home"]
    assert entry["label"] == "GET /home"
    assert entry["requests"] > 0
    _, plain = run(capsys, "simulate", str(_write(tmp_path, _unlabelled(SPEC))),
                   "--duration", "5s", "--seed", "1", "--json")
    assert "label" not in json.loads(plain)["entries"]["front.home"]


def test_quick_start_verify_names_the_shipped_operations(
        capsys: pytest.CaptureFixture[str]) -> None:
    """The README's first command: Online Boutique's chain reads with its HTTP route and gRPC
    method (labels from specs/topologies/online_boutique.csv)."""
    spec = Path(__file__).resolve().parent.parent / "specs" / "online_boutique.yaml"
    code, out = run(capsys, "verify", str(spec), "--property", "timeouts_nest")
    assert code == 1
    [chain] = [line for line in out.splitlines() if line.strip().startswith("chain:")]
    assert "frontend.checkout (POST /cart/checkout)" in chain, chain
    assert "checkoutservice.PlaceOrder (hipstershop.CheckoutService/PlaceOrder)" in chain, chain
