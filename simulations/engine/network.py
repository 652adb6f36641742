"""The network between instances: latency by zone, message loss, partitions.

Every request and every response of a call is one message from one instance to another;
``delay(src, dst)`` is how long that message takes, or ``math.inf`` when it never arrives
(dropped by a partition or lost). A dropped request or response leaves the caller waiting for
its timeout. ``drop_cause`` says why a message was dropped.

Faults add partitions (between services, instances or zones; one- or two-way) and extra loss
(everywhere or between two groups). ``active`` is False while messages are certain to arrive at
once, so the caller can skip the network entirely.
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Protocol

from faultmesh.model.distributions import Constant, Distribution
from faultmesh.model.system import Communication
from faultmesh.simulations.outcomes import MESSAGE_LOST, PARTITION

if TYPE_CHECKING:
    from faultmesh.simulations.engine.instances import Waiter


class Host(Protocol):
    uid: int
    zone: str


Pairs = frozenset[tuple[int, int]]


def _sampler(distribution: Distribution, rng: random.Random) -> Callable[[], float] | None:
    if isinstance(distribution, Constant) and distribution.value == 0:
        return None
    return distribution.sampler(rng)


class Network:
    """Latency, loss and partitions between instances (identified by ``uid``)."""

    def __init__(self, communication: Communication, rng: random.Random) -> None:
        self.rng = rng
        self.same_zone = _sampler(communication.same_zone_latency, rng)
        self.cross_zone = _sampler(communication.cross_zone_latency, rng)
        self.base_loss = communication.loss
        self.partitions: dict[int, Pairs] = {}  # fault id -> blocked (src, dst) pairs
        self.losses: dict[int, tuple[float, Pairs | None]] = {}  # fault id -> (rate, pairs)
        self.blocked: set[tuple[int, int]] = set()
        self.loss = self.base_loss
        self.pair_loss: dict[tuple[int, int], float] = {}
        self.active = False
        # Responses that arrive at once (zero latency) while another is being delivered wait
        # here and are delivered in order by the outermost delivery (Instance.reply): a chain
        # of 200 zero-latency hops otherwise answered 200 frames deep and overflowed the stack.
        # Each is (waiter, token, ok, cause, root): the arguments of ``waiter.respond``.
        self.immediate: deque[tuple[Waiter, int, bool, str | None, str | None]] = deque()
        self.delivering = False
        self._update()

    # --- faults -------------------------------------------------------------------------------

    def add_partition(self, fault: int, pairs: Iterable[tuple[int, int]]) -> None:
        self.partitions[fault] = frozenset(pairs)
        self._update()

    def add_loss(self, fault: int, rate: float, pairs: Iterable[tuple[int, int]] | None) -> None:
        self.losses[fault] = (rate, None if pairs is None else frozenset(pairs))
        self._update()

    def remove(self, fault: int) -> None:
        self.partitions.pop(fault, None)
        self.losses.pop(fault, None)
        self._update()

    def _update(self) -> None:
        self.blocked = set().union(*self.partitions.values())
        keep = 1.0 - self.base_loss
        pair_keep: dict[tuple[int, int], float] = {}
        for rate, pairs in self.losses.values():
            if pairs is None:
                keep *= 1.0 - rate
            else:
                for pair in pairs:
                    pair_keep[pair] = pair_keep.get(pair, 1.0) * (1.0 - rate)
        self.loss = 1.0 - keep
        self.pair_loss = {pair: 1.0 - k for pair, k in pair_keep.items()}
        self.active = bool(self.same_zone or self.cross_zone or self.loss or self.blocked
                           or self.pair_loss)

    # --- messages -----------------------------------------------------------------------------

    def delay(self, src: Host, dst: Host) -> float:
        """Seconds a message from ``src`` to ``dst`` takes; ``inf`` if it is dropped."""
        if self.blocked and (src.uid, dst.uid) in self.blocked:
            return math.inf
        loss = self.loss
        if self.pair_loss:
            extra = self.pair_loss.get((src.uid, dst.uid))
            if extra:
                loss = 1.0 - (1.0 - loss) * (1.0 - extra)
        if loss and self.rng.random() < loss:
            return math.inf
        sample = self.same_zone if src.zone == dst.zone else self.cross_zone
        return sample() if sample is not None else 0.0

    def drop_cause(self, src: Host, dst: Host) -> str:
        """Why a message from ``src`` to ``dst`` was dropped."""
        return PARTITION if (src.uid, dst.uid) in self.blocked else MESSAGE_LOST
