"""The engine: compose a System and a Scenario into one SimPy run, and run it.

``simulate(system, scenario, duration=..., seed=...)`` builds the run's parts from the frozen
model (instances, the network, discovery, orchestration, call sites with their callers'
balancers and breakers, the workload, the fault injector, the monitors), runs SimPy until
``duration``,
and returns a ``Run``. Everything random draws from streams derived from ``seed``
(``simulations.streams``), so the same spec, scenario and seed give the same run.

Static work is done once here so the per-request path does none of it: a call without a
breaker has no breaker object, a call made every time draws no random number, one instance
needs no balancer, a network without latency, loss or partitions is skipped.
"""

from __future__ import annotations

import itertools
import math
import os
from collections import Counter
from collections.abc import Callable
from functools import partial
from operator import attrgetter
from pathlib import Path
from typing import Any, TypeVar, cast

import simpy
from simpy.events import Timeout

from faultmesh.model.collector import quiet_collector
from faultmesh.model.faults import Crash, Fault, RollingRestart, Scenario
from faultmesh.model.properties import Availability, BreakerReaction, Latency, Recovers, Staleness
from faultmesh.model.system import Call, System
from faultmesh.model.units import format_durations, parse_duration
from faultmesh.simulations.balancers import Balancer, make_balancer
from faultmesh.simulations.breakers import CircuitBreaker
from faultmesh.simulations.engine.admission import UnknownScenario as UnknownScenario
from faultmesh.simulations.engine.admission import check_cost, resolve_scenario
from faultmesh.simulations.engine.breaker_groups import BreakerGroup, breakers_summary
from faultmesh.simulations.engine.calls import ActiveRequests, CallSite
from faultmesh.simulations.engine.discovery import Discovery
from faultmesh.simulations.engine.edge_stats import EdgeStats
from faultmesh.simulations.engine.faults import FaultInjector, describe
from faultmesh.simulations.engine.instances import Instance, ServiceRuntime
from faultmesh.simulations.engine.jobs import EndpointRuntime, compile_step
from faultmesh.simulations.engine.network import Network
from faultmesh.simulations.engine.orchestration import Orchestrator
from faultmesh.simulations.engine.outliers import OutlierGroup
from faultmesh.simulations.engine.sessions import build_sessions
from faultmesh.simulations.engine.streams import Streams
from faultmesh.simulations.engine.timeouts import Deadlines
from faultmesh.simulations.engine.workload import Arrivals
from faultmesh.simulations.observation.metrics import EntryStats, RequestTrace, Timeline
from faultmesh.simulations.observation.monitors import (
    AvailabilityMonitor,
    BreakerReactionMonitor,
    LatencyMonitor,
    Monitor,
    NoLostRequestsMonitor,
    StalenessMonitor,
)
from faultmesh.simulations.observation.phases import Phases
from faultmesh.simulations.observation.recovery import RecoversMonitor
from faultmesh.simulations.observation.results import Run
from faultmesh.simulations.observation.summary import RunSummary
from faultmesh.simulations.observation.warmup import WarmupDetector
from faultmesh.simulations.outliers import OutlierDetector
from faultmesh.simulations.retry_limits import (
    OutstandingRetries,
    RetryBudgetState,
    RetryThrottle,
)

DEFAULT_DURATION = 60.0
PROGRESS_STEPS = 200

Edge = tuple[str, str]
T = TypeVar("T")
Progress = Callable[[float, float], None]
"""Called as ``progress(simulated_seconds, total_seconds)`` as the run goes."""


