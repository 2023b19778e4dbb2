"""Run the Alembic migrations programmatically (on start and from ``perf-agent db upgrade``)."""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

log = logging.getLogger(__name__)
PROJECT_ROOT = Path(__file__).resolve().parents[2]
# Inside the package, so an installed wheel (the container image) migrates as a checkout does.
MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"


def alembic_config(url: str | None = None) -> Config:
    ini = PROJECT_ROOT / "alembic.ini"  # a checkout's; an installed package has none
    cfg = Config(str(ini)) if ini.exists() else Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["configure_logging"] = False
    if url:
        cfg.attributes["url"] = url
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    cfg = alembic_config(url)
    command.upgrade(cfg, revision)
    if revision == "head":
        revision = ScriptDirectory.from_config(cfg).get_current_head() or revision
    log.info("database schema at revision %s", revision)


def check(url: str) -> None:
    """Raise if the models differ from the migrations (a model change without a migration)."""
    command.check(alembic_config(url))
