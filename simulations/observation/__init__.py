"""Observation: what a run measures and concludes, aggregated as it goes.

``metrics``  counters and histograms (memory does not grow with the request count)
``monitors`` properties checked while the run goes (availability, latency, breakers, ledger)
``phases``   the run cut at fault boundaries, for per-phase views
``results``  ``Run``: the typed summary, DataFrames and plot shortcuts
"""
