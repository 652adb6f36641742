"""The first hour of a new user, scripted: the README's commands and its Python example, run.

Everything is taken from README.md as it stands: the shell commands of its ``sh`` blocks (the
quick start, editor support) and of its ``$ faultmesh ...`` transcripts, when they name files
that exist; and the Python API example, written to a plain ``.py`` file with no
``if __name__ == "__main__":`` guard, as a user would paste it. On top, the tour a new user
takes with the synopsis: validate every shipped spec, verify each, simulate the first scenario
of each.

Each runs in a subprocess in a scratch directory holding a copy of specs/ (the README's
relative paths work, and what it writes stays there), with stdout a pipe at 80 columns as in a
CI log, in a fresh virtual environment where the checkout is installed as the README says
(``pip install -e .``). The environment sees the machine's site-packages, so the install takes
the dependencies already there (``--no-deps``: downloading them again would cost minutes)
while faultmesh itself, its console script and its import hook are installed anew. Checked:
the documented exit codes, no traceback, no number or name cut short with an ellipsis.

To stay within about a minute, the Python example's sweep runs 2 seeds instead of its 5 (a
wrapper put in front of the pasted code), and the tour runs in this process, each simulation
30 s past its scenario's warm-up.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
CUT = re.compile(r"\w…|…\w")  # a word cut short by a table
TOUR_MEASURED = 30.0  # seconds each tour simulation runs past its scenario's warm-up
# What the README documents for its commands: the quick start's verify of Online Boutique
# as upstream runs it finds a violated property (exit 1); the rest exit 0.
DOCUMENTED_EXIT = {"faultmesh verify specs/online_boutique.yaml": 1}
SKIPPED_PROGRAMS = ("pip", "python", "jupyter")  # installing and the test suite are CI's


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, re.S)


def readme_commands() -> list[str]:
    """The faultmesh commands of the README's sh blocks and $-transcripts, in order."""
    commands = []
    for block in blocks("sh"):
        for line in block.splitlines():
            for part in line.split("&&"):
                part = part.strip()
                if part and not part.startswith(SKIPPED_PROGRAMS):
                    commands.append(part)
    for block in blocks(""):
        commands += [line[2:].strip() for line in block.splitlines()
                     if line.startswith("$ faultmesh ")]
    return commands


def python_example() -> str:
    section = README.split("## Python API", 1)[1]
    return next(block for block in blocks("python") if "import faultmesh" in block
                and block in section)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("first-hour")
    shutil.copytree(ROOT / "specs", where / "specs")
    return where


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with the checkout installed in it; returns its bin/."""
    where = tmp_path_factory.mktemp("venv")
    # Without a pip of its own, the environment runs the machine's pip and setuptools: a
    # venv's bundled setuptools can be older than the build needs (pyproject's `license`).
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip",
                    str(where)], check=True, capture_output=True, timeout=300)
    bin_dir = where / "bin"
    done = subprocess.run([str(bin_dir / "python"), "-m", "pip", "install", "--no-deps",
                           "--no-build-isolation", "--disable-pip-version-check", "-q", "-e",
                           str(ROOT)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert (bin_dir / "faultmesh").exists(), "the install made no console script"
    return bin_dir


def run(workspace: Path, argv: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "80"}
    for name in ("FORCE_COLOR", "FAULTMESH_DEBUG"):
        env.pop(name, None)
    return subprocess.run(argv, cwd=workspace, env=env, capture_output=True, text=True,
                          timeout=300, stdin=subprocess.DEVNULL)


def faultmesh(bin_dir: Path, *args: str) -> list[str]:
    """The console script as the README calls it, from the fresh environment."""
    return [str(bin_dir / "faultmesh"), *args]


def check_output(done: subprocess.CompletedProcess[str], what: str) -> None:
    for stream in (done.stdout, done.stderr):
        assert "Traceback" not in stream, (what, stream)
        cut = CUT.search(stream)
        assert cut is None, (what, stream[max(0, cut.start() - 80):cut.end() + 20])


def test_the_readme_has_what_this_test_reads() -> None:
    commands = readme_commands()
    assert "faultmesh verify specs/online_boutique.yaml" in commands  # the quick start
    assert any(c.startswith("faultmesh schema") for c in commands)
    assert "faultmesh.sweep(" in python_example()


def test_readme_commands(workspace: Path, venv: Path) -> None:
    ran = 0
    for command in readme_commands():
        argv = shlex.split(command)
        named = [a for a in argv[2:] if a.endswith((".yaml", ".yml")) and "*" not in a]
        if any(not (workspace / a).exists() for a in named if not a.startswith("-")) \
                and argv[1] != "schema":
            continue  # a transcript about a user's own file (shop.yaml)
        done = run(workspace, faultmesh(venv, *argv[1:]))
        check_output(done, command)
        assert done.returncode == DOCUMENTED_EXIT.get(command, 0), (command, done.stderr)
        ran += 1
    assert ran >= 2
    assert (workspace / "faultmesh.schema.json").exists()  # the editor-support command


def test_python_example_as_a_plain_script(workspace: Path, venv: Path) -> None:
    code = python_example()
    assert '__name__ == "__main__"' not in code
    script = workspace / "first_hour.py"
    script.write_text(
        "import faultmesh as _faultmesh\n"
        "_sweep = _faultmesh.sweep\n"
        "def _fewer_seeds(*args, seeds=5, **kwargs):  # the test's budget, not the user's\n"
        "    return _sweep(*args, seeds=min(seeds, 2), **kwargs)\n"
        "_faultmesh.sweep = _fewer_seeds\n"
        "\n" + code + "\nprint('first hour: done')\n")
    done = run(workspace, [str(venv / "python"), str(script)])
    check_output(done, "the Python API example")
    assert done.returncode == 0, done.stderr
    assert done.stdout.rstrip().endswith("first hour: done")
    assert "worker process died" not in done.stderr


def test_the_tour_of_the_shipped_specs(capsys: pytest.CaptureFixture[str]) -> None:
    """In this process (a subprocess each would double the test's time): every shipped spec
    validated, verified, and its first scenario simulated past its warm-up."""
    from faultmesh import load
    from faultmesh.cli import main

    specs = sorted((ROOT / "specs").glob("*.yaml"))
    assert main(["validate", *map(str, specs)]) == 0
    assert capsys.readouterr().out.count("ok  ") == len(specs)
    for spec in specs:
        code = main(["verify", str(spec)])
        captured = capsys.readouterr()
        check_output(subprocess.CompletedProcess([], code, captured.out, captured.err),
                     f"verify {spec.name}")
        assert code in (0, 1), (spec.name, captured.err)
        for name, scenario in list(load(spec).scenarios.items())[:1]:  # the first: the time
            duration = f"{(scenario.warmup or 0) + TOUR_MEASURED:g}"
            code = main(["simulate", str(spec), "--scenario", name, "--duration", duration])
            captured = capsys.readouterr()
            check_output(subprocess.CompletedProcess([], code, captured.out, captured.err),
                         f"simulate {spec.name} {name}")
            assert code in (0, 1), (spec.name, name, captured.err)
            assert "verdict:" in captured.out
