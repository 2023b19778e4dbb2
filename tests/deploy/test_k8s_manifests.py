"""deploy/k8s/ checked against the Kubernetes API's own types (tests/k8s_types.py), then for
what a deployment needs of them (probes, resources, non-root API, the worker's RBAC)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.conftest import REPOSITORY
from tests.k8s_types import check

K8S = REPOSITORY / "deploy" / "k8s"


def manifests() -> list[tuple[str, dict[str, Any]]]:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    return [
        (f"{name}#{i}", document)
        for name in kustomization["resources"]
        for i, document in enumerate(yaml.safe_load_all((K8S / name).read_text()))
        if document
    ]


def of_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for _, d in manifests() if d["kind"] == kind}


def test_the_kustomization_lists_every_manifest_in_the_folder() -> None:
    listed = yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"]

    assert sorted(listed) == sorted(p.name for p in K8S.glob("*.yaml") if p.stem != "kustomization")


MANIFESTS = manifests()


@pytest.mark.parametrize(("where", "document"), MANIFESTS, ids=[w for w, _ in MANIFESTS])
def test_each_manifest_is_valid_for_the_kubernetes_api(
    where: str, document: dict[str, Any]
) -> None:
    assert check(document, where) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: d["spec"].update(replicas="2"), "spec.replicas: int expected"),
        (lambda d: d["spec"]["template"]["spec"].update(restartpolicy="Always"), "no such field"),
        (
            lambda d: d["spec"]["template"]["spec"]["containers"][0].pop("name"),
            "for V1Container\nname",
        ),
        (lambda d: d["spec"]["template"]["spec"]["containers"][0].update(ports=8000), "a list"),
    ],
)
def test_the_check_refuses_what_the_api_would(change: Any, expected: str) -> None:
    """The checks above check something: each of these faults is caught."""
    deployment = yaml.safe_load((K8S / "api.yaml").read_text().split("\n---\n")[0])
    change(deployment)

    assert any(expected in problem for problem in check(deployment, "api.yaml"))


def test_the_api_is_probed_on_healthz_and_readyz_and_runs_as_non_root() -> None:
    api = of_kind("Deployment")["perf-agent-api"]["spec"]["template"]["spec"]
    [container] = api["containers"]

    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert api["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert "--no-worker" in container["command"]
    service = of_kind("Service")["perf-agent-api"]
    assert service["spec"]["selector"] == api_labels()


def api_labels() -> dict[str, str]:
    labels: dict[str, str] = of_kind("Deployment")["perf-agent-api"]["spec"]["selector"][
        "matchLabels"
    ]
    return labels


def test_every_container_asks_for_resources_and_reads_the_database_url_from_the_secret() -> None:
    pods = [d["spec"]["template"]["spec"] for d in [*of_kind("Deployment").values()]]
    pods += [job["spec"]["template"]["spec"] for job in of_kind("Job").values()]

    for pod in pods:
        for container in pod["containers"]:
            assert container["resources"]["requests"]["cpu"]
            assert container["resources"]["limits"]["memory"]
            url = next(e for e in container["env"] if e["name"] == "PERF_AGENT_DATABASE_URL")
            assert url["valueFrom"]["secretKeyRef"] == {"name": "perf-agent", "key": "database-url"}
            assert container["envFrom"] == [{"configMapRef": {"name": "perf-agent"}}]


def test_the_migrations_job_upgrades_the_schema() -> None:
    job = of_kind("Job")["perf-agent-migrate"]["spec"]["template"]["spec"]

    assert job["containers"][0]["command"] == ["perf-agent", "db", "upgrade"]
    assert job["restartPolicy"] == "OnFailure"


def test_a_worker_may_create_watch_and_delete_testruns_and_nothing_cluster_wide() -> None:
    role = of_kind("Role")["perf-agent-worker"]
    binding = of_kind("RoleBinding")["perf-agent-worker"]
    worker = of_kind("Deployment")["perf-agent-worker"]["spec"]["template"]["spec"]

    verbs = {(g, r): set(rule["verbs"]) for rule in role["rules"] for g in rule["apiGroups"]
             for r in rule["resources"]}  # fmt: skip
    assert {"create", "get", "watch", "delete"} <= verbs[("k6.io", "testruns")]
    assert {"create", "delete"} <= verbs[("", "configmaps")]
    assert {"create", "delete"} <= verbs[("networking.k8s.io", "networkpolicies")]
    assert binding["roleRef"]["name"] == "perf-agent-worker"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "perf-agent-worker"}]
    assert worker["serviceAccountName"] == "perf-agent-worker"
    assert not of_kind("ClusterRole")
    assert "NET_ADMIN" in worker["containers"][0]["securityContext"]["capabilities"]["add"]
