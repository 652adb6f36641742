"""Python's cyclic garbage collector, tuned around work that builds many long-lived objects:
a simulation run, and loading a large spec.

A run keeps tens of thousands of objects alive (instances, call sites, balancers, the event
queue, every request in flight) and allocates millions of short-lived ones (events, process
generators). With the default thresholds the collector starts a young-generation pass every
700 net allocations and, every so often, a full pass over everything alive: on a
1,000-service topology that walking cost a quarter of the run. Most of what it walks never
becomes garbage: the model built before the run lives until the run ends.

``quiet_collector()`` therefore, for the duration of a run:

* moves everything alive at its start into the permanent generation (``gc.freeze()``), so no
  pass walks the built model again;
* raises the young-generation threshold (``YOUNG_THRESHOLD`` allocations instead of 700), so
  passes are rarer but still run: SimPy's processes and events form reference cycles, and
  with the collector off a long run's cyclic garbage would pile up without bound;

and restores the thresholds and unfreezes on the way out, whatever ends the run (an error,
``KeyboardInterrupt``); a block without collection moves what it built to the oldest
generation without walking it (``gc.freeze()`` then ``gc.unfreeze()``, each a list splice).
Loading a spec is the same shape: the document and the System grow to hundreds of thousands
of objects, none garbage, and with the default thresholds a third of loading a 10,000-service
spec went to collections walking them. If something else already froze objects (a host
application, an enclosing run), the freeze is left to it: only what this block froze is
unfrozen.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

# Allocations between young-generation passes during a run (CPython's default: 700). Large
# enough that a pass is rare next to the work between passes, small enough that cyclic
# garbage (finished requests' events and generators) is reclaimed as the run goes.
YOUNG_THRESHOLD = 50_000


@contextmanager
def quiet_collector(*, collect: bool = True) -> Iterator[None]:
    """Freeze what exists and collect young garbage rarely until the block ends.

    ``collect=False``: no collection at all inside the block (for work that makes little
    cyclic garbage and a bounded amount of anything, such as loading a spec: its garbage is
    collected after the block, as usual).
    """
    thresholds = gc.get_threshold()
    enabled = gc.isenabled()
    froze = enabled and gc.get_freeze_count() == 0
    if froze:
        gc.freeze()
    gc.set_threshold(max(YOUNG_THRESHOLD, thresholds[0]), *thresholds[1:])
    if not collect:
        gc.disable()
    try:
        yield
    finally:
        if froze:
            if not collect:
                # What the block built goes to the oldest generation unwalked: freezing then
                # unfreezing moves every generation there as whole lists. Otherwise the
                # first allocation after the block starts a young pass over all of it (with
                # collection off, a loaded 100,000-service spec left millions of objects
                # young: 1.7 s). (With collection on, the young generation is small at the
                # end and its garbage is better collected young.)
                gc.freeze()
            gc.unfreeze()
        gc.set_threshold(*thresholds)
        if enabled:
            gc.enable()


__all__ = ["YOUNG_THRESHOLD", "quiet_collector"]
