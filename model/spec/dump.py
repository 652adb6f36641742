"""System -> YAML, fully explicit, such that ``loads(dump(s)) == s``.

Every resolved value is written out (no reliance on the defaults section), durations in their
shortest exact unit spelling, so a dumped spec is both a faithful copy and readable.
"""

from __future__ import annotations

from typing import Any

import yaml

from faultmesh.model import faults as F
from faultmesh.model import properties as P
from faultmesh.model.system import (
    Backoff,
    BreakerPolicy,
    Call,
    ConsecutiveBreakerPolicy,
    Endpoint,
    Fallback,
    Group,
    OneOf,
    OutlierDetection,
    ParallelCalls,
    RateBreakerPolicy,
    RateLimit,
    Readiness,
    RestartPolicy,
    Service,
    Sessions,
    Step,
    System,
    Workload,
)
from faultmesh.model.units import spec_duration as dur


def _backoff(b: Backoff) -> Any:
    if b.strategy == "none":
        return "none"
    return {"strategy": b.strategy, "base": dur(b.base), "cap": dur(b.cap), "jitter": b.jitter}


def _breaker(policy: BreakerPolicy | None) -> Any:
    if policy is None:
        return "none"
    if isinstance(policy, ConsecutiveBreakerPolicy):
        return {"consecutive_failures": policy.consecutive_failures,
                "open_for": dur(policy.open_for)}
    assert isinstance(policy, RateBreakerPolicy)
    out: dict[str, Any] = {
        "failure_rate": policy.failure_rate, "window": policy.window,
        "min_calls": policy.min_calls, "open_for": dur(policy.open_for),
        "half_open_calls": policy.half_open_calls,
    }
    if policy.slow_call_duration is not None:
        out["slow_call"] = {"duration": dur(policy.slow_call_duration),
                            "rate": policy.slow_call_rate}
    return out


def _call(c: Call) -> dict[str, Any]:
    return {
        "call": c.target, "timeout": dur(c.timeout), "retries": c.retries,
        "backoff": _backoff(c.backoff), "optional": c.optional, "async": c.asynchronous,
        "probability": c.probability, "repeat": c.repeat,
        "circuit_breaker": _breaker(c.circuit_breaker),
        "retry_other_instance": c.retry_other_instance,
        **({"deadline": dur(c.deadline)} if c.deadline is not None else {}),
        **({"hedge": {"delay": dur(c.hedge.delay), "max_attempts": c.hedge.max_attempts}}
           if c.hedge is not None else {}),
    }


def _rate_limit(limit: RateLimit) -> dict[str, Any]:
    return {"rate": limit.rate, "burst": limit.burst}


def _rate(w: Workload) -> Any:
    """A workload's rate: a number, or its profile with the rate at 0 as the first point."""
    if not w.profile:
        return w.rate
    return [{"at": 0, "rate": w.rate},
            *({"at": dur(p.at), "rate": p.rate, **({"ramp": True} if p.ramp else {})}
              for p in w.profile)]


def _endpoint(e: Endpoint) -> dict[str, Any]:
    return {
        "signature": {"input": e.signature.input, "output": e.signature.output,
                      "errors": list(e.signature.errors)},
        "service_time": e.service_time.to_spec(),
        "calls": [_step(step) for step in e.steps],
        **({"rate_limit": _rate_limit(e.rate_limit)} if e.rate_limit is not None else {}),
        **({"label": e.label} if e.label is not None else {}),
    }


def _step(step: Step) -> dict[str, Any]:
    if isinstance(step, ParallelCalls):
        return {"parallel": [_call(c) for c in step.calls]}
    if isinstance(step, OneOf):
        return {"one_of": [{**_call(c), "weight": w} for c, w in zip(step.calls, step.weights,
                                                                      strict=True)]}
    if isinstance(step, Group):
        key = "parallel" if step.parallel else "calls"
        return {"group": {"probability": step.probability, key: [_call(c) for c in step.calls]}}
    if isinstance(step, Fallback):
        return {**_call(step.primary), "fallback": _call(step.fallback)}
    return _call(step)


def _sessions(s: Sessions) -> dict[str, Any]:
    body = {"users": s.users, "think": s.think.to_spec(), "steps": list(s.steps)}
    return {"sessions": body, "source": s.source,
            **({"timeout": dur(s.timeout)} if s.timeout is not None else {})}


def _restart(r: RestartPolicy) -> Any:
    return "never" if r.delay is None else {"delay": dur(r.delay)}


def _readiness(r: Readiness) -> dict[str, Any]:
    return {"period": dur(r.period), "failures": r.failures,
            "initial_delay": dur(r.initial_delay)}


def _outlier(o: OutlierDetection) -> dict[str, Any]:
    return {"consecutive_5xx": o.consecutive_5xx,
            "consecutive_gateway_errors": o.consecutive_gateway_errors,
            "interval": dur(o.interval), "base_ejection_time": dur(o.base_ejection_time),
            "max_ejection_time": dur(o.max_ejection_time),
            "max_ejection_percent": o.max_ejection_percent,
            "always_eject_one_host": o.always_eject_one_host}


