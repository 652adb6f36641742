"""Tests of sweeps (``simulations.sweeps`` and ``faultmesh sweep``).

Planning is pure and tested alone: --set parsing, key-path validation with located messages,
seed derivation. Execution is tested against the real engine on small M/M/1 runs: the local
pool and a Dask LocalCluster give identical per-run results; a worker killed mid-sweep has its
run retried and every run lands exactly once; an interrupted sweep resumes running only what is
missing. Nothing here asserts wall-clock time.
"""

from __future__ import annotations

import functools
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from faultmesh import model
from faultmesh.cli import main
from faultmesh.model.spec import to_document
from faultmesh.model.spec.edit import apply_changes
from faultmesh.simulations.sweeps import (
    RunTask,
    SweepInputError,
    SweepInterrupted,
    derive_seed,
    parse_grid,
    parse_path,
    parse_set,
    plan,
    run_sweep,
    simulate_run,
    split_values,
    summarize,
    t_quantile,
)

# the module whose ``run_one`` hook every backend runs
BACKENDS = sys.modules["faultmesh.simulations.sweeps.backends"]
SPECS = Path(__file__).resolve().parent.parent / "specs"
DURATION = "30s"

MM1 = """\
system: mm1
network: {latency: {same_zone: 0, cross_zone: 0}}
defaults: {call: {timeout: 1h}}
services:
  server:
    workers: 1
    endpoints:
      serve: {service_time: {exponential: 100ms}}
workload:
  - {entry: server.serve, rate: 8/s}
"""

CHAIN = """\
system: chain
zones: [a, b]
services:
  front:
    replicas: 2
    placement: {a: 1, b: 1}
    endpoints:
      home:
        service_time: 1ms
        calls: [{call: back.get, timeout: 300ms, retries: 1}]
  back:
    replicas: 2
    endpoints:
      get: {service_time: {exponential: 5ms}}
workload:
  - {entry: front.home, rate: 20/s}
scenarios:
  slow:
    duration: 30s
    faults: [{at: 5s, for: 10s, latency: {target: back, add: 400ms}}]
"""


@pytest.fixture
def mm1(tmp_path: Path) -> Path:
    """specs/mm1.yaml, or the same system written here if the specs are not there."""
    path = SPECS / "mm1.yaml"
    if path.exists():
        return path
    path = tmp_path / "mm1.yaml"
    path.write_text(MM1)
    return path


