"""The SimPy engine: the parts a simulated system is made of, composed by ``simulation``.

``simulation``   builds the parts from a System and a Scenario and runs them: ``simulate()``
``workload``     arrivals from outside (the implicit ingress)
``calls``        a call site: timeouts, retries with backoff, breakers, parallel/async calls
``instances``    an instance: workers, queue, concurrency; ``jobs`` the work it holds
``network``      latency, loss and partitions between instances
``discovery``    the registry, heartbeats, TTL and client caches
``orchestration``restarts and readiness
``faults``       the scenario's faults applied on schedule
``timeouts``     shared timers (one per distinct timeout length)
``streams``      named, independent random streams (determinism per seed)

The engine never imports presentation code; observation (metrics, monitors) is fed as it runs.
"""

from faultmesh.simulations.engine.simulation import UnknownScenario, simulate

__all__ = ["UnknownScenario", "simulate"]
