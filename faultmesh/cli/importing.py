"""The ``import`` command: Kubernetes/Istio manifests, Compose files or traces -> a spec.

``faultmesh import KIND PATH... [-o spec.yaml] [--into existing.yaml] [--force]``. Without
``-o`` or ``--into`` the spec goes to stdout. Warnings (kinds skipped, orphan spans, names
that match no service) go to stderr and do not fail the import; unusable input exits 2 with
file, line and column. The written spec always loads (it is validated before it is written).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from faultmesh.cli.app import EXIT_OK, app, bad_input, err, out, write_atomic
from faultmesh.model.spec.errors import SpecErrors

if TYPE_CHECKING:  # the importers load the spec loader: only the import command needs them
    from faultmesh.model.importers.common import Draft

KINDS = ("k8s", "istio", "compose", "traces")


def build_draft(kind: str, paths: list[Path], system: str) -> Draft:
    """Run the importer for ``kind`` (k8s and istio read the same manifests)."""
    if kind in ("k8s", "istio"):
        from faultmesh.model.importers.k8s import import_k8s

        return import_k8s(paths, system)
    if kind == "compose":
        from faultmesh.model.importers.compose import import_compose

        return import_compose(paths, system)
    from faultmesh.model.importers.traces import import_traces

    return import_traces(paths, system)


@app.command("import")
def import_command(
    kind: Annotated[str, typer.Argument(help="k8s, istio, compose or traces",
                                        show_default=False)],
    paths: Annotated[list[Path], typer.Argument(help="files or directories to read",
                                                show_default=False)],
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="write the spec here (default: stdout)",
        show_default=False)] = None,
    into: Annotated[Path | None, typer.Option(
        "--into", help="merge into this existing spec, keeping its settings",
        show_default=False)] = None,
    system: Annotated[str | None, typer.Option(
        "--system", help="the system's name (default: the first path's name)",
        show_default=False)] = None,
    force: Annotated[bool, typer.Option("--force", help="overwrite -o / rewrite --into")] = False,
) -> None:
    """Write a spec from what you already run: manifests, a Compose file, or traces."""
    from faultmesh.model.importers.common import spec_name
    from faultmesh.model.spec.load import loads

    if kind not in KINDS:
        bad_input(f"unknown import kind {kind!r}; use one of {', '.join(KINDS)}")
    if output is not None and into is not None:
        bad_input("give -o or --into, not both")
    if output is not None and output.exists() and not force:
        bad_input(f"{output} exists; pass --force to overwrite it")
    if into is not None and not into.is_file():
        bad_input(f"--into {into}: no such spec file")
    name = system or spec_name(paths[0].resolve().stem if paths[0].is_file()
                               else paths[0].resolve().name)
    draft = build_draft(kind, paths, name)
    for warning in draft.warnings:
        err.print(f"warning: {warning}", markup=False)
    if into is not None:
        from faultmesh.model.importers.merge import merge

        text, notes = merge(into.read_text(encoding="utf-8"), str(into), draft)
        for note in notes:
            err.print(f"note: {note}", markup=False)
        target: Path | None = into
    else:
        text, target = draft.text(), output
    try:
        loads(text, str(target or "<import>"))
    except SpecErrors as exc:  # a bug, or a merge with a spec that conflicts: never written
        raise SpecErrors([*exc.errors]) from None
    if target is None:
        sys.stdout.write(text)
        raise typer.Exit(EXIT_OK)
    if into is not None and not force:
        if not sys.stdin.isatty():
            bad_input(f"--into rewrites {into}; pass --force to confirm (no terminal to ask)")
        if not typer.confirm(f"rewrite {into}?", default=False, err=True):
            bad_input("nothing written")
    write_atomic(target, text)
    services = len(draft.document.get("services", {}))
    out.print(f"wrote {target}: {services} services from {kind}", markup=False)
    raise typer.Exit(EXIT_OK)
