"""Load balancers: how a caller picks one of a service's instances for each attempt.

Pure choice logic, no SimPy: each balancer is an object with ``choose(candidates, key)``
returning one of ``candidates`` (a non-empty sequence). ``key`` identifies the request (used by
consistent hashing, ignored by the others). Randomness comes from the ``random.Random`` handed
in, so choices are reproducible.

* ``round_robin`` -- candidates in turn (the position survives changes of the candidate list);
  ``make_balancer`` starts it at a random position, as Envoy seeds each proxy's index.
* ``random`` -- uniformly at random.
* ``least_request`` -- Envoy's least request with equal weights (power of d choices, P2C for
  d = 2): draw ``choices`` distinct candidates at random and take the one with the fewest
  active requests, ties broken at random; with ``choices`` at least the number of candidates,
  a random one of the least loaded of all. "Active requests" are what ``load`` says: the
  engine gives each caller instance its own balancer whose ``load`` counts that caller's
  requests still out to a candidate (an Envoy proxy's own ``rq_active``), not a global count.
* ``consistent_hash`` -- a hash ring with ``VNODES`` points per candidate (by name); a key keeps
  its candidate while the candidate stays, and only keys of a removed candidate move.
"""

from __future__ import annotations

import bisect
import hashlib
import random
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

from faultmesh.model.system import LoadBalancer


class Named(Protocol):
    @property
    def name(self) -> str: ...


T = TypeVar("T", bound=Named)

VNODES = 64
_MASK64 = (1 << 64) - 1


def mix64(key: int) -> int:
    """SplitMix64's finaliser: spreads consecutive integer keys over the ring."""
    z = (key + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def _point(name: str, replica: int) -> int:
    digest = hashlib.blake2b(f"{name}#{replica}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


class Balancer(Protocol):
    def choose(self, candidates: Sequence[T], key: int) -> T: ...


class RoundRobin:
    __slots__ = ("position",)

    def __init__(self, start: int = 0) -> None:
        self.position = start

    def choose(self, candidates: Sequence[T], key: int) -> T:
        position = self.position
        self.position = position + 1
        return candidates[position % len(candidates)]


class RandomChoice:
    __slots__ = ("random",)

    def __init__(self, rng: random.Random) -> None:
        self.random = rng.random

    def choose(self, candidates: Sequence[T], key: int) -> T:
        return candidates[int(self.random() * len(candidates))]


class LeastRequest:
    __slots__ = ("choices", "load", "rng")

    def __init__(self, rng: random.Random, load: Callable[[T], int], choices: int = 2) -> None:
        self.rng = rng
        # Typed loosely: the balancer is generic per call, its load function per instance.
        self.load: Callable[[Any], int] = load
        self.choices = choices

    def choose(self, candidates: Sequence[T], key: int) -> T:
        load = self.load
        n = len(candidates)
        if self.choices >= n:
            return self._least_of_all(candidates)
        if self.choices == 2:
            rnd = self.rng.random
            first = int(rnd() * n)
            second = int(rnd() * (n - 1))
            if second >= first:
                second += 1
            a, b = candidates[first], candidates[second]
            # The pair is drawn in random order, so keeping the first drawn on a tie is a
            # fair coin between the two.
            return b if load(b) < load(a) else a
        # A random sample in random order: min() keeps the first drawn of the least loaded.
        picked = self.rng.sample(range(n), self.choices)
        return min((candidates[i] for i in picked), key=load)

    def _least_of_all(self, candidates: Sequence[T]) -> T:
        """A uniformly random one of the least loaded candidates (reservoir sampling)."""
        load = self.load
        rnd = self.rng.random
        best = candidates[0]
        least = load(best)
        ties = 1
        for candidate in candidates[1:]:
            active = load(candidate)
            if active < least:
                best, least, ties = candidate, active, 1
            elif active == least:
                ties += 1
                if rnd() * ties < 1.0:
                    best = candidate
        return best


class ConsistentHash:
    __slots__ = ("rings",)

    def __init__(self) -> None:
        # One ring per distinct candidate list; views change rarely, so this stays small.
        self.rings: dict[tuple[str, ...], tuple[list[int], list[int]]] = {}

    def _ring(self, candidates: Sequence[T]) -> tuple[list[int], list[int]]:
        names = tuple(c.name for c in candidates)
        ring = self.rings.get(names)
        if ring is None:
            points = sorted((_point(name, r), i) for i, name in enumerate(names)
                            for r in range(VNODES))
            ring = ([p for p, _ in points], [i for _, i in points])
            self.rings[names] = ring
        return ring

    def choose(self, candidates: Sequence[T], key: int) -> T:
        hashes, owners = self._ring(candidates)
        slot = bisect.bisect_left(hashes, mix64(key))
        return candidates[owners[slot if slot < len(hashes) else 0]]


def make_balancer(policy: LoadBalancer, rng: random.Random,
                  load: Callable[[T], int]) -> Balancer:
    """The balancer for a ``LoadBalancer`` policy; ``load`` gives a candidate's requests."""
    if policy.kind == "round_robin":
        # Callers do not all start at the first instance (Envoy seeds each index at random).
        return RoundRobin(rng.getrandbits(32))
    if policy.kind == "random":
        return RandomChoice(rng)
    if policy.kind == "least_request":
        return LeastRequest(rng, load, policy.choices)
    if policy.kind == "consistent_hash":
        return ConsistentHash()
    raise ValueError(f"unknown load balancer {policy.kind!r}")
