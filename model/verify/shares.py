"""Balancer shares: which fraction of a service's requests each of its surviving instances gets.

``capacity`` needs the busiest instance, not the average one. Round robin, random and
least-request spread requests evenly in the long run (round robin exactly; random and least
request in expectation, the instances being alike), so each of ``m`` surviving instances gets
``1/m``. Consistent hashing does not: the engine (``simulations.balancers.ConsistentHash``)
puts ``VNODES`` points per instance on a 64-bit ring, at the BLAKE2b-64 hash of
``"{instance}#{r}"``, and sends a request to the owner of the first point at or after the
SplitMix64 mix of its key (wrapping round). Request keys are consecutive integers and the mix
spreads them evenly over the ring, so an instance's long-run share is the length of the arcs
it owns divided by 2**64. The ring depends only on the names of the instances in the view, so
the shares are computed here exactly (as fractions), for any set of survivors.

The model does not import the engine; ``tests/test_verify_capacity.py`` checks that the
constants and the hash below are the engine's, and that the shares match the engine's choices.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from fractions import Fraction
from functools import lru_cache

VNODES = 64  # points per instance on the ring (the engine's ``balancers.VNODES``)
RING = 1 << 64


def ring_point(name: str, replica: int) -> int:
    """Where the engine puts point ``replica`` of instance ``name`` on the ring."""
    digest = hashlib.blake2b(f"{name}#{replica}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


@lru_cache(maxsize=4096)
def _ring_shares(names: tuple[str, ...]) -> tuple[Fraction, ...]:
    points = sorted((ring_point(name, r), i) for i, name in enumerate(names)
                    for r in range(VNODES))
    owned = [0] * len(names)
    previous = points[-1][0] - RING  # the arc before the first point wraps round from the last
    for point, owner in points:
        owned[owner] += point - previous  # keys in (previous, point] go to this point's owner
        previous = point
    return tuple(Fraction(n, RING) for n in owned)


def consistent_hash_shares(names: Iterable[str]) -> dict[str, Fraction]:
    """Each instance's share of the keys on the engine's ring over ``names``."""
    ordered = tuple(sorted(set(names)))
    if not ordered:
        return {}
    return dict(zip(ordered, _ring_shares(ordered), strict=True))


def even(balancer: str) -> bool:
    """Does this load-balancing policy give every surviving instance the same long-run share?"""
    return balancer != "consistent_hash"


__all__ = ["RING", "VNODES", "consistent_hash_shares", "even", "ring_point"]
