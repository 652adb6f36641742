"""Independent random streams derived from one seed, one stream per purpose.

Every source of randomness in a run (arrivals of each workload item, service times of each
endpoint, the network, each load balancer, each fault) draws from its own ``random.Random``,
seeded from ``sha256(seed, purpose)``. Streams do not shift when another part of the model
draws more or fewer numbers (a fast path that skips a draw changes nothing elsewhere), and the
seeds do not depend on ``PYTHONHASHSEED``: the same spec, scenario and seed give the same run in
any process.
"""

from __future__ import annotations

import hashlib
import random


class Streams:
    """A factory of named random streams for one seed."""

    __slots__ = ("seed",)

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def __call__(self, purpose: str) -> random.Random:
        """A fresh ``random.Random`` for ``purpose``; the same purpose gives the same stream."""
        digest = hashlib.sha256(f"faultmesh/{self.seed}/{purpose}".encode()).digest()
        return random.Random(int.from_bytes(digest[:8], "big"))
