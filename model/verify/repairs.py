"""Smallest repairs for `survives` and `capacity`, found with z3 Optimize over placements.

A repair adds replicas (in named zones) and, for capacity, workers. Both properties constrain
each service only through that service's own placement and workers (survives: every service an
entry needs must take more than K failures to kill; capacity: each loaded service's surviving
capacity after its worst K failures must exceed its demand), and the objective is a sum over
services. So the joint optimum is the sum of per-service optima: we solve one small Optimize
per service, cached by the service's shape (its per-zone counts and what it must reach), which
keeps a 10,000-service repair to a handful of solver calls.

Objectives, lexicographic:
  survives  1. fewest added replicas  2. in the zones with the fewest replicas system-wide
            3. earlier zones first (determinism);
  capacity  1. fewest changed spec keys (a service's replicas, or its workers, or both)
            2. fewest added worker slots (replicas x workers: the CPU actually paid for)
            3. fewest edits (added replicas + added workers per instance), then as above.

A service's new replica count is one spec key: ``services.S.replicas`` when the spec editor's
rule for a new count (``model.spec.edit``: each new replica to the zone with the fewest)
places them as chosen, else ``services.S.placement`` (the replicas follow from it). Keys are
counted per service and every broken service must change, so the fewest keys over the system
is the sum of each service's fewest (for survives one key each: fewest replicas is fewest
keys). No repair goes past the spec's limits (``MAX_REPLICAS``, ``MAX_WORKERS``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import z3

from faultmesh.model.spec.edit import apply_changes
from faultmesh.model.spec.limits import MAX_REPLICAS, MAX_WORKERS
from faultmesh.model.system import System
from faultmesh.model.verify.deadline import Deadline
from faultmesh.model.verify.failures import FailureKinds
from faultmesh.model.verify.survivors import (
    adder,
    fewest_added,
    fewest_surviving,
    surviving,
)
from faultmesh.model.verify.verdict import Repair
from faultmesh.model.verify.wording import LIST_LIMIT, listing, plural

# Values of workers per instance a capacity repair tries at most (see ``for_capacity``).
CAPACITY_CANDIDATES = 64


class RepairTimeout(Exception):
    """The solver ran out of the deadline before proving a repair optimal."""


@dataclass(frozen=True)
class PlacementChange:
    """A service's new placement (replicas per zone, every zone listed) and workers."""

    service: str
    old: dict[str, int]
    new: dict[str, int]
    old_workers: int
    new_workers: int

    @property
    def added(self) -> dict[str, int]:
        return {z: self.new[z] - self.old.get(z, 0) for z in self.new
                if self.new[z] > self.old.get(z, 0)}

    @property
    def replicas(self) -> int:
        return sum(self.new.values())

    def changes(self) -> dict[str, object]:
        """Spec key paths to their new values, one key per thing changed.

        New replicas are ``replicas`` alone when the spec editor puts them where this change
        does (always with a single zone, the implicit one of a spec without zones included:
        there a placement would name a zone the spec never declared), else ``placement`` alone
        (the editor sets ``replicas`` to what it places)."""
        out: dict[str, object] = {}
        if self.new != self.old:
            placed = {z: n for z, n in self.new.items() if n}
            if len(self.new) == 1 or scaled_placement(self.old, tuple(self.new),
                                                      self.replicas) == placed:
                out[f"services.{self.service}.replicas"] = self.replicas
            else:
                out[f"services.{self.service}.placement"] = placed
        if self.new_workers != self.old_workers:
            out[f"services.{self.service}.workers"] = self.new_workers
        return out

    @property
    def keys(self) -> int:
        """How many spec keys the change writes (its repair objective's first term)."""
        return (self.new != self.old) + (self.new_workers != self.old_workers)

    def describe(self, single_zone: bool) -> str:
        parts = []
        added = self.added
        count = sum(added.values())
        if count:
            what = "one replica" if count == 1 else f"{count} replicas"
            if single_zone:
                parts.append(f"add {what} of {self.service}")
            elif len(added) == 1:
                parts.append(f"add {what} of {self.service} in zone {next(iter(added))}")
            else:
                parts.append(f"add {what} of {self.service} ({spread(added)})")
        if self.new_workers != self.old_workers:
            whose = "its" if parts else f"{self.service}'s"
            parts.append(f"raise {whose} workers from {self.old_workers} to {self.new_workers}")
        return " and ".join(parts)


