"""A lock file for the one writer of a shared project folder (the indexer).

The feature store, the index and the graph live in the project folder, which a team keeps on a
network share that every annotator reads. Only one process may write them at a time: two indexers
would each collect the other's new feature packs as garbage. `folder_lock` creates the lock file
with O_CREAT | O_EXCL, which is atomic on local disks and on network shares (NFS v3+, SMB) alike,
and writes into it who holds it, so the next one is told by whom, since when, and what to do.

A lock left by a process that died (kill -9, a power cut) on this same machine is recognized (its
pid is gone) and taken over; one held from another machine cannot be checked from here: the message
says how to remove it if that process is known to be gone.
"""
from __future__ import annotations

import datetime as dt
import getpass
import json
import os
import socket
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from engine.base.errors import ProjectError


_HELD: set[str] = set()  # the tokens of the locks this process holds


class LockHeld(ProjectError):
    """Another process holds the lock; `holder` is what it wrote (user, host, pid, since, what)."""

    def __init__(self, path: Path, holder: dict):
        self.path, self.holder = Path(path), holder
        since = holder.get("since", "?")
        super().__init__(
            f"{self.path.parent}: {holder.get('what', 'another writer')} is already running there "
            f"({holder.get('user', '?')} on {holder.get('host', '?')}, pid {holder.get('pid', '?')}, "
            f"since {since}); wait for it to finish. If it is no longer running (it crashed), "
            f"delete {self.path} and try again")


def _me(what: str) -> dict:
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name in this environment
        user = "?"
    return {"what": what, "user": user, "host": socket.gethostname(), "pid": os.getpid(),
            "since": dt.datetime.now().astimezone().isoformat(timespec="seconds"), "token": uuid.uuid4().hex}


def _alive(pid: int) -> bool:
    """Is a process with this pid running on this machine?"""
    if sys.platform == "win32":
        import ctypes

        handle = ctypes.windll.kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return False
        code = ctypes.c_ulong()
        ctypes.windll.kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
        ctypes.windll.kernel32.CloseHandle(handle)
        return code.value == 259  # STILL_ACTIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def _read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}  # being written this instant, or not ours: held, by someone unknown


def _take(path: Path, me: dict) -> bool:
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    except OSError as e:
        raise ProjectError(f"{path.parent}: cannot write here ({e.strerror}); in a team project only "
                           "whoever runs the indexing needs to write the shared folder") from None
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(me, f)
        f.flush()
        os.fsync(f.fileno())
    return True


def _break_if_dead(path: Path, holder: dict) -> bool:
    """Remove a lock whose holder died on this machine; True when it was removed."""
    if holder.get("host") != socket.gethostname() or not isinstance(holder.get("pid"), int):
        return False
    if holder["pid"] == os.getpid():
        if holder.get("token") in _HELD:
            return False  # this process holds it (another thread)
    elif _alive(holder["pid"]):
        return False
    # (a pid of this process that holds nothing: a killed process's pid, reused)
    # Move it aside first: of two processes breaking it at once only one can, and it checks that it
    # moved the dead holder's lock, not a fresh one just taken by a third.
    aside = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.stale")
    try:
        os.replace(path, aside)
    except FileNotFoundError:
        return True
    if _read(aside) != holder:
        try:
            os.link(aside, path)  # a live lock: put it back (fails only if yet another one exists)
        except OSError:
            pass
        aside.unlink(missing_ok=True)
        return False
    aside.unlink(missing_ok=True)
    return True


@contextmanager
def folder_lock(path, what: str, wait_s: float = 0.0) -> Iterator[dict]:
    """Hold the lock file `path` for the block; LockHeld (after waiting up to wait_s) when another
    process has it. Yields what this process wrote into it."""
    path = Path(path)
    me = _me(what)
    deadline = time.monotonic() + wait_s
    while not _take(path, me):
        holder = _read(path)
        if holder == {}:  # just created, not yet written: look again
            time.sleep(0.05)
            holder = _read(path)
        if holder is None or (holder and _break_if_dead(path, holder)):
            continue  # released meanwhile, or its holder is dead: try again
        if time.monotonic() >= deadline:
            raise LockHeld(path, holder or {})
        time.sleep(0.2)
    _HELD.add(me["token"])
    try:
        yield me
    finally:
        _HELD.discard(me["token"])
        if _read(path) == me:  # never remove a lock that is not ours (someone deleted ours by hand)
            path.unlink(missing_ok=True)
