"""Team catalog passwords: never in the settings.

The settings keep a team project's database URL without its password. The password is asked when
the project is opened and held in memory only; "remember" writes it to PixRet's own password file
in the PostgreSQL password file format (host:port:database:user:password, the one ~/.pgpass uses),
created readable and writable by the user alone (0600), in PixRet's own configuration folder: the
user's ~/.pgpass is never touched (libpq still reads it, and PGPASSWORD, when no password is given).
"""
from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import make_url

from engine.base.atomic import atomic_write_text


def without_password(url: str) -> str:
    """The URL as the settings may keep it."""
    return make_url(url)._replace(password=None).render_as_string(hide_password=False)  # (set() keeps a None)


def with_password(url: str, password: str | None) -> str:
    return make_url(url).set(password=password).render_as_string(hide_password=False) if password else url


def _key(url: str) -> list[str]:
    u = make_url(url)
    host = u.host or u.query.get("host") or "localhost"
    if isinstance(host, tuple):
        host = host[0]
    port = u.port or u.query.get("port") or 5432
    if isinstance(port, tuple):
        port = port[0]
    return [str(host), str(port), u.database or "", u.username or ""]


def _escape(field: str) -> str:
    return field.replace("\\", "\\\\").replace(":", "\\:")


def _split(line: str) -> list[str]:
    fields, cur, escaped = [], [], False
    for ch in line:
        if escaped:
            cur.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == ":":
            fields.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    fields.append("".join(cur))
    return fields


def lookup(path: Path, url: str) -> str | None:
    """The remembered password of this URL's host, port, database and user ('*' matches any)."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    want = _key(url)
    for line in lines:
        if not line.strip() or line.startswith("#"):
            continue
        fields = _split(line)
        if len(fields) == 5 and all(f in ("*", w) for f, w in zip(fields[:4], want)):
            return fields[4]
    return None


def remember(path: Path, url: str, password: str) -> None:
    """Store (or replace) the password of this URL's server, database and user, the file 0600."""
    path = Path(path)
    want = _key(url)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        lines = []
    kept = [line for line in lines if _split(line)[:4] != want]
    kept.append(":".join(_escape(f) for f in [*want, password]))
    atomic_write_text(path, "\n".join(kept) + "\n", mode=0o600)


def forget(path: Path, url: str) -> None:
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return
    atomic_write_text(path, "".join(line + "\n" for line in lines if _split(line)[:4] != _key(url)), mode=0o600)

