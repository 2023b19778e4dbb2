"""Uploaded test data: CSV or JSON rows stored once and used by plans through their id.

A plan that names a data set gets its rows copied in when the plan is stored, so every plan
version (and its script) stays self-contained and reproducible.
"""

from __future__ import annotations

import csv
import hashlib
import json
import uuid
from typing import Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import InvalidInput, NotFound, ProblemError, UnsupportedMediaType
from app.core.media import media_type, nesting_depth
from app.core.storable import unstorable_text
from app.datasets.repository import DatasetRepository
from app.models import Dataset
from app.plans.schemas import DataSet

MAX_UPLOAD_BYTES = 10_000_000
MEDIA_TYPES = {"text/csv": "csv", "application/json": "json"}
# Lists and objects inside one another (rows are objects in a list: 2). Far deeper values would
# exhaust Python's recursion in the readers and in every plan the rows are copied into.
MAX_DEPTH = 100


def _decode(body: bytes, content_type: str | None) -> tuple[str, str]:
    kind = MEDIA_TYPES.get(media_type(content_type))
    if kind is None:
        raise UnsupportedMediaType(
            "upload test data as text/csv (with a header line) or application/json (a list of "
            "objects)",
            accepted=list(MEDIA_TYPES),
        )
    if len(body) > MAX_UPLOAD_BYTES:
        raise ProblemError(
            f"the data is {len(body)} bytes; the limit is {MAX_UPLOAD_BYTES}",
            code="dataset.too_large",
            status=413,
            title="Data set too large",
        )
    try:
        return body.decode("utf-8"), kind
    except UnicodeDecodeError as exc:
        raise ProblemError(
            f"the data is not UTF-8: {exc}", code="dataset.encoding", title="Bad encoding"
        ) from exc


def _too_deep() -> ProblemError:
    return ProblemError(
        f"the data nests lists/objects more than {MAX_DEPTH} levels deep",
        code="dataset.too_deep",
        title="Data nested too deeply",
        max_depth=MAX_DEPTH,
    )


def parse(text: str, kind: str) -> DataSet:
    """The rows of an upload; a body that is no usable data set is a 400/422 problem."""
    inline: Any = text
    if kind == "json":
        try:
            inline = json.loads(text)
        except RecursionError as exc:
            raise _too_deep() from exc
        except ValueError as exc:  # not JSON, or an integer of more than 4300 digits
            raise ProblemError(
                f"the body is not valid JSON: {exc}", code="dataset.malformed", title="Bad JSON"
            ) from exc
        if nesting_depth(inline, limit=MAX_DEPTH) > MAX_DEPTH:
            raise _too_deep()
    unstorable = unstorable_text(inline)
    if unstorable is not None:
        raise InvalidInput(f"the data set is not usable: {unstorable}", code="dataset.invalid")
    try:
        return DataSet.model_validate({"format": kind, "inline": inline})
    except ValidationError as exc:
        detail = "; ".join(e["msg"] for e in exc.errors(include_url=False))
        raise InvalidInput(f"the data set is not usable: {detail}", code="dataset.invalid") from exc
    except csv.Error as exc:  # e.g. a field longer than the csv module's limit (131072)
        raise InvalidInput(
            f"the data set is not usable: the CSV cannot be read: {exc}", code="dataset.invalid"
        ) from exc


async def upload(
    session: AsyncSession, *, name: str, body: bytes, content_type: str | None
) -> Dataset:
    text, kind = _decode(body, content_type)
    data = parse(text, kind)
    rows = data.rows
    content = text if kind == "csv" else json.dumps(rows, ensure_ascii=False)
    dataset = Dataset(
        id=uuid.uuid4(),
        name=name,
        format=kind,
        content=content,
        row_count=len(rows),
        columns=sorted(data.columns),
        sha256=hashlib.sha256(content.encode()).hexdigest(),
    )
    return await DatasetRepository(session).add(dataset)


async def get(session: AsyncSession, dataset_id: uuid.UUID) -> Dataset:
    dataset = await DatasetRepository(session).get(dataset_id)
    if dataset is None:
        raise NotFound(f"no data set {dataset_id}", code="dataset.not_found")
    return dataset


async def resolve_references(session: AsyncSession, document: Any) -> None:
    """Copy the rows of every data set a plan document names into it (in place)."""
    if not isinstance(document, dict) or not isinstance(document.get("data"), dict):
        return
    for name, entry in document["data"].items():
        if not isinstance(entry, dict) or "dataset" not in entry:
            continue
        try:
            dataset_id = uuid.UUID(str(entry["dataset"]))
        except ValueError as exc:
            raise InvalidInput(
                f"data.{name}.dataset: {entry['dataset']!r} is not a data set id",
                code="dataset.not_found",
            ) from exc
        dataset = await DatasetRepository(session).get(dataset_id)
        if dataset is None:
            raise InvalidInput(
                f"data.{name}.dataset: no data set {dataset_id}", code="dataset.not_found"
            )
        entry["format"] = dataset.format
        entry["inline"] = (
            dataset.content if dataset.format == "csv" else json.loads(dataset.content)
        )
