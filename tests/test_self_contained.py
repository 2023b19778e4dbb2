"""The repository needs nothing beside it: a user's fresh clone has no sibling folders."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import REPOSITORY, TEMPORARY

# The spellings of the project's sibling folder of material: a relative path, or pathlib's
# parent(s) joined with its name.
SIBLING = re.compile(r"""\.\./shared\b|parents?(\[\d+\])?\s*/\s*["']shared["']""")
SIBLING_FOLDER = "shared"
GUARDS = {Path(__file__), REPOSITORY / "tests" / "conftest.py"}  # they name it to refuse it
TEXT = {".py", ".yaml", ".yml", ".json", ".js", ".toml", ".sh", ".md"}


def test_no_code_test_eval_or_bench_file_refers_to_a_sibling_folder() -> None:
    offenders = [
        f"{path.relative_to(REPOSITORY)}:{number}"
        for folder in ("app", "tests", "eval", "bench")
        for path in sorted((REPOSITORY / folder).rglob("*"))
        if path not in GUARDS and path.is_file() and path.suffix in TEXT
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
        if SIBLING.search(line)
    ]

    assert offenders == []


@pytest.mark.skipif(
    TEMPORARY.is_relative_to(REPOSITORY.parent),
    reason="a clone right in the temp dir has only temporary files beside it",
)
def test_opening_a_file_beside_the_repository_fails_the_test(tmp_path: Path) -> None:
    sibling = REPOSITORY.parent / SIBLING_FOLDER
    beside = sibling / "fixtures" / "openapi" / "petstore.yaml"
    if not beside.exists():  # a fresh clone: any sibling path is refused the same way
        beside = REPOSITORY.parent / "no-such-sibling.txt"

    with pytest.raises(PermissionError, match="outside the repository"):
        beside.read_text()
