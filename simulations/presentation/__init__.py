"""Presentation: how a run is shown. Nothing in the engine imports this package.

``plots``    matplotlib Figures (timeline, breakers, latency, topology, sweeps)
``report``   the self-contained ``report.html`` and the PNG files beside it
``raster``   a Figure as PNG bytes, drawn once (text set a line at a time)
``ticks``    the charts' axis ticks (log scales in plain numbers, ticks only where drawn)
``terminal`` the rich summary printed by ``faultmesh simulate``
"""