def _service(s: Service, zones: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "replicas": s.replicas,
        "placement": {z: s.zones.count(z) for z in zones if z in s.zones},
        "workers": s.workers,
    }
    if s.concurrency is not None:
        out["concurrency"] = s.concurrency
    if s.queue is not None:
        out["queue"] = s.queue
    lb = s.load_balancer
    out.update({
        "depends_on": list(s.depends_on),
        "load_balancer": {"least_request": {"choices": lb.choices}}
        if lb.kind == "least_request" else lb.kind,
        "restart": _restart(s.restart),
        "readiness": _readiness(s.readiness),
    })
    if s.outlier_detection is not None:
        out["outlier_detection"] = _outlier(s.outlier_detection)
    if s.max_retries is not None:
        out["max_retries"] = s.max_retries
    if s.retry_budget is not None:
        # A percent spelling reads back exactly (the loader goes through decimals too).
        out["retry_budget"] = {"percent": f"{s.retry_budget.percent!r}%",
                               "min_concurrency": s.retry_budget.min_concurrency}
    if s.retry_throttling is not None:
        out["retry_throttling"] = {"max_tokens": s.retry_throttling.max_tokens,
                                   "token_ratio": s.retry_throttling.token_ratio}
    if s.propagate_deadline:
        out["propagate_deadline"] = True
    q = s.queue_discipline
    if q.timeout is not None:
        out["queue_timeout"] = dur(q.timeout)
    if q.kind == "adaptive_lifo":
        out["queue_discipline"] = {"adaptive_lifo": {"interval": dur(q.interval),
                                                     "target": dur(q.target)}}
    elif q.kind != "fifo":
        out["queue_discipline"] = q.kind
    if s.rate_limit is not None:
        out["rate_limit"] = _rate_limit(s.rate_limit)
    out["endpoints"] = {name: _endpoint(e) for name, e in s.endpoints.items()}
    return out


def _property(p: P.Property) -> dict[str, Any]:
    body: dict[str, Any] = {"name": p.name}
    if isinstance(p, P.Survives | P.Capacity):
        body.update(failures=p.failures, of=list(p.of))
        if isinstance(p, P.Capacity):
            body["utilization"] = p.utilization
            body["rejected"] = p.rejected
    elif isinstance(p, P.RetryAmplification):
        body["max"] = p.max
    elif isinstance(p, P.Availability):
        body.update(entry=p.entry, at_least=p.at_least, window=dur(p.window))
    elif isinstance(p, P.Latency):
        key = next(k for k, q in P.LATENCY_QUANTILES.items() if q == p.quantile)
        body.update({"entry": p.entry, key: dur(p.threshold), "window": dur(p.window)})
    elif isinstance(p, P.Recovers):
        body.update(entry=p.entry, within=dur(p.within), to=p.to)
    elif isinstance(p, P.BreakerReaction):
        body["within"] = dur(p.within)
        if p.edge is not None:
            body["edge"] = p.edge
    return {p.kind: body}


def _fault(f: F.Fault) -> dict[str, Any]:
    out: dict[str, Any] = {"at": dur(f.at)}
    if f.duration is not None:
        out["for"] = dur(f.duration)
    if isinstance(f, F.Crash):
        out["crash"] = str(f.target)
        if f.mttf is not None:
            out.update(mttf=dur(f.mttf), mttr=dur(f.mttr or 0.0))
    elif isinstance(f, F.LatencyFault):
        out["latency"] = {"target": str(f.target), "add": f.add.to_spec()}
    elif isinstance(f, F.ErrorFault):
        out["errors"] = {"target": str(f.target), "rate": f.rate}
    elif isinstance(f, F.Partition):
        out["partition"] = {"between": [str(t) for t in f.between], "oneway": f.oneway}
    elif isinstance(f, F.LossFault):
        out["loss"] = {"rate": f.rate}
        if f.between is not None:
            out["loss"]["between"] = [str(t) for t in f.between]
    elif isinstance(f, F.Slowdown):
        out["slowdown"] = {"target": str(f.target), "factor": f.factor}
    elif isinstance(f, F.RegistryOutage):
        out["registry_outage"] = {}
    elif isinstance(f, F.RollingRestart):
        out["rolling_restart"] = {"target": str(f.target), "interval": dur(f.interval)}
    elif isinstance(f, F.Surge):
        out["surge"] = {"entry": f.entry, **({"factor": f.factor} if f.factor is not None
                                              else {"rate": f.rate})}
    return out


