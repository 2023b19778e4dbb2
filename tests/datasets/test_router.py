from __future__ import annotations

import uuid

import pytest
from httpx import AsyncClient

from tests.builders import API, plan_doc

USERS_CSV = "username,password\nuser1,pw-1\nuser2,pw-2\n"


async def upload(client: AsyncClient, body: str, content_type: str) -> AsyncClient:
    return await client.post(  # type: ignore[return-value]
        f"{API}/datasets",
        params={"name": "users"},
        content=body,
        headers={"Content-Type": content_type},
    )


async def test_a_csv_upload_is_stored_with_its_shape(client: AsyncClient) -> None:
    response = await upload(client, USERS_CSV, "text/csv")

    assert response.status_code == 201
    body = response.json()
    assert (body["format"], body["row_count"], body["columns"]) == (
        "csv",
        2,
        ["password", "username"],
    )
    content = await client.get(f"{API}/datasets/{body['id']}/content")
    assert content.text == USERS_CSV


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        ("a,b\n1,2\n", "text/plain", 415, "unsupported_media_type"),
        ("[{", "application/json", 400, "dataset.malformed"),
        ('{"a": 1}', "application/json", 422, "dataset.invalid"),
        ("[]", "application/json", 422, "dataset.invalid"),
        ("only,a,header\n", "text/csv", 422, "dataset.invalid"),
    ],
)
async def test_unusable_uploads_are_clear_problems(
    client: AsyncClient, body: str, content_type: str, status: int, code: str
) -> None:
    response = await upload(client, body, content_type)

    assert response.status_code == status
    assert response.json()["code"] == code


async def test_a_plan_using_an_uploaded_data_set_carries_its_rows(client: AsyncClient) -> None:
    dataset = (await upload(client, USERS_CSV, "text/csv")).json()
    doc = plan_doc(
        endpoints=None,
        data={"users": {"dataset": dataset["id"], "selection": "random"}},
        scenarios=[
            {
                "name": "main",
                "data": "users",
                "steps": [{"name": "who", "path": "/users/{{data.username}}"}],
            }
        ],
        slos=[],
    )

    response = await client.post(f"{API}/plan", json=doc)

    assert response.status_code == 201, response.text
    stored = response.json()["spec"]["data"]["users"]
    assert (stored["dataset"], stored["format"], stored["inline"]) == (
        dataset["id"],
        "csv",
        USERS_CSV.strip(),  # plan strings are stored trimmed
    )
    assert '\\"username\\": \\"user2\\"' in response.json()["script"]


async def test_a_plan_naming_an_unknown_data_set_is_refused(client: AsyncClient) -> None:
    doc = plan_doc(data={"users": {"dataset": str(uuid.uuid4())}})

    response = await client.post(f"{API}/plan", json=doc)

    assert response.status_code == 422
    assert response.json()["code"] == "dataset.not_found"
