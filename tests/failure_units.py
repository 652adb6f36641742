"""What may fail, spelled as the verifier's counterexamples spell it; shared by the brute-force
oracles of the survives and capacity tests (and by nothing in model.verify)."""

from __future__ import annotations

from faultmesh.model.system import System


def oracle_units(system: System, of: tuple[str, ...]) -> list[str]:
    units = []
    if "instance" in of:
        units += [f"instance:{name}-{i}" for name, s in system.services.items()
                  for i in range(len(s.zones))]
    if "zone" in of:
        units += [f"zone:{z}" for z in system.zones]
    return units