def to_document(system: System) -> dict[str, Any]:
    """The System as plain spec data (what the YAML holds)."""
    s = system
    return {
        "system": s.name,
        "zones": list(s.zones),
        "network": {
            "latency": {"same_zone": s.communication.same_zone_latency.to_spec(),
                        "cross_zone": s.communication.cross_zone_latency.to_spec()},
            "loss": s.communication.loss,
        },
        "discovery": {"mode": s.discovery.mode, "heartbeat": dur(s.discovery.heartbeat),
                      "ttl": dur(s.discovery.ttl), "refresh": dur(s.discovery.refresh),
                      "zone_detection": dur(s.discovery.zone_detection)},
        "orchestration": {"restart": _restart(s.orchestration.restart),
                          "readiness": _readiness(s.orchestration.readiness)},
        "services": {name: _service(svc, s.zones) for name, svc in s.services.items()},
        "workload": [
            {"entry": w.entry, "rate": _rate(w), "arrivals": w.arrivals, "source": w.source,
             **({"timeout": dur(w.timeout)} if w.timeout is not None else {})}
            for w in s.workload
        ] + [_sessions(x) for x in s.sessions],
        "properties": [_property(p) for p in s.properties],
        "scenarios": {
            name: {
                **({"duration": dur(sc.duration)} if sc.duration is not None else {}),
                **({"warmup": dur(sc.warmup)} if sc.warmup is not None else {}),
                "faults": [_fault(f) for f in sc.faults],
            }
            for name, sc in s.scenarios.items()
        },
    }


def dump(system: System) -> str:
    """The System as YAML text that loads back to an equal System."""
    return yaml.safe_dump(to_document(system), sort_keys=False, allow_unicode=True, width=100)


# --- spec documents with comments (importers, merges) -----------------------------------------

KeyPath = tuple[Any, ...]
FLOW_WIDTH = 96  # a mapping or list that fits on one line this wide is written in flow style


def _flow(value: Any) -> str:
    """One value as single-line YAML (flow style), exactly as PyYAML would read it back."""
    text = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, width=10**9,
                          sort_keys=False)
    if text.endswith("\n...\n"):  # a lone scalar gets an explicit document end
        text = text[: -len("\n...\n")]
    return text.strip()


def _with_comment(text: str, comment: str | None) -> str:
    return f"{text}  # {comment}" if comment else text


def _emit(value: Any, path: KeyPath, indent: int, comments: dict[KeyPath, str],
          before: dict[KeyPath, list[str]], lines: list[str], commented: set[KeyPath],
          prefix: str = "") -> None:
    """Append ``value`` (a mapping's or list's content) at ``indent`` spaces to ``lines``.

    ``prefix`` is what the first line starts with instead of the indentation (a list item's
    ``- ``), so a mapping inside a list opens on the dash's line.
    """
    pad = " " * indent
    first = True
    items: list[tuple[Any, Any]] = (list(value.items()) if isinstance(value, dict)
                                    else list(enumerate(value)))
    for key, item in items:
        here = (*path, key)
        lead = prefix if first and prefix else pad
        first = False
        for line in before.get(here, []):
            lines.append(f"{pad}# {line}" if line else f"{pad}#")
        label = "- " if isinstance(value, list) else f"{_flow(key)}: "
        inline = _flow(item) if isinstance(item, dict | list) else None
        nested = isinstance(item, dict | list) and item and (
            len(lead) + len(label) + len(inline or "") > FLOW_WIDTH or here in commented)
        if not nested:
            text = inline if inline is not None else _flow(item)
            lines.append(_with_comment(f"{lead}{label}{text}", comments.get(here)))
        elif isinstance(value, list) and isinstance(item, dict):
            # "- key: value" then the other keys under the first one
            if here in comments:
                lines.append(_with_comment(f"{lead}-", comments[here]))
                _emit(item, here, indent + 2, comments, before, lines, commented)
            else:
                _emit(item, here, indent + 2, comments, before, lines, commented,
                      prefix=f"{lead}- ")
        else:
            lines.append(_with_comment(f"{lead}{label.rstrip()}", comments.get(here)))
            _emit(item, here, indent + 2, comments, before, lines, commented)


def dump_document(document: dict[str, Any], *, header: list[str] | None = None,
                  comments: dict[KeyPath, str] | None = None,
                  before: dict[KeyPath, list[str]] | None = None) -> str:
    """Spec data (what ``to_document`` or an importer gives) as commented YAML text.

    ``header`` lines open the file as comments; ``comments`` puts an end-of-line comment on
    the key at a path (``("services", "cart", "replicas")``); ``before`` puts comment lines
    above it. Small mappings and lists are written on one line (flow style), larger ones as
    blocks, and any that hold a commented key as blocks, so each comment sits on its key's
    line. ``yaml.safe_load`` of the text gives ``document`` back.
    """
    lines = [f"# {line}" if line else "#" for line in (header or [])]
    comments, before = comments or {}, before or {}
    # Paths that hold a commented key somewhere below: written as blocks, never in flow style.
    commented = {path[:i] for path in (*comments, *before) for i in range(1, len(path))}
    _emit(document, (), 0, comments, before, lines, commented)
    return "\n".join(lines) + "\n"
