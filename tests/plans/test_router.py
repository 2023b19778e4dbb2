from __future__ import annotations

import json
import uuid
from pathlib import Path
from xml.etree import ElementTree

import yaml
from httpx import AsyncClient

from tests.builders import API, plan_doc

PROBLEM = "application/problem+json"
DOCS_SCHEMA = Path(__file__).resolve().parents[2] / "docs" / "plan-schema.json"


async def test_json_plan_is_stored_with_its_script(client: AsyncClient) -> None:
    response = await client.post(f"{API}/plan", json=plan_doc())

    assert response.status_code == 201
    body = response.json()
    assert response.headers["location"] == f"{API}/plans/{body['id']}"
    assert body["name"] == "orders-api"
    assert body["version"] == 1
    assert "http_req_duration{expected_response:true}" in body["script"]
    assert body["spec"]["slos"][1] == {
        "sli": "error_rate",
        "op": "<",
        "target": 0.01,
        "endpoint": "create_order",
        "relative_op": None,
        "relative_change": None,
        "warning_op": None,
        "warning_target": None,
        "weight": 1,
        "key_sli": False,
    }
    assert body["spec"]["scoring"] == {"pass": 100, "warning": 100}


async def test_yaml_plan_round_trips_through_get(client: AsyncClient) -> None:
    created = await client.post(
        f"{API}/plan",
        content=yaml.safe_dump(plan_doc()),
        headers={"Content-Type": "application/yaml"},
    )
    assert created.status_code == 201

    fetched = await client.get(created.headers["location"])

    assert fetched.status_code == 200
    assert fetched.json()["spec"] == created.json()["spec"]


async def test_script_is_served_as_javascript(client: AsyncClient) -> None:
    created = (await client.post(f"{API}/plan", json=plan_doc())).json()

    response = await client.get(created["links"]["script"])

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    assert response.text == created["script"]
    assert response.headers["etag"] == f'"{created["script_sha256"]}"'


async def test_malformed_yaml_is_a_400_problem_with_its_position(client: AsyncClient) -> None:
    response = await client.post(
        f"{API}/plan",
        content=b"name: x\nendpoints: [unclosed\n",
        headers={"Content-Type": "application/yaml"},
    )

    assert response.status_code == 400
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["code"] == "plan.malformed_yaml"
    assert "line" in problem["detail"]


async def test_yaml_aliases_are_refused(client: AsyncClient) -> None:
    response = await client.post(
        f"{API}/plan",
        content=b"a: &x [1, 2]\nb: *x\n",
        headers={"Content-Type": "application/yaml"},
    )

    assert response.status_code == 400
    assert response.json()["code"] == "plan.malformed_yaml"