def spread(added: dict[str, int]) -> str:
    """Where replicas go: ``1 in a, 2 in b``; across many zones grouped by count, so a repair
    over hundreds of new zones stays one line (``1 in each of 998 zones: zone-2, ...``)."""
    if len(added) <= LIST_LIMIT:
        return ", ".join(f"{n} in {z}" for z, n in added.items())
    by_count: dict[int, list[str]] = {}
    for zone, n in added.items():
        by_count.setdefault(n, []).append(zone)
    return "; ".join(f"{n} in each of {plural(len(zs), 'zone')}: {listing(zs)}"
                     if len(zs) > 1 else f"{n} in {zs[0]}" for n, zs in by_count.items())


def scaled_placement(old: dict[str, int], zones: tuple[str, ...],
                     replicas: int) -> dict[str, int]:
    """Where the spec editor puts ``replicas`` replicas of a service placed as ``old`` when
    only ``replicas`` changes (``apply_changes`` itself, on a one-service document, so a
    repair written as ``replicas`` alone means exactly what it was checked as)."""
    placement = {z: n for z, n in old.items() if n}
    document = {"zones": list(zones),
                "services": {"s": {"replicas": sum(placement.values()), "placement": placement}}}
    edited = apply_changes(document, {"services.s.replicas": replicas})
    return dict(edited["services"]["s"].get("placement", {}))  # none past MAX_REPLICAS


def extra_zones(zones: tuple[str, ...], count: int) -> tuple[str, ...]:
    """Names for ``count`` new zones: the next letters after single-letter zones (a, b -> c),
    otherwise ``zone-2``, ``zone-3``... (a spec without zones has the one zone ``default``)."""
    taken = set(zones)
    if all(len(z) == 1 and z.isalpha() and z.islower() for z in zones):
        letters = [chr(c) for c in range(ord("a"), ord("z") + 1) if chr(c) not in taken]
        if len(letters) >= count:
            return tuple(letters[:count])
    names = (f"zone-{i}" for i in range(2, 2 + len(zones) + count + 1))
    return tuple([n for n in names if n not in taken][:count])


