"""A sweep on the local process pool works from a plain script without a main guard.

Workers of a ``spawn``/``forkserver`` pool re-run the parent's main script unless told not to;
a script with no ``if __name__ == "__main__":`` guard then starts a sweep inside each worker,
which dies. These run real scripts in a subprocess: from a file, from stdin, and a guarded
script whose own function is the runner (that one must still reach the workers).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MM1 = ROOT / "specs" / "mm1.yaml"

UNGUARDED = f"""
import faultmesh

system = faultmesh.load({str(MM1)!r})
print("script body ran", flush=True)
runs = faultmesh.sweep(system, duration="5s", seeds=2, workers=2, progress=False,
                       grid={{"services.server.workers": [1, 2]}})
print("runs:", len(runs), flush=True)
"""


def _python(args: list[str], cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=cwd, input=stdin, capture_output=True,
                          text=True, timeout=180)


@pytest.mark.parametrize("how", ["file", "stdin"])
def test_unguarded_script_sweeps_on_the_local_pool(tmp_path: Path, how: str) -> None:
    script = tmp_path / "sweep_script.py"
    script.write_text(UNGUARDED)
    done = (_python([str(script)], tmp_path) if how == "file"
            else _python(["-"], tmp_path, stdin=UNGUARDED))
    assert done.returncode == 0, done.stderr
    assert "runs: 4" in done.stdout
    # The workers never ran the script: its body printed once, in the parent.
    assert done.stdout.count("script body ran") == 1, done.stdout
    assert "Traceback" not in done.stderr


def test_a_runner_defined_in_the_main_script_still_reaches_the_workers(tmp_path: Path) -> None:
    script = tmp_path / "own_runner.py"
    script.write_text(f"""
import os

import faultmesh
from faultmesh.simulations.sweeps import backends


def tagged(task):
    summary = backends.simulate_run(task)
    summary["ran_in"] = os.getpid()
    return summary


if __name__ == "__main__":
    backends.run_one = tagged
    result = faultmesh.simulations.sweeps.run_sweep(
        {str(MM1)!r}, duration="5s", seeds=2, workers=2, progress=None)
    pids = {{record["ran_in"] for record in result.records.values()}}
    print("other processes:", os.getpid() not in pids, flush=True)
""")
    done = _python([str(script)], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "other processes: True" in done.stdout
