from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import PlainTextResponse

from app.core.auth import Scope, requires
from app.core.db import SessionDep
from app.core.links import path_for
from app.core.openapi import problems
from app.datasets import service
from app.datasets.schemas import DatasetOut

router = APIRouter(tags=["plan"])
READ = [Depends(requires(Scope.read))]


@router.post(
    "/datasets",
    status_code=201,
    response_model=DatasetOut,
    responses=problems(400, 413, 415, 422),
    summary="Upload test data (CSV or JSON) for plans to use",
    dependencies=[Depends(requires(Scope.plan))],
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
            },
        }
    },
)
async def upload_dataset(
    request: Request,
    response: Response,
    session: SessionDep,
    name: Annotated[str, Query(min_length=1, max_length=200)],
) -> DatasetOut:
    """A plan uses it with `data: {users: {dataset: "<id>", selection: …}}`; its rows are
    copied into the plan when the plan is stored."""
    dataset = await service.upload(
        session,
        name=name,
        body=await request.body(),
        content_type=request.headers.get("content-type"),
    )
    response.headers["Location"] = path_for(request, "get_dataset", dataset_id=dataset.id)
    return DatasetOut.model_validate(dataset)


@router.get(
    "/datasets/{dataset_id}", response_model=DatasetOut, responses=problems(404), dependencies=READ
)
async def get_dataset(dataset_id: uuid.UUID, session: SessionDep) -> DatasetOut:
    return DatasetOut.model_validate(await service.get(session, dataset_id))


@router.get(
    "/datasets/{dataset_id}/content",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/csv": {}, "application/json": {}}}, **problems(404)},
    dependencies=READ,
)
async def get_dataset_content(dataset_id: uuid.UUID, session: SessionDep) -> PlainTextResponse:
    dataset = await service.get(session, dataset_id)
    media = "text/csv" if dataset.format == "csv" else "application/json"
    return PlainTextResponse(dataset.content, media_type=f"{media}; charset=utf-8")
