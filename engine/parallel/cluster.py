"""Indexing on a Dask cluster: the optional `dask` extra (pip install 'pixret-desktop[dask]').

`open_cluster(workers=N)` starts a LocalCluster of N worker processes on this machine;
`open_cluster(scheduler="tcp://host:port")` joins a cluster that is already running. Either yields
a DaskRunner: the same contract as engine.parallel.runner.Runner (the coordinator's batches in,
their results back in batch order), with the batches running as Dask tasks on the workers.

- A worker reads the collection and writes feature packs into the project's store at the very
  paths the coordinator uses: on a cluster of several machines, both live on a shared folder
  mounted at the same path everywhere (checked when the run starts, and by every batch).
- A worker that dies (killed, out of memory) has its batches run again on another worker by the
  scheduler; a batch that kills `distributed.scheduler.allowed-failures` workers (3) ends the run
  with an error naming it. A batch that raises is tried RETRIES more times.
- A cancel drops the batches not yet finished; one that was running finishes on its worker and
  its pack, which no catalog row points to, is removed by the next complete run.
"""
from __future__ import annotations

import importlib.util
import logging
import time
import uuid
from collections import deque
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from engine.base.errors import PixretError, ProjectError
from engine.base.progress import NEVER, CancelToken
from engine.parallel.runner import Runner

DASK_EXTRA = "pip install 'pixret-desktop[dask]'"
RETRIES = 2  # a batch that raised (a network file system's hiccup) is tried again this often
CONNECT_TIMEOUT_S = 20
POLL_S = 0.05  # how often a wait for the next result looks at it and at the cancel token
BATCHES_PER_THREAD = 2  # batches handed out ahead per worker thread: none waits for the coordinator


def dask_available() -> bool:
    return importlib.util.find_spec("distributed") is not None


def require_dask():
    """The `distributed` module, or a PixretError naming the pip command that installs it."""
    try:
        import distributed
    except ImportError as e:
        raise PixretError(f"indexing on a cluster needs Dask, which is not installed here "
                          f"(no module {e.name!r}); install it with: {DASK_EXTRA}") from None
    return distributed


class DaskRunner(Runner):
    """Batches as Dask tasks, at most BATCHES_PER_THREAD per worker thread in flight."""

    def __init__(self, client, label: str):
        super().__init__(1)
        self.client = client
        self.label = label
        self._workers: tuple[float, dict] = (float("-inf"), {})

    def workers(self) -> dict[str, int]:
        """The cluster's workers now (address -> threads), asked of the scheduler at most once a second."""
        at, found = self._workers
        if time.monotonic() - at > 1.0:
            found = dict(self.client.nthreads())
            self._workers = (time.monotonic(), found)
        return found

    @property
    def task_threads(self) -> int:
        return 1  # a worker runs one batch per thread

    def describe(self) -> str:
        n = len(self.workers())
        return f"{self.label} ({n} worker{'s' if n != 1 else ''})"

    def share(self, value: Any) -> Any:
        return self.client.scatter(value, broadcast=True, hash=False)

    def check_visible(self, paths: Iterable[Path]) -> None:
        """A ProjectError unless every worker sees these folders (the collection, the project)."""
        paths = [str(p) for p in paths]
        seen = self.client.run(_visible, paths, on_error="return")
        for worker, found in sorted(seen.items()):
            if isinstance(found, BaseException):
                raise ProjectError(f"the cluster worker {worker} cannot run PixRet's batches ({found!r}); "
                                   f"install the same PixRet there: {DASK_EXTRA}")
            missing = [p for p, ok in zip(paths, found) if not ok]
            if missing:
                raise ProjectError(f"the cluster worker {worker} does not see {missing[0]}: on a cluster the "
                                   "collection and the project must be on a shared folder mounted at the same "
                                   "path on every machine")

    def run(self, fn: Callable, tasks: Iterable[tuple], on_result: Callable[[Any], None], *,
            cancel: CancelToken = NEVER) -> None:
        from distributed import KilledWorker

        run_id = uuid.uuid4().hex[:8]
        name = getattr(fn, "__name__", "batch")
        todo: Iterator[tuple[int, tuple]] = iter(enumerate(tasks))
        pending: deque = deque()
        try:
            while True:
                window = max(2, BATCHES_PER_THREAD * sum(self.workers().values()))
                while len(pending) < window:
                    nxt = next(todo, None)
                    if nxt is None:
                        break
                    i, task = nxt
                    cancel.raise_if_set()
                    pending.append(self.client.submit(fn, *task, key=f"{name}-{run_id}-{i}", pure=False,
                                                      retries=RETRIES))
                if not pending:
                    return
                head = pending[0]
                # Polled, not result(timeout=): a timeout racing the result can raise UnboundLocalError
                # inside distributed (dask/distributed#8514; it stopped a 1M-image shard build here).
                while True:
                    cancel.raise_if_set()
                    if head.done():
                        break
                    time.sleep(POLL_S)
                try:
                    result = head.result()
                except KilledWorker as e:
                    raise ProjectError(f"a batch of {name} killed {_allowed_failures()} cluster workers one "
                                       f"after another (out of memory?), so the run stops: {e}") from None
                pending.popleft()
                head.release()
                on_result(result)
        finally:
            if pending:
                self.client.cancel(list(pending))


def _visible(paths: list[str]) -> list[bool]:
    return [Path(p).is_dir() for p in paths]


def _allowed_failures() -> int:
    import dask

    return int(dask.config.get("distributed.scheduler.allowed-failures", 3))


@contextmanager
def open_cluster(*, workers: int | None = None, scheduler: str | None = None) -> Iterator[DaskRunner]:
    """A DaskRunner on a new LocalCluster of `workers` processes, or on the cluster at `scheduler`."""
    if (workers is None) == (scheduler is None):
        raise PixretError("name either a number of local workers or a scheduler address, not both")
    distributed = require_dask()
    cluster = None
    try:
        if scheduler is not None:
            try:
                client = distributed.Client(scheduler, timeout=CONNECT_TIMEOUT_S)
            except (OSError, TimeoutError, ValueError) as e:
                raise PixretError(f"{scheduler}: no Dask scheduler answered there ({e})") from None
            label = f"the cluster at {scheduler}"
        else:
            if int(workers) < 1:
                raise PixretError(f"--workers {workers}: at least one worker is needed")
            cluster = distributed.LocalCluster(n_workers=int(workers), threads_per_worker=1, processes=True,
                                               dashboard_address=None, silence_logs=logging.ERROR)
            client = distributed.Client(cluster)
            label = "a local cluster"
    except BaseException:
        if cluster is not None:
            cluster.close()
        raise
    try:
        yield DaskRunner(client, label)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
