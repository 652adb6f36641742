"""`faultmesh import compose`: DeathStarBench socialNetwork, and Compose semantics."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from import_fixtures import FIXTURES, needs_fixtures, run

from faultmesh import model

SOCIAL = FIXTURES / "dsb_social_network" / "docker-compose.yml"


@needs_fixtures
def test_social_network(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    target = tmp_path / "spec.yaml"
    code, _, err = run(capsys, "import", "compose", str(SOCIAL), "-o", str(target))
    assert code == 0, err
    doc = yaml.safe_load(target.read_text())
    upstream = yaml.safe_load(SOCIAL.read_text())["services"]
    assert set(doc["services"]) == set(upstream)
    for name, body in upstream.items():
        service = doc["services"][name]
        assert sorted(service.get("depends_on", [])) == sorted(body.get("depends_on") or [])
        assert service["restart"] == ("never" if body.get("restart") in (None, "no")
                                      else {"delay": "100ms"})
        assert service["replicas"] == (body.get("deploy") or {}).get("replicas", 1)
    published = {n for n, b in upstream.items() if b.get("ports")}
    assert {w["entry"].split(".")[0] for w in doc["workload"]} == published
    model.load(target)


COMPOSE = """\
services:
  web:
    image: web
    ports: ["80:80"]
    environment:
      - CART_ADDR=cart:7070
      - GREETING=hello
      - PAYMENTS_URL=http://payments:8080/api
    links: ["db:database"]
    depends_on:
      cart: {condition: service_healthy}
    deploy: {replicas: 3, resources: {limits: {cpus: "2.0"}}}
    restart: unless-stopped
  cart:
    image: cart
    environment: {DB_HOST: db, AUDIT_HOST: audit}
    healthcheck: {test: ["CMD", "true"], interval: 1m30s, retries: 5, start_period: 10s}
  db:
    image: postgres
    restart: "no"
  payments:
    image: payments
"""


def test_compose_semantics(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    source = tmp_path / "compose.yaml"
    source.write_text(COMPOSE)
    code, out, err = run(capsys, "import", "compose", str(source))
    assert code == 0, err
    doc = yaml.safe_load(out)
    web, cart = doc["services"]["web"], doc["services"]["cart"]
    assert (web["replicas"], web["workers"], web["depends_on"]) == (3, 2, ["cart"])
    assert web["restart"] == {"delay": "100ms"} and doc["services"]["db"]["restart"] == "never"
    assert web["endpoints"]["serve"]["calls"] == ["cart.serve", "db.serve", "payments.serve"]
    assert cart["endpoints"]["serve"]["calls"] == ["db.serve"]
    assert cart["readiness"] == {"period": "90s", "failures": 5, "initial_delay": "10s"}
    # AUDIT_HOST names no service: a located warning, not a failure.
    assert "'audit'" in err and f"{source}:" in err
    assert "# assumed: from links: db:database" in out
    model.loads(out)


def test_not_a_compose_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    source = tmp_path / "compose.yaml"
    source.write_text("version: '3'\nnetworks: {}\n")
    code, _, err = run(capsys, "import", "compose", str(source))
    assert code == 2 and f"{source}:1:1:" in err
