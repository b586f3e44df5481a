"""A pool of Ray actors that videos are dealt out to (optional extra ``psftr[ray]``).

Shared by ``psftr extract --engine ray`` (:mod:`psftr_core.features.ray_extract`) and
``psftr detect --engine ray`` (:mod:`psftr_core.infer.ray_detect`): joining or starting
a cluster, sizing the pool from its resources, making an actor class that Ray restarts
(and whose calls it retries) when its process dies, and dealing items out one at a time
to whichever actor is free. Nothing here imports ray at module level: the engines call
:func:`require_ray` when they are made, before any work.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from psftr_core.errors import InputError, PsftrError, error_text

INSTALL_HINT = "pip install 'psftr[ray]'"
# Test hook: a path; the first worker to reach its 2nd item creates that file and exits
# (os._exit), as a node that dies mid-run would. The marker keeps the retry alive.
EXIT_ONCE_ENV = "PSFTR_RAY_TEST_EXIT_ONCE"
CPUS_PER_CPU_WORKER = 4  # without GPUs, the default pool gives each CLIP this many cores


@dataclass
class RayOptions:
    """Where and how wide the pool runs.

    ``address``: an existing cluster (``ray://host:10001``, ``auto``); None joins the Ray
    this process already started, or starts a local one. ``workers``: actors in the pool
    (None: one per GPU at ``gpus_per_worker`` each, else one per ``CPUS_PER_CPU_WORKER``
    cores). ``gpus_per_worker``: GPUs reserved per actor (None: 1 when the cluster has
    GPUs, else 0; fractions share a GPU). ``max_retries``: restarts of a dead worker.
    """

    address: str | None = None
    workers: int | None = None
    gpus_per_worker: float | None = None
    max_retries: int = 3

    def validate(self) -> None:
        if self.workers is not None and self.workers < 1:
            raise InputError(f"--workers {self.workers}: give at least 1")
        if self.gpus_per_worker is not None and self.gpus_per_worker < 0:
            raise InputError(f"--gpus-per-worker {self.gpus_per_worker:g}: give 0 or more")
        if self.max_retries < 0:
            raise InputError(f"max_retries {self.max_retries}: give 0 or more")


def require_ray() -> Any:
    """The ``ray`` module; InputError with the install command when it is not installed."""
    try:
        import ray
    except ImportError:
        raise InputError(f"--engine ray needs Ray, which is not installed: {INSTALL_HINT}") from None
    return ray


class ExitOnce:
    """The test hook of :data:`EXIT_ONCE_ENV`: made in the driver (whose environment the
    test sets), handed to each actor, counted per actor process."""

    def __init__(self) -> None:
        self.marker = os.environ.get(EXIT_ONCE_ENV)
        self.seen = 0

    def tick(self) -> None:
        self.seen += 1
        if self.marker is None or self.seen != 2:
            return
        try:
            os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return  # another worker (or this one, before its restart) already died
        os._exit(1)


def connect(ray: Any, address: str | None) -> bool:
    """Join ``address`` (or start a local Ray) unless this process is connected; True when
    this call connected (and so disconnects at the end)."""
    if ray.is_initialized():
        return False
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    except (ConnectionError, ValueError, RuntimeError) as err:
        where = f"--address {address}" if address else "a local Ray"
        raise PsftrError(f"could not connect to {where}: {error_text(err)}") from None
    return True


def pool_size(resources: dict, options: RayOptions) -> tuple[float, int]:
    """(GPUs per worker, workers) from the options and the cluster's resources."""
    cluster_gpus = float(resources.get("GPU", 0))
    gpus = options.gpus_per_worker
    if gpus is None:
        gpus = 1.0 if cluster_gpus >= 1 else 0.0
    if gpus > cluster_gpus:
        raise InputError(f"--gpus-per-worker {gpus:g}: the Ray cluster has {cluster_gpus:g} GPU(s)")
    if options.workers is not None:
        return gpus, options.workers
    if gpus > 0:
        return gpus, max(1, int(cluster_gpus // gpus))
    return gpus, max(1, int(float(resources.get("CPU", 1)) // CPUS_PER_CPU_WORKER))


def start_actors(ray: Any, options: RayOptions, cls: type, *args: Any) -> list[Any]:
    """The pool: ``cls(*args)`` in each of its actors, restarted (and its call retried) when
    its process dies."""
    gpus, count = pool_size(ray.cluster_resources(), options)
    actor = ray.remote(cls).options(num_cpus=1, num_gpus=gpus, max_restarts=options.max_retries,
                                    max_task_retries=options.max_retries)
    return [actor.remote(*args) for _ in range(count)]


def common_answer(ray: Any, actors: Sequence[Any], method: str) -> Any:
    """Every actor's answer to ``method()`` once each has started (its model loaded); a
    PsftrError raised in an actor's ``__init__`` comes back as itself."""
    try:
        return ray.get([getattr(actor, method).remote() for actor in actors])
    except Exception as err:
        cause = getattr(err, "cause", None)
        if isinstance(cause, PsftrError):
            raise cause from None
        raise PsftrError(f"a Ray worker could not start: {error_text(err)}") from None


def stop(ray: Any, actors: Sequence[Any], started: bool) -> None:
    """Kill the pool's actors; disconnect when this process connected."""
    for actor in actors:
        with contextlib.suppress(Exception):
            ray.kill(actor)
    if started:
        ray.shutdown()


class Dealer:
    """Deals items out, one at a time, to whichever actor is free.

    ``run(items, call)`` yields ``(item, value, error)`` as each finishes, in the order
    they finish: ``call(actor, item)`` makes the Ray call; ``error`` is None, or a line when
    the call raised (the actor goes on) or its actor died past its restarts (the actor is
    given nothing more). When every actor is gone, PsftrError names what is left.
    """

    def __init__(self, ray: Any, actors: Sequence[Any]) -> None:
        self.ray = ray
        self.free = list(actors)

    def run(self, items: Sequence[Any], call: Callable[[Any, Any], Any]) -> Iterator[tuple[Any, Any, str | None]]:
        waiting = list(items)
        running: dict[Any, tuple[Any, Any]] = {}
        try:
            while waiting or running:
                while waiting and self.free:
                    actor = self.free.pop()
                    item = waiting.pop(0)
                    running[call(actor, item)] = (actor, item)
                if not running:
                    raise PsftrError(f"every Ray worker died; {len(waiting)} item(s) not done")
                [ready], _ = self.ray.wait(list(running), num_returns=1)
                actor, item = running.pop(ready)
                yield (item, *self._outcome(ready, actor))
        finally:
            for ref in running:  # Ctrl-C or a lost cluster: stop what is still running
                with contextlib.suppress(Exception):
                    self.ray.cancel(ref, force=True)

    def _outcome(self, ref: Any, actor: Any) -> tuple[Any, str | None]:
        try:
            value = self.ray.get(ref)
        except self.ray.exceptions.RayActorError as err:
            return None, f"Ray worker died: {error_text(err)}"
        except self.ray.exceptions.RayTaskError as err:
            self.free.append(actor)
            cause = getattr(err, "cause", None)
            return None, error_text(cause if isinstance(cause, Exception) else err)
        self.free.append(actor)
        return value, None
