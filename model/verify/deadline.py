"""A time budget shared by the solver calls of one property."""

from __future__ import annotations

import time


class Deadline:
    def __init__(self, seconds: float):
        self.seconds = seconds
        self.end = time.perf_counter() + seconds

    def left(self) -> float:
        return max(0.0, self.end - time.perf_counter())

    def expired(self) -> bool:
        return self.left() <= 0.0

    def z3_ms(self) -> int:
        """Milliseconds left, as Z3's ``timeout`` parameter wants (at least 1)."""
        return max(1, int(self.left() * 1000))
