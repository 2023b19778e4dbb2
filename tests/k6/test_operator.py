"""The manifests a k6-operator backend applies for a run: the TestRun validates against the
operator's own CRD schema (tests/fixtures/k6-operator, strictly: a field the schema does not
name is an error, as the API server's pruning would silently drop it), the ConfigMap and the
NetworkPolicy against the Kubernetes API's types, and the policy lets the runners reach the
target and nothing else."""

from __future__ import annotations

import copy
import dataclasses
import uuid
from typing import Any

import jsonschema
import pytest
import yaml

from app.k6 import operator
from app.k6.operator import Endpoint, OperatorRun, Runners
from tests.k8s_types import TESTRUN_CRD, check, crd_schema

RUN = uuid.UUID("5f0c8a7e-2d4b-4c1e-9a7f-3b6d2e1c0a98")
SCRIPT = """import http from 'k6/http';
export default function () { http.get('http://shop.staging.example:8080/'); }
"""


@pytest.fixture(scope="module")
def testrun_schema() -> dict[str, Any]:
    crd = yaml.safe_load(TESTRUN_CRD.read_text())
    assert crd["spec"]["group"] == operator.GROUP
    assert crd["spec"]["names"]["plural"] == operator.PLURAL
    assert crd["spec"]["names"]["kind"] == operator.KIND
    return crd_schema(operator.VERSION)


def run(**changes: Any) -> OperatorRun:
    spec = OperatorRun(
        run_id=RUN,
        script=SCRIPT,
        target=Endpoint(addresses=("10.20.30.40", "10.20.30.41"), port=8080),
        runners=Runners(parallelism=3, cpu="2", memory="2Gi"),
        arguments=("--tag", f"testid={RUN}", "--out", "experimental-prometheus-rw"),
        env=(("K6_PROMETHEUS_RW_SERVER_URL", "http://10.1.2.3:9201/api/v1/write"),),
        receiver=Endpoint(addresses=("10.1.2.3",), port=9201),
        namespace="perf",
    )
    return dataclasses.replace(spec, **changes)


def errors(schema: dict[str, Any], document: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(schema)
    return [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(document)
    ]


def test_the_testrun_validates_against_the_operators_crd(testrun_schema: dict[str, Any]) -> None:
    made = operator.testrun(run())

    assert errors(testrun_schema, made) == []
    assert made["apiVersion"] == "k6.io/v1alpha1"
    assert made["spec"]["parallelism"] == 3
    assert made["spec"]["script"] == {
        "configMap": {"name": operator.name_of(RUN), "file": "script.js"}
    }
    assert made["spec"]["arguments"] == f"--tag testid={RUN} --out experimental-prometheus-rw"


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (lambda t: t["spec"].update(paralelism=3), "'paralelism' was unexpected"),
        (lambda t: t["spec"].update(parallelism="3"), "'3' is not of type 'integer'"),
        (lambda t: t["spec"].pop("script"), "'script' is a required property"),
        (
            lambda t: t["spec"]["runner"].update(automountServiceAccountToken=False),
            "not of type 'string'",
        ),
        (lambda t: t["spec"]["runner"]["resources"]["limits"].update(cpu="two"), "does not match"),
    ],
)
def test_the_schema_check_refuses_what_the_api_server_would(
    testrun_schema: dict[str, Any], fault: Any, expected: str
) -> None:
    """The check above checks something: each fault is caught."""
    broken = copy.deepcopy(operator.testrun(run()))
    fault(broken)

    assert any(expected in e for e in errors(testrun_schema, broken))


def test_the_configmap_and_the_policy_are_valid_kubernetes_objects() -> None:
    config_map, policy, _ = operator.manifests(run())

    assert check(config_map, "configmap") == []
    assert check(policy, "networkpolicy") == []
    assert config_map["data"] == {"script.js": run().script}
    assert [m["metadata"]["name"] for m in operator.manifests(run())] == [operator.name_of(RUN)] * 3
    assert {m["metadata"]["namespace"] for m in operator.manifests(run())} == {"perf"}


def test_every_pod_of_the_run_runs_without_root_capabilities_or_a_token() -> None:
    spec = operator.testrun(run())["spec"]

    for role in ("runner", "starter", "initializer"):
        pod = spec[role]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["containerSecurityContext"] == {
            "allowPrivilegeEscalation": False,
            "privileged": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        }
        assert pod["automountServiceAccountToken"] == "false"
    assert spec["runner"]["resources"]["limits"] == {"cpu": "2", "memory": "2Gi"}
    assert spec["runner"]["env"] == [
        {"name": "K6_PROMETHEUS_RW_SERVER_URL", "value": "http://10.1.2.3:9201/api/v1/write"}
    ]


def test_the_policy_lets_the_runners_reach_the_target_dns_each_other_and_the_receiver_only() -> (
    None
):
    policy = operator.network_policy(run())["spec"]
    own = {"k6_cr": operator.name_of(RUN)}

    assert policy["podSelector"] == {"matchLabels": own}
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    reachable = []
    for rule in policy["egress"]:
        for peer in rule["to"]:
            where = peer.get("ipBlock", {}).get("cidr") or (
                peer.get("podSelector", {}).get("matchLabels", {}).get("k8s-app")
                or str(peer["podSelector"]["matchLabels"])
            )
            reachable += [(where, p["protocol"], p["port"]) for p in rule["ports"]]
    assert sorted(reachable) == sorted(
        [
            ("10.20.30.40/32", "TCP", 8080),
            ("10.20.30.41/32", "TCP", 8080),
            ("10.1.2.3/32", "TCP", 9201),
            ("kube-dns", "UDP", 53),
            ("kube-dns", "TCP", 53),
            (str(own), "TCP", 6565),
        ]
    )
    assert not any(
        "except" in peer.get("ipBlock", {}) for r in policy["egress"] for peer in r["to"]
    )
    assert policy["ingress"] == [
        {
            "from": [{"podSelector": {"matchLabels": own}}],
            "ports": [{"protocol": "TCP", "port": 6565}],
        }
    ]


def test_an_ipv6_target_is_one_host_and_no_receiver_means_no_rule_for_one() -> None:
    policy = operator.network_policy(
        run(target=Endpoint(addresses=("2001:db8::7",), port=443), receiver=None)
    )["spec"]

    cidrs = [p["ipBlock"]["cidr"] for r in policy["egress"] for p in r["to"] if "ipBlock" in p]
    assert cidrs == ["2001:db8::7/128"]


def test_a_name_where_an_address_belongs_is_refused() -> None:
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 address"):
        Endpoint(addresses=("shop.staging.example",), port=80)


@pytest.mark.parametrize("argument", ["name=two words", "json=$(id)", "x=`id`", "a'b"])
def test_an_argument_the_operator_would_split_or_a_shell_would_read_is_refused(
    argument: str,
) -> None:
    with pytest.raises(ValueError, match="the operator splits its arguments on spaces"):
        operator.testrun(run(arguments=("--tag", argument)))


def test_parallelism_is_bounded() -> None:
    with pytest.raises(ValueError, match="parallelism must be between 1 and 100"):
        Runners(parallelism=0)


def test_the_stage_is_read_from_the_status_the_operator_writes() -> None:
    made = operator.testrun(run())

    assert operator.stage_of(made) is None
    assert operator.stage_of({**made, "status": {"stage": "started"}}) == "started"
    assert operator.STAGES[-1] == "finished"
