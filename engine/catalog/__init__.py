"""The catalog: what a project knows, in SQL (SQLite WAL by default, any SQLAlchemy URL).

`tables` holds the models and `Catalog` (engine + sessions); `migrations/` (Alembic) owns the
schema and brings any older catalog to the newest one on open."""
