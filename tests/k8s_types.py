"""Kubernetes objects checked against the API's own types, as the official `kubernetes` client
generates them from the API's OpenAPI document: every field known (strictly, as kubeconform's
strict mode does), every value of its type, every required field present."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes.client as k8s
import yaml

MODELS = {
    ("v1", "ConfigMap"): "V1ConfigMap",
    ("v1", "Service"): "V1Service",
    ("v1", "ServiceAccount"): "V1ServiceAccount",
    ("apps/v1", "Deployment"): "V1Deployment",
    ("batch/v1", "Job"): "V1Job",
    ("rbac.authorization.k8s.io/v1", "Role"): "V1Role",
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): "V1RoleBinding",
    ("networking.k8s.io/v1", "NetworkPolicy"): "V1NetworkPolicy",
}
SCALARS: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "datetime": (str,),
    "date": (str,),
}


def problems(value: Any, kind: str, where: str) -> list[str]:
    """What in ``value`` the client's type ``kind`` (e.g. ``list[V1Container]``) refuses."""
    if listed := re.fullmatch(r"[Ll]ist\[(.+)\]", kind):
        if not isinstance(value, list):
            return [f"{where}: a list expected, got {value!r}"]
        inner = listed[1]
        return [p for i, item in enumerate(value) for p in problems(item, inner, f"{where}[{i}]")]
    if mapped := re.fullmatch(r"(?:dict\(|Dict\[)str,\s*(.+)[)\]]", kind):
        if not isinstance(value, dict):
            return [f"{where}: a mapping expected, got {value!r}"]
        inner = mapped[1]
        return [p for k, v in value.items() for p in problems(v, inner, f"{where}.{k}")]
    if kind == "object":  # int-or-string, quantities, free-form: the API decides
        return []
    if kind in SCALARS:
        ok = isinstance(value, SCALARS[kind]) and not (kind != "bool" and isinstance(value, bool))
        return [] if ok else [f"{where}: {kind} expected, got {value!r}"]
    model = getattr(k8s, kind)
    if not isinstance(value, dict):
        return [f"{where}: a {kind} mapping expected, got {value!r}"]
    fields = {json: attr for attr, json in model.attribute_map.items()}
    found = [f"{where}.{key}: no such field in {kind}" for key in value if key not in fields]
    for key, item in value.items():
        if key in fields:
            found += problems(item, model.openapi_types[fields[key]], f"{where}.{key}")
    return found


def check(document: dict[str, Any], where: str) -> list[str]:
    kind = MODELS.get((document.get("apiVersion", ""), document.get("kind", "")))
    if kind is None:
        return [f"{where}: {document.get('apiVersion')}/{document.get('kind')} is not checked here"]
    found = problems(document, kind, where)
    if not found:
        try:  # the client's own construction: required fields, enums it knows
            k8s.ApiClient()._ApiClient__deserialize(document, kind)  # type: ignore[attr-defined]
        except ValueError as exc:
            found.append(f"{where}: {exc}")
    return found


TESTRUN_CRD = Path(__file__).resolve().parent / "fixtures" / "k6-operator" / "k6.io_testruns.yaml"


def strict(schema: Any) -> Any:
    """A CRD schema with unknown fields refused where it lists the known ones (and does not
    keep unknown fields itself): the API server would silently prune them."""
    if isinstance(schema, dict):
        schema = {k: strict(v) for k, v in schema.items()}
        if (
            schema.get("type") == "object"
            and "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
    elif isinstance(schema, list):
        schema = [strict(v) for v in schema]
    return schema


def crd_schema(version: str) -> dict[str, Any]:
    """The TestRun CRD's openAPIV3Schema for ``version``, strict."""
    crd = yaml.safe_load(TESTRUN_CRD.read_text())
    [served] = [v for v in crd["spec"]["versions"] if v["name"] == version]
    schema: dict[str, Any] = strict(served["schema"]["openAPIV3Schema"])
    return schema
