"""pyproject.toml in the forms its build tools will keep accepting."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
import uuid
import zipfile
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

from tests.conftest import REPOSITORY


def test_the_licence_is_an_spdx_expression_and_setuptools_can_read_it() -> None:
    project = tomllib.loads((REPOSITORY / "pyproject.toml").read_text())

    # setuptools stops accepting the {text = …} table form by 2027-02-18; the string form
    # needs setuptools 77 or newer to build.
    assert project["project"]["license"] == "Apache-2.0"
    [setuptools] = [r for r in project["build-system"]["requires"] if r.startswith("setuptools")]
    minimum = re.fullmatch(r"setuptools>=(\d+)", setuptools)
    assert minimum is not None
    assert int(minimum[1]) >= 77


def test_the_wheel_carries_its_migrations_and_an_installed_copy_builds_a_database(
    database_url: str, tmp_path: Path
) -> None:
    """As the container image installs it: a wheel, no checkout beside it."""
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps",
         "--wheel-dir", str(tmp_path / "wheel"), str(REPOSITORY)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    [wheel] = (tmp_path / "wheel").glob("perf_agent-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        archive.extractall(tmp_path / "installed")
    versions = {p.name for p in (REPOSITORY / "app" / "migrations" / "versions").glob("*.py")}
    assert {f"app/migrations/versions/{v}" for v in versions} <= names
    assert {"app/migrations/env.py", "app/migrations/script.py.mako"} <= names
    assert "app/console/static/console.js" in names

    fresh = f"perf_agent_wheel_{uuid.uuid4().hex[:8]}"
    server = make_url(database_url)
    admin = server.set(drivername="postgresql").render_as_string(False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{fresh}"')
    try:
        url = server.set(database=fresh).render_as_string(False)
        script = (
            "import sys; sys.path.insert(0, sys.argv[1]); import app.core.migrate as m; "
            "assert m.__file__.startswith(sys.argv[1]), m.__file__; m.upgrade(sys.argv[2])"
        )
        migrated = subprocess.run(
            [sys.executable, "-c", script, str(tmp_path / "installed"), url],
            cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert migrated.returncode == 0, migrated.stderr
        with psycopg.connect(
            server.set(drivername="postgresql", database=fresh).render_as_string(False)
        ) as conn:
            [revision] = conn.execute("SELECT version_num FROM alembic_version").fetchone() or [
                None
            ]
        assert revision == max(v.split("_")[0] for v in versions)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{fresh}" WITH (FORCE)')
