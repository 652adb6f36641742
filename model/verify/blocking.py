"""Rejections at one instance: the loss formulas ``capacity`` uses for ``queue``/``concurrency``.

The engine (``simulations.engine.instances``) rejects a request arriving at an instance that
already holds ``concurrency`` requests (queued, in service, or waiting on their calls) or that
has no free worker and ``queue`` requests waiting. An instance is therefore a loss system with
``workers`` servers. With the arrivals at an instance taken as Poisson (exact for Poisson
workloads split at random; splitting by round robin, constant arrivals and the smoother
departures of upstream stations make arrivals more regular, which lowers losses, so the
Poisson figure errs on the safe side):

* Worker stage. ``s = min(workers, concurrency)`` servers can be busy and at most
  ``L = min(workers + queue, concurrency)`` requests can be present (missing limits are
  infinite). With offered load ``a = rate x mean service time``:

  - no waiting room (``L == s``): Erlang's B formula ``B(s, a)``, exact for *any* service-time
    distribution (the Erlang loss formula is insensitive: only the mean matters);
  - exponential service times (one mean for all the service's endpoints): the M/M/s/L
    birth-death chain, exact;
  - other distributions with a waiting room: no exact formula exists, and the estimate is
    marked approximate. With a squared coefficient of variation (SCV) of at most 1 (constant,
    uniform, empirical, narrow normal or log-normal) the M/M/s/L value is used (less variable
    service waits less and loses less, so it errs on the high side); above 1 the waiting room
    is shrunk by the diffusion approximation's factor ``2 / (1 + SCV)`` (the queue a Poisson
    stream builds grows with ``(1 + SCV) / 2``) before M/M/s/L is applied.
  - A universal lower bound: ``max(0, 1 - s / a)`` (the instance cannot carry more than ``s``).

* Concurrency stage, when a service's endpoints wait on calls: a request holds a concurrency
  slot for its wait, its service time and its calls, which depend on the callees. Bounds: the
  slot is held at least for the service time and at most for the wait plus the service time
  plus every awaited call's worst case (its timeouts, retries and backoff, as
  ``timeouts_nest`` charges them); Erlang's B over ``concurrency`` slots at those two holding
  times gives the low and high estimates (approximate: holding times are not independent of
  the congestion).

``Loss`` carries (low, high, exact); the property holds for an instance when ``high`` is within
the target, is violated when ``low`` exceeds it, and is unknown in between.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

from faultmesh.model.distributions import (
    Constant,
    Distribution,
    Empirical,
    Exponential,
    LogNormal,
    Normal,
    Uniform,
    lognormal_parameters,
)


def second_moment(dist: Distribution) -> float:
    """E[X^2] of a service-time distribution."""
    if isinstance(dist, Constant):
        return dist.value ** 2
    if isinstance(dist, Exponential):
        return 2 * dist.mean_value ** 2
    if isinstance(dist, Uniform):
        return (dist.low ** 2 + dist.low * dist.high + dist.high ** 2) / 3
    if isinstance(dist, Empirical):
        return sum(v * v for v in dist.values) / len(dist.values)
    if isinstance(dist, LogNormal):
        mu, sigma = lognormal_parameters(dist.mean_value, dist.p99)
        return math.exp(2 * mu + 2 * sigma * sigma)
    if isinstance(dist, Normal):
        if dist.sd == 0:
            return dist.mean_value ** 2
        # A normal truncated below at 0: Var = sd^2 (1 + alpha lam - lam^2).
        std = NormalDist()
        alpha = -dist.mean_value / dist.sd
        lam = std.pdf(alpha) / (1 - std.cdf(alpha))
        variance = dist.sd ** 2 * (1 + alpha * lam - lam * lam)
        return variance + dist.mean ** 2
    raise TypeError(f"unknown distribution {dist!r}")


def erlang_b(servers: int, load: float) -> float:
    """Erlang's B formula: the loss of M/G/s/s at offered load ``load`` (stable recursion)."""
    b = 1.0
    for k in range(1, servers + 1):
        b = load * b / (k + load * b)
    return b


def _occupancy(servers: int, room: int, load: float) -> list[float]:
    """Stationary distribution of the M/M/s/L birth-death chain (``room`` = L), computed in
    log space so that long queues at high load neither overflow nor underflow."""
    if load <= 0:
        return [1.0] + [0.0] * room
    logs = [0.0]
    for n in range(1, room + 1):
        logs.append(logs[-1] + math.log(load / min(n, servers)))
    top = max(logs)
    weights = [math.exp(x - top) for x in logs]
    total = math.fsum(weights)
    return [w / total for w in weights]


