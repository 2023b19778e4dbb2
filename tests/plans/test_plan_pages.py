from __future__ import annotations

from httpx import AsyncClient

from tests.builders import API, plan_doc


async def test_versions_are_paged_newest_first_and_lists_carry_no_scripts(
    client: AsyncClient,
) -> None:
    first = (await client.post(f"{API}/plan", json=plan_doc(name="paged"))).json()
    for vus in (2, 3, 4):
        edited = plan_doc(name="paged", load={"vus": vus, "duration": "5s"})
        assert (await client.post(first["links"]["versions"], json=edited)).status_code == 201

    versions: list[int] = []
    url: str | None = f"{first['links']['versions']}?limit=3"
    while url is not None:
        page = (await client.get(url)).json()
        versions += [v["version"] for v in page["items"]]
        url = page["next"]
    listed = (await client.get(f"{API}/plans", params={"name": "paged", "limit": 2})).json()

    assert versions == [4, 3, 2, 1]
    assert [p["version"] for p in listed["items"]] == [4, 3]
    assert listed["next"] is not None
    assert not {"script", "spec"} & set(listed["items"][0])
    assert listed["items"][0]["links"]["self"].startswith(f"{API}/plans/")
