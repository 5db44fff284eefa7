"""Schema migrations (twelve-factor XII): run as a one-off command, before the new code is deployed."""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def alembic_config(database_url: str | None = None, output: TextIO | None = None) -> Config:
    config = Config(output_buffer=output)
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("file_template", "%%(rev)s")  # file name = revision id, e.g. 0002_add_word_count.py
    if database_url:
        # psycopg 3 is the driver the app uses; SQLAlchemy needs it named in the URL.
        sqlalchemy_url = "postgresql+psycopg://" + database_url.split("://", 1)[1]
        # ConfigParser interpolation: a literal % (URL-encoded passwords) must be doubled.
        config.set_main_option("sqlalchemy.url", sqlalchemy_url.replace("%", "%%"))
    return config


def upgrade(database_url: str) -> None:
    """Apply every pending migration; a no-op when the schema is already at head."""
    command.upgrade(alembic_config(database_url), "head")


def render_sql(revision_range: str, output: TextIO) -> None:
    """Write the SQL alembic would run for `revision_range` (e.g. `base:head`) without a database."""
    command.upgrade(alembic_config(output=output), revision_range, sql=True)


def revisions() -> list[tuple[str | None, str]]:
    """(down_revision, revision) pairs from base to head; the history is linear (no merge revisions)."""
    scripts = ScriptDirectory.from_config(alembic_config())
    chain = []
    for script in reversed(list(scripts.walk_revisions("base", "heads"))):
        down = script.down_revision
        assert down is None or isinstance(down, str), f"{script.revision} merges branches; keep history linear"
        chain.append((down, script.revision))
    return chain
