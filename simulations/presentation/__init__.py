"""Presentation: how a run is shown. Nothing in the engine imports this package.

``plots``    matplotlib Figures (timeline, breakers, latency, topology, sweeps)
``report``   the self-contained ``report.html`` and the PNG files beside it
``terminal`` the rich summary printed by ``faultmesh simulate``
"""
