"""Tests of the one key-path editor (``model.spec.edit``) that repairs and sweeps both use.

Paths that lead nowhere are located errors; edits keep replicas, placement and zones consistent
without moving a replica nobody named. The round-robin property is checked against the spread
``from_document`` itself gives a spec that names only ``replicas``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from faultmesh.model.spec import from_document, load, to_document
from faultmesh.model.spec.edit import EditError, apply_changes, check_key, parse_key
from faultmesh.model.verify.verdict import Repair

SPECS = Path(__file__).resolve().parent.parent / "specs"


def shop() -> dict[str, Any]:
    """zone_outage_shop: payment's two replicas are both in zone a (placement: {a: 2})."""
    return to_document(load(SPECS / "zone_outage_shop.yaml"))


def zones_of(document: dict[str, Any], service: str) -> tuple[str, ...]:
    return tuple(from_document(document).services[service].zones)


def test_parse_key_reads_keys_and_indexes_and_refuses_the_rest() -> None:
    assert parse_key("services.a.calls[0].parallel[1].timeout") == [
        "services", "a", "calls", 0, "parallel", 1, "timeout"]
    for bad in ("", "a..b", "a.[0]", "a[x]", "a[0", ".a"):
        with pytest.raises(EditError, match="cannot read this key path"):
            parse_key(bad)


@pytest.mark.parametrize("path, message", [
    ("services.paymnt.replicas", "unknown key 'paymnt' in services; did you mean 'payment'?"),
    ("workload[7].rate", "workload has 2 items; [7] is out of range"),
    ("services.payment.replicas.count", "services.payment.replicas is a number, not a mapping"),
    ("zones.a", "zones is a list of 3, not a mapping"),
    ("defaults.call.timeout", "'defaults' has no effect here"),
])
def test_a_path_that_leads_nowhere_is_a_located_error(path: str, message: str) -> None:
    with pytest.raises(EditError) as info:
        apply_changes(shop(), {path: 1})
    assert info.value.path == path and message in info.value.message
    assert str(info.value).startswith(f"{path}: ")


def test_the_last_step_may_be_a_key_the_document_omits() -> None:
    document = shop()
    assert check_key(document, "workload[0].timeout") == ("workload", 0, "timeout")
    assert apply_changes(document, {"workload[0].timeout": "2s"})["workload"][0]["timeout"] == "2s"
    assert "timeout" not in document["workload"][0]  # the input is not modified


def test_replicas_scale_the_placement_moving_no_replica() -> None:
    document = shop()
    assert document["services"]["payment"]["placement"] == {"a": 2}
    same = apply_changes(document, {"services.payment.replicas": 2})
    assert zones_of(same, "payment") == ("a", "a")  # the placement the spec chose is kept
    more = apply_changes(document, {"services.payment.replicas": 4})
    assert more["services"]["payment"]["placement"] == {"a": 2, "b": 1, "c": 1}
    fewer = apply_changes(document, {"services.payment.replicas": 1})
    assert fewer["services"]["payment"]["placement"] == {"a": 1}
    # Nothing else moved.
    for name, service in document["services"].items():
        if name != "payment":
            assert more["services"][name] == service


def test_a_zone_of_the_placement_sets_replicas() -> None:
    document = shop()
    for count, replicas in ((0, 2), (1, 3), (3, 5)):
        edited = apply_changes(document, {"services.payment.placement.b": count})
        assert edited["services"]["payment"]["replicas"] == replicas
        assert sorted(zones_of(edited, "payment")) == ["a", "a", *["b"] * count]
    whole = apply_changes(document, {"services.payment.placement": {"b": 1, "c": 1}})
    assert zones_of(whole, "payment") == ("b", "c")


def test_replicas_and_placement_named_together_are_written_as_given() -> None:
    edited = apply_changes(shop(), {"services.payment.replicas": 1,
                                    "services.payment.placement": {"a": 1, "c": 1}})
    assert edited["services"]["payment"]["replicas"] == 1
    assert edited["services"]["payment"]["placement"] == {"a": 1, "c": 1}