async def test_malformed_json_is_a_400_problem(client: AsyncClient) -> None:
    response = await client.post(
        f"{API}/plan", content=b'{"name": ', headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 400
    assert response.json()["code"] == "plan.malformed_json"


async def test_missing_fields_are_a_422_problem_listing_each(client: AsyncClient) -> None:
    response = await client.post(f"{API}/plan", json={"name": "x"})

    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["code"] == "validation_error"
    missing = {tuple(e["loc"]) for e in problem["errors"]}
    assert ("body", "target") in missing


async def test_a_plan_without_load_is_told_so(client: AsyncClient) -> None:
    doc = plan_doc()
    del doc["load"]

    response = await client.post(f"{API}/plan", json=doc)

    assert response.status_code == 422
    assert "load profile" in response.json()["detail"]


async def test_a_list_instead_of_a_plan_is_refused(client: AsyncClient) -> None:
    response = await client.post(f"{API}/plan", json=[1, 2])

    assert response.status_code == 422
    assert response.json()["code"] == "plan.not_a_mapping"


async def test_unparseable_slo_names_the_field(client: AsyncClient) -> None:
    response = await client.post(f"{API}/plan", json=plan_doc(slos=["p95 fast please"]))

    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"][:3] == ["body", "slos", 0]


async def test_slo_on_unknown_endpoint_is_refused(client: AsyncClient) -> None:
    response = await client.post(
        f"{API}/plan", json=plan_doc(slos=[{"objective": "p95<10ms", "endpoint": "nope"}])
    )

    assert response.status_code == 422
    assert "nope" in response.json()["detail"]


async def test_wrong_content_type_is_415(client: AsyncClient) -> None:
    response = await client.post(
        f"{API}/plan",
        content=b"name=x",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )

    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_media_type"


async def test_empty_body_is_a_400_problem(client: AsyncClient) -> None:
    response = await client.post(
        f"{API}/plan", content=b"  ", headers={"Content-Type": "application/yaml"}
    )

    assert response.status_code == 400
    assert response.json()["code"] == "plan.empty"


async def test_unknown_plan_is_404_problem(client: AsyncClient) -> None:
    response = await client.get(f"{API}/plans/{uuid.uuid4()}")

    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["code"] == "plan.not_found"


async def test_malformed_plan_id_is_422_problem(client: AsyncClient) -> None:
    response = await client.get(f"{API}/plans/not-a-uuid")

    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


async def test_production_host_is_refused_by_guardrail(client: AsyncClient) -> None:
    doc = plan_doc(target={"base_url": "https://api.prod.example.com"})

    response = await client.post(f"{API}/plan", json=doc)

    assert response.status_code == 422
    assert response.json()["code"] == "guardrail.host_denied"


async def test_unlisted_host_is_refused_by_guardrail(client: AsyncClient) -> None:
    doc = plan_doc(target={"base_url": "http://petstore.swagger.io/v1"})

    response = await client.post(f"{API}/plan", json=doc)

    assert response.status_code == 422
    assert response.json()["code"] == "guardrail.host_not_allowed"


async def test_vus_above_the_ceiling_are_refused(client: AsyncClient) -> None:
    doc = plan_doc(load={"stages": [{"duration": "10s", "target": 1001}]})

    response = await client.post(f"{API}/plan", json=doc)

    assert response.status_code == 422
    problem = response.json()
    assert problem["code"] == "guardrail.vu_ceiling"
    assert problem["ceiling"] == 1000


async def test_duration_beyond_thirty_minutes_is_refused(client: AsyncClient) -> None:
    response = await client.post(f"{API}/plan", json=plan_doc(load={"vus": 1, "duration": "31m"}))

    assert response.status_code == 422
    assert response.json()["code"] == "guardrail.max_duration"


async def test_plans_are_listed_newest_first(client: AsyncClient) -> None:
    first = (await client.post(f"{API}/plan", json=plan_doc(name="a"))).json()
    second = (await client.post(f"{API}/plan", json=plan_doc(name="b"))).json()

    listed = (await client.get(f"{API}/plans")).json()["items"]

    ids = [p["id"] for p in listed]
    assert ids.index(second["id"]) < ids.index(first["id"])


async def test_the_plan_schema_is_served_and_matches_the_docs(client: AsyncClient) -> None:
    served = (await client.get(f"{API}/plans/schema")).json()

    assert served["$id"] == "urn:perf-agent:plan:v1"
    assert {"target", "scenarios", "load", "slos", "data"} <= set(served["properties"])
    # Regenerate with: .venv/bin/perf-agent plan-schema > docs/plan-schema.json
    assert json.loads(DOCS_SCHEMA.read_text()) == served


async def test_a_plan_renders_as_jmeter_with_its_data_files(client: AsyncClient) -> None:
    doc = plan_doc(
        data={"users": {"format": "csv", "inline": "username\nalice\nbob\n"}},
        endpoints=None,
        scenarios=[
            {
                "name": "main",
                "data": "users",
                "steps": [{"name": "hello", "path": "/hello/{{data.username}}"}],
            }
        ],
        slos=["p95 < 300ms"],
    )
    plan = (await client.post(f"{API}/plan", json=doc)).json()

    jmx = await client.get(f"{API}/plans/{plan['id']}/script.jmx")
    csv = await client.get(f"{API}/plans/{plan['id']}/jmeter/users.csv")
    missing = await client.get(f"{API}/plans/{plan['id']}/jmeter/nope.csv")

    assert jmx.status_code == 200
    assert jmx.headers["content-type"].startswith("application/xml")
    root = ElementTree.fromstring(jmx.text)
    assert root.tag == "jmeterTestPlan"
    assert [e.get("testname") for e in root.iter("HTTPSamplerProxy")] == ["hello"]
    assert csv.text.splitlines()[1:] == ["alice", "bob"]
    assert missing.status_code == 404
