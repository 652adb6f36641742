"""`faultmesh import k8s` (and istio) on real manifests: facts read from the fixtures."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml
from import_fixtures import FIXTURES, REPO, needs_fixtures, run

from faultmesh import model

pytestmark = needs_fixtures
BOUTIQUE = FIXTURES / "online_boutique"


def _objects(*files: Path) -> list[dict]:
    return [d for f in files for d in yaml.safe_load_all(f.read_text()) if isinstance(d, dict)]


def _import(capsys: pytest.CaptureFixture[str], tmp_path: Path, *paths: Path,
            kind: str = "k8s") -> tuple[dict, str, str]:
    target = tmp_path / "spec.yaml"
    code, _, err = run(capsys, "import", kind, *map(str, paths), "-o", str(target))
    assert code == 0, err
    return yaml.safe_load(target.read_text()), target.read_text(), err


def test_online_boutique_services_replicas_and_calls(capsys: pytest.CaptureFixture[str],
                                                     tmp_path: Path) -> None:
    manifests = BOUTIQUE / "kubernetes-manifests.yaml"
    doc, text, err = _import(capsys, tmp_path, manifests, BOUTIQUE / "istio-manifests.yaml")
    objects = _objects(manifests)
    deployments = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Deployment"}
    selected = {o["spec"]["selector"]["app"] for o in objects if o["kind"] == "Service"}
    # Every Deployment behind a Service is a service; the one without (the load generator)
    # is the workload's source.
    assert set(doc["services"]) == {n for n in deployments if n in selected}
    assert [w["source"] for w in doc["workload"]] == ["loadgenerator"]
    for name, service in doc["services"].items():
        assert service["replicas"] == deployments[name]["spec"].get("replicas", 1)
    # Service-level call edges: the upstream graph (specs/topologies), restricted to the
    # services these manifests deploy.
    with open(REPO / "specs" / "topologies" / "online_boutique.csv") as handle:
        upstream = {(r["caller"], r["callee"]) for r in csv.DictReader(handle)
                    if r["caller"] in doc["services"] and r["callee"] in doc["services"]}
    imported = {(name, call.split(".")[0]) for name, s in doc["services"].items()
                for e in s["endpoints"].values() for call in e.get("calls", [])}
    assert imported == upstream
    # The frontend's address of a service the release does not deploy is reported.
    assert "shoppingassistantservice" in err and "kubernetes-manifests.yaml:" in err
    # Header and comments: where each part came from, what was assumed.
    assert text.startswith("# ") and "Where each part came from" in text
    assert "# assumed: from env CART_SERVICE_ADDR=cartservice:7070" in text
    assert "ServiceAccount" in text.split("system:")[0]  # skipped kinds listed


def test_online_boutique_verify_matches_the_handwritten_spec(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    _import(capsys, tmp_path, BOUTIQUE)
    imported = run(capsys, "verify", str(tmp_path / "spec.yaml"), "--property", "survives",
                   "--json")
    handwritten = run(capsys, "verify", str(REPO / "specs" / "online_boutique.yaml"),
                      "--property", "survives", "--json")
    assert imported[0] == handwritten[0] == 1
    [mine] = json.loads(imported[1])["properties"]
    [theirs] = json.loads(handwritten[1])["properties"]
    assert mine["status"] == theirs["status"] == "violated"
    kinds = [f.split(":")[0] for f in mine["counterexample"]["failures"]]
    assert kinds == [f.split(":")[0] for f in theirs["counterexample"]["failures"]] == ["instance"]
    assert "only replica" in mine["explanation"]


def test_sock_shop(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = FIXTURES / "sock_shop" / "complete-demo.yaml"
    doc, text, _ = _import(capsys, tmp_path, path)
    deployments = {o["metadata"]["name"]: o for o in _objects(path) if o["kind"] == "Deployment"}
    assert set(doc["services"]) == set(deployments)
    for name, service in doc["services"].items():
        assert service["replicas"] == deployments[name]["spec"]["replicas"]
    probes = {n for n, d in deployments.items()
              if "readinessProbe" in d["spec"]["template"]["spec"]["containers"][0]}
    assert probes and {n for n, s in doc["services"].items() if "readiness" in s} == probes
    model.loads(text)


def test_hotel_reservation_directory(capsys: pytest.CaptureFixture[str],
                                     tmp_path: Path) -> None:
    folder = FIXTURES / "dsb_hotel_reservation" / "kubernetes"
    doc, text, _ = _import(capsys, tmp_path, folder)
    files = sorted(folder.rglob("*.yaml"))
    deployments = {o["metadata"]["name"] for o in _objects(*files) if o["kind"] == "Deployment"}
    assert set(doc["services"]) == deployments
    header = text.split("\nsystem:")[0]
    assert "PersistentVolumeClaim" in header and "build-docker-images.sh" in header


MESH = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  template:
    metadata: {labels: {app: web}}
    spec:
      topologySpreadConstraints:
        - {topologyKey: topology.kubernetes.io/zone, maxSkew: 1}
      containers:
        - name: web
          env:
            - {name: API_URL, value: "http://api.default.svc.cluster.local:8080/v1"}
          resources: {limits: {cpu: "2500m"}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: api}
spec:
  replicas: 4
  template:
    metadata: {labels: {app: api}}
    spec:
      restartPolicy: Never
      containers:
        - name: api
          readinessProbe: {periodSeconds: 5, failureThreshold: 2, initialDelaySeconds: 7}
---
apiVersion: v1
kind: Service
metadata: {name: api}
spec: {selector: {app: api}}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {type: LoadBalancer, selector: {app: web}}
---
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: api-vs}
spec:
  hosts: [api]
  http:
    - route: [{destination: {host: api}}]
      timeout: 3s
      retries: {attempts: 3, perTryTimeout: 250ms, retryOn: "5xx,connect-failure"}
      fault:
        delay: {fixedDelay: 2s, percentage: {value: 10}}
        abort: {httpStatus: 503, percentage: {value: 5}}
---
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: {name: api-dr}
spec:
  host: api.default.svc.cluster.local
  trafficPolicy:
    loadBalancer: {simple: LEAST_REQUEST}
    connectionPool:
      http: {http2MaxRequests: 100, http1MaxPendingRequests: 10, maxRetries: 3}
    outlierDetection: {consecutive5xxErrors: 5, interval: 10s, baseEjectionTime: 30s}
---
apiVersion: example.com/v1
kind: Widget
metadata: {name: w}
"""