def mmsl_loss(servers: int, room: int, load: float) -> float:
    """The share of arrivals M/M/s/L loses (PASTA: the chance an arrival finds it full)."""
    return _occupancy(servers, room, load)[-1]


def mmsl_wait(servers: int, room: int | None, load: float, mean: float) -> float:
    """Mean wait for a worker of the requests M/M/s/L admits (Little's law); Erlang C when the
    room is unlimited (infinite when ``load >= servers``)."""
    if load <= 0:
        return 0.0
    if room is None:
        if load >= servers:
            return math.inf
        c = erlang_b(servers, load)
        waiting = servers * c / (servers - load * (1 - c))  # Erlang C
        return waiting * mean / (servers - load)
    p = _occupancy(servers, room, load)
    queued = math.fsum((n - servers) * q for n, q in enumerate(p) if n > servers)
    admitted = (load / mean) * (1 - p[-1])
    return queued / admitted if admitted > 0 else 0.0


@dataclass(frozen=True)
class Station:
    """One instance of a service, as the loss formulas see it."""

    workers: int
    queue: int | None
    concurrency: int | None
    mean: float  # mean service time over the requests (a load-weighted mixture)
    scv: float  # squared coefficient of variation of that mixture
    exponential: bool  # every loaded endpoint's service time is exponential with this mean
    calls: float  # mean over requests of the worst case of the calls they wait on (0: none)

    @property
    def servers(self) -> int:
        return self.workers if self.concurrency is None else min(self.workers, self.concurrency)

    @property
    def room(self) -> int | None:
        """Requests the worker stage holds at most (None: unlimited)."""
        limits = [x for x in (None if self.queue is None else self.workers + self.queue,
                              self.concurrency if not self.calls else None) if x is not None]
        return min(limits) if limits else None

    @property
    def limited(self) -> bool:
        return self.queue is not None or self.concurrency is not None


@dataclass(frozen=True)
class Loss:
    """The share of requests one instance rejects: bounds, and whether they are exact."""

    low: float
    high: float
    exact: bool
    why: str  # which formula, for the explanation

    @property
    def value(self) -> float:
        return self.high


NONE = Loss(0.0, 0.0, True, "no limits")


def loss(station: Station, rate: float) -> Loss:
    """Rejected share at ``rate`` requests/s (see the module docstring for the cases)."""
    if not station.limited or rate <= 0:
        return NONE
    a = rate * station.mean
    s, room = station.servers, station.room
    floor = max(0.0, 1.0 - s / a) if a > 0 else 0.0
    if room is None:
        worker = Loss(0.0, 0.0 if a < s else 1.0, True, "no queue limit")
    elif room == s:
        b = erlang_b(s, a)
        worker = Loss(b, b, True, f"Erlang B with {s} servers")
    elif station.exponential:
        p = mmsl_loss(s, room, a)
        worker = Loss(p, p, True, f"M/M/{s}/{room}")
    elif station.scv <= 1:
        worker = Loss(floor, mmsl_loss(s, room, a), False,
                      f"M/M/{s}/{room} (approximate: service times are not exponential; "
                      f"less variable ones lose less)")
    else:
        shrunk = s + math.floor((room - s) * 2 / (1 + station.scv))
        worker = Loss(floor, mmsl_loss(s, shrunk, a), False,
                      f"M/M/{s}/{shrunk} (approximate: service times more variable than "
                      f"exponential, SCV {station.scv:.3g}, shrink the waiting room "
                      f"from {room - s} to {shrunk - s})")
    if not station.calls or station.concurrency is None:
        return worker
    # Concurrency slots are also held while a request waits on its calls.
    n = station.concurrency
    wait = mmsl_wait(station.workers, room, a, station.mean)
    if not station.exponential:
        wait *= max(1.0, (1 + station.scv) / 2)  # Allen-Cunneen's correction
    low = erlang_b(n, rate * station.mean)
    held = wait + station.mean + station.calls
    high = erlang_b(n, rate * held) if math.isfinite(held) else 1.0
    return Loss(max(worker.low, low), min(1.0, worker.high + high), False,
                f"{worker.why}, and Erlang B over {n} concurrency slots held while requests "
                f"wait on their calls (between the service time and the calls' timeouts)")


__all__ = ["NONE", "Loss", "Station", "erlang_b", "loss", "mmsl_loss", "mmsl_wait",
           "second_moment"]
