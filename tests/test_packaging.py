"""pyproject.toml in the forms its build tools will keep accepting."""

from __future__ import annotations

import re
import tomllib

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
