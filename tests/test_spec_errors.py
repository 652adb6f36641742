"""Bad specs, written the way a new user writes them, give located, helpful errors.

Every case is a small edit of one valid spec (``BASE``). Each must raise ``SpecErrors`` with
exactly one error that names the right line, column and key path, with a message that says
what is wrong (and a "did you mean" hint where one exists); and ``faultmesh validate`` must
exit 2 with ``file:line:col`` on stderr and no traceback. Positions are checked exactly: the
expected line and column are written out, and the text found there is checked too, so a
reader sees what each position points at.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

import pytest

from faultmesh.model.spec import SpecErrors, load, loads

BASE = """\
system: shop
zones: [a, b]
defaults:
  call: {timeout: 1s}
services:
  frontend:
    replicas: 2
    endpoints:
      home:
        service_time: 1ms
        calls:
          - cart.GetCart
          - {call: pricing.Quote, timeout: 200ms, optional: true}
  cart:
    replicas: 2
    depends_on: [redis]
    endpoints:
      GetCart:
        service_time: {exponential: 2ms}
        calls: [redis.HGET]
  redis:
    placement: {a: 1, b: 1}
    endpoints:
      HGET: {service_time: 0.2ms}
  pricing:
    endpoints:
      Quote: {service_time: 3ms}
workload:
  - {entry: frontend.home, rate: 100/s}
properties:
  - survives: {failures: 1}
  - latency: {entry: frontend.home, p99: 250ms}
scenarios:
  outage:
    duration: 10m
    faults:
      - {at: 1m, for: 2m, crash: "zone:a"}
"""


def edited(*edits: tuple[str, str]) -> str:
    """BASE with each (old, new) applied; old must occur exactly once."""
    text = BASE
    for old, new in edits:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return text


def faultmesh(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("faultmesh")
    command = [exe] if exe else [sys.executable, "-m", "faultmesh.cli"]
    return subprocess.run([*command, *args], capture_output=True, text=True, cwd=cwd,
                          timeout=120, check=False)


def frontend_line(line: str) -> tuple[str, str]:
    """An edit replacing frontend's 'replicas: 2' (line 7) by ``line``."""
    return "    replicas: 2\n    endpoints", f"{line}\n    endpoints"


def cart_line(line: str) -> tuple[str, str]:
    """An edit replacing cart's 'replicas: 2' (line 15) by ``line`` (which may hold several)."""
    return "    replicas: 2\n    depends_on", f"{line}\n    depends_on"


@dataclass(frozen=True)
class Case:
    name: str
    text: str
    line: int
    column: int
    path: str
    fragments: tuple[str, ...]
    at: str  # the text that starts at (line, column)


