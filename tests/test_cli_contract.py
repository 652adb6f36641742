"""The command line agrees with the README and speaks one language.

The README's "The command line" block and ``faultmesh [CMD] --help`` list the same options
(both ways), and only required options stand outside brackets; ``--version``; help shows
metavars (``SPEC``, ``N``), never Python types (``<list[str]>``, ``{spec}``), and whole command
descriptions; every message is ``error: ...`` (click's usage errors too); ``verify --graph``
writes the drawing alone to stdout; ``--trace``/``--force`` without ``--out`` are refused, not
ignored; counts agree with their nouns; spec headers cite files that exist.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer
import yaml

from faultmesh import __version__
from faultmesh.cli import app, main

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
COMMANDS = tuple(typer.main.get_command(app).list_commands(None))  # type: ignore[attr-defined,arg-type]
OPTION = re.compile(r"(?<![\w-])(--?[a-zA-Z][\w-]*)")


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def readme_synopsis() -> dict[str, str]:
    """The README's command-line block: the text of each command (``""`` for the program's own
    options), continuation lines joined, descriptions after a wide gap dropped."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## The command line", 1)[1]
    block = re.search(r"```\n(.*?)```", section, re.S)
    assert block, "no code block under 'The command line'"
    commands: dict[str, str] = {}
    current = None
    for line in block[1].splitlines():
        usage = re.split(r"\s{3,}(?=[a-z])", line.strip())[0]  # drop the description
        if line.startswith("faultmesh "):
            words = usage.split()
            current = "" if words[1].startswith("-") else words[1]
            commands[current] = commands.get(current, "") + " " + " ".join(
                words[1 if current == "" else 2:])
        elif current is not None and line.startswith(" "):
            commands[current] += " " + usage
    return commands


def help_options(command: str) -> dict[str, set[str]]:
    """Each option of ``command``'s help (``""``: the program's), by its names."""
    click_command = typer.main.get_command(app)
    if command:
        click_command = click_command.commands[command]  # type: ignore[attr-defined]
    options: dict[str, set[str]] = {}
    for param in click_command.params:
        if param.param_type_name == "option" and "--help" not in param.opts:
            options[param.opts[-1]] = {*param.opts, *param.secondary_opts}
    return options


def outside_brackets(text: str) -> set[str]:
    depth, found = 0, set()
    for match in re.finditer(r"\[|\]|(?<![\w-])--?[a-zA-Z][\w-]*", text):
        token = match[0]
        depth += 1 if token == "[" else -1 if token == "]" else 0
        if token.startswith("-") and depth == 0:
            found.add(token)
    return found


def test_readme_synopsis_matches_the_help() -> None:
    synopsis = readme_synopsis()
    assert set(COMMANDS) <= set(synopsis), set(COMMANDS) - set(synopsis)
    for command in ("", *COMMANDS):
        shown = set(OPTION.findall(synopsis.get(command, "")))
        options = help_options(command)
        every_name = set().union(*options.values()) if options else set()
        assert shown <= every_name, (command or "faultmesh", "in the README, not in the help",
                                     shown - every_name)
        missing = [name for name, names in options.items() if not names & shown]
        assert not missing, (command or "faultmesh", "in the help, not in the README", missing)
        if not command:  # `faultmesh --version` is a way to call it, not a required option
            continue
        required = {name for name, names in options.items() if _required(command, name)}
        assert outside_brackets(synopsis.get(command, "")) <= required, (
            command, "shown as required but optional",
            outside_brackets(synopsis.get(command, "")) - required)


def _required(command: str, name: str) -> bool:
    group = typer.main.get_command(app)
    params = group.commands[command].params if command else group.params  # type: ignore[attr-defined]
    return any(p.required for p in params if name in p.opts)


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--version")
    assert code == 0
    assert out.strip() == f"faultmesh {__version__}"


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_help_names_values_not_python_types(capsys: pytest.CaptureFixture[str],
                                            command: str) -> None:
    code, out, _ = run(capsys, *([command] if command else []), "--help")
    assert code == 0
    assert not re.search(r"<[a-z\[\], ]+>", out), out  # <int>, <list[str]>, <path>
    assert not re.search(r"\{[a-z_]+\}", out), out  # {spec}
    if command:
        assert re.search(r"Usage: faultmesh \w+ \[OPTIONS\]( \[?[A-Z]+(\.\.\.)?\]?)*\n", out), out


def test_command_list_is_not_cut(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(capsys, "--help")
    listing = out.split("Commands:", 1)[1]
    assert "..." not in listing
    names = re.findall(r"^  (\w+)\s", listing, re.M)
    assert names == list(COMMANDS)
    # in the order of a user's work
    assert names[:6] == ["validate", "verify", "simulate", "sweep", "graph", "schema"]


@pytest.mark.parametrize("args", [["verify"], ["verify", "x.yaml", "--bogus"],
                                  ["simulate", "x.yaml", "--seed", "many"], ["nope"]])
def test_usage_errors_are_lower_case_error_and_exit_2(capsys: pytest.CaptureFixture[str],
                                                      args: list[str]) -> None:
    code, out, err = run(capsys, *args)
    assert code == 2
    assert "Error:" not in out + err
    assert re.search(r"^error: ", err, re.M), err
    assert "Usage: faultmesh" in err  # the usage line still comes first


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pydot's use of pyparsing
def test_verify_graph_writes_the_drawing_alone_to_stdout(
        capsys: pytest.CaptureFixture[str]) -> None:
    pydot = pytest.importorskip("pydot")
    code, out, err = run(capsys, "verify", str(SPECS / "online_boutique.yaml"), "--graph", "dot")
    assert code == 1
    graphs = pydot.graph_from_dot_data(out)  # stdout is dot and nothing else
    assert graphs and all(g.get_type() == "digraph" for g in graphs)
    assert "violated" in err and "violated" not in out.split("\n", 1)[1]


@pytest.mark.parametrize("args", [["simulate", "--trace"], ["simulate", "--force"],
                                  ["sweep", "--force"]])
def test_out_only_options_without_out_are_refused(capsys: pytest.CaptureFixture[str],
                                                  args: list[str]) -> None:
    code, out, err = run(capsys, args[0], str(SPECS / "mm1.yaml"), *args[1:])
    assert code == 2
    assert f"error: {args[1]}" in err and "--out" in err
    assert out == ""


def test_counts_agree_with_their_nouns(capsys: pytest.CaptureFixture[str],
                                       tmp_path: Path) -> None:
    code, out, _ = run(capsys, "validate", str(SPECS / "mm1.yaml"))
    assert code == 0
    assert "1 service, 1 endpoint, 1 instance" in out
    spec = tmp_path / "one.yaml"
    spec.write_text(yaml.safe_dump({
        "system": "one", "zones": ["a", "b"],
        "services": {"web": {"replicas": 2, "placement": {"a": 1},
                             "endpoints": {"home": {"service_time": "1ms"}}}},
        "workload": [{"entry": "web.home", "rate": "1/s"}]}))
    code, _, err = run(capsys, "validate", str(spec))
    assert code == 2
    assert "places 1 replica but replicas is 2" in err


def test_spec_headers_cite_files_that_exist() -> None:
    cited = 0
    for spec in SPECS.glob("*.yaml"):
        header = "".join(line for line in spec.read_text().splitlines(keepends=True)
                         if line.startswith("#"))
        for path in re.findall(r"\b((?:[\w.-]+/)+[\w.-]+\.(?:csv|yaml|md))\b", header):
            cited += 1
            assert (ROOT / path).exists(), f"{spec.name} cites {path}, not in the repository"
    assert cited >= 4  # the real systems cite their call graphs
