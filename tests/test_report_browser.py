"""report.html as a person sees it: opened in headless Chromium (Debian's ``chromium``).

The page is loaded from a file with a probe script appended (in a copy: the report itself has
no script). The probe measures, after layout, whether the fault table, the timeline and every
figure are on screen with a size, and writes what it found into the DOM, which
``--dump-dom`` prints. Chromium's own log (``--enable-logging=stderr``) carries every console
message, an uncaught error included; its network log (``--log-net-log``) every request the
page made. A control page (a console error and an image from http://) shows both checks
catch what they look for. Skips only when no Chromium can be found (.ci/run installs it).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from faultmesh import model, simulations
from faultmesh.simulations.presentation.report import FIGURES, write_report

ROOT = Path(__file__).resolve().parents[1]
SHOP = ROOT / "specs" / "zone_outage_shop.yaml"
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# Chromium's own background traffic (updates, sync, sign-in) is switched off, and what is
# left is told apart from the page's by its initiator ("not an origin").
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", "--disable-default-apps", "--disable-extensions",
         "--host-resolver-rules=MAP * ~NOTFOUND", "--enable-logging=stderr", "--v=0",
         "--virtual-time-budget=3000")

PROBE = """
<script>
window.addEventListener("load", () => {
  const shown = (el) => {
    if (!el) return false;
    const box = el.getBoundingClientRect();
    const style = getComputedStyle(el);
    return box.width > 0 && box.height > 0 && style.visibility !== "hidden"
      && style.display !== "none";
  };
  const faults = document.getElementById("faults");
  const found = {
    faults: shown(faults),
    fault_rows: faults ? faults.tBodies[0].rows.length : 0,
    timeline: shown(document.querySelector("svg.timeline")),
    tooltips: document.querySelectorAll("svg.timeline circle > title").length,
    figures: Array.from(document.images).map((img) => ({
      alt: img.alt, shown: shown(img), loaded: img.complete && img.naturalWidth > 0})),
  };
  const out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify(found);
  document.body.appendChild(out);
});
</script>
"""


def browser() -> str:
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("no Chromium on PATH (apt-get install chromium; .ci/run installs it)")


def open_page(page: Path, work: Path) -> tuple[str, list[str], list[str]]:
    """(the DOM after load, console messages, URLs the page requested)."""
    net = work / f"{page.stem}.netlog.json"
    done = subprocess.run([browser(), *FLAGS, f"--log-net-log={net}", "--dump-dom",
                           page.as_uri()], capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    log: dict[str, Any] = json.loads(net.read_text(encoding="utf-8"))
    requested = sorted({str(e["params"]["url"]) for e in log.get("events", [])
                        if isinstance(e.get("params"), dict) and "url" in e["params"]
                        and e["params"].get("initiator") not in (None, "not an origin")})
    return done.stdout, console, requested


def test_report_in_a_browser(tmp_path: Path) -> None:
    chromium = browser()  # skip before simulating when there is none
    assert chromium
    system = model.load(SHOP)
    run = simulations.simulate(system, "zone-a-outage", duration=240, seed=3)
    write_report(run, tmp_path, system)
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    control = tmp_path / "control.html"
    control.write_text(page.replace("</body>", "<img src='http://127.0.0.1:9/x.png'>"
                                    "<script>console.error('control')</script></body>"),
                       encoding="utf-8")

    dom, console, requested = open_page(probe, tmp_path)
    assert console == []
    assert requested == []
    found = json.loads(re.search(r"<pre id=\"probe\">(.*?)</pre>", dom, re.S)[1])  # type: ignore[index]
    assert found["faults"] and found["fault_rows"] == 1
    assert found["timeline"] and found["tooltips"] > 20
    figures = {f["alt"]: f for f in found["figures"]}
    assert set(figures) == {name[:-4] for name in FIGURES}
    assert all(f["shown"] and f["loaded"] for f in figures.values()), figures

    _, console, requested = open_page(control, tmp_path)
    assert any("control" in line for line in console), console
    assert requested == ["http://127.0.0.1:9/x.png"]
