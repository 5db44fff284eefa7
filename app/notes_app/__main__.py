"""Entry point: `python -m notes_app {serve,worker,migrate}` (exec-form CMD in the image)."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from .config import ConfigError, Settings, database_url_from_env
from .logs import configure_logging


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="notes_app")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="HTTP API on PORT")
    commands.add_parser("worker", help="background backfill; health and metrics on PORT")
    migrate = commands.add_parser("migrate", help="apply migrations to head (the migration Job)")
    migrate.add_argument("--sql", metavar="RANGE", help="print the SQL for RANGE (e.g. base:head) offline")
    args = parser.parse_args(argv)

    if args.command == "migrate" and args.sql:
        from .migrate import render_sql

        render_sql(args.sql, sys.stdout)
        return 0
    try:
        if args.command == "migrate":
            return _migrate(database_url_from_env())
        settings = Settings.from_env()
    except ConfigError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.app_version)
    from .server import run

    run(settings, role=args.command)
    return 0


def _migrate(database_url: str) -> int:
    from .migrate import upgrade

    configure_logging(os.environ.get("LOG_LEVEL", "info"), os.environ.get("APP_VERSION", "dev"))
    upgrade(database_url)
    logging.getLogger("notes_app.migrate").info("schema at head")
    return 0


if __name__ == "__main__":
    sys.exit(main())
