"""Scenarios and the faults they inject, as frozen values.

A fault acts on a ``Target``: ``zone:a``, ``service:cart``, ``instance:cart-0`` or an endpoint
``cart.GetCart``; a bare name is a service. It starts ``at`` seconds into the run and lasts
``duration`` seconds (``None``: to the end of the run).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from faultmesh.model.distributions import Distribution

TargetKind = Literal["zone", "service", "instance", "endpoint"]


@dataclass(frozen=True, slots=True)
class Target:
    kind: TargetKind
    name: str

    def __str__(self) -> str:
        return self.name if self.kind == "endpoint" else f"{self.kind}:{self.name}"


def parse_target(text: str) -> Target:
    """``zone:a`` / ``service:x`` / ``instance:x-0`` / ``svc.Endpoint`` / ``svc``."""
    kind, sep, name = text.partition(":")
    if sep:
        if kind not in ("zone", "service", "instance"):
            raise ValueError(
                f"unknown target kind {kind!r} in {text!r}; use zone:, service: or instance:"
            )
        if not name:
            raise ValueError(f"target {text!r} names nothing after {kind}:")
        return Target(kind, name)  # type: ignore[arg-type]
    if "." in text:
        return Target("endpoint", text)
    return Target("service", text)


@dataclass(frozen=True, slots=True, kw_only=True)
class FaultBase:
    at: float = 0.0
    duration: float | None = None

    @property
    def end(self) -> float | None:
        return None if self.duration is None else self.at + self.duration


@dataclass(frozen=True, slots=True, kw_only=True)
class Crash(FaultBase):
    """Instances of the target are down; with mttf/mttr, they fail and recover at random."""

    kind: ClassVar[str] = "crash"
    target: Target
    mttf: float | None = None
    mttr: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class LatencyFault(FaultBase):
    kind: ClassVar[str] = "latency"
    target: Target
    add: Distribution


@dataclass(frozen=True, slots=True, kw_only=True)
class ErrorFault(FaultBase):
    kind: ClassVar[str] = "errors"
    target: Target
    rate: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Partition(FaultBase):
    """Messages from ``between[0]`` to ``between[1]`` (and back unless oneway) are dropped."""

    kind: ClassVar[str] = "partition"
    between: tuple[Target, Target]
    oneway: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class LossFault(FaultBase):
    """Extra message loss, everywhere or between two targets."""

    kind: ClassVar[str] = "loss"
    rate: float
    between: tuple[Target, Target] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Slowdown(FaultBase):
    kind: ClassVar[str] = "slowdown"
    target: Target
    factor: float


@dataclass(frozen=True, slots=True, kw_only=True)
class RegistryOutage(FaultBase):
    """The discovery registry is down: client caches freeze at their last view."""

    kind: ClassVar[str] = "registry_outage"


@dataclass(frozen=True, slots=True, kw_only=True)
class RollingRestart(FaultBase):
    """Restart the target service's instances one after another, ``interval`` apart."""

    kind: ClassVar[str] = "rolling_restart"
    target: Target
    interval: float = 30.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Surge(FaultBase):
    """The arrival rate at workload entry ``entry`` is multiplied by ``factor`` (or set to
    ``rate`` per second) for the fault's window: a load spike as a trigger."""

    kind: ClassVar[str] = "surge"
    entry: str
    factor: float | None = None
    rate: float | None = None

    def applied(self, rate: float) -> float:
        """The entry's rate during the surge, given its rate without it."""
        return self.rate if self.rate is not None else rate * (self.factor or 1.0)


Fault = (
    Crash | LatencyFault | ErrorFault | Partition | LossFault | Slowdown | RegistryOutage
    | RollingRestart | Surge
)

@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    faults: tuple[Fault, ...] = ()
    duration: float | None = None  # None: the CLI's --duration (default 60 s)
    warmup: float | None = None  # None: detected after the run (MSER-5); 0: no warm-up