CASES = [
    Case("typo_callee", edited(("- cart.GetCart", "- crat.GetCart")),
         12, 13, "services.frontend.endpoints.home.calls[0]",
         ("unknown service 'crat'", "did you mean 'cart'?"), "crat.GetCart"),
    Case("typo_callee_in_mapping", edited(("{call: pricing.Quote", "{call: prcing.Quote")),
         13, 20, "services.frontend.endpoints.home.calls[1].call",
         ("unknown service 'prcing'", "did you mean 'pricing'?"), "prcing.Quote"),
    Case("unknown_endpoint", edited(("[redis.HGET]", "[redis.HGTE]")),
         20, 17, "services.cart.endpoints.GetCart.calls[0]",
         ("service 'redis' has no endpoint 'HGTE'", "did you mean 'HGET'?"), "redis.HGTE"),
    Case("unknown_key", edited(cart_line("    replicaz: 2")),
         15, 5, "services.cart.replicaz",
         ("unknown key 'replicaz'", "did you mean 'replicas'?"), "replicaz"),
    Case("key_in_the_wrong_place",
         edited(cart_line("    timeout: 2s")),
         15, 5, "services.cart.timeout",
         ("unknown key 'timeout' here", "allowed: replicas, placement, workers"), "timeout"),
    Case("negative_duration", edited(("{service_time: 0.2ms}", "{service_time: -0.2ms}")),
         24, 28, "services.redis.endpoints.HGET.service_time",
         ("must not be negative", "-0.2ms"), "-0.2ms"),
    Case("negative_timeout", edited(("timeout: 200ms", "timeout: -200ms")),
         13, 44, "services.frontend.endpoints.home.calls[1].timeout",
         ("must not be negative",), "-200ms"),
    Case("bad_unit", edited(("service_time: 1ms", "service_time: 1sec")),
         10, 23, "services.frontend.endpoints.home.service_time",
         ("unknown duration unit 'sec'", "use one of us, ms, s, m, min, h"), "1sec"),
    Case("bad_rate_unit", edited(("rate: 100/s", "rate: 100/sec")),
         29, 34, "workload[0].rate", ("unknown rate unit 'sec'", "/s, /m or /h"), "100/sec"),
    Case("zero_replicas", edited(frontend_line("    replicas: 0")),
         7, 15, "services.frontend.replicas", ("greater than or equal to 1", "got 0"), "0"),
    Case("absurd_replicas",
         edited(frontend_line("    replicas: 100000000000")),
         7, 15, "services.frontend.replicas", ("less than or equal to 10000",), "100000000000"),
    Case("unknown_zone_in_placement", edited(("{a: 1, b: 1}", "{a: 1, c: 1}")),
         22, 23, "services.redis.placement.c", ("unknown zone 'c'", "(zones: a, b)"), "c: 1"),
    Case("unknown_zone_in_fault", edited(('"zone:a"', '"zone:c"')),
         37, 34, "scenarios.outage.faults[0].crash", ("unknown zone 'c'", "(zones: a, b)"),
         '"zone:c"'),
    Case("unknown_service_in_fault", edited(('"zone:a"', '"service:crt"')),
         37, 34, "scenarios.outage.faults[0].crash",
         ("unknown service 'crt'", "did you mean 'cart'?"), '"service:crt"'),
    Case("wrong_type", edited(frontend_line("    replicas: two")),
         7, 15, "services.frontend.replicas", ("valid integer", "'two'"), "two"),
    Case("wrong_type_scalar_for_list",
         edited(("zones: [a, b]", "zones: a"), ("{a: 1, b: 1}", "{a: 2}")),
         2, 8, "zones", ("valid list",), "a"),
    Case("broken_yaml", edited(("calls: [redis.HGET]", "calls: [redis.HGET")),
         21, 8, "", ("invalid YAML", "started at line 20, column 16"), ":"),
    Case("tab_indentation", edited(("  cart:\n    replicas", "  cart:\n\treplicas")),
         15, 1, "", ("invalid YAML", "'\\t'", "indent with spaces"), "\t"),
    Case("empty_file", "", 1, 1, "", ("the file is empty",), ""),
    Case("only_comments", "# TODO: write the spec\n", 1, 1, "", ("no YAML document",), "#"),
    Case("duplicate_key",
         edited(cart_line("    replicas: 2\n    replicas: 3")),
         16, 5, "services.cart.replicas",
         ("duplicate key 'replicas'", "first defined at line 15", "keep only the last"),
         "replicas: 3"),
    Case("duplicate_service",
         edited(("      Quote: {service_time: 3ms}\n",
                 "      Quote: {service_time: 3ms}\n  redis:\n    endpoints: {GET: {}}\n")),
         28, 3, "services.redis", ("duplicate key 'redis'", "first defined at line 21"),
         "redis:"),
    Case("python_object_tag",
         edited(("    replicas: 2\n    depends_on",
                 "    replicas: !!python/object/apply:os.system ['echo pwned']\n    depends_on")),
         15, 15, "services.cart.replicas",
         ("python/object/apply:os.system", "is not allowed (safe YAML only)"), "!!python"),
    Case("several_documents", BASE + "---\nsystem: other\n", 39, 1, "",
         ("several YAML documents; a spec is one",), "system: other"),
    Case("unknown_depends_on", edited(("[redis]", "[rediss]")),
         16, 18, "services.cart.depends_on[0]",
         ("unknown service 'rediss'", "did you mean 'redis'?"), "rediss"),
    Case("unknown_workload_entry",
         edited(("entry: frontend.home, rate", "entry: frontend.hme, rate")),
         29, 13, "workload[0].entry",
         ("service 'frontend' has no endpoint 'hme'", "did you mean 'home'?"), "frontend.hme"),
    Case("unknown_property_kind", edited(("- survives:", "- survive:")),
         31, 5, "properties[0]", ("unknown property 'survive'", "did you mean 'survives'?"),
         "survive:"),
    Case("latency_with_two_quantiles", edited(("p99: 250ms}", "p99: 250ms, p50: 100ms}")),
         32, 14, "properties[1].latency",
         ("exactly one of p50, p90, p95, p99, p999",), "{entry"),
    Case("fault_with_two_kinds",
         edited(('crash: "zone:a"}', 'crash: "zone:a", errors: {target: cart, rate: 5%}}')),
         37, 9, "scenarios.outage.faults[0]",
         ("exactly one of crash, latency", "got crash, errors"),
         "{at: 1m"),
    Case("placement_disagrees_with_replicas",
         edited(("  redis:\n    placement", "  redis:\n    replicas: 3\n    placement")),
         23, 16, "services.redis.placement", ("places 2 replicas but replicas is 3",),
         "{a: 1, b: 1}"),
    Case("top_level_list", "- system: shop\n- services: {}\n", 1, 1, "",
         ("a spec is a mapping",), "- system"),
    Case("missing_services", "system: shop\n", 1, 1, "services",
         ("missing required key 'services'",), "system"),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_error_is_located(case: Case) -> None:
    with pytest.raises(SpecErrors) as caught:
        loads(case.text, "spec.yaml")
    errors = caught.value.errors
    assert len(errors) == 1, "\n".join(map(str, errors))  # one mistake, one message: no noise
    (error,) = errors
    assert (error.file, error.line, error.column, error.path) == (
        "spec.yaml", case.line, case.column, case.path), str(error)
    for fragment in case.fragments:
        assert fragment in error.message, (fragment, error.message)
    lines = case.text.splitlines() or [""]
    assert lines[case.line - 1][case.column - 1:].startswith(case.at), lines[case.line - 1]
    assert str(error).startswith(f"spec.yaml:{case.line}:{case.column}:")


def test_misplaced_key_hint_is_not_the_key_itself() -> None:
    # Found by this suite: hints came from every key of the language, so 'timeout' on a
    # service got "did you mean 'timeout'?".
    case = next(c for c in CASES if c.name == "key_in_the_wrong_place")
    with pytest.raises(SpecErrors) as caught:
        loads(case.text)
    assert "did you mean" not in caught.value.errors[0].message


@pytest.mark.parametrize(
    ("edit", "hint"),
    [
        (cart_line("    wrokers: 2"), "'workers'"),
        (("optional: true}", "optinal: true}"), "'optional'"),
        (("p99: 250ms}", "p99: 250ms, widnow: 1m}"), "'window'"),
        (("{timeout: 1s}", "{timeout: 1s, retires: 2}"), "'retries'"),
        (("duration: 10m", "duraton: 10m"), "'duration'"),
        (('crash: "zone:a"}', 'crash: "zone:a", fro: 1m}'), "'for'"),
    ],
)
def test_unknown_keys_get_hints_from_their_own_place(edit: tuple[str, str], hint: str) -> None:
    with pytest.raises(SpecErrors) as caught:
        loads(edited(edit))
    (error,) = caught.value.errors
    assert f"did you mean {hint}?" in error.message


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """One ``faultmesh validate`` over a file per case (a process per case is slow)."""
    folder = tmp_path_factory.mktemp("cases")
    for case in CASES:
        (folder / f"{case.name}.yaml").write_text(case.text, encoding="utf-8")
    result = faultmesh("validate", *sorted(str(p) for p in folder.iterdir()))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stdout == ""  # no file is valid
    return folder, result.stdout, result.stderr


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_cli_validate_reports_located_error(case: Case, cli_run: tuple[Path, str, str]) -> None:
    folder, _, stderr = cli_run
    spec = folder / f"{case.name}.yaml"
    mine = [line for line in stderr.splitlines() if line.startswith(f"error: {spec}:")]
    assert len(mine) == 1, mine
    where = f"error: {spec}:{case.line}:{case.column}: " + (f"{case.path}: " if case.path else "")
    assert mine[0].startswith(where), mine[0]
    assert case.fragments[0] in mine[0]


@pytest.mark.parametrize("name", ["typo_callee", "broken_yaml", "python_object_tag"])
def test_cli_validate_one_bad_file_exits_2(name: str, tmp_path: Path) -> None:
    case = next(c for c in CASES if c.name == name)
    spec = tmp_path / "spec.yaml"
    spec.write_text(case.text, encoding="utf-8")
    result = faultmesh("validate", str(spec))
    assert result.returncode == 2
    assert f"{spec}:{case.line}:{case.column}:" in result.stderr
    assert result.stderr.endswith("1 error\n")
    assert "Traceback" not in result.stderr + result.stdout


# --- files that cannot be read as text --------------------------------------------------------


def test_non_utf8_file_names_the_bad_byte(tmp_path: Path) -> None:
    spec = tmp_path / "latin1.yaml"
    spec.write_bytes("system: shop\n# caf\xe9 menu\nservices: {}\n".encode("latin-1"))
    with pytest.raises(SpecErrors) as caught:
        load(spec)
    (error,) = caught.value.errors
    # Found by this suite: reported without a position (line 0).
    assert (error.line, error.column) == (2, 6)
    assert "not UTF-8" in error.message and "0xe9" in error.message
    result = faultmesh("validate", str(spec))
    assert result.returncode == 2
    assert f"{spec}:2:6:" in result.stderr
    assert "Traceback" not in result.stderr


def test_non_utf8_column_counts_characters_not_bytes(tmp_path: Path) -> None:
    spec = tmp_path / "mixed.yaml"
    spec.write_bytes("system: sh\u00f6p\xff\n".encode("utf-8").replace(b"\xc3\xbf", b"\xff"))
    with pytest.raises(SpecErrors) as caught:
        load(spec)
    (error,) = caught.value.errors
    # 'system: shöp' is 12 characters (13 bytes): the bad byte is character 13, not 14
    assert (error.line, error.column) == (1, 13)


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(SpecErrors) as caught:
        load(tmp_path)
    (error,) = caught.value.errors
    assert error.file == str(tmp_path)
    assert "is a directory" in error.message
    result = faultmesh("validate", str(tmp_path))
    assert result.returncode == 2
    assert f"{tmp_path}: is a directory" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(SpecErrors) as caught:
        load(missing)
    (error,) = caught.value.errors
    assert error.file == str(missing)
    assert "No such file" in error.message
    result = faultmesh("validate", str(missing))
    assert result.returncode == 2
    assert f"{missing}: cannot read: No such file or directory" in result.stderr
    assert "Traceback" not in result.stderr


def test_unreadable_file(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads every file")
    spec = tmp_path / "secret.yaml"
    spec.write_text(BASE)
    spec.chmod(0)
    with pytest.raises(SpecErrors, match="cannot read"):
        load(spec)


# --- hostile YAML: bounded time and memory ------------------------------------------------------


def billion_laughs(levels: int = 10) -> str:
    lines = ['lol0: &lol0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        lines.append(f"lol{i}: &lol{i} [" + ", ".join([f"*lol{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def _refuse_with_peak(text: str) -> tuple[SpecErrors, int]:
    tracemalloc.start()
    try:
        with pytest.raises(SpecErrors) as caught:
            loads(text, "bomb.yaml")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return caught.value, peak


def test_billion_laughs_is_refused_with_little_memory() -> None:
    # 9**10 = 3.5 billion strings if expanded. Before the fix it was refused only after
    # building 200,000 nodes (45 MB peak); now the expansion is counted on the composed graph.
    errors, peak = _refuse_with_peak(billion_laughs())
    (error,) = errors.errors
    assert "expands to more than 200,000 nodes" in error.message
    assert (error.line, error.column) == (6, 7)  # lol5: the first anchor too large to expand
    assert peak < 10 * 2**20, f"peak {peak / 2**20:.1f} MB"


def test_merge_key_bomb_is_refused_with_little_memory() -> None:
    # Found by this suite: '<<' merges were flattened before the budget was checked, in
    # exponential time (5 s for this file; 9x more per extra level).
    lines = ["b0: &b0 {x0: 1, x1: 2}"]
    for i in range(1, 12):
        lines.append(f"b{i}: &b{i} {{<<: [" + ", ".join([f"*b{i - 1}"] * 9) + f"], y{i}: 1}}")
    errors, peak = _refuse_with_peak("\n".join(lines) + "\n")
    (error,) = errors.errors
    assert "expands to more than" in error.message
    assert error.line == 6
    assert peak < 10 * 2**20


def test_a_modest_alias_is_fine() -> None:
    text = edited(("  call: {timeout: 1s}", "  call: &fast {timeout: 1s}"),
                  ("{call: pricing.Quote, timeout: 200ms, optional: true}",
                   "{call: pricing.Quote, <<: *fast, optional: true}"))
    system = loads(text)
    pricing = list(system.services["frontend"].endpoints["home"].calls())[1]
    assert pricing.timeout == 1.0 and pricing.optional


def test_alias_cycle_is_refused() -> None:
    with pytest.raises(SpecErrors) as caught:
        loads("system: x\nservices: &s [*s]\n")
    (error,) = caught.value.errors
    assert "a cycle" in error.message
    assert (error.line, error.column) == (2, 11)


@pytest.mark.parametrize("depth", [250, 3000])
def test_deep_nesting_is_refused_not_a_crash(depth: int) -> None:
    # Found by this suite: PyYAML composes recursively, so ~500 nested '[' raised
    # RecursionError (a traceback at the CLI); 201..500 were misreported as "too many nodes".
    text = "system: x\nservices: " + "[" * depth + "]" * depth + "\n"
    with pytest.raises(SpecErrors) as caught:
        loads(text)
    (error,) = caught.value.errors
    assert "nested more than 200 levels deep" in error.message
    assert (error.line, error.column) == (2, 11 + 200)


def test_deep_block_nesting_via_cli(tmp_path: Path) -> None:
    spec = tmp_path / "deep.yaml"
    spec.write_text("system: x\nservices:\n" + "".join(
        "  " * (i + 1) + f"k{i}:\n" for i in range(1500)))
    result = faultmesh("validate", str(spec))
    assert result.returncode == 2
    assert "nested more than 200 levels deep" in result.stderr
    assert "Traceback" not in result.stderr


def test_huge_integer_is_a_located_error_not_a_crash() -> None:
    # Found by this suite: float() of a 400-digit integer raised OverflowError inside pydantic.
    text = edited(("  - {entry: frontend.home, rate: 100/s}",
                   "  - {entry: frontend.home, rate: " + "9" * 400 + "}"))
    with pytest.raises(SpecErrors) as caught:
        loads(text)
    (error,) = caught.value.errors
    assert (error.line, error.column, error.path) == (29, 34, "workload[0].rate")
    assert "too large" in error.message


def test_oversized_file_is_refused_before_parsing(tmp_path: Path) -> None:
    from faultmesh.model.spec.load import MAX_SPEC_BYTES

    spec = tmp_path / "big.yaml"
    with open(spec, "wb") as handle:
        handle.truncate(MAX_SPEC_BYTES + 1)
    start = time.process_time()
    with pytest.raises(SpecErrors, match="may be at most"):
        load(spec)
    assert time.process_time() - start < 5  # generous: it must not parse 16 MB of YAML


# --- every error of a file at once --------------------------------------------------------------


def test_several_errors_are_reported_at_once() -> None:
    text = edited(
        frontend_line("    replicas: 0"),  # schema
        ("service_time: 1ms", "service_time: 1parsec"),  # unit
        ("- cart.GetCart", "- crat.GetCart"),  # reference (found by the builder)
        cart_line("    replicaz: 2"),  # unknown key
        ('"zone:a"', '"zone:q"'),  # reference in a scenario
    )
    with pytest.raises(SpecErrors) as caught:
        loads(text, "spec.yaml")
    errors = caught.value.errors
    # Found by this suite: cross-reference errors (typo'd callee, unknown zone) appeared only
    # once every schema error was fixed.
    assert [(e.line, e.column) for e in errors] == [(7, 15), (10, 23), (12, 13), (15, 5), (37, 34)]
    assert len(errors) == 5
    assert "unknown service 'crat'" in errors[2].message
    assert "unknown zone 'q'" in errors[4].message


def test_several_reference_errors_at_once() -> None:
    text = edited(("- cart.GetCart", "- crat.GetCart"), ("[redis.HGET]", "[redis.HGTE]"),
                  ("[redis]", "[rediss]"), ('"zone:a"', '"zone:c"'))
    with pytest.raises(SpecErrors) as caught:
        loads(text)
    assert [e.line for e in caught.value.errors] == [12, 16, 20, 37]


def test_a_bad_value_in_a_call_does_not_hide_reference_errors() -> None:
    # Found by a new user: one bad duration inside a call ('2 seconds') hid every reference
    # error of the file (unknown service, unknown endpoint, unknown zone, a typo'd key).
    text = edited(("timeout: 200ms, optional: true", "timeout: 2 seconds, optional: true"),
                  ("- cart.GetCart", "- crat.GetCart"),
                  ("[redis.HGET]", "[redis.HGTE]"),
                  ('"zone:a"', '"zone:q"'),
                  ("duration: 10m", "duraton: 10m"))
    with pytest.raises(SpecErrors) as caught:
        loads(text, "spec.yaml")
    found = [(e.line, e.path) for e in caught.value.errors]
    assert found == [(12, "services.frontend.endpoints.home.calls[0]"),
                     (13, "services.frontend.endpoints.home.calls[1].timeout"),
                     (20, "services.cart.endpoints.GetCart.calls[0]"),
                     (35, "scenarios.outage.duraton"),
                     (37, "scenarios.outage.faults[0].crash")]
    assert "unknown service 'crat'" in caught.value.errors[0].message
    assert "no endpoint 'HGTE'" in caught.value.errors[2].message


def test_a_bad_required_key_prunes_only_its_own_list() -> None:
    # A call whose required 'call' is wrong: the endpoint's calls are left out of the reference
    # checks, the rest of the file is still checked.
    text = edited(("{call: pricing.Quote,", "{call: 5,"), ('"zone:a"', '"zone:q"'))
    with pytest.raises(SpecErrors) as caught:
        loads(text, "spec.yaml")
    assert [e.line for e in caught.value.errors] == [13, 37]
    assert "unknown zone 'q'" in caught.value.errors[1].message


def test_pruned_keys_do_not_invent_errors() -> None:
    # A bad 'replicas' is left out to look for more errors; the instance cart-1 must then not
    # be reported as unknown, since it exists once replicas is fixed.
    text = edited(cart_line("    replicas: two"),
                  ('"zone:a"', '"instance:cart-1"'))
    with pytest.raises(SpecErrors) as caught:
        loads(text)
    (error,) = caught.value.errors
    assert error.path == "services.cart.replicas"


def test_cli_reports_every_file_and_every_error(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(BASE)
    bad.write_text(edited(("- cart.GetCart", "- crat.GetCart"), ("[redis]", "[rediss]")))
    result = faultmesh("validate", str(good), str(bad))
    assert result.returncode == 2
    assert f"ok  {good}" in result.stdout
    assert f"{bad}:12:13:" in result.stderr and f"{bad}:16:18:" in result.stderr
    assert "2 errors" in result.stderr


@pytest.mark.parametrize(("key", "value", "expected"), [
    ("outlier_detection", "{consecutive_5xx: 5, intervall: 10s}", "unknown key 'intervall'"),
    ("max_retries", "-1", "greater than or equal to 0"),
    ("restart", "{delay: 5 seconds}", "unknown duration unit"),
])
def test_a_value_or_keyword_key_reports_only_the_values_error(key: str, value: str,
                                                              expected: str) -> None:
    """Keys that take a value or a keyword (none, never, unlimited) report the bad value's own
    error once, not also "should be 'none'"."""
    text = ("system: s\nservices:\n  a:\n"
            f"    {key}: {value}\n"
            "    endpoints:\n      x: {service_time: 1ms}\n")
    with pytest.raises(SpecErrors) as caught:
        loads(text, "s.yaml")
    messages = [str(e) for e in caught.value.errors]
    assert len(messages) == 1, messages
    assert expected in messages[0] and messages[0].startswith("s.yaml:4:"), messages