@pytest.fixture
def chain(tmp_path: Path) -> Path:
    path = tmp_path / "chain.yaml"
    path.write_text(CHAIN)
    return path


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["sweep", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# --- parsing ----------------------------------------------------------------------------------


def test_parse_path_reads_keys_and_indexes() -> None:
    assert parse_path("services.a.endpoints.b.calls[0].timeout") == (
        "services", "a", "endpoints", "b", "calls", 0, "timeout")
    assert parse_path("workload[0].rate") == ("workload", 0, "rate")
    assert parse_path("zones") == ("zones",)
    for bad in ("", "services..a", "workload[x].rate", "a.b[0", "a.[1]"):
        with pytest.raises(SweepInputError):
            parse_path(bad)


def test_parse_set_reads_values_as_yaml_scalars() -> None:
    assert parse_set("services.cart.replicas=1,2,3") == ("services.cart.replicas", [1, 2, 3])
    assert parse_set("a.timeout=250ms, 1s")[1] == ["250ms", "1s"]
    assert parse_set("a.flag=true,false")[1] == [True, False]
    assert parse_set("a.ratio=99.9%,0.5")[1] == ["99.9%", 0.5]
    assert parse_set("a.t={uniform: [1ms, 2ms]},{exponential: 2ms}")[1] == [
        {"uniform": ["1ms", "2ms"]}, {"exponential": "2ms"}]
    assert parse_set("a.name='x,y',z")[1] == ["x,y", "z"]
    assert split_values("[1, 2],{a: 1, b: 2},3") == ["[1, 2]", "{a: 1, b: 2}", "3"]


@pytest.mark.parametrize("text, message", [
    ("services.cart.replicas", "expected PATH=V1,V2"),
    ("services.cart.replicas=1,,2", "empty value"),
    ("services.cart.replicas=1,1", "repeated"),
    ("services.cart.replicas={a: 1", "cannot read"),
])
def test_parse_set_errors_name_the_set(text: str, message: str) -> None:
    with pytest.raises(SweepInputError) as info:
        parse_set(text)
    assert f"--set {text}" in str(info.value)
    assert message in str(info.value)


def test_parse_grid_refuses_a_path_set_twice() -> None:
    with pytest.raises(SweepInputError, match="already set"):
        parse_grid(["workload[0].rate=1,2", "workload[0].rate=3"])


# --- validating the grid up front ---------------------------------------------------------------


@pytest.mark.parametrize("setting, message", [
    ("services.servr.replicas=1,2", "unknown key 'servr' in services; did you mean 'server'?"),
    ("services.server.replicaz=2", "unknown key 'replicaz'; did you mean 'replicas'?"),
    ("services.server.replicas=1,0", "--set services.server.replicas=0:"),
    ("workload[3].rate=1/s", "workload has 1 item; [3] is out of range"),
    ("workload[0].rate=fast", "--set workload[0].rate=fast:"),
    ("services.server.endpoints.serve.service_time=abc", "cannot read 'abc' as a duration"),
    ("defaults.call.timeout=1s", "'defaults' has no effect"),
    ("services.server.replicas.count=1", "is a number, not a mapping"),
])
def test_bad_grid_exits_2_naming_the_set(capsys: pytest.CaptureFixture[str], mm1: Path,
                                         setting: str, message: str, tmp_path: Path) -> None:
    code, out, err = run_cli(capsys, str(mm1), "--seeds", "2", "--set", setting,
                             "--out", str(tmp_path / "out"))
    assert code == 2
    assert message in err
    assert "--set" in err and "Traceback" not in err
    assert out == ""
    assert not (tmp_path / "out").exists()  # nothing ran, nothing was written


def test_bad_options_exit_2(capsys: pytest.CaptureFixture[str], mm1: Path) -> None:
    cases = [
        (["--scenario", "nope"], "no scenario 'nope'"),
        (["--duration", "soon"], "--duration"),
        (["--seeds", "0"], "--seeds"),
        (["--backend", "mpi"], "--backend"),
        (["--resume"], "--resume needs --out"),
    ]
    for extra, message in cases:
        code, _, err = run_cli(capsys, str(mm1), *extra)
        assert code == 2, extra
        assert message in err, (extra, err)


def test_grid_points_are_valid_systems_with_the_values_applied(chain: Path) -> None:
    the_plan = plan(chain, seeds=2, grid=parse_grid([
        "services.front.endpoints.home.calls[0].timeout=100ms,250ms",
        "services.back.replicas=1,3",
        "workload[0].rate=10/s,40/s",
    ]))
    assert len(the_plan.points) == 8 and len(the_plan.runs) == 16
    point = the_plan.points[-1]
    assert point.params == {"services.front.endpoints.home.calls[0].timeout": "250ms",
                            "services.back.replicas": 3, "workload[0].rate": "40/s"}
    system = point.system
    assert next(system.services["front"].endpoints["home"].calls()).timeout == 0.25
    assert system.services["back"].replicas == 3
    assert system.services["back"].zones == ("a", "b", "a")  # spread over the zones again
    assert system.workload[0].rate == 40.0
    # What is not set is untouched: front keeps its explicit placement.
    assert system.services["front"].zones == ("a", "b")
    assert system.services["front"].endpoints["home"].service_time.mean == 0.001


def test_combinations_are_validated_and_blamed(chain: Path) -> None:
    # Each value is fine alone; replicas=1 with a placement of two is not.
    with pytest.raises(SweepInputError) as info:
        plan(chain, grid=parse_grid(["services.front.replicas=1,2",
                                     "services.front.placement={a: 2},{a: 1, b: 1}"]))
    lines = str(info.value).splitlines()
    assert lines == [
        "--set services.front.replicas=1 with --set services.front.placement={a: 2}: "
        "placement places 2 replicas but replicas is 1",
        "--set services.front.replicas=1 with --set services.front.placement={a: 1, b: 1}: "
        "placement places 2 replicas but replicas is 1"]


def test_sweeping_replicas_keeps_the_placement_the_spec_chose() -> None:
    """The README's example: zone_outage_shop places both payment replicas in zone a."""
    the_plan = plan(SPECS / "zone_outage_shop.yaml", seeds=1,
                    grid={"services.payment.replicas": [1, 2, 3]})
    one, two, three = (p.system.services["payment"].zones for p in the_plan.points)
    assert one == ("a",)
    assert two == ("a", "a")  # the mistake the example studies is still there
    assert sorted(three) == ["a", "a", "b"]  # the new replica goes where there are fewest


def test_sweeping_one_zone_of_a_placement_sets_replicas(capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    spec = SPECS / "zone_outage_shop.yaml"
    the_plan = plan(spec, seeds=1, grid=parse_grid(["services.payment.placement.b=0,1"]))
    assert [p.system.services["payment"].replicas for p in the_plan.points] == [2, 3]
    assert [sorted(p.system.services["payment"].zones) for p in the_plan.points] == [
        ["a", "a"], ["a", "a", "b"]]
    code, _, err = run_cli(capsys, str(spec), "--seeds", "1", "--duration", "1s",
                           "--backend", "serial", "--set", "services.payment.placement.b=0,1")
    assert code in (0, 1) and "replicas" not in err, err


def test_orchestration_defaults_reach_the_services_that_had_them(chain: Path) -> None:
    base = to_document(model.load(chain))
    document = apply_changes(base, {"orchestration.restart.delay": "1m"})
    assert document["orchestration"]["restart"] == {"delay": "1m"}
    assert all(s["restart"] == {"delay": "1m"} for s in document["services"].values())
    assert base["orchestration"]["restart"] != {"delay": "1m"}  # the base is not modified


def test_scenarios_form_a_grid_dimension(chain: Path) -> None:
    system = model.load(chain)
    with pytest.raises(SweepInputError, match="did you mean 'slow'"):
        plan(system, scenario="slwo")
    the_plan = plan(system, scenario=["slow"], seeds=1)
    assert the_plan.params == [] and the_plan.runs[0].scenario == "slow"


# --- seeds -----------------------------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(base=st.integers(0, 2**32), point=st.integers(0, 50), replication=st.integers(0, 50))
def test_seed_is_seedsequence_spawned_by_point_then_replication(
        base: int, point: int, replication: int) -> None:
    child = np.random.SeedSequence(base).spawn(point + 1)[point].spawn(replication + 1)[-1]
    assert derive_seed(base, point, replication) == int(child.generate_state(1, np.uint32)[0])


def test_seeds_depend_on_the_run_only(mm1: Path) -> None:
    grid = {"services.server.replicas": [1, 2, 3]}
    a = plan(mm1, seeds=4, grid=grid)
    b = plan(mm1, seeds=4, grid=grid)
    seeds = [t.seed for t in a.runs]
    assert seeds == [t.seed for t in b.runs]
    assert len(set(seeds)) == len(seeds)
    assert len({t.run_id for t in a.runs}) == len(a.runs)
    assert [t.seed for t in plan(mm1, seeds=4, grid=grid, base_seed=1).runs] != seeds
    # The run function is given nothing else to draw from: no worker state is involved
    # (``recovery`` says what a stability sweep measures; it draws nothing).
    assert {f for f in RunTask.__dataclass_fields__} == {
        "run_id", "point", "replication", "params", "seed", "system", "scenario", "duration",
        "recovery"}


# --- statistics -------------------------------------------------------------------------------


def test_t_quantile_matches_scipy() -> None:
    from scipy import stats  # in the test extra: a missing SciPy fails here, never skips

    for dof in (1, 2, 3, 4, 5, 7, 10, 29, 30, 100):
        assert t_quantile(dof) == pytest.approx(stats.t.ppf(0.975, dof), rel=1e-9)
        assert t_quantile(dof, 0.9) == pytest.approx(stats.t.ppf(0.95, dof), rel=1e-9)
    assert math.isnan(t_quantile(0))


def test_summarize_means_and_student_t_intervals() -> None:
    runs = pd.DataFrame({
        "run_id": [f"r{i}" for i in range(7)], "point": [0, 0, 0, 0, 1, 1, 2],
        "replication": [0, 1, 2, 3, 0, 1, 0], "seed": range(7), "scenario": [None] * 7,
        "x": [1, 1, 1, 1, 2, 2, 3],
        "e.p/availability": [0.9, 0.95, 1.0, 0.85, 0.5, 0.7, 0.99],
    })
    table = summarize(runs)
    assert list(table["x"]) == [1, 2, 3] and list(table["runs"]) == [4, 2, 1]
    values = np.array([0.9, 0.95, 1.0, 0.85])
    assert table.loc[0, "e.p/availability_mean"] == pytest.approx(values.mean())
    half = t_quantile(3) * values.std(ddof=1) / 2
    assert table.loc[0, "e.p/availability_ci95"] == pytest.approx(half)
    assert math.isnan(table.loc[2, "e.p/availability_ci95"])  # one run: no interval


# --- running -----------------------------------------------------------------------------------


def _frames_equal(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True))


def test_local_and_dask_backends_give_identical_runs(mm1: Path, tmp_path: Path) -> None:
    grid = {"services.server.replicas": [1, 2]}
    common: dict[str, Any] = dict(duration=DURATION, seeds=3, grid=grid, progress=False)
    local = run_sweep(mm1, backend="local", workers=2, out=tmp_path / "local", **common)
    dask = run_sweep(mm1, backend="dask", workers=2, out=tmp_path / "dask", **common)
    serial = run_sweep(mm1, backend="serial", **common)
    assert len(local.runs) == 6
    assert local.records == dask.records == serial.records
    _frames_equal(local.runs, dask.runs)
    _frames_equal(local.runs, serial.runs)
    assert local.runs["seed"].tolist() == [t.seed for t in local.plan.runs]
    for name in ("local", "dask"):
        stored = pd.read_parquet(tmp_path / name / "runs.parquet")
        _frames_equal(stored, local.runs)
    # The engine produced real traffic.
    assert (local.runs["server.serve/requests"] > 50).all()


def _kill_worker_once(task: RunTask, *, marker: str, log: str) -> dict[str, Any]:
    """Run the task, except that the first run anywhere kills its own worker process."""
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        pass
    else:
        os.close(fd)
        os._exit(17)  # the worker dies mid-run, without a word
    summary = simulate_run(task)
    with open(log, "a", encoding="utf-8") as handle:
        handle.write(task.run_id + "\n")
    return summary


@pytest.mark.parametrize("backend", ["dask", "local"])
def test_a_worker_that_dies_has_its_run_retried(mm1: Path, tmp_path: Path, backend: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    marker, log = tmp_path / "killed", tmp_path / "executed.log"
    monkeypatch.setattr(BACKENDS, "run_one", functools.partial(
        _kill_worker_once, marker=str(marker), log=str(log)))
    result = run_sweep(mm1, duration=DURATION, seeds=4, grid={"workload[0].rate": [4, 8]},
                       backend=backend, workers=2, out=tmp_path / "out", progress=False)
    assert marker.exists()  # a worker really died
    expected = sorted(t.run_id for t in result.plan.runs)
    files = sorted(p.stem for p in (tmp_path / "out" / "runs").glob("*.json"))
    assert files == expected
    stored = pd.read_parquet(tmp_path / "out" / "runs.parquet")
    assert sorted(stored["run_id"]) == expected  # each run exactly once
    executed = log.read_text().split()
    assert set(executed) == set(expected)


def _logged(task: RunTask, *, log: str) -> dict[str, Any]:
    summary = simulate_run(task)
    with open(log, "a", encoding="utf-8") as handle:
        handle.write(task.run_id + "\n")
    return summary


def test_interrupted_sweep_resumes_only_the_missing_runs(mm1: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    grid = {"services.server.replicas": [1, 2, 3]}
    kwargs: dict[str, Any] = dict(duration=DURATION, seeds=3, grid=grid, backend="local",
                                  workers=2, out=out)

    def stop_after_four(done: int, total: int, record: dict[str, Any]) -> None:
        if done == 4:
            raise KeyboardInterrupt

    with pytest.raises(SweepInterrupted) as info:
        run_sweep(mm1, progress=stop_after_four, **kwargs)
    assert (info.value.done, info.value.total) == (4, 9)
    kept = {p.stem for p in (out / "runs").glob("*.json")}
    assert len(kept) == 4
    assert not (out / "runs.parquet").exists()

    # A fresh sweep into the same directory is refused; --resume finishes it.
    with pytest.raises(SweepInputError, match="--resume"):
        run_sweep(mm1, progress=False, **kwargs)
    log = tmp_path / "resumed.log"
    monkeypatch.setattr(BACKENDS, "run_one", functools.partial(_logged, log=str(log)))
    result = run_sweep(mm1, progress=False, resume=True, **kwargs)
    resumed = log.read_text().split()
    assert len(resumed) == 5 and not set(resumed) & kept  # only what was missing ran
    assert result.executed == 5
    stored = pd.read_parquet(out / "runs.parquet")
    assert sorted(stored["run_id"]) == sorted(t.run_id for t in result.plan.runs)
    table = pd.read_parquet(out / "table.parquet")
    assert table["runs"].tolist() == [3, 3, 3]

    # Resuming a finished sweep runs nothing and gives the same table.
    log.unlink()
    again = run_sweep(mm1, progress=False, resume=True, **kwargs)
    assert again.executed == 0 and not log.exists()
    _frames_equal(again.runs, result.runs)


def test_a_different_sweep_in_out_is_refused_unless_forced(
        capsys: pytest.CaptureFixture[str], mm1: Path, tmp_path: Path) -> None:
    out = str(tmp_path / "out")
    args = [str(mm1), "--seeds", "1", "--duration", "5s", "--backend", "serial", "--out", out]
    assert run_cli(capsys, *args, "--set", "workload[0].rate=4,8")[0] == 0
    code, _, err = run_cli(capsys, *args, "--set", "workload[0].rate=4,6", "--resume")
    assert code == 2 and "holds a different sweep" in err and "grid" in err
    code, _, err = run_cli(capsys, *args, "--set", "workload[0].rate=4,6")
    assert code == 2
    code, _, _ = run_cli(capsys, *args, "--set", "workload[0].rate=4,6", "--force")
    assert code == 0
    plan_json = json.loads((tmp_path / "out" / "plan.json").read_text())
    assert plan_json["grid"] == [["workload[0].rate", [4, 6]]]
    assert len(list((tmp_path / "out" / "runs").glob("*.json"))) == 2


# --- output ------------------------------------------------------------------------------------


def test_json_output_shape(capsys: pytest.CaptureFixture[str], mm1: Path) -> None:
    code, out, _ = run_cli(capsys, str(mm1), "--seeds", "2", "--duration", DURATION,
                           "--set", "services.server.replicas=1,2", "--backend", "serial",
                           "--json")
    assert code == 0
    document = json.loads(out)
    assert set(document) == {"runs", "table"}
    runs = document["runs"]
    assert len(runs) == 4
    for run in runs:
        assert {"params", "seed", "entries", "services", "properties", "run_id",
                "replication"} <= set(run)
        assert set(run["params"]) == {"services.server.replicas"}
        entry = run["entries"]["server.serve"]
        assert {"requests", "ok", "failed", "availability", "latency_s"} <= set(entry)
    assert [r["params"]["services.server.replicas"] for r in runs] == [1, 1, 2, 2]
    table = document["table"]
    assert [row["services.server.replicas"] for row in table] == [1, 2]
    assert all(row["runs"] == 2 for row in table)
    assert all(0 <= row["server.serve/availability_mean"] <= 1 for row in table)
    assert "server.serve/availability_ci95" in table[0]


def test_text_output_is_a_table_of_means(capsys: pytest.CaptureFixture[str], mm1: Path) -> None:
    code, out, err = run_cli(capsys, str(mm1), "--seeds", "2", "--duration", "10s",
                             "--set", "services.server.replicas=1,2", "--backend", "serial")
    assert code == 0
    assert "services.server.replicas" in out and "server.serve" in out and "±" in out
    assert "4 runs" in err


def _is_png(path: Path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plots_for_one_and_two_parameters(mm1: Path, tmp_path: Path) -> None:
    one = run_sweep(mm1, duration="10s", seeds=2, grid={"services.server.replicas": [1, 2]},
                    backend="serial", out=tmp_path / "one", progress=False)
    [figure] = [f for f in one.files if f.suffix == ".png"]
    assert figure.name == "metric_vs_services.server.replicas.png" and _is_png(figure)
    two = run_sweep(mm1, duration="10s", seeds=2, backend="serial", out=tmp_path / "two",
                    grid={"services.server.replicas": [1, 2], "workload[0].rate": [4, 8]},
                    progress=False)
    [heatmap] = [f for f in two.files if f.suffix == ".png"]
    assert heatmap.name.startswith("heatmap_") and _is_png(heatmap)
    assert {f.name for f in two.files} >= {"runs.parquet", "table.parquet"}


def test_sweep_figures_are_returned_without_pyplot(mm1: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Figures come from matplotlib.figure alone: pyplot (and a switch of the process's
    backend, which breaks inline plots in Jupyter) is never touched, also when PNGs are
    written."""
    import matplotlib
    from matplotlib.figure import Figure

    from faultmesh import plots

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("matplotlib.use was called")

    monkeypatch.setattr(matplotlib, "use", refuse)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)  # importing it fails
    one = run_sweep(mm1, duration="10s", seeds=2, grid={"services.server.replicas": [1, 2]},
                    backend="serial", out=tmp_path / "one")
    figure = plots.sweep(one.table)
    assert isinstance(figure, Figure)
    availability, latency = figure.axes
    assert availability.get_xlabel() == "services.server.replicas"
    assert availability.get_ylabel() == "availability (%)"
    assert latency.get_ylabel() == "p99 latency (ms)"
    assert [t.get_text() for t in availability.get_xticklabels()] == ["1", "2"]
    [line] = latency.get_lines()[:1]
    means = one.table["server.serve/latency_p99_s_mean"] * 1000
    assert list(line.get_ydata()) == pytest.approx(list(means))
    assert [t.get_text() for t in availability.get_legend().get_texts()] == ["server.serve"]
    [png] = [f for f in one.files if f.suffix == ".png"]
    assert _is_png(png)
    two = summarize(run_sweep(mm1, duration="10s", seeds=1, backend="serial", grid={
        "services.server.replicas": [1, 2], "workload[0].rate": [4, 8]}).runs)
    heatmap = plots.sweep(two)
    assert len(heatmap.axes) == 4  # two heatmaps and their colour bars
    assert heatmap.axes[0].get_ylabel() == "services.server.replicas"
    assert heatmap.axes[0].get_xlabel() == "workload[0].rate"
    with pytest.raises(ValueError, match="one or two parameters"):
        plots.sweep(two, params=[])


def test_progress_is_a_plain_callback_with_a_first_report(mm1: Path) -> None:
    reports: list[tuple[int, int, str | None]] = []
    run_sweep(mm1, duration="5s", seeds=2, backend="serial",
              progress=lambda done, total, record: reports.append(
                  (done, total, None if record is None else record["run_id"])))
    assert [(d, t) for d, t, _ in reports] == [(0, 2), (1, 2), (2, 2)]
    assert reports[0][2] is None and all(r is not None for _, _, r in reports[1:])


def test_sweep_progress_true_draws_a_bar_on_stderr(mm1: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from faultmesh import simulations

    simulations.sweep(mm1, seeds=2, duration="5s", backend="serial", progress=True)
    captured = capsys.readouterr()
    assert "sweep mm1" in captured.err and "2/2" in captured.err and captured.out == ""
    simulations.sweep(mm1, seeds=2, duration="5s", backend="serial", progress=False)
    assert capsys.readouterr().err == ""


def test_forkserver_preloads_modules_that_exist() -> None:
    """The forkserver skips a preload name it cannot import without a word."""
    import importlib.util

    for name in BACKENDS.FORKSERVER_PRELOAD:
        assert importlib.util.find_spec(name) is not None, name


def _interrupt(task: RunTask) -> dict[str, Any]:
    if task.replication == 1:
        raise KeyboardInterrupt
    return simulate_run(task)


def _fail(task: RunTask) -> dict[str, Any]:
    if task.replication == 1:
        raise ValueError("the engine broke")
    return simulate_run(task)


def test_cli_ctrl_c_keeps_runs_and_exits_130(capsys: pytest.CaptureFixture[str], mm1: Path,
                                             tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(BACKENDS, "run_one", _interrupt)
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, str(mm1), "--seeds", "3", "--duration", "5s", "--backend",
                           "serial", "--out", str(out))
    assert code == 130
    assert "interrupted: 1 of 3 runs kept" in err and "--resume" in err
    assert len(list((out / "runs").glob("*.json"))) == 1


def test_cli_failed_runs_are_reported_and_the_others_kept(
        capsys: pytest.CaptureFixture[str], mm1: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(BACKENDS, "run_one", _fail)
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, str(mm1), "--seeds", "3", "--duration", "5s", "--backend",
                           "serial", "--out", str(out))
    assert code == 4  # an internal error, never 1 (a property violated)
    assert "1 of 3 runs failed" in err and "ValueError: the engine broke" in err
    assert len(list((out / "runs").glob("*.json"))) == 2
    monkeypatch.setattr(BACKENDS, "run_one", simulate_run)
    code, _, _ = run_cli(capsys, str(mm1), "--seeds", "3", "--duration", "5s", "--backend",
                         "serial", "--out", str(out), "--resume")
    assert code == 0


def test_simulations_sweep_is_the_function(mm1: Path) -> None:
    from faultmesh import simulations
    from faultmesh.simulations import sweeps
    assert simulations.sweep is sweeps.sweep and simulations.summarize is summarize
    frame = simulations.sweep(mm1, seeds=2, duration="5s", backend="serial", progress=False)
    assert len(frame) == 2 and frame["seed"].is_unique