def test_kubernetes_and_istio_semantics(capsys: pytest.CaptureFixture[str],
                                        tmp_path: Path) -> None:
    source = tmp_path / "mesh.yaml"
    source.write_text(MESH)
    doc, text, err = _import(capsys, tmp_path, source, kind="istio")
    web, api = doc["services"]["web"], doc["services"]["api"]
    assert web["workers"] == 2  # 2500m -> two whole CPUs
    assert doc["zones"] == ["zone-a", "zone-b", "zone-c"]
    assert api["restart"] == "never"
    assert api["readiness"] == {"period": "5s", "failures": 2, "initial_delay": "7s"}
    [call] = web["endpoints"]["serve"]["calls"]
    assert call == {"call": "api.serve", "timeout": "250ms", "retries": 3}
    assert api["load_balancer"] == "least_request"
    assert (api["concurrency"], api["queue"]) == (25, 3)  # 100 and 10 over 4 replicas
    [scenario] = doc["scenarios"].values()
    assert scenario["faults"] == [{"latency": {"target": "api", "add": "2s"}},
                                  {"errors": {"target": "api", "rate": "5%"}}]
    assert doc["workload"][0]["entry"] == "web.serve"
    assert api["outlier_detection"] == {"consecutive_5xx": 5, "interval": "10s",
                                        "base_ejection_time": "30s", "max_ejection_percent": 10}
    # Not modelled: named in the header and warned about, with the location.
    header = text.split("\nsystem:")[0]
    assert "maxRetries" in header and "retryOn" in header
    # maxRetries is Envoy's max_retries, kept per client sidecar: per caller instance here.
    assert api["max_retries"] == 3
    assert "maxRetries 3 -> max_retries, counted per caller instance" in header
    assert "maxEjectionPercent 10 of 4 replica(s) lets no host be ejected" in header
    assert "'Widget' is not modelled" in err
    system = model.loads(text)
    assert system.services["api"].replicas == 4


def test_malformed_manifest_is_located(capsys: pytest.CaptureFixture[str],
                                       tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: Deployment\nmetadata: {name: x\nspec: {}\n")
    code, _, err = run(capsys, "import", "k8s", str(bad))
    assert code == 2 and f"{bad}:" in err and "Traceback" not in err
    line = err.split(f"{bad}:")[1].split(":")[0]
    assert line.isdigit() and int(line) >= 2


def test_only_unknown_kinds_is_bad_input(capsys: pytest.CaptureFixture[str],
                                         tmp_path: Path) -> None:
    only = tmp_path / "only.yaml"
    only.write_text("apiVersion: v1\nkind: Widget\nmetadata: {name: w}\n")
    code, _, err = run(capsys, "import", "k8s", str(only))
    assert code == 2 and "Widget" in err and f"{only}:" in err


def test_existing_output_needs_force(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    target = tmp_path / "spec.yaml"
    target.write_text("mine\n")
    code, _, err = run(capsys, "import", "k8s", str(BOUTIQUE), "-o", str(target))
    assert code == 2 and "--force" in err and target.read_text() == "mine\n"
    code, _, _ = run(capsys, "import", "k8s", str(BOUTIQUE), "-o", str(target), "--force")
    assert code == 0 and model.load(target).name
