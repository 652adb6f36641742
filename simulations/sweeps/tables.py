"""The tables of a sweep: one row per run, and per grid point the means with confidence
intervals across seeds.

``runs_frame`` turns run records into a DataFrame (ids, parameters, then the flat metrics of
``metrics_of``: ``<entry>/availability``, ``<entry>/latency_p99_s``, ``<service>/utilization``,
``<caller->callee>/breaker_opens``, ...). ``summarize`` groups it by grid point into
``<metric>_mean`` and ``<metric>_ci95``, the half-width of the Student-t interval of the mean
(``t_quantile``: computed here, no SciPy needed).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from functools import cache
from typing import TYPE_CHECKING, Any, cast

import yaml

from faultmesh.model.extras import requires
from faultmesh.simulations.sweeps.plan import SCENARIO
from faultmesh.simulations.sweeps.stability import STABILITY_METRICS, columns_of

if TYPE_CHECKING:
    import pandas as pd

    from faultmesh.simulations.observation.summary import RunSummary

RUN_COLUMNS = ("run_id", "point", "replication", "seed")


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _nan(value: Any) -> float:
    number = _number(value)
    return math.nan if number is None else number


def metrics_of(summary: RunSummary) -> dict[str, float]:
    """The flat numeric metrics of one run: ``entry/availability``, ``entry/latency_p99_s``,
    ``entry/timeout_count``, ``service/utilization``, ``caller->callee/breaker_opens``, ...
    (missing values are NaN)."""
    row: dict[str, float] = {}
    for entry, values in summary["entries"].items():
        for key, value in values.items():
            if key == "latency_s" and isinstance(value, Mapping):
                for stat, x in value.items():
                    row[f"{entry}/latency_{stat}_s"] = _nan(x)
            elif key == "outcomes" and isinstance(value, Mapping):  # error, timeout, ...
                for outcome, x in value.items():
                    if outcome != "ok":  # already there as ``ok``
                        row[f"{entry}/{outcome}_count"] = _nan(x)
            elif _number(value) is not None or value is None:
                row[f"{entry}/{key}"] = _nan(value)
    for service, figures in summary["services"].items():
        for key, value in figures.items():
            if _number(value) is not None or value is None:
                row[f"{service}/{key}"] = _nan(value)
    for edge, breaker in summary["breakers"].items():
        transitions = breaker["transitions"]
        # Moves are [t, state, caller instance]: the opens of all the edge's breakers.
        row[f"{edge}/breaker_opens"] = float(sum(1 for t in transitions if t[1] == "open"))
    properties = summary["properties"]
    row["properties_violated"] = float(sum(1 for p in properties
                                           if p["status"] == "violated"))
    return row


def _label(value: Any) -> Any:
    """A table cell for a parameter value: scalars as they are, structures as YAML flow."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return yaml.safe_dump(value, default_flow_style=True, width=10**6).strip()


def runs_frame(records: Iterable[Mapping[str, Any]], params: list[str]) -> pd.DataFrame:
    """One row per run, in grid order: ids, parameters, then metrics."""
    with requires("data", "a sweep's tables"):
        import pandas as pd

    rows = []
    for record in sorted(records, key=lambda r: (r["point"], r["replication"])):
        row: dict[str, Any] = {key: record[key] for key in RUN_COLUMNS}
        row["scenario"] = record.get("scenario")
        row.update({p: _label(record["params"].get(p)) for p in params if p != SCENARIO})
        row.update(metrics_of(cast("RunSummary", record)))  # a record is a summary + ids
        row.update(columns_of(record))  # a stability sweep's recovery, if any
        rows.append(row)
    frame = pd.DataFrame(rows)
    for p in params:
        if p in frame and p != SCENARIO:
            kinds = {type(v) for v in frame[p] if v is not None}
            if len(kinds) > 1 and not kinds <= {int, float}:
                frame[p] = frame[p].map(lambda v: v if v is None else str(v))
    frame.attrs["params"] = list(params)
    return frame


def is_metric(column: str) -> bool:
    """Whether a column of the runs frame is a metric (not an id or a parameter)."""
    return "/" in column or column == "properties_violated" or column in STABILITY_METRICS


@cache
def t_quantile(dof: int, level: float = 0.95) -> float:
    """The two-sided Student-t critical value: P(|T| < t) = level with ``dof`` degrees."""
    if dof < 1:
        return math.nan

    def central(t: float) -> float:  # P(|T| < t), Abramowitz & Stegun 26.7.3-4
        theta = math.atan(t / math.sqrt(dof))
        s, c2 = math.sin(theta), math.cos(theta) ** 2
        if dof % 2 == 0:
            term = total = 1.0
            for k in range(1, (dof - 2) // 2 + 1):
                term *= c2 * (2 * k - 1) / (2 * k)
                total += term
            return s * total
        total = 0.0
        if dof > 1:
            term = total = math.cos(theta)
            for k in range(1, (dof - 3) // 2 + 1):
                term *= c2 * (2 * k) / (2 * k + 1)
                total += term
        return 2 / math.pi * (theta + s * total)

    lo, hi = 0.0, 1.0
    while central(hi) < level:
        lo, hi = hi, hi * 2
    for _ in range(200):
        mid = (lo + hi) / 2
        if central(mid) < level:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12:
            break
    return (lo + hi) / 2


def summarize(df: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Per grid point: ``runs``, and for each metric ``<metric>_mean`` and ``<metric>_ci95``.

    ``_ci95`` is the half-width of the Student-t confidence interval of the mean across the
    point's seeds (NaN with fewer than two runs; missing values are left out).
    """
    with requires("data", "a sweep's tables"):
        import pandas as pd

    metrics = [c for c in df.columns if is_metric(c)]
    keys = [c for c in df.columns if not is_metric(c) and c not in RUN_COLUMNS]
    suffix = f"ci{round(level * 100)}"
    group_by = "point" if "point" in df.columns else keys
    rows = []
    for _, group in df.groupby(group_by, sort=True, dropna=False):
        row: dict[str, Any] = {}
        if "point" in df.columns:
            row["point"] = group["point"].iloc[0]
        row.update({k: group[k].iloc[0] for k in keys})
        row["runs"] = len(group)
        for metric in metrics:
            values = group[metric].astype(float).dropna()
            n = len(values)
            row[f"{metric}_mean"] = float(values.mean()) if n else math.nan
            row[f"{metric}_{suffix}"] = (t_quantile(n - 1, level) * float(values.std(ddof=1))
                                         / math.sqrt(n)) if n >= 2 else math.nan
            if metric == "properties_violated":
                row["runs_violating"] = int((values > 0).sum())
        rows.append(row)
    table = pd.DataFrame(rows)
    table.attrs["params"] = list(df.attrs.get("params", []))
    if "system" in df.attrs:  # what plots title the table with
        table.attrs["system"] = df.attrs["system"]
    return table


__all__ = ["RUN_COLUMNS", "is_metric", "metrics_of", "runs_frame", "summarize", "t_quantile"]
