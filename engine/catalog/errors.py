"""Database errors as the user should read them: one line, the password hidden, a ProjectError
(CatalogBusy when another writer was in the way and the transaction may simply run again)."""
from __future__ import annotations

from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from engine.base.errors import CatalogBusy, ProjectError

# PostgreSQL SQLSTATEs after which a transaction may simply run again: serialization failure,
# deadlock detected, lock not available.
_RETRYABLE_SQLSTATES = {"40001", "40P01", "55P03"}


def shown_url(engine: Engine) -> str:
    """The catalog's URL for messages: the password hidden."""
    return engine.url.render_as_string(hide_password=True)


def first_line(exc: BaseException) -> str:
    """SQLAlchemy errors carry the SQL and a help link over several lines; the driver's first line says
    what failed."""
    orig = getattr(exc, "orig", None)
    message = str(orig if orig is not None else exc).strip()
    return message.partition("\n")[0] or type(exc).__name__


def is_busy(exc: BaseException) -> bool:
    """Another writer is in the way and running the transaction again may succeed."""
    if not isinstance(exc, DBAPIError):
        return False
    orig = exc.orig
    if getattr(orig, "sqlite_errorname", "").startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return True
    message = str(orig).lower()
    if type(orig).__module__.startswith("sqlite3") and ("database is locked" in message or "busy" in message):
        return True
    return getattr(orig, "sqlstate", None) in _RETRYABLE_SQLSTATES


def catalog_error(exc: SQLAlchemyError, engine: Engine) -> ProjectError:
    """A database error as the user should read it."""
    where = shown_url(engine)
    if is_busy(exc):
        return CatalogBusy(f"the catalog {where} is busy: another PixRet process held it too long "
                           f"({first_line(exc)})")
    orig = getattr(exc, "orig", None)
    sqlstate = getattr(orig, "sqlstate", None) or ""
    lost = engine.dialect.name != "sqlite" and type(orig).__name__ == "OperationalError" and not sqlstate
    if isinstance(exc, DBAPIError) and (exc.connection_invalidated or sqlstate.startswith("08") or lost):
        return ProjectError(f"cannot reach the catalog database {where}: {first_line(exc)}")
    if sqlstate.startswith("28"):  # invalid authorization
        return ProjectError(f"the catalog database {where} refused the login: {first_line(exc)}")
    return ProjectError(f"catalog {where}: {first_line(exc)}")
