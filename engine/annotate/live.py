"""Live review: the decisions other annotators make, seen within about a second.

`notify_decision` runs inside every decision's transaction (engine.annotate.review.set_decision): on
PostgreSQL it queues a NOTIFY on `CHANNEL` with the search's id, which the server delivers to every
listener when (and only if) the transaction commits.

`DecisionWatcher` runs a thread of its own (never the caller's: the desktop's GUI thread must not
wait on the network) and calls `on_change(query_ids)` with the searches that got new decisions, by
anyone, this process included:
- PostgreSQL: LISTEN on a dedicated connection, woken by the server at once;
- SQLite (one machine, several processes): polls the newest annotation id every `interval` seconds
  (SQLite commits one writer at a time, so ids grow in commit order and nothing is skipped).
`on_change(None)` means "anything may have changed" (after the watcher lost and regained its
connection). Errors never escape the thread: the watcher waits and tries again.
"""
from __future__ import annotations

import logging
import threading
from typing import Callable

from sqlalchemy import func, select, text

from engine.catalog.tables import AnnotationRow

CHANNEL = "pixret_decisions"
BURST_S = 0.05  # notifications arriving this soon after one are reported with it
log = logging.getLogger(__name__)


def notify_decision(s, query_id: int) -> None:
    """Tell listeners that a search got a decision (delivered on commit; PostgreSQL only)."""
    if s.get_bind().dialect.name == "postgresql":
        s.execute(text("SELECT pg_notify(:channel, :payload)"), {"channel": CHANNEL, "payload": str(query_id)})


class DecisionWatcher:
    """Watches a catalog for new decisions; see the module docstring."""

    def __init__(self, catalog, on_change: Callable[[set[int] | None], None], *, interval: float = 1.0):
        self.catalog = catalog
        self.on_change = on_change
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.listening = threading.Event()  # set once changes can no longer be missed (tests wait on it)

    def start(self) -> "DecisionWatcher":
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="pixret-decision-watcher", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        watch = self._listen if self.catalog.engine.dialect.name == "postgresql" else self._poll
        first = True
        while not self._stop.is_set():
            try:
                watch(first)
            except Exception as e:  # noqa: BLE001 - a dropped connection: wait, reconnect, say "anything"
                log.warning("decision watcher: %s; retrying", str(e).partition("\n")[0])
                self.listening.clear()
                if self._stop.wait(max(self.interval, 1.0)):
                    return
            first = False

    def _emit(self, queries: set[int] | None) -> None:
        try:
            self.on_change(queries)
        except Exception:  # noqa: BLE001 - the receiver's bug must not stop the watching
            log.exception("decision watcher: on_change failed")

    def _poll(self, first: bool) -> None:
        def newest() -> int:
            with self.catalog.session() as s:
                return int(s.scalar(select(func.max(AnnotationRow.id))) or 0)

        last = newest()
        self.listening.set()
        if not first:
            self._emit(None)
        while not self._stop.wait(self.interval):
            top = newest()
            if top > last:
                with self.catalog.session() as s:
                    changed = set(s.scalars(select(AnnotationRow.query_id).distinct()
                                            .where(AnnotationRow.id > last, AnnotationRow.id <= top)))
                last = top
                self._emit({q for q in changed if q is not None})

    def _listen(self, first: bool) -> None:
        raw = self.catalog.engine.raw_connection()
        conn = raw.driver_connection  # psycopg's own connection
        raw.detach()  # it listens for as long as the watcher runs: not the pool's any more
        try:
            conn.autocommit = True
            conn.execute(f"LISTEN {CHANNEL}")
            self.listening.set()
            if not first:
                self._emit(None)
            while not self._stop.is_set():
                # wake at the first notification (or after `interval`, to look at the stop flag), then
                # take the rest of a burst along: one call for many decisions made at once
                notes = list(conn.notifies(timeout=self.interval, stop_after=1))
                if notes:
                    notes += list(conn.notifies(timeout=BURST_S))
                changed = {int(n.payload) for n in notes if n.payload.isdigit()}
                if changed:
                    self._emit(changed)
        finally:
            conn.close()