class Simulation:
    """One run being assembled and executed; use ``simulate()``."""

    def __init__(self, system: System, scenario: Scenario | None, *, duration: float,
                 seed: int, trace: bool, cold_start: bool) -> None:
        self.system = system
        self.scenario = scenario
        self.duration = duration
        # No warm-up given (no scenario, or one without ``warmup``): detect it after the run.
        given = scenario.warmup if scenario is not None else None
        self.warmup = given or 0.0
        if self.warmup >= duration:
            run, warmup = format_durations(duration, self.warmup)
            raise ValueError(f"the run ({run}) must be longer than the scenario's "
                             f"warm-up ({warmup})")
        self.seed = seed
        self.cold_start = cold_start
        self.env = env = simpy.Environment()
        self.streams = streams = Streams(seed)
        self.network = Network(system.communication, streams("network"))
        self._build_instances()
        self.discovery = Discovery(env, system.discovery,
                                   {name: s.instances for name, s in self.services.items()},
                                   streams("discovery"))
        self.deadlines: dict[float, Deadlines] = {}
        self.breaker_groups: dict[Edge, list[BreakerGroup]] = {}
        self.balancers: dict[Edge, tuple[tuple[Balancer, ...],
                                         tuple[ActiveRequests, ...] | None]] = {}
        self.edge_stats: dict[Edge, EdgeStats] = {}
        self.outlier_groups: dict[Edge, OutlierGroup] = {}
        # Callees with max_retries or a retry budget (which replaces it), and with throttling.
        self.retry_limits: dict[Edge, OutstandingRetries | RetryBudgetState] = {}
        self.throttles: dict[Edge, RetryThrottle] = {}
        self._compile_calls()
        # Every breaker by edge, then by its label in the summary (``cart-0``, or ``cart-0/2``).
        self.breakers: dict[Edge, dict[str, CircuitBreaker]] = {
            edge: {group.label(i, len(groups)): breaker for group in groups
                   for i, breaker in enumerate(group.breakers)}
            for edge, groups in self.breaker_groups.items()}
        self.timeline = Timeline(duration)
        self.trace = RequestTrace() if trace else None
        if self.trace is not None:  # spans per job too, for OTLP export (engine.tracing)
            from faultmesh.simulations.engine.tracing import trace_spans

            self.trace.spans = trace_spans(env, self.instances)
        self._build_workload()
        self.orchestrator = Orchestrator(env, dict(system.services), self.discovery,
                                         streams("readiness"), system.discovery.zone_detection)
        faults = scenario.faults if scenario is not None else ()
        self.injector = FaultInjector(
            env, faults, instances={n: s.instances for n, s in self.services.items()},
            zones=system.zones, edges=frozenset(self.edge_stats), network=self.network,
            discovery=self.discovery, orchestrator=self.orchestrator, streams=streams,
            duration=duration, arrivals=self.arrivals)
        self.phases = Phases(self._spans(faults), duration, self.warmup, self.timeline) \
            if faults else None
        self.monitors: list[Monitor] = self._build_monitors()
        self.detector: WarmupDetector | None = None
        if given is None:
            starts = [f.at for f in faults if f.at < duration]
            self.detector = WarmupDetector(
                env, self.timeline, list(self.entries.values()),
                min([duration / 2, *starts]), instances=self.instances,
                services=list(self.services.values()), edges=list(self.edge_stats.values()))

    # --- assembly -----------------------------------------------------------------------------

    def _build_instances(self) -> None:
        self.services: dict[str, ServiceRuntime] = {}
        self.instances: list[Instance] = []
        fault_rng = self.streams("errors")
        uid = itertools.count()
        for name, service in self.system.services.items():
            runtime = ServiceRuntime(name, service.workers)
            endpoint_limits = {e.name: e.rate_limit for e in service.endpoints.values()
                               if e.rate_limit is not None}
            for index, zone in enumerate(service.zones):
                instance = Instance(self.env, self.network, name, index, zone, next(uid),
                                    workers=service.workers, concurrency=service.concurrency,
                                    queue=service.queue, fault_rng=fault_rng,
                                    discipline=service.queue_discipline,
                                    rate_limit=service.rate_limit,
                                    endpoint_limits=endpoint_limits,
                                    propagate_deadline=service.propagate_deadline)
                runtime.instances.append(instance)
                self.instances.append(instance)
            for endpoint in service.endpoints.values():
                sampler = endpoint.service_time.sampler(
                    self.streams(f"service-time/{name}.{endpoint.name}"))
                runtime.endpoints[endpoint.name] = EndpointRuntime(name, endpoint.name, sampler)
            self.services[name] = runtime

    def _deadlines(self, length: float) -> Deadlines:
        if length not in self.deadlines:
            self.deadlines[length] = Deadlines(self.env, length)
        return self.deadlines[length]

    def _balancers(self, caller: str, callee: str
                   ) -> tuple[tuple[Balancer, ...], tuple[ActiveRequests, ...] | None]:
        """The edge's balancers by caller instance index, and (least request) their load.

        Each caller instance balances on its own, as each Envoy proxy does: round robin keeps
        its own position (from a random start), least request compares that instance's own
        requests out to each callee instance (Envoy's per-proxy ``rq_active``).
        """
        edge = (caller, callee)
        if edge not in self.balancers:
            policy = self.system.services[callee].load_balancer
            callers = self.services[caller].instances
            active = tuple(Counter[Instance]() for _ in callers) \
                if policy.kind == "least_request" else None
            self.balancers[edge] = (tuple(
                make_balancer(policy, self.streams(f"balancer/{c.name}->{callee}"),
                              attrgetter("in_flight") if active is None
                              else active[i].__getitem__)
                for i, c in enumerate(callers)), active)
        return self.balancers[edge]

    def _breakers(self, caller: str, call: Call, where: str
                  ) -> tuple[CircuitBreaker, ...] | None:
        """The breakers of ``call``'s policy on its edge, one per caller instance.

        Call sites of one edge with equal policies share them (one named breaker in each
        client, as in Resilience4j); a different policy on the same edge gets its own.
        """
        policy = call.circuit_breaker
        if policy is None:
            return None
        groups = self.breaker_groups.setdefault((caller, call.service), [])
        group = next((g for g in groups if g.policy == policy), None)
        if group is None:
            group = BreakerGroup(policy, [i.name for i in self.services[caller].instances],
                                 len(groups) + 1)
            groups.append(group)
        group.sites.append(where)
        return group.breakers

    def _call_site(self, caller: str, call: Call, where: str) -> CallSite:
        edge = (caller, call.service)
        stats = self.edge_stats.setdefault(edge, EdgeStats())
        balancers, active = self._balancers(caller, call.service)
        return CallSite(call, env=self.env, network=self.network,
                        endpoint=self.services[call.service].endpoints[call.endpoint],
                        callee_service=self.services[call.service],
                        deadlines=self._deadlines(call.timeout), balancers=balancers,
                        active=active, breakers=self._breakers(caller, call, where),
                        edge=stats, rng=self.streams(f"call/{where}"),
                        outliers=self._outliers(caller, call.service),
                        retry_limit=self._retry_limit(caller, call.service),
                        throttle=self._throttle(caller, call.service),
                        propagates=self.system.services[caller].propagate_deadline)

    def _retry_limit(self, caller: str, callee: str
                     ) -> OutstandingRetries | RetryBudgetState | None:
        """The callee's retry budget, else its ``max_retries``, on this edge (or None).

        Kept per caller instance; a budget overrides ``max_retries`` as it does in Envoy.
        """
        service = self.system.services[callee]
        if service.retry_budget is None and service.max_retries is None:
            return None
        edge = (caller, callee)
        if edge not in self.retry_limits:
            callers = len(self.services[caller].instances)
            self.retry_limits[edge] = (
                RetryBudgetState(service.retry_budget, callers)
                if service.retry_budget is not None
                else OutstandingRetries(service.max_retries, callers))
        return self.retry_limits[edge]

    def _throttle(self, caller: str, callee: str) -> RetryThrottle | None:
        """The callee's gRPC retry throttling on this edge, per caller instance (or None)."""
        policy = self.system.services[callee].retry_throttling
        if policy is None:
            return None
        edge = (caller, callee)
        if edge not in self.throttles:
            self.throttles[edge] = RetryThrottle(policy, len(self.services[caller].instances))
        return self.throttles[edge]

    def _outliers(self, caller: str, callee: str) -> tuple[OutlierDetector, ...] | None:
        """The callee's outlier detectors on this edge, one per caller instance (or None)."""
        policy = self.system.services[callee].outlier_detection
        if policy is None:
            return None
        edge = (caller, callee)
        if edge not in self.outlier_groups:
            self.outlier_groups[edge] = OutlierGroup(
                self.env, policy, [i.name for i in self.services[caller].instances],
                [i.name for i in self.services[callee].instances])
        return self.outlier_groups[edge].detectors

    def _compile_calls(self) -> None:
        for name, service in self.system.services.items():
            for endpoint in service.endpoints.values():
                steps: list[Any] = []
                for i, step in enumerate(endpoint.steps):
                    where = f"{name}.{endpoint.name}/{i}"
                    steps.extend(compile_step(step, partial(self._call_site, name), where,
                                              self.streams))
                self.services[name].endpoints[endpoint.name].steps = tuple(steps)

    def _build_workload(self) -> None:
        system = self.system
        names = list(system.entries)
        for prop in system.properties:
            if isinstance(prop, Availability | Latency | Recovers) and prop.entry not in names:
                names.append(prop.entry)
        self.entries = {name: EntryStats(name, i, self.warmup, self.timeline)
                        for i, name in enumerate(names)}
        for stats in self.entries.values():
            self.timeline.add_entry(stats)
        ids = itertools.count()
        self.arrivals: list[Arrivals] = []
        for i, item in enumerate(system.workload):
            policy = system.services[item.service].load_balancer
            # The ingress is one caller: least request counts its own requests out.
            active = Counter[Instance]() if policy.kind == "least_request" else None
            balancer = make_balancer(policy, self.streams(f"ingress/{i}"),
                                     attrgetter("in_flight") if active is None
                                     else active.__getitem__)
            self.arrivals.append(Arrivals(
                self.env, item, self.services[item.service].endpoints[item.endpoint],
                self.discovery.live, balancer, self.entries[item.entry],
                self.streams(f"arrivals/{i}"), ids,
                None if item.timeout is None else self._deadlines(item.timeout), self.trace,
                active=active))
        self.session_groups = build_sessions(self, ids)

    def _build_monitors(self) -> list[Monitor]:
        monitors: list[Monitor] = []
        for prop in self.system.properties:
            if isinstance(prop, Availability):
                monitors.append(AvailabilityMonitor(prop, self.entries[prop.entry],
                                                    self.timeline, self.warmup))
            elif isinstance(prop, Latency):
                monitors.append(LatencyMonitor(prop, self.entries[prop.entry], self.timeline,
                                               self.warmup))
            elif isinstance(prop, BreakerReaction):
                monitors.append(BreakerReactionMonitor(prop, self.injector.log, self.breakers,
                                                       self.duration))
            elif isinstance(prop, Recovers):
                monitors.append(RecoversMonitor(
                    prop, self.entries[prop.entry], self.timeline, env=self.env,
                    faults=self.scenario.faults if self.scenario is not None else (),
                    duration=self.duration, warmup=self.warmup,
                    workload=[w for w in self.system.workload if w.entry == prop.entry],
                    services=self.services, edges=self.edge_stats))
            elif isinstance(prop, Staleness):
                monitors.append(StalenessMonitor(prop, self.arrivals,
                                                 self.discovery.staleness_bound(self.system)))
        monitors.append(NoLostRequestsMonitor(self.arrivals, self.instances))
        return monitors

    def _spans(self, faults: tuple[Fault, ...]) -> list[tuple[str, float, float | None]]:
        """When each fault acts, for the per-phase view (crashes include the restart)."""
        spans = []
        services = self.system.services
        for fault in faults:
            end = fault.end
            if isinstance(fault, Crash) and fault.duration is None and fault.mttf is None:
                instances, _ = self.injector.resolve(fault.target)
                recover = [services[i.service].restart.delay for i in instances]
                if recover and all(d is not None for d in recover):
                    end = fault.at + max(d + services[i.service].readiness.initial_delay
                                         for d, i in zip(recover, instances, strict=True))
            elif isinstance(fault, RollingRestart) and fault.duration is None:
                service = services[fault.target.name]
                end = (fault.at + fault.interval * (service.replicas - 1)
                       + (service.restart.delay or 0.0) + service.readiness.initial_delay)
            spans.append((describe(fault), fault.at, end))
        return spans

    # --- running ------------------------------------------------------------------------------

    def run(self, progress: Progress | None = None) -> Run:
        env = self.env
        if self.detector is not None:
            self.detector.start()
        if self.cold_start:
            self.orchestrator.cold_start(self.instances)
        self.discovery.start()
        for group in self.outlier_groups.values():
            group.start()
        for source in self.arrivals:
            source.start()
        for users in self.session_groups:
            users.start()
        self.injector.schedule()
        if self.warmup > 0:
            Timeout(env, self.warmup).callbacks.append(self._end_warmup)
        with quiet_collector():  # the built model is not walked again (``model.collector``)
            if progress is None:
                env.run(until=self.duration)
            else:
                for step in range(1, PROGRESS_STEPS + 1):
                    env.run(until=self.duration * step / PROGRESS_STEPS)
                    progress(env.now, self.duration)
        for instance in self.instances:
            instance.close_counters()
        self.timeline.finish(self.duration)
        for monitor in self.monitors:
            if isinstance(monitor, RecoversMonitor):  # reads counters before any truncation
                monitor.close()
        if self.detector is not None:
            self.warmup = self.detector.finish()
        return Run(self.summary(), self.timeline, self.breakers, self.trace,
                   latency={name: stats.latency for name, stats in self.entries.items()})

    def _end_warmup(self, _event: object) -> None:
        for instance in self.instances:
            instance.reset_counters()
        for service in self.services.values():
            service.retries = 0
        for stats in self.edge_stats.values():
            stats.reset()

    # --- results ------------------------------------------------------------------------------

    def summary(self) -> RunSummary:
        measured = self.duration - self.warmup
        properties = [monitor.verdict() for monitor in self.monitors]
        summary: RunSummary = {
            "system": self.system.name,
            "scenario": self.scenario.name if self.scenario is not None else None,
            "seed": self.seed,
            "duration_s": self.duration,
            "warmup_s": self.warmup,
            "warmup": self.detector.summary() if self.detector is not None
            else {"seconds": self.warmup, "detected": False, "rule": "scenario"},
            "verdict": "holds" if all(p["status"] == "holds" for p in properties)
            else "violated",
            "entries": {name: stats.summary() for name, stats in self.entries.items()},
            "services": {name: s.summary(measured) for name, s in self.services.items()},
            "breakers": {f"{caller}->{callee}": breakers_summary(groups)
                         for (caller, callee), groups in self.breaker_groups.items()},
            "calls": {f"{caller}->{callee}": s.summary(self._orphaned(caller, callee))
                      for (caller, callee), s in self.edge_stats.items()},
            "properties": properties,
            "requests": properties[-1]["requests"],
            "faults": [record.to_json() for record in self.injector.log],
            "faults_not_fired": [{"kind": fault.kind, "fault": describe(fault), "at": fault.at}
                                 for fault in self.injector.not_fired],
        }
        if self.phases is not None:
            summary["phases"] = self.phases.summary(self.breakers)
        if self.outlier_groups:
            summary["outliers"] = {f"{caller}->{callee}": group.summary()
                                   for (caller, callee), group in self.outlier_groups.items()}
        return _clean(summary)

    def _orphaned(self, caller: str, callee: str) -> int:
        """Jobs ``callee``'s instances started for ``caller`` after their deadline."""
        return sum(i.orphaned_by.get(caller, 0) for i in self.services[callee].instances)