def test_new_zones_move_only_the_replicas_of_a_zone_that_is_gone() -> None:
    document = shop()
    added = apply_changes(document, {"zones": ["a", "b", "c", "d"]})
    for name, service in document["services"].items():
        assert added["services"][name]["placement"] == service["placement"]
    removed = apply_changes(document, {"zones": ["a", "b"]})
    assert removed["services"]["payment"]["placement"] == {"a": 2}
    assert document["services"]["cart"]["placement"] == {"a": 1, "b": 1, "c": 1}
    assert removed["services"]["cart"]["placement"] == {"a": 2, "b": 1}  # fewest first
    assert zones_of(removed, "cart") == ("a", "b", "a")


@settings(max_examples=60, deadline=None)
@given(zones=st.integers(1, 4), before=st.integers(1, 12), after=st.integers(1, 12))
def test_scaling_a_round_robin_spread_gives_the_round_robin_spread(
        zones: int, before: int, after: int) -> None:
    names = ["a", "b", "c", "d"][:zones]
    spec = {"system": "s", "zones": names, "services": {
        "s": {"replicas": before, "endpoints": {"e": {"service_time": "1ms"}}}},
        "workload": [{"entry": "s.e", "rate": 1}]}
    document = to_document(from_document(spec))
    scaled = from_document(apply_changes(document, {"services.s.replicas": after}))
    spec["services"]["s"]["replicas"] = after
    assert scaled.services["s"].zones == from_document(spec).services["s"].zones


def test_orchestration_changes_reach_the_services_that_had_the_old_value() -> None:
    document = shop()
    edited = apply_changes(document, {"orchestration.readiness.period": "3s"})
    assert edited["orchestration"]["readiness"]["period"] == "3s"
    assert all(s["readiness"]["period"] == "3s" for s in edited["services"].values())


def test_a_bare_call_string_is_expanded_to_set_a_key_under_it() -> None:
    spec = {"services": {"a": {"endpoints": {"e": {"calls": ["b.f"]}}}}}
    edited = apply_changes(spec, {"services.a.endpoints.e.calls[0].timeout": "1s"})
    assert edited["services"]["a"]["endpoints"]["e"]["calls"] == [
        {"call": "b.f", "timeout": "1s"}]


def test_a_repair_goes_through_the_same_editor() -> None:
    system = load(SPECS / "zone_outage_shop.yaml")
    repaired = Repair("add one replica of payment", {"services.payment.replicas": 3}).apply(system)
    assert sorted(repaired.services["payment"].zones) == ["a", "a", "b"]
    with pytest.raises(EditError, match="unknown key 'paymnt'"):
        Repair("typo", {"services.paymnt.replicas": 3}).apply(system)


def test_new_replicas_go_where_one_by_one_choices_put_them() -> None:
    """The editor places added replicas by water level; it is the rule "each new replica to
    the zone with the fewest, earlier zones on ties" applied one replica at a time."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from faultmesh.model.spec.edit import _add

    def one_by_one(counts: dict[str, int], zones: list[str], count: int) -> dict[str, int]:
        out = {z: counts.get(z, 0) for z in zones}
        out.update({z: n for z, n in counts.items() if z not in out})
        for _ in range(count):
            out[min(zones, key=lambda z: out[z])] += 1
        return {z: n for z, n in out.items() if n}

    @settings(max_examples=300, deadline=None, derandomize=True, database=None)
    @given(st.lists(st.integers(0, 6), min_size=1, max_size=7), st.integers(0, 40),
           st.integers(0, 3))
    def one(levels: list[int], count: int, outside: int) -> None:
        zones = [f"z{i}" for i in range(len(levels))]
        counts = {z: n for z, n in zip(zones, levels, strict=True) if n}
        if outside:
            counts["elsewhere"] = outside
        assert _add(counts, zones, count) == one_by_one(counts, zones, count)

    one()
