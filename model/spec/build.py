"""From a validated ``Spec`` to the resolved ``System``: defaults applied, references checked.

Every cross-reference of the spec is checked here (callees, zones, startup dependencies,
workload entries, fault targets), each failure reported at its own position with a "did you
mean" hint, and all of them at once. Defaults are resolved into each object so nothing
downstream has to know the defaults section existed.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

from faultmesh.model import faults as F
from faultmesh.model.spec import schema as S
from faultmesh.model.spec.build_scenarios import ScenariosBuilder
from faultmesh.model.spec.build_steps import StepsBuilder
from faultmesh.model.spec.errors import SpecError
from faultmesh.model.spec.mitigations import (
    defaults_hedge_problems,
    hedge_policy,
    hedge_problems,
    retry_budget,
    retry_throttling,
)
from faultmesh.model.spec.yaml_source import Path, Source
from faultmesh.model.system import (
    DEFAULT_ZONE,
    Backoff,
    BreakerPolicy,
    Call,
    Communication,
    ConsecutiveBreakerPolicy,
    Discovery,
    Endpoint,
    FrozenMap,
    Hedge,
    LoadBalancer,
    Orchestration,
    OutlierDetection,
    QueueDiscipline,
    RateBreakerPolicy,
    RateLimit,
    RatePoint,
    Readiness,
    RestartPolicy,
    Service,
    Signature,
    System,
    Workload,
)
from faultmesh.model.units import format_durations


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def interleave_placement(zones: tuple[str, ...], counts: dict[str, int]) -> tuple[str, ...]:
    """Instance zones in round-robin order over the zones, ``{a: 2, b: 1}`` -> ``(a, b, a)``."""
    left = {zone: counts.get(zone, 0) for zone in zones}
    order: list[str] = []
    while any(left.values()):
        for zone in zones:
            if left[zone]:
                order.append(zone)
                left[zone] -= 1
    return tuple(order)


def backoff_policy(spec: S.Backoff) -> Backoff:
    if spec == "none":
        return Backoff(strategy="none", base=0.0, cap=0.0, jitter="none")
    assert isinstance(spec, S.BackoffSpec)
    return Backoff(strategy=spec.strategy, base=spec.base, cap=spec.cap, jitter=spec.jitter)


def breaker_policy(spec: Any) -> BreakerPolicy | None:
    if spec is None or spec == "none":
        return None
    if isinstance(spec, S.ConsecutiveBreakerSpec):
        return ConsecutiveBreakerPolicy(spec.consecutive_failures, spec.open_for)
    assert isinstance(spec, S.RateBreakerSpec)
    return RateBreakerPolicy(
        failure_rate=spec.failure_rate,
        window=spec.window,
        min_calls=spec.window if spec.min_calls is None else spec.min_calls,
        open_for=spec.open_for,
        half_open_calls=spec.half_open_calls,
        slow_call_duration=spec.slow_call.duration if spec.slow_call else None,
        slow_call_rate=spec.slow_call.rate if spec.slow_call else 1.0,
    )


def outlier_detection(spec: S.Outlier) -> OutlierDetection | None:
    if spec == "none":
        return None
    assert not isinstance(spec, str)
    return OutlierDetection(spec.consecutive_5xx, spec.consecutive_gateway_errors, spec.interval,
                            spec.base_ejection_time, spec.max_ejection_time,
                            spec.max_ejection_percent, spec.always_eject_one_host)


def retry_limit(spec: S.MaxRetries) -> int | None:
    return spec if isinstance(spec, int) else None  # "unlimited"


def rate_limit(spec: S.RateLimitSpec | None) -> RateLimit | None:
    return None if spec is None else RateLimit(spec.rate, spec.burst)


def queue_discipline(spec: S.ServiceSpec) -> QueueDiscipline:
    """The queue's order and wait bounds: a keyword, or adaptive LIFO with its parameters."""
    if isinstance(spec.queue_discipline, S.AdaptiveLifoSpec):
        params = spec.queue_discipline.adaptive_lifo
        return QueueDiscipline("adaptive_lifo", spec.queue_timeout, params.interval,
                               params.target)
    return QueueDiscipline(spec.queue_discipline, spec.queue_timeout)


