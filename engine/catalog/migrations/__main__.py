"""`python -m engine.catalog.migrations --db URL <alembic command ...>`: the alembic CLI without an ini file.

Examples (from the repository root; see engine/catalog/migrations/__init__.py):
    python -m engine.catalog.migrations --db sqlite:////tmp/dev/catalog.sqlite upgrade head
    python -m engine.catalog.migrations --db sqlite:////tmp/dev/catalog.sqlite revision --autogenerate -m "add x"
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

from alembic.config import CommandLine

from engine.catalog.migrations import make_config


def main(argv: list[str] | None = None) -> None:
    outer = argparse.ArgumentParser(prog="python -m engine.catalog.migrations", add_help=False)
    outer.add_argument("--db", default=os.environ.get("PIXRET_DB_URL"),
                       help="SQLAlchemy URL of the catalog (default: $PIXRET_DB_URL)")
    ours, rest = outer.parse_known_args(argv)
    cli = CommandLine(prog="python -m engine.catalog.migrations --db URL")
    options = cli.parser.parse_args(rest)
    if not hasattr(options, "cmd"):
        cli.parser.error("too few arguments")
    config = make_config(ours.db)
    config.cmd_opts = options  # so env.py sees -x arguments, as under the real alembic CLI
    # Without an ini there is no logging section: show alembic's "Running upgrade ..." lines.
    logging.basicConfig(level=logging.INFO, format="%(levelname)-5.5s [%(name)s] %(message)s")
    cli.run_cmd(config, options)


if __name__ == "__main__":
    main(sys.argv[1:])
