"""Where a sweep's runs execute: in this process, on a local process pool, or on Dask.

``serial`` runs one after another here (debugging, notebooks, the benchmark's baseline);
``local`` is a process pool on this machine whose workers come from a clean forkserver (a pool
whose worker died is rebuilt and its runs retried) and never re-run the caller's main script, so
a sweep works alike in a plain script without an ``if __name__ == "__main__":`` guard, from
stdin or ``-c``, in a notebook and on the command line; ``dask`` is ``dask.distributed``, a
scheduler at an address or a LocalCluster on loopback (a run on a worker that dies is
rescheduled by the scheduler). Each ships a ``RunTask`` out and only the summary dict (the
``simulate --json`` object) back, and yields ``(task, summary or exception)`` as runs finish.

The function a worker executes is this module's hook ``run_one`` (``simulate_run`` unless
replaced), read when a sweep starts and shipped with each run, so tests and tools can wrap it on
every backend. Workers ignore SIGINT: Ctrl-C is the parent's to handle.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import signal
import sys
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Literal

from faultmesh.model.extras import requires
from faultmesh.simulations.sweeps.errors import SweepInputError
from faultmesh.simulations.sweeps.plan import RunTask

Backend = Literal["serial", "local", "dask"]
BACKENDS: tuple[str, ...] = ("serial", "local", "dask")
Runner = Callable[[RunTask], dict[str, Any]]
Outcome = tuple[RunTask, dict[str, Any] | BaseException]

MAX_POOL_RESTARTS = 3  # local backend: how often a pool whose worker died is rebuilt
DASK_RETRIES = 2
# What a local worker needs loaded before it forks: the function it runs (this module, with
# RunTask and the System it carries) and the engine that function calls. The forkserver
# ignores a name it cannot import, so tests check that these exist.
FORKSERVER_PRELOAD = ("faultmesh.simulations.sweeps.backends",
                      "faultmesh.simulations.engine.simulation")


def simulate_run(task: RunTask) -> dict[str, Any]:
    """Run one task with the simulation engine; return its JSON summary."""
    from faultmesh.simulations.engine.simulation import simulate

    run = simulate(task.system, task.scenario, duration=task.duration, seed=task.seed)
    # Plain data only (what JSON holds), whatever types the engine used.
    summary: dict[str, Any] = json.loads(json.dumps(run.summary, default=_plain_scalar))
    if task.recovery is not None:  # a stability sweep: read recovery from the run's timeline
        from faultmesh.simulations.sweeps.stability import recovery_of

        summary["recovery"] = dict(recovery_of(run, task.system, task.scenario, task.recovery))
    return summary


def _plain_scalar(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


# The function every backend executes for a run. Read when a sweep starts and shipped to the
# workers with each run, so replacing it (tests, instrumentation) works on every backend.
run_one: Runner = simulate_run


def executor(backend: str, runner: Runner, workers: int | None, scheduler: str | None,
             todo: int) -> Serial | Local | Dask:
    """The backend asked for, checked (``SweepInputError`` for a bad option), not started."""
    if backend not in BACKENDS:
        raise SweepInputError(f"--backend takes {', '.join(BACKENDS)}, not {backend!r}")
    if scheduler and backend != "dask":
        raise SweepInputError("--scheduler needs --backend dask")
    if workers is not None and (isinstance(workers, bool) or workers < 1):
        raise SweepInputError(f"--workers must be a positive integer, got {workers!r}")
    count = workers or os.cpu_count() or 1
    if backend == "serial":
        return Serial(runner)
    if backend == "local":
        return Local(runner, max(1, min(count, todo)))
    return Dask(runner, count, scheduler)


class Serial:
    """Runs in this process, one after another."""

    def __init__(self, runner: Runner):
        self.runner = runner

    def __enter__(self) -> Serial:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def results(self, tasks: list[RunTask]) -> Iterator[Outcome]:
        for task in tasks:
            try:
                yield task, self.runner(task)
            except Exception as exc:  # a run's failure is reported, the sweep goes on
                exc.__notes__ = [traceback.format_exc()]
                yield task, exc

    def abort(self) -> None:
        return None


def _ignore_sigint() -> None:
    # Ctrl-C is the parent's to handle: it cancels, stops the pool and keeps finished runs.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _defined_in_main(runner: Runner) -> bool:
    """Whether the function a worker runs comes from the ``__main__`` module (unwrapping
    ``functools.partial``): then a worker must import the main script to find it."""
    function: Any = runner
    while isinstance(function, functools.partial):
        function = function.func
    return getattr(function, "__module__", None) == "__main__"


@contextlib.contextmanager
def _workers_skip_main(runner: Runner) -> Iterator[None]:
    """While workers start, hide where the ``__main__`` module came from, so they do not import it.

    A ``spawn`` or ``forkserver`` worker re-runs the parent's main script (found through
    ``__main__.__spec__`` or ``__file__``) before it runs anything. The runs need nothing from
    it (they ship a ``RunTask`` and call this module's functions), and a script without an
    ``if __name__ == "__main__":`` guard would start its own sweep in every worker, which dies
    (a daemonic process may not have children). A notebook's main module has no file, so it
    is never re-run there either; this makes a plain script behave the same. Only a runner
    defined in the main script itself needs it imported, and then it is left visible.
    """
    main = sys.modules.get("__main__")
    if main is None or _defined_in_main(runner):
        yield
        return
    hidden: dict[str, Any] = {name: main.__dict__[name] for name in ("__file__", "__spec__")
                              if name in main.__dict__}
    main.__dict__.pop("__file__", None)
    main.__spec__ = None  # spawn reads the attribute, so it must exist
    try:
        yield
    finally:
        main.__dict__.pop("__spec__", None)
        main.__dict__.update(hidden)


def _run_with_trace(runner: Runner, task: RunTask) -> Any:
    try:
        return runner(task)
    except Exception as exc:
        exc.__notes__ = [traceback.format_exc()]
        raise


class Local:
    """A process pool on this machine; a pool whose worker died is rebuilt and its runs retried.

    Workers are forked from a clean forkserver (never from this process, which may hold
    threads: a progress bar, Dask) and ignore SIGINT.
    """

    def __init__(self, runner: Runner, workers: int):
        self.runner, self.workers = runner, workers
        self.pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> Local:
        return self

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        if kind is not None and issubclass(kind, KeyboardInterrupt):
            self.abort()
        elif self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None

    def _new_pool(self) -> ProcessPoolExecutor:
        import multiprocessing

        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(list(FORKSERVER_PRELOAD))
        return ProcessPoolExecutor(self.workers, mp_context=context, initializer=_ignore_sigint)

    def results(self, tasks: list[RunTask]) -> Iterator[Outcome]:
        remaining = {task.run_id: task for task in tasks}
        restarts = 0
        while remaining:
            # The pool starts a worker per submit (up to its size): all start in this block.
            with _workers_skip_main(self.runner):
                self.pool = self._new_pool()
                futures: dict[Future[Any], RunTask] = {
                    self.pool.submit(_run_with_trace, self.runner, task): task
                    for task in remaining.values()}
            pending = set(futures)
            broken = False
            while pending and not broken:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    task = futures[future]
                    try:
                        result: dict[str, Any] | BaseException = future.result()
                    except BrokenProcessPool:
                        broken = True
                        continue
                    except Exception as exc:
                        result = exc
                    del remaining[task.run_id]
                    yield task, result
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None
            if broken:
                restarts += 1
                if restarts > MAX_POOL_RESTARTS:
                    for task in list(remaining.values()):
                        del remaining[task.run_id]
                        yield task, RuntimeError(
                            f"a worker process died while running it ({restarts} times in "
                            "this sweep); giving up on the runs left")

    def abort(self) -> None:
        pool, self.pool = self.pool, None
        if pool is None:
            return
        processes = list(getattr(pool, "_processes", {}).values())  # stop running runs now
        pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            if process.is_alive():
                process.terminate()
        for process in processes:
            process.join(timeout=5)


def _ignore_sigint_plugin() -> Any:
    """A Dask worker plugin by which the worker ignores SIGINT (for local clusters)."""
    from dask.distributed import WorkerPlugin

    class IgnoreSigint(WorkerPlugin):
        def setup(self, worker: Any) -> None:
            with contextlib.suppress(ValueError):  # not the main thread: nothing to do
                _ignore_sigint()

    return IgnoreSigint()


class Dask:
    """dask.distributed: a scheduler at ``address``, or a LocalCluster on loopback.

    Runs are submitted with ``pure=False`` (every run is distinct work) and ``retries``; a run
    on a worker that dies is rescheduled elsewhere by the scheduler. The workers of a cluster
    given by address need faultmesh installed (the runs name its functions).
    """

    def __init__(self, runner: Runner, workers: int, address: str | None):
        self.runner, self.workers, self.address = runner, workers, address
        self.client: Any = None
        self.cluster: Any = None
        self.futures: list[Any] = []

    def __enter__(self) -> Dask:
        with requires("dask", "--backend dask"):
            from dask.distributed import Client, LocalCluster

        if self.address:
            try:
                self.client = Client(self.address, timeout="10s")
            except (OSError, TimeoutError, ValueError) as exc:
                raise SweepInputError(
                    f"--scheduler {self.address}: cannot connect ({exc})") from None
            return self
        try:
            self.cluster = LocalCluster(
                n_workers=self.workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                dashboard_address=None, silence_logs=logging.ERROR,
                # No dashboard; its health endpoint on any free loopback port (not 8787).
                scheduler_kwargs={"dashboard_address": "127.0.0.1:0"})
            self.client = Client(self.cluster)
            # Its workers share our terminal: Ctrl-C is ours to handle, not theirs to print.
            self.client.register_plugin(_ignore_sigint_plugin(), name="faultmesh-ignore-sigint")
        except BaseException:
            self.__exit__(None)
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        if kind is not None and issubclass(kind, KeyboardInterrupt):
            self.abort()
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()
        self.client = self.cluster = None

    def results(self, tasks: list[RunTask]) -> Iterator[Outcome]:
        from dask.distributed import as_completed

        by_key: dict[str, RunTask] = {}
        for task in tasks:
            future = self.client.submit(_run_with_trace, self.runner, task, pure=False,
                                        retries=DASK_RETRIES, key=f"faultmesh-run-{task.run_id}"
                                        f"-{os.urandom(4).hex()}")
            by_key[future.key] = task
            self.futures.append(future)
        for future in as_completed(self.futures):
            task = by_key[future.key]
            if future.status == "error":
                yield task, future.exception()
            else:
                yield task, future.result()
            future.release()

    def abort(self) -> None:
        if self.client is not None and self.futures:
            self.client.cancel(self.futures, force=True)


__all__ = ["BACKENDS", "FORKSERVER_PRELOAD", "Backend", "Dask", "Local", "Serial",
           "executor", "run_one", "simulate_run"]
