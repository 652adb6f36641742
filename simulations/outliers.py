"""Envoy's outlier detection, as one caller's proxy keeps it for one callee's hosts.

Pure state machine, no SimPy: the engine reports each attempt's result with ``record`` as it
settles and calls ``tick`` at every ``interval``. The semantics follow Envoy's outlier detector
(the architecture overview "Outlier detection", ``config.cluster.v3.OutlierDetection``):

* every host has a consecutive-5xx and a consecutive-gateway-failure counter. A 5xx that is a
  gateway error (502/503/504, and the locally originated errors Envoy maps to them when
  ``split_external_local_origin_errors`` is false: connect failures, resets, timeouts) adds to
  both; another 5xx adds to the 5xx counter and clears the gateway one; a success clears both;
* a counter *reaching* its threshold (0: that detector is off) is a detection, handled at once
  (consecutive detectors eject inline, not at the interval). An ejected host ignores it;
  otherwise the host is ejected if the max-ejection-percent rule allows
  (``OutlierDetection.ejectable``), and the counter is cleared either way;
* an ejection raises the host's ejection-time multiplier by one (while ``base * n`` is below
  ``max_ejection_time + base``); the ejection lasts ``min(base * n, max_ejection_time)``;
* at each interval tick an ejected host whose time has passed returns (both counters cleared),
  and a host in service has its multiplier lowered by one (to 0 at least).

``kind`` of a result: ``"ok"``, ``"error"`` (a 5xx that is not a gateway error) or ``"gateway"``.
"""

from __future__ import annotations

from typing import Any, Literal

from faultmesh.model.system import OutlierDetection

Result = Literal["ok", "error", "gateway"]


class HostState:
    """One host's counters and ejection state, as one caller's detector sees it."""

    __slots__ = ("consecutive_5xx", "consecutive_gateway", "ejected_at", "multiplier")

    def __init__(self) -> None:
        self.consecutive_5xx = 0
        self.consecutive_gateway = 0
        self.multiplier = 0
        self.ejected_at: float | None = None  # None: in service


class OutlierDetector:
    """One caller instance's detector for the ``hosts`` instances of one callee service."""

    __slots__ = ("allowed", "caller", "ejected", "events", "hosts", "overflows", "policy")

    def __init__(self, policy: OutlierDetection, hosts: list[str], caller: str = "") -> None:
        self.policy = policy
        self.caller = caller
        self.hosts = {name: HostState() for name in hosts}
        # Envoy divides by the hosts of the cluster; faultmesh's cluster is the callee's
        # replicas (its instances keep their names across restarts).
        self.allowed = policy.ejectable(len(hosts))
        self.ejected: set[str] = set()
        self.events: list[list[Any]] = []  # [t, host, "eject" | "return", caller]
        self.overflows = 0  # detections refused by the max-ejection-percent rule

    def record(self, host: str, now: float, result: Result) -> bool:
        """An attempt to ``host`` settled with ``result``; True if it ejected the host."""
        state = self.hosts.get(host)
        if state is None:
            return False
        if result == "ok":
            state.consecutive_5xx = state.consecutive_gateway = 0
            return False
        policy = self.policy
        ejected = False
        if result == "gateway":
            state.consecutive_gateway += 1
            if (state.consecutive_gateway == policy.consecutive_gateway_errors
                    and state.ejected_at is None):  # Envoy ignores an ejected host's detection
                ejected = self._detected(host, state, now)
                state.consecutive_gateway = 0
        else:
            state.consecutive_gateway = 0
        state.consecutive_5xx += 1
        if state.consecutive_5xx == policy.consecutive_5xx and state.ejected_at is None:
            ejected = self._detected(host, state, now)
            state.consecutive_5xx = 0
        return ejected

    def _detected(self, host: str, state: HostState, now: float) -> bool:
        if len(self.ejected) >= self.allowed:
            self.overflows += 1
            return False
        state.ejected_at = now
        policy = self.policy
        if state.multiplier * policy.base_ejection_time < (policy.max_ejection_time
                                                           + policy.base_ejection_time):
            state.multiplier += 1
        self.ejected.add(host)
        self.events.append([now, host, "eject", self.caller])
        return True

    def tick(self, now: float) -> list[str]:
        """The interval timer fired: return the hosts whose time is up; the hosts returned."""
        returned = []
        policy = self.policy
        for host, state in self.hosts.items():
            if state.ejected_at is None:
                if state.multiplier:
                    state.multiplier -= 1
                continue
            # A tiny tolerance: tick times are sums of float intervals.
            if now - state.ejected_at >= policy.ejection_time(state.multiplier) - 1e-9:
                state.ejected_at = None
                state.consecutive_5xx = state.consecutive_gateway = 0
                self.ejected.discard(host)
                self.events.append([now, host, "return", self.caller])
                returned.append(host)
        return returned

    def ejection_length(self, host: str) -> float:
        """How long ``host``'s current (or next) ejection lasts at its multiplier now."""
        state = self.hosts[host]
        return self.policy.ejection_time(max(state.multiplier, 1))
