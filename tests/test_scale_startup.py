"""Start-up cost of the command line, as behaviour: what importing it and asking for help loads.

Time is not asserted (the machine is shared); what is asserted is that the heavy packages a
command may need (networkx for graphs, SimPy and matplotlib for simulation, Z3 for proofs,
pydantic and the spec schema for loading) are not imported before a command asks for them.
Each check runs in a fresh interpreter, since this process has long imported all of them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SPECS = Path(__file__).resolve().parent.parent / "specs"
HEAVY = ("networkx", "simpy", "matplotlib", "z3", "numpy", "pandas")
LOADER = ("pydantic", "yaml", "faultmesh.model.spec.schema", "faultmesh.model.spec.load")


def loaded_after(code: str) -> set[str]:
    """The top-level names in ``sys.modules`` after ``code`` runs in a fresh interpreter."""
    probe = (f"import sys, json\n{code}\n"
             "print(json.dumps(sorted(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True, timeout=120)
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def test_importing_the_cli_loads_no_heavy_package() -> None:
    modules = loaded_after("import faultmesh.cli.app")
    assert "faultmesh.cli.app" in modules  # the probe did run
    assert not modules & set(HEAVY), sorted(modules & set(HEAVY))
    assert not modules & set(LOADER), sorted(modules & set(LOADER))


def test_help_loads_neither_the_heavy_packages_nor_the_spec_loader() -> None:
    code = ("from faultmesh.cli import main\n"
            "import contextlib, io\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    assert main(['--help']) == 0\n")
    modules = loaded_after(code)
    assert not modules & {*HEAVY, *LOADER}, sorted(modules & {*HEAVY, *LOADER})


def test_validate_loads_the_spec_loader_but_nothing_heavy() -> None:
    code = ("from faultmesh.cli import main\n"
            "import contextlib, io\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            f"    assert main(['validate', {str(SPECS / 'mm1.yaml')!r}]) == 0\n")
    modules = loaded_after(code)
    assert "faultmesh.model.spec.load" in modules
    assert not modules & set(HEAVY), sorted(modules & set(HEAVY))


def test_the_verifier_s_checkers_load_without_the_spec_loader() -> None:
    """A System built in Python (a notebook, a benchmark) is verified without pydantic: the
    checkers import the spec's limits and editor, not its schema."""
    code = ("from faultmesh.model.verify import _load_checkers, CHECKERS\n"
            "_load_checkers()\n"
            "assert {'survives', 'capacity', 'staleness', 'timeouts_nest'} <= set(CHECKERS)\n")
    modules = loaded_after(code)
    assert not modules & set(LOADER), sorted(modules & set(LOADER))


@pytest.mark.parametrize("name", ["load", "loads", "dump", "json_schema", "System", "Report",
                                  "Verdict", "SpecError", "SpecErrors", "verify"])
def test_the_model_package_still_exports_its_names(name: str) -> None:
    import faultmesh.model as model

    assert getattr(model, name) is not None


def test_model_verify_is_the_function_even_after_its_subpackage_is_imported() -> None:
    out = subprocess.run(
        [sys.executable, "-c",
         "import faultmesh.model.verify.capacity, faultmesh.model as m, json\n"
         "from faultmesh.model import verify\n"
         "print(json.dumps([callable(m.verify), callable(verify), "
         "m.verify.__module__]))"],
        capture_output=True, text=True, check=True, timeout=120)
    assert json.loads(out.stdout) == [True, True, "faultmesh.model.verify"]
