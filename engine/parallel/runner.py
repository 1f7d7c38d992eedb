"""Batches of indexing work, run in this process: the default, and what a cluster must equal.

Indexing's long steps (feature extraction, word assignment, the graph's pairwise verification)
are cut into batches, each a call of a plain top-level function on picklable arguments that reads
and writes only the project's folder: a batch of images -> one feature pack, a batch of images ->
their aggregated words, a batch of pairs -> their verification results. The coordinating process
(engine.project) makes the batches, hands them to a Runner, and alone writes the catalog and the
index from the results. This Runner runs them here, one after another (a batch may use `threads`
inside); engine.parallel.cluster's runs them on Dask workers. Both hand the results back in the
order of the batches, so the project built is the same either way.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

from engine.base.progress import NEVER, CancelToken


class Runner:
    """Runs batches in the calling thread, in order; `threads` is what a batch may use inside."""

    def __init__(self, threads: int = 1):
        self.threads = max(1, int(threads))

    @property
    def task_threads(self) -> int:
        """Threads one batch may use (a cluster's batches run one per worker thread: 1)."""
        return self.threads

    def describe(self) -> str:
        return f"this process ({self.threads} thread{'s' if self.threads > 1 else ''})"

    def share(self, value: Any) -> Any:
        """A large argument several batches take (a vocabulary): sent to each worker once."""
        return value

    def check_visible(self, paths) -> None:
        """Raise unless every worker sees these folders; this process sees what it was given."""

    def run(self, fn: Callable, tasks: Iterable[tuple], on_result: Callable[[Any], None], *,
            cancel: CancelToken = NEVER) -> None:
        """fn(*task) for every task; on_result gets each result in the order of the tasks.

        A cancel is seen between batches (Cancelled). An exception of fn or of on_result stops the
        run; the results handed over before it stay handed over."""
        for task in tasks:
            cancel.raise_if_set()
            on_result(fn(*task))