class PlacementSolver:
    """Per-service z3 Optimize calls over the replica counts of one System's zones."""

    def __init__(self, zones: tuple[str, ...], zone_load: dict[str, int],
                 deadline: Deadline) -> None:
        self.zones = zones
        self.zone_load = zone_load
        self.deadline = deadline
        self._cache: dict[tuple[object, ...], tuple[int, ...] | None] = {}

    @classmethod
    def for_system(cls, system: System, zones: tuple[str, ...],
                   deadline: Deadline) -> PlacementSolver:
        """A solver over ``zones`` (the system's, plus any new ones), loaded with how many
        instances each zone already holds, so ties go to the emptier zone."""
        load = dict.fromkeys(zones, 0)
        for service in system.services.values():
            for zone in service.zones:
                load[zone] += 1
        return cls(zones, load, deadline)

    # --- shared --------------------------------------------------------------------------

    def _solve(self, key: tuple[object, ...], counts: tuple[int, ...],
               constrain: object) -> tuple[int, ...] | None:
        if key in self._cache:
            return self._cache[key]
        if self.deadline.expired():
            raise RepairTimeout
        opt = z3.Optimize()
        opt.set("timeout", self.deadline.z3_ms())
        added = [z3.Int(f"add_{i}") for i in range(len(counts))]
        new = [n + a for n, a in zip(counts, added, strict=True)]
        for a in added:
            opt.add(a >= 0)
        opt.add(constrain(new))  # type: ignore[operator]
        opt.minimize(z3.Sum(added))
        opt.minimize(z3.Sum([a * self.zone_load[z] for a, z in zip(added, self.zones,
                                                                      strict=True)]))
        opt.minimize(z3.Sum([a * i for i, a in enumerate(added)]))
        result = opt.check()
        if result == z3.unknown:
            raise RepairTimeout
        if result == z3.unsat:
            self._cache[key] = None
            return None
        model = opt.model()
        answer = tuple(n + model.eval(a, model_completion=True).as_long()
                       for n, a in zip(counts, added, strict=True))
        self._cache[key] = answer
        return answer

    def _vector(self, counts: dict[str, int]) -> tuple[int, ...]:
        return tuple(counts.get(z, 0) for z in self.zones)

    # --- survives ------------------------------------------------------------------------

    def to_survive(self, counts: dict[str, int], kinds: FailureKinds,
                   failures: int) -> dict[str, int] | None:
        """Fewest added replicas so that killing the service needs more than ``failures``.

        With zones allowed the service must occupy ``failures + 1`` distinct zones (None if the
        system has fewer); with instances only it needs ``failures + 1`` replicas.
        """
        need = failures + 1
        vector = self._vector(counts)
        if kinds.zones:
            if need > len(self.zones):
                return None

            def constrain(new: list[z3.ArithRef]) -> z3.BoolRef:
                return z3.Sum([z3.If(n >= 1, 1, 0) for n in new]) >= need
        else:
            def constrain(new: list[z3.ArithRef]) -> z3.BoolRef:
                return z3.Sum(new) >= need
        answer = self._solve(("survive", vector, kinds.zones, need), vector, constrain)
        return None if answer is None else dict(zip(self.zones, answer, strict=True))

    # --- capacity ------------------------------------------------------------------------

    def surviving_at_least(self, counts: tuple[int, ...], kinds: FailureKinds, failures: int,
                           need: int) -> tuple[int, ...] | None:
        """Fewest added replicas so that ``need`` instances survive the worst ``failures``."""

        def constrain(new: list[z3.ArithRef]) -> z3.BoolRef:
            if not kinds.zones:
                return z3.Sum(new) - failures >= need
            # The worst `failures` zone failures leave the sum of the smallest Z - K counts.
            # "sum of the smallest m values >= need" is linear with the dual form
            #   exists t, u >= 0 with u_z >= t - n_z and m*t - sum(u) >= need,
            # exact because sum-of-smallest-m(n) = max_t (m*t - sum_z max(0, t - n_z)).
            m = len(new) - failures
            t = z3.Int("level")
            u = [z3.Int(f"short_{i}") for i in range(len(new))]
            return z3.And(*[ui >= 0 for ui in u],
                          *[ui >= t - n for ui, n in zip(u, new, strict=True)],
                          m * t - z3.Sum(u) >= need)

        if kinds.zones and failures >= len(self.zones):
            return None  # every zone can fail: nothing survives, whatever the placement
        self.deadline.check()
        loads = tuple(self.zone_load[z] for z in self.zones)
        direct = fewest_surviving(counts, loads, kinds.zones, failures, need)
        if direct is not None:
            return direct
        return self._solve(("surviving", counts, kinds.zones, failures, need), counts, constrain)

    def for_capacity(self, service: str, counts: dict[str, int], workers: int, demand: Fraction,
                     utilization: Fraction, kinds: FailureKinds, failures: int,
                     survivors: Callable[[int], int | None] | None = None,
                     extra: int = 0) -> PlacementChange | None:
        """Fewest added worker slots so that ``demand / capacity < utilization`` after any
        ``failures`` failures, whatever keys change (the repair asks ``one_key_capacity``
        first and comes here when no one-key change passes). Tries workers per instance ``w``
        upward; for each, the fewest
        replicas is counted (``fewest_added``), and they are placed in zones for the best ``w``
        (``surviving_at_least``).

        Only the ``w`` where the answer can change are tried: without ``survivors`` the
        survivors needed, ``floor(demand / (utilization w)) + 1``, is constant over runs of
        ``w`` and within a run the first ``w`` is cheapest in slots and edits, so the search
        jumps from run to run. It stops once no larger ``w`` can beat the best so far: every
        ``w`` costs at least ``w x replicas`` slots and, since ``w x need > demand /
        utilization``, at least ``floor(demand / utilization) + 1 + failures x w``. At most
        ``CAPACITY_CANDIDATES`` values of ``w`` are tried, and the deadline is checked at each:
        the bounds end the search well before that up to about a thousand busy workers per
        service (the answer is then the optimum); beyond, the best of those tried is kept (its
        rounding loss is a few slots in thousands).

        ``survivors(w)``, if given, is a second need: the fewest surviving instances of ``w``
        workers each that keep every instance's rejections within target (None: none do);
        ``extra`` more survivors are asked for on top (rounds of a consistent-hash repair).
        It may change at any ``w``, so then every ``w`` is tried, within the same bounds."""
        vector = self._vector(counts)
        replicas = sum(vector)
        if kinds.zones and failures >= len(self.zones):
            return None
        ratio = demand / utilization  # integer arithmetic below: p / q, exact and fast
        p, q = ratio.numerator, ratio.denominator
        least = p // q + 1  # slots any placement needs, before failures
        best: tuple[int, int, int, int] | None = None  # slots, edits, need, w
        added = adder(vector, kinds.zones, failures)
        w = workers
        tried = 0
        # With every candidate so far past the spec's limits the search goes on while w helps.
        while (best is None and w <= MAX_WORKERS
               and (survivors is None or w <= workers + CAPACITY_CANDIDATES)) \
                or (best is not None and w * replicas <= best[0]
                    and least + failures * w <= best[0] and tried < CAPACITY_CANDIDATES):
            self.deadline.check()
            tried += 1
            block = p // (q * w)  # floor(ratio / w)
            need = block + 1
            if survivors is not None:
                losses = survivors(w)
                if losses is None:
                    w += 1
                    if w > workers + 64:
                        return None  # no worker count within reach keeps losses down
                    continue
                need = max(need, losses)
            need += extra
            total = replicas + added(need)
            candidate = (w * total, total - replicas + (w - workers), need, w)
            if (best is None or candidate[:2] < best[:2]) and total <= MAX_REPLICAS \
                    and w <= MAX_WORKERS:  # past the spec's limits is no repair
                best = candidate
            if total == replicas:
                break  # the placement already suffices: more workers only cost more
            if survivors is not None:
                w += 1
            elif block == 0:
                break  # one survivor is enough for this w and every larger one, which costs more
            else:
                w = p // (q * block) + 1  # the first w of the next run
        if best is None:
            return None
        # Where the replicas go (the zone objectives) is decided for the chosen w alone.
        answer = self.surviving_at_least(vector, kinds, failures, best[2])
        if answer is None:
            return None
        return PlacementChange(service, dict(zip(self.zones, vector, strict=True)),
                               dict(zip(self.zones, answer, strict=True)), workers, best[3])

    def one_key_capacity(self, service: str, counts: dict[str, int], workers: int,
                         demand: Fraction, utilization: Fraction, kinds: FailureKinds,
                         failures: int, survivors: Callable[[int], int | None] | None = None,
                         extra: int = 0) -> list[PlacementChange]:
        """``for_capacity``'s repairs that change one key of the service, best first (fewest
        added slots, then edits): the fewest replicas at the current workers (placed by
        ``surviving_at_least``), and the fewest workers on the current placement (with
        ``survivors``, ``CAPACITY_CANDIDATES`` counts from the first that carries the load:
        losses need not fall monotonically with workers). Empty when neither exists."""
        vector = self._vector(counts)
        replicas = sum(vector)
        if kinds.zones and failures >= len(self.zones):
            return []
        ratio = demand / utilization
        p, q = ratio.numerator, ratio.denominator
        options: list[tuple[tuple[int, int], PlacementChange]] = []
        old = dict(zip(self.zones, vector, strict=True))

        def need_at(w: int) -> int | None:
            need = p // (q * w) + 1
            if survivors is not None:
                losses = survivors(w)
                if losses is None:
                    return None
                need = max(need, losses)
            return need + extra

        self.deadline.check()
        need = need_at(workers)
        if need is not None:
            answer = self.surviving_at_least(vector, kinds, failures, need)
            if answer is not None and answer != vector and sum(answer) <= MAX_REPLICAS:
                added = sum(answer) - replicas
                options.append(((workers * sum(answer), added), PlacementChange(
                    service, old, dict(zip(self.zones, answer, strict=True)), workers,
                    workers)))
        have = surviving(vector, kinds.zones, failures) - extra
        if have > 0:
            # The fewest workers each of ``have`` survivors needs for the load alone: the
            # least w with floor(ratio / w) + 1 <= have.
            w = max(workers + 1, p // (q * have) + 1)
            for _ in range(CAPACITY_CANDIDATES if survivors is not None else 1):
                self.deadline.check()
                need = need_at(w)
                if w > MAX_WORKERS:
                    break
                if need is not None and need <= have + extra:
                    options.append(((w * replicas, w - workers), PlacementChange(
                        service, old, dict(old), workers, w)))
                    break
                w += 1
        options.sort(key=lambda option: option[0])
        return [change for _, change in options]


def as_repair(plan: list[PlacementChange], old_zones: tuple[str, ...],
              zones: tuple[str, ...], deadline: Deadline | None = None) -> Repair:
    """One Repair for a plan: its spec changes and a sentence saying them.

    Each change costs a pass over the zones, so with a ``deadline`` (checked per change) a
    plan of thousands of services over hundreds of zones stops with ``OutOfTime``."""
    changes: dict[str, object] = {}
    words: list[str] = []
    if zones != old_zones:
        changes["zones"] = list(zones)
        new = [z for z in zones if z not in old_zones]
        words.append(f"add {plural(len(new), 'zone')} {listing(new)}" if len(new) > 1
                     else f"add zone {new[0]}")
    for change in plan:
        if deadline is not None:
            deadline.check()
        changes.update(change.changes())
    # Services given the same replicas (and no worker change) are said together.
    groups: dict[tuple[tuple[str, int], ...], list[str]] = {}
    described: list[str] = []
    for change in plan:
        if deadline is not None:
            deadline.check()
        if change.new_workers == change.old_workers:
            groups.setdefault(tuple(change.added.items()), []).append(change.service)
        else:
            described.append(change.describe(len(zones) == 1))
    for added, services in groups.items():
        if len(services) == 1:
            described.insert(0, PlacementChange(services[0], {}, dict(added), 1, 1)
                             .describe(len(zones) == 1))
            continue
        count = sum(n for _, n in added)
        what = "one replica" if count == 1 else f"{count} replicas"
        where = "" if len(zones) == 1 else (
            f" in zone {added[0][0]}" if len(added) == 1
            else f" ({spread(dict(added))})")
        names = ", ".join(services[:LIST_LIMIT])
        if len(services) > LIST_LIMIT:
            names += f" and {len(services) - LIST_LIMIT} more"
        described.insert(0, f"add {what} each to {len(services)} services ({names}){where}")
    return Repair("; ".join(words + described), changes)


__all__ = ["CAPACITY_CANDIDATES", "PlacementChange", "PlacementSolver", "RepairTimeout",
           "adder", "as_repair", "extra_zones", "fewest_added", "fewest_surviving",
           "scaled_placement", "surviving"]