def load_balancer(spec: S.LoadBalancer) -> LoadBalancer:
    if isinstance(spec, S.LeastRequestChoice):
        return LoadBalancer("least_request", spec.least_request.choices)
    return LoadBalancer(spec)


def restart_policy(spec: S.Restart) -> RestartPolicy:
    return RestartPolicy(None) if spec == "never" else RestartPolicy(spec.delay)


class Builder(StepsBuilder, ScenariosBuilder):
    """Turns one validated Spec into a System, collecting located errors."""

    def __init__(self, spec: S.Spec, source: Source):
        self.spec = spec
        self.source = source
        self.errors: list[SpecError] = []
        self.zones: tuple[str, ...] = tuple(spec.zones) if spec.zones else (DEFAULT_ZONE,)
        self._plain_calls: dict[str, Call] = {}  # "svc.endpoint" -> its Call (see ``call``)

    def fail(self, path: Path, message: str, *, key: bool = False) -> None:
        self.errors.append(self.source.error(path, message, key=key))

    # --- references ---------------------------------------------------------------------

    def check_ref(self, ref: str, path: Path) -> bool:
        """Does ``service.endpoint`` exist? Reports a located error with a hint if not."""
        service, _, endpoint = ref.partition(".")
        services = self.spec.services
        if service not in services:
            self.fail(path, f"unknown service {service!r} in {ref!r}"
                      f"{did_you_mean(service, services)}")
            return False
        if endpoint not in services[service].endpoints:
            known = services[service].endpoints
            hint = did_you_mean(endpoint, known) or " (it has: " + ", ".join(known) + ")"
            self.fail(path, f"service {service!r} has no endpoint {endpoint!r}{hint}")
            return False
        return True

    def check_target(self, text: str, path: Path, *, kinds: tuple[str, ...]) -> F.Target | None:
        try:
            target = F.parse_target(text)
        except ValueError as exc:
            self.fail(path, str(exc))
            return None
        if target.kind not in kinds:
            self.fail(path, f"this fault cannot target a {target.kind} ({text!r}); "
                      f"it takes {', '.join(kinds)}")
            return None
        services = self.spec.services
        if target.kind == "zone" and target.name not in self.zones:
            self.fail(path, f"unknown zone {target.name!r}{did_you_mean(target.name, self.zones)}"
                      f" (zones: {', '.join(self.zones)})")
            return None
        if target.kind == "service" and target.name not in services:
            self.fail(path, f"unknown service {target.name!r}"
                      f"{did_you_mean(target.name, services)}")
            return None
        if target.kind == "instance":
            names = [f"{name}-{i}" for name, s in services.items()
                     for i in range(self._replicas(s))]
            if target.name not in names:
                self.fail(path, f"unknown instance {target.name!r}"
                          f"{did_you_mean(target.name, names)} (instances are named service-index)")
                return None
        if target.kind == "endpoint" and not self.check_ref(target.name, path):
            return None
        return target

    # --- S ------------------------------------------------------------------------------

    def _replicas(self, service: S.ServiceSpec) -> int:
        if service.placement is not None and "replicas" not in service.model_fields_set:
            return sum(service.placement.values())
        return service.replicas

    def placement(self, name: str, service: S.ServiceSpec) -> tuple[str, ...]:
        path: Path = ("services", name, "placement")
        if service.placement is None:
            return tuple(self.zones[i % len(self.zones)] for i in range(service.replicas))
        for zone in service.placement:
            if zone not in self.zones:
                self.fail((*path, zone), f"unknown zone {zone!r}{did_you_mean(zone, self.zones)}"
                          f" (zones: {', '.join(self.zones)})", key=True)
        total = sum(service.placement.values())
        if total == 0:
            self.fail(path, "placement puts no replica anywhere; a service needs at least one")
        elif total > S.MAX_REPLICAS:  # each count is bounded by the schema, the sum here
            self.fail(path, f"placement places {total} replicas; at most {S.MAX_REPLICAS:,}")
            return interleave_placement(self.zones, {})
        elif "replicas" in service.model_fields_set and total != service.replicas:
            self.fail(path, f"placement places {total} replica{'s' if total != 1 else ''} "
                      f"but replicas is {service.replicas}")
        return interleave_placement(self.zones, dict(service.placement))

    def call(self, item: Any, path: Path) -> Call | None:
        if isinstance(item, str):
            # A plain "svc.endpoint" means the same Call wherever it is written (all of it
            # comes from the defaults), so each is built once: a 100,000-service spec has
            # 300,000 of them. Only a call that built cleanly is kept, so a bad reference is
            # reported at every place it is written.
            plain = self._plain_calls.get(item)
            if plain is None:
                plain = self._call(S.CallSpec.model_validate({"call": item}), path, path)
                if plain is not None:
                    self._plain_calls[item] = plain
            return plain
        return self._call(item, path, (*path, "call"))

    def _call(self, item: S.CallSpec, path: Path, ref_path: Path) -> Call | None:
        defaults = self.spec.defaults
        if not self.check_ref(item.call, ref_path):
            return None
        service, _, endpoint = item.call.partition(".")
        breaker = item.circuit_breaker if "circuit_breaker" in item.model_fields_set \
            else defaults.circuit_breaker
        timeout = defaults.call.timeout if item.timeout is None else item.timeout
        hedge = hedge_policy(defaults.call.hedge if item.hedge is None else item.hedge)
        # Hedging replaces retries (gRPC: a method has a retry or a hedging policy, not both):
        # a hedged call does not inherit the defaults' retries; setting both is an error.
        retries = item.retries if item.retries is not None \
            else 0 if hedge is not None else defaults.call.retries
        if hedge is not None and not self._check_hedge(item, path, hedge, timeout, retries):
            return None
        return Call(
            service=service,
            endpoint=endpoint,
            timeout=timeout,
            retries=retries,
            backoff=backoff_policy(defaults.call.backoff if item.backoff is None else item.backoff),
            optional=item.optional,
            asynchronous=item.async_,
            probability=item.probability,
            repeat=item.repeat,
            circuit_breaker=breaker_policy(breaker),
            retry_other_instance=item.retry_other_instance,
            deadline=defaults.call.deadline if item.deadline is None else item.deadline,
            hedge=hedge,
        )

    def _check_hedge(self, item: S.CallSpec, path: Path, hedge: Hedge, timeout: float,
                     retries: int) -> bool:
        problems = hedge_problems(item, path, hedge, timeout, retries)
        for where, message in problems:
            self.fail(where, message)
        return not problems

    def check_call_defaults(self) -> None:
        for where, message in defaults_hedge_problems(self.spec.defaults.call):
            self.fail(where, message)

    def service(self, name: str, spec: S.ServiceSpec) -> Service:
        path: Path = ("services", name)
        for i, dep in enumerate(spec.depends_on):
            if dep not in self.spec.services:
                self.fail((*path, "depends_on", i), f"unknown service {dep!r}"
                          f"{did_you_mean(dep, self.spec.services)}")
            elif dep == name:
                self.fail((*path, "depends_on", i), f"{name!r} cannot depend on itself")
        endpoints = FrozenMap({
            ep_name: Endpoint(
                name=ep_name,
                service_time=ep.service_time,
                signature=Signature(ep.signature.input, ep.signature.output,
                                    tuple(ep.signature.errors)),
                steps=self.steps(ep.calls, (*path, "endpoints", ep_name, "calls")),
                rate_limit=rate_limit(ep.rate_limit),
                label=ep.label,
            )
            for ep_name, ep in spec.endpoints.items()
        })
        orchestration = self.spec.orchestration
        return Service(
            name=name,
            endpoints=endpoints,
            zones=self.placement(name, spec),
            workers=spec.workers,
            concurrency=spec.concurrency,
            queue=spec.queue,
            depends_on=tuple(spec.depends_on),
            load_balancer=load_balancer(spec.load_balancer or self.spec.defaults.load_balancer),
            restart=restart_policy(spec.restart or orchestration.restart),
            readiness=self.readiness(spec.readiness or orchestration.readiness),
            outlier_detection=outlier_detection(
                spec.outlier_detection or self.spec.defaults.outlier_detection),
            max_retries=retry_limit(self.spec.defaults.max_retries if spec.max_retries is None
                                    else spec.max_retries),
            retry_budget=retry_budget(spec.retry_budget),
            retry_throttling=retry_throttling(spec.retry_throttling),
            propagate_deadline=spec.propagate_deadline,
            queue_discipline=queue_discipline(spec),
            rate_limit=rate_limit(spec.rate_limit),
        )

    @staticmethod
    def readiness(spec: S.ReadinessSpec) -> Readiness:
        return Readiness(spec.period, spec.failures, spec.initial_delay)

    # --- workload, properties, scenarios ------------------------------------------------

    def workload(self) -> tuple[Workload, ...]:
        items = []
        for i, w in enumerate(self.spec.workload):
            path: Path = ("workload", i)
            if w.sessions is not None:
                continue  # ``sessions()``
            if w.mix is not None:
                items.extend(self.mix(w, path))
                continue
            assert w.entry is not None and w.rate is not None
            if self.check_ref(w.entry, (*path, "entry")):
                service, _, endpoint = w.entry.partition(".")
                rate, profile = self.profile(w.rate, (*path, "rate"))
                items.append(Workload(service, endpoint, rate, w.arrivals, w.timeout, w.source,
                                      profile))
        return tuple(items)

    def profile(self, spec: float | list[S.RatePointSpec], path: Path
                ) -> tuple[float, tuple[RatePoint, ...]]:
        """A workload rate: a number, or a profile whose rate before its first point is 0."""
        if not isinstance(spec, list):
            return spec, ()
        points = [RatePoint(p.at, p.rate, p.ramp) for p in spec]
        for j in range(1, len(points)):
            if points[j].at <= points[j - 1].at:
                at, before = format_durations(points[j].at, points[j - 1].at)
                self.fail((*path, j, "at"), f"the profile goes back in time: this point is at "
                          f"{at}, not after the previous one ({before})")
        if points[0].at == 0 and not points[0].ramp:
            return points[0].rate, tuple(points[1:])
        return 0.0, tuple(points)

    # --- the whole --------------------------------------------------------------------------

    def build(self) -> System:
        spec = self.spec
        if spec.zones and len(set(spec.zones)) != len(spec.zones):
            self.fail(("zones",), "zones are listed twice")
        self.check_call_defaults()
        services = FrozenMap({name: self.service(name, s) for name, s in spec.services.items()})
        return System(
            services=services,
            communication=Communication(spec.network.latency.same_zone,
                                        spec.network.latency.cross_zone, spec.network.loss),
            discovery=Discovery(spec.discovery.mode, spec.discovery.heartbeat, spec.discovery.ttl,
                                spec.discovery.refresh, spec.discovery.zone_detection),
            orchestration=Orchestration(restart_policy(spec.orchestration.restart),
                                        self.readiness(spec.orchestration.readiness)),
            name=spec.system,
            zones=self.zones,
            workload=self.workload(),
            properties=self.properties(),
            scenarios=self.scenarios(),
            sessions=self.sessions(),
        )
