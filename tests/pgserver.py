"""A throwaway PostgreSQL server for the tests (and benchmarks/team.py): initdb + pg_ctl into a
temporary folder, reachable only through a unix socket in that folder, trust authentication,
stopped and deleted at the end.

PostgreSQL refuses to run as root, and CI runs everything as root: then the cluster belongs to an
unprivileged user (`postgres` when the package made one, else `nobody`) and initdb/pg_ctl run as
that user through `setpriv`; the folder is made in /tmp (its parents must be traversable by it).
The server binaries: $PIXRET_PG_BIN, else Debian's /usr/lib/postgresql/<newest>/bin, else PATH.
"""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

SUPERUSER = "pixret"


class Unavailable(Exception):
    """No PostgreSQL server can be started here; the message says why."""


def bindir() -> Path:
    if os.environ.get("PIXRET_PG_BIN"):
        given = Path(os.environ["PIXRET_PG_BIN"])
        if not (given / "initdb").exists():
            raise Unavailable(f"PIXRET_PG_BIN={given} holds no initdb")
        return given
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4])
                   if p.split("/")[4].isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise Unavailable("PostgreSQL's initdb was not found (Debian: apt-get install postgresql; or set PIXRET_PG_BIN)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    def __init__(self):
        self.bin = bindir()
        self.as_user: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            for name in ("postgres", "nobody"):
                try:
                    self.as_user = pwd.getpwnam(name)
                    break
                except KeyError:
                    continue
            if self.as_user is None:
                raise Unavailable("running as root and no unprivileged user (postgres, nobody) to run the server")
            if shutil.which("setpriv") is None:
                raise Unavailable("running as root and setpriv (util-linux) is missing")
        self.folder = Path(tempfile.mkdtemp(prefix="pixret-pg-", dir="/tmp" if self.as_user else None))
        self.data = self.folder / "data"
        self.port = _free_port()
        if self.as_user:
            os.chown(self.folder, self.as_user.pw_uid, self.as_user.pw_gid)
        self.started = False

    def _run(self, *args: str, timeout: float = 60) -> str:
        cmd = [str(self.bin / args[0]), *args[1:]]
        if self.as_user:
            cmd = ["setpriv", f"--reuid={self.as_user.pw_uid}", f"--regid={self.as_user.pw_gid}",
                   "--clear-groups", *cmd]
        env = {**os.environ, "LC_ALL": "C", "HOME": str(self.folder)}
        try:
            r = subprocess.run(cmd, cwd=self.folder, env=env, capture_output=True, text=True, timeout=timeout)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise Unavailable(f"{args[0]} could not run: {e}") from None
        if r.returncode != 0:
            log = self.folder / "server.log"
            tail = log.read_text(errors="replace")[-1500:] if log.exists() else ""
            raise Unavailable(f"{' '.join(args[:1])} failed ({r.returncode}): {r.stderr.strip() or r.stdout.strip()}"
                              f"{chr(10) + tail if tail else ''}")
        return r.stdout

    def start(self) -> "Cluster":
        self._run("initdb", "-D", str(self.data), "-U", SUPERUSER, "-A", "trust", "-E", "UTF8", "--no-sync")
        # Unix socket only (nothing listens on the network); durability is not what these tests check.
        options = (f"-k {self.folder} -p {self.port} -c listen_addresses='' -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=100")
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.folder / "server.log"),
                  "-w", "-t", "60", "start")
        self.started = True
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{SUPERUSER}@/{database}?host={self.folder}&port={self.port}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(host=str(self.folder), port=self.port, user=SUPERUSER, dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        try:
            if self.started:
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


def start() -> Cluster:
    """A running throwaway cluster, or Unavailable saying why not."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise Unavailable("the psycopg driver is not installed (pip install -e '.[test]')") from None
    cluster = Cluster()
    try:
        return cluster.start()
    except BaseException:
        cluster.stop()
        raise


# CI (.ci/run) sets this: a test that needs PostgreSQL then fails instead of skipping when no
# server could be started.
REQUIRE = "PIXRET_REQUIRE_POSTGRES"


def start_or_skip() -> Cluster:
    """For a test: a running cluster, or pytest's skip saying why; a failure instead where $REQUIRE is set."""
    import pytest

    try:
        return start()
    except Unavailable as e:
        if os.environ.get(REQUIRE):
            pytest.fail(f"PostgreSQL is required here ({REQUIRE} is set) but could not start: {e}")
        pytest.skip(f"needs a PostgreSQL server, and none could be started: {e}")
