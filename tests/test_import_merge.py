"""`faultmesh import ... --into SPEC`: calls and timings merged in, the user's keys kept."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from import_fixtures import FIXTURES, needs_fixtures, run

from faultmesh import model

pytestmark = needs_fixtures


def test_traces_into_a_kubernetes_import(capsys: pytest.CaptureFixture[str],
                                         tmp_path: Path) -> None:
    spec = tmp_path / "shop.yaml"
    code, _, err = run(capsys, "import", "k8s", str(FIXTURES / "online_boutique"), "-o",
                       str(spec))
    assert code == 0, err
    # The user edits the imported spec: a setting and a comment of their own.
    text = spec.read_text().replace("  frontend:\n", "  frontend:  # the storefront\n", 1)
    text = text.replace("    replicas: 1  # assumed: Kubernetes' default\n",
                        "    replicas: 3\n", 1)
    spec.write_text(text)
    before = yaml.safe_load(text)
    assert before["services"]["frontend"]["replicas"] == 3
    code, _, err = run(capsys, "import", "traces", str(FIXTURES / "traces" /
                                                        "jaeger-example.json"),
                       "--into", str(spec))
    assert code == 2 and "--force" in err and spec.read_text() == text  # asks first
    # Traces of the system itself: simulate the imported spec, export, merge back.
    spans = tmp_path / "spans.json"
    code, _, err = run(capsys, "simulate", str(spec), "-d", "3s", "--otlp", str(spans))
    assert spans.exists(), err
    code, _, err = run(capsys, "import", "traces", str(spans), "--into", str(spec), "--force")
    assert code == 0, err
    merged_text = spec.read_text()
    merged = yaml.safe_load(merged_text)
    assert merged["services"]["frontend"]["replicas"] == 3  # the user's key is kept
    assert "# the storefront" in merged_text  # and the user's comment
    # Every key the user had is still there.
    for name, service in before["services"].items():
        assert set(service) - {"endpoints"} <= set(merged["services"][name]), name
    assert "merged:" in merged_text.split("\nsystem:")[0]
    model.load(spec)
