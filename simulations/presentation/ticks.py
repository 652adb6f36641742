"""Axis ticks for the report's charts: log scales labelled in plain numbers, and ticks made only
where they are drawn (each tick is half a dozen artists to build and draw, the largest share of
drawing a chart).
"""

from __future__ import annotations

import math
from typing import Any

from faultmesh.model.extras import requires

with requires("data", "faultmesh.plots"):
    import numpy as np


# Minor ticks (the 2s and 5s) on a log axis spanning fewer decades than this; across more,
# the decades alone mark it (with their grid lines).
MINOR_DECADES = 3


def log_axis(ax: Any, which: str) -> None:
    """A log scale labelled in plain numbers (``0.1``, ``1``, ``10``, ``100``): the default
    ``10^x`` labels are mathtext, parsed and laid out glyph by glyph, which cost more than the
    rest of the axis. Across less than a decade the 2s and 5s are labelled too. Minor ticks
    mark the 2s and 5s only, and only across fewer than MINOR_DECADES decades: the eight marks
    per decade of the default were most of the figure's ticks, and each tick is half a dozen
    artists to build and draw."""
    from matplotlib.ticker import FuncFormatter

    getattr(ax, f"set_{which}scale")("log")
    axis = getattr(ax, f"{which}axis")
    axis.set_minor_locator(_minor_log_locator())

    def major(value: float, _: int) -> str:
        return f"{value:g}"

    def minor(value: float, _: int) -> str:
        low, high = sorted(axis.get_view_interval())
        if low <= 0 or high / low >= 10:
            return ""
        mantissa = round(value / 10 ** math.floor(math.log10(value) + 1e-9), 6)
        return f"{value:g}" if mantissa in (2.0, 5.0) else ""

    axis.set_major_formatter(FuncFormatter(major))
    axis.set_minor_formatter(FuncFormatter(minor))


def _minor_log_locator() -> Any:
    from matplotlib.ticker import LogLocator

    class MinorLogLocator(LogLocator):
        """The 2s and 5s of each decade, across fewer than MINOR_DECADES decades."""

        def tick_values(self, vmin: float, vmax: float) -> Any:
            low, high = sorted((vmin, vmax))
            if low > 0 and high / low >= 10 ** MINOR_DECADES:
                return np.array([])
            return super().tick_values(vmin, vmax)

    return MinorLogLocator(subs=(2.0, 5.0))


def ticks_in_view(fig: Any) -> None:
    """Every axis of ``fig`` ticked inside its view only: matplotlib's locators also give the
    ticks just beyond each end, and the axis builds a tick (half a dozen artists) for each,
    then leaves them undrawn."""
    from matplotlib.ticker import Locator

    class InView(Locator):
        """Another locator's ticks, those inside the axis's view interval."""

        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def set_axis(self, axis: Any) -> None:
            super().set_axis(axis)
            self.inner.set_axis(axis)

        def __call__(self) -> Any:
            if self.axis is None:
                return self.inner()
            low, high = sorted(self.axis.get_view_interval())
            slack = 1e-9 * (high - low) + 1e-12 * abs(low)  # as the axis's own "close"
            return [t for t in self.inner() if low - slack <= t <= high + slack]

        def tick_values(self, vmin: float, vmax: float) -> Any:
            return self.inner.tick_values(vmin, vmax)

        def view_limits(self, vmin: float, vmax: float) -> Any:
            return self.inner.view_limits(vmin, vmax)

        def nonsingular(self, v0: float, v1: float) -> Any:
            return self.inner.nonsingular(v0, v1)

    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            for ticker in (axis.major, axis.minor):  # shared axes share their tickers
                if not isinstance(ticker.locator, InView):
                    ticker.locator = InView(ticker.locator)
                    ticker.locator.set_axis(axis)


__all__ = ["MINOR_DECADES", "log_axis", "ticks_in_view"]