def _clean(value: T) -> T:
    """JSON-safe: NaN and infinities become None (the shape is unchanged)."""
    return cast(T, _cleaned(value))


def _cleaned(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _cleaned(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_cleaned(v) for v in value]
    return value


def simulate(system: System | str | os.PathLike[str], scenario: str | Scenario | None = None,
             *, duration: float | str | None = None, seed: int = 0, trace: bool = False,
             progress: Progress | None = None, cold_start: bool = False) -> Run:
    """Run ``system`` (a System or a spec path) through ``scenario`` and return the ``Run``.

    ``scenario``: None (the workload, no faults), a scenario name of the spec, or a Scenario.
    ``duration``: seconds or a duration string; default: the scenario's own, else 60 s.
    ``trace``: keep one record per workload request (``Run.requests``).
    ``progress``: called as ``progress(simulated, total)`` a few hundred times.
    ``cold_start``: start every instance at time 0 instead of in steady state.

    The run's events are estimated first (``model.cost``): past ``MAX_EVENTS`` it raises
    ``RunTooLarge`` (a ValueError) without running; past ``WARN_EVENTS`` it warns
    (``LongRun``, a UserWarning) with about how long it may take; a workload rate from
    ``WARN_RATE`` up warns too.
    """
    if not isinstance(system, System):
        from faultmesh.model.spec.load import load as load_spec

        system = load_spec(Path(system))
    chosen = resolve_scenario(system, scenario)
    if duration is not None:
        seconds = parse_duration(duration)
    elif chosen is not None and chosen.duration is not None:
        seconds = chosen.duration
    else:
        seconds = DEFAULT_DURATION
    if seconds <= 0:
        raise ValueError("the duration must be positive")
    check_cost(system, chosen, seconds)
    simulation = Simulation(system, chosen, duration=seconds, seed=seed, trace=trace,
                            cold_start=cold_start)
    return simulation.run(progress)
