"""Run a command with a throwaway PostgreSQL server beside it (packaging/smoke.sh: the bundle's
self-test checks a team catalog on it).

    python packaging/with_postgres.py COMMAND [ARG ...]

Every "@PG_URL@" in the arguments becomes the URL of a new, empty database on a server started
for the command (tests/pgserver.py: initdb into a temporary folder, a unix socket only) and
stopped and deleted after it. Where no server can be started (no PostgreSQL binaries, no psycopg
in this Python), the arguments holding "@PG_URL@" are left out and the reason is printed. Exits
with the command's exit code.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import pgserver  # noqa: E402

PLACEHOLDER = "@PG_URL@"


def main(argv: list[str]) -> int:
    cluster = None
    try:
        cluster = pgserver.start()
        url = cluster.create_database("pixret_smoke")
        cmd = [a.replace(PLACEHOLDER, url) for a in argv]
        print(f"with_postgres.py: a PostgreSQL server for the command ({url})", file=sys.stderr, flush=True)
    except pgserver.Unavailable as e:
        cmd = [a for a in argv if PLACEHOLDER not in a]
        print(f"with_postgres.py: no PostgreSQL server: {e}", file=sys.stderr, flush=True)
    try:
        return subprocess.run(cmd).returncode
    finally:
        if cluster is not None:
            cluster.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
