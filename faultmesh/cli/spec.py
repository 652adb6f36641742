"""Commands about the spec itself: validate, schema, dump, graph."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from faultmesh import model
from faultmesh.cli.app import (
    EXIT_BAD_INPUT,
    EXIT_OK,
    Command,
    SpecArg,
    app,
    bad_input,
    load_spec,
    out,
    plural,
    print_spec_errors,
    write_atomic,
)
from faultmesh.model.graph import to_dot, to_mermaid
from faultmesh.model.spec import SpecErrors


@app.command(cls=Command, short_help="check specs; print every error, located")
def validate(
    specs: Annotated[list[Path], typer.Argument(
        metavar="SPEC", help="spec files to check", show_default=False)],
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object on stdout")] = False,
) -> None:
    """Check specs: every error of every file, located by file, line and column."""
    results = []
    failed = False
    for path in specs:
        try:
            system = load_spec(path)
        except SpecErrors as exc:
            failed = True
            results.append({"file": str(path), "valid": False,
                            "errors": [{"line": e.line, "column": e.column, "path": e.path,
                                        "message": e.message} for e in exc.errors]})
            if not as_json:
                print_spec_errors(exc)
            continue
        endpoints = sum(len(s.endpoints) for s in system.services.values())
        results.append({"file": str(path), "valid": True, "system": system.name,
                        "services": len(system.services), "endpoints": endpoints,
                        "instances": len(system.instances)})
        if not as_json:
            out.print(f"ok  {path}: {system.name}, {plural(len(system.services), 'service')}, "
                      f"{plural(endpoints, 'endpoint')}, "
                      f"{plural(len(system.instances), 'instance')}", markup=False)
    if as_json:
        print(json.dumps({"files": results}, indent=2))
    raise typer.Exit(EXIT_BAD_INPUT if failed else EXIT_OK)


@app.command(cls=Command, short_help="JSON Schema of the spec (for editors)")
def schema(
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", metavar="FILE", help="write to this file", show_default=False)] = None,
) -> None:
    """Print the JSON Schema of the spec, for editors' YAML language servers."""
    text = json.dumps(model.json_schema(), indent=2) + "\n"
    if output is None:
        sys.stdout.write(text)
    else:
        write_atomic(output, text)


@app.command(cls=Command, short_help="the spec fully expanded: templates, defaults resolved")
def dump(
    spec: SpecArg,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", metavar="FILE", help="write to this file", show_default=False)] = None,
) -> None:
    """Write the spec with templates, endpoint defaults, labels and defaults expanded: every
    resolved value spelled out; it loads to the same model."""
    try:
        system = load_spec(spec)
    except SpecErrors as exc:
        print_spec_errors(exc)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    text = model.spec.dump(system)
    if output is None:
        sys.stdout.write(text)
    else:
        write_atomic(output, text)


@app.command(cls=Command, short_help="the topology as a picture (dot or mermaid)")
def graph(
    spec: SpecArg,
    fmt: Annotated[str, typer.Option(
        "--format", metavar="dot|mermaid", help="Graphviz dot or a mermaid flowchart")] = "dot",
    highlight: Annotated[list[str] | None, typer.Option(
        "--highlight", metavar="SERVICE", help="a service to draw as down (repeatable)",
        show_default=False)] = None,
) -> None:
    """Print the topology as a picture: Graphviz dot or a mermaid flowchart."""
    if fmt not in ("dot", "mermaid"):
        bad_input(f"--format takes dot or mermaid, not {fmt!r}")
    system = load_spec(spec)
    marked = set(highlight or ())
    unknown = marked - set(system.services)
    if unknown:
        bad_input(f"--highlight names unknown services: {', '.join(sorted(unknown))}")
    sys.stdout.write(to_dot(system, marked) if fmt == "dot" else to_mermaid(system, marked))
