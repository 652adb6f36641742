"""Optional dependencies: the core install verifies and simulates; the rest say which extra.

Each case runs in a fresh interpreter in which the optional packages are made unimportable
(``sys.modules[name] = None``, as if they were not installed), so what a user of the core
install meets is what these tests see: a one-line message naming the extra, exit 2, no
traceback, and no half-written output.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from faultmesh.model.extras import EXTRAS, MissingExtra, check, requires

ROOT = Path(__file__).resolve().parents[1]
MM1 = str(ROOT / "specs" / "mm1.yaml")
SHOP = str(ROOT / "specs" / "zone_outage_shop.yaml")
OPTIONAL = sorted({package for packages in EXTRAS.values() for package in packages})

_WITHOUT = """
import sys
for name in {blocked!r}:
    sys.modules[name] = None  # as if not installed
{body}
"""


def without(blocked: list[str], body: str) -> subprocess.CompletedProcess[str]:
    script = _WITHOUT.format(blocked=blocked, body=body)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=ROOT, timeout=300, check=False)


def cli_without(blocked: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    return without(blocked, f"from faultmesh.cli import main\nsys.exit(main({list(args)!r}))")


def assert_names_extra(done: subprocess.CompletedProcess[str], extra: str) -> None:
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    (line,) = done.stderr.splitlines()
    assert line.startswith("error: ") and f"pip install 'faultmesh[{extra}]'" in line, line


# --- the helpers themselves ---------------------------------------------------------------------


def test_requires_names_the_extra_of_a_missing_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(MissingExtra, match=r"pip install 'faultmesh\[data\]'") as caught, \
            requires("data", "writing Parquet files"):
        import pyarrow  # noqa: F401
    assert caught.value.extra == "data" and caught.value.package == "pyarrow"
    assert str(caught.value).startswith("writing Parquet files needs pyarrow")
    with pytest.raises(MissingExtra, match="'data' extra"):
        check("data")


def test_requires_lets_other_import_errors_through(monkeypatch: pytest.MonkeyPatch) -> None:
    # A missing module that no extra provides is a defect, not a missing extra: never hidden.
    monkeypatch.setitem(sys.modules, "faultmesh.simulations.no_such_module", None)
    with pytest.raises(ModuleNotFoundError) as caught, requires("data"):
        import faultmesh.simulations.no_such_module  # type: ignore[import-not-found]  # noqa: F401
    assert not isinstance(caught.value, MissingExtra)
    check("strategies")  # installed (the test extra has it): no error


# --- what needs only the core install -----------------------------------------------------------


def test_verify_and_simulate_json_need_only_the_core() -> None:
    done = cli_without(OPTIONAL, "verify", MM1, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["verdict"] == "holds"
    done = cli_without(OPTIONAL, "simulate", MM1, "--duration", "5s", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["entries"]["server.serve"]["requests"] > 0


def test_the_api_loads_and_simulates_with_only_the_core() -> None:
    done = without(OPTIONAL, f"""
import faultmesh
run = faultmesh.simulate(faultmesh.load({MM1!r}), duration=5, seed=1)
loaded = [m for m, module in sys.modules.items()
          if module is not None and m.split(".")[0] in {OPTIONAL!r}]
print(run.summary["verdict"], sorted(loaded))
""")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["holds", "[]"]


# --- what needs an extra, and says so -----------------------------------------------------------


@pytest.mark.parametrize("package", ["pandas", "pyarrow", "matplotlib"])
def test_simulate_out_names_the_data_extra_before_running(package: str, tmp_path: Path) -> None:
    out = tmp_path / "run"
    done = cli_without([package], "simulate", MM1, "--duration", "5s", "--out", str(out))
    assert_names_extra(done, "data")
    assert package in done.stderr
    assert not out.exists()  # asked before the run: nothing half-written


def test_sweep_names_its_extras() -> None:
    assert_names_extra(cli_without(["pandas"], "sweep", MM1, "--seeds", "1"), "data")
    assert_names_extra(cli_without(["dask", "distributed"], "sweep", MM1, "--seeds", "1",
                                   "--backend", "dask"), "dask")


def test_verify_replay_names_the_data_extra() -> None:
    done = cli_without(["pandas"], "verify", SHOP, "--property", "survives", "--replay")
    assert_names_extra(done, "data")


@pytest.mark.parametrize(("blocked", "body", "extra"), [
    (["matplotlib"], "import faultmesh\nfaultmesh.plots", "data"),
    (["pandas"], f"import faultmesh\nfaultmesh.simulate(faultmesh.load({MM1!r}), "
                 "duration=5).timeline", "data"),
    (["hypothesis"], "import faultmesh.model.strategies", "strategies"),
    (["dask", "distributed"], f"import faultmesh\nfaultmesh.sweep({MM1!r}, duration=5, "
                              "seeds=1, backend='dask', progress=False)", "dask"),
], ids=["plots", "timeline", "strategies", "dask-sweep"])
def test_the_api_raises_missing_extra(blocked: list[str], body: str, extra: str) -> None:
    done = without(blocked, f"""
from faultmesh.model.extras import MissingExtra
try:
{chr(10).join('    ' + line for line in body.splitlines())}
except MissingExtra as exc:
    print(exc.extra, exc)
""")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{extra} ") and f"faultmesh[{extra}]" in done.stdout, \
        done.stdout
