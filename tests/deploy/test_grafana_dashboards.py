"""The Grafana dashboards in ``deploy/grafana``: valid dashboard JSON, and every series and label
their PromQL names is one the project produces.

No JSON Schema of Grafana's dashboard model ships in a package (``@grafana/schema`` holds
TypeScript types, ``grafana-foundation-sdk`` builders), so the structure Grafana needs to import
a dashboard is checked here field by field. The PromQL is parsed by Prometheus's own parser
(``promtool check rules``), and its names are checked against a real ``GET /metrics`` of the app
and against what k6 1.1.0 pushes through its remote-write output with native histograms
(``tests/fixtures/k6_remote_write_series.json``, recorded from k6 itself).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from httpx import AsyncClient
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import metrics as vocabulary
from app.models import Analysis
from tests.builders import make_plan, make_run, result
from tests.conftest import REPOSITORY

GRAFANA = REPOSITORY / "deploy" / "grafana"
K6_DASHBOARD = GRAFANA / "k6-native-histograms.json"
SERVICE_DASHBOARD = GRAFANA / "perf-agent-service.json"
DASHBOARDS = [K6_DASHBOARD, SERVICE_DASHBOARD]
K6_SERIES = REPOSITORY / "tests" / "fixtures" / "k6_remote_write_series.json"
PROMTOOL = Path("/usr/bin/promtool")
MISSING_PROMTOOL = (
    f"{PROMTOOL} is missing: this test parses the dashboards' PromQL with Prometheus's own "
    "parser, from Debian's package `prometheus` (apt-get install prometheus)"
)

GRID_COLUMNS = 24
# Variables Grafana itself defines.
GRAFANA_VARIABLES = {"__rate_interval", "__range", "__interval", "__interval_ms", "__range_s"}
# What Grafana puts in place of its variables before PromQL sees an expression.
SUBSTITUTES = {"__rate_interval": "1m", "__range": "1h", "__interval": "15s"}
# Labels Prometheus adds to every series it scrapes (the service's /metrics).
SCRAPE_LABELS = {"job", "instance"}
KEYWORDS = {
    "and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left",
    "group_right", "inf", "nan", "start", "end",
}  # fmt: skip

Labels = frozenset[str]


def load(path: Path) -> dict[str, Any]:
    doc = json.loads(path.read_text())
    assert isinstance(doc, dict), f"{path.name}: not a JSON object"
    return doc


def all_panels(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, those inside collapsed rows too."""
    for panel in doc["panels"]:
        yield panel
        yield from panel.get("panels", [])


@dataclass
class Query:
    where: str  # for messages: file, panel and query
    expr: str
    texts: list[str] = field(default_factory=list)  # legend and annotation formats: {{label}}


def queries(path: Path) -> list[Query]:
    """Every PromQL expression of a dashboard: panel targets, annotations, variable queries."""
    doc = load(path)
    found: list[Query] = []
    for panel in all_panels(doc):
        for target in panel.get("targets", []):
            where = f"{path.name}: panel {panel['title']!r} {target.get('refId')}"
            found.append(Query(where, target["expr"], [target.get("legendFormat", "")]))
    for note in doc["annotations"]["list"]:
        if "expr" in note:
            texts = [note.get("titleFormat", ""), note.get("textFormat", "")]
            texts += ["{{" + key + "}}" for key in note.get("tagKeys", "").split(",") if key]
            found.append(Query(f"{path.name}: annotation {note['name']!r}", note["expr"], texts))
    for variable in doc["templating"]["list"]:
        if variable["type"] == "query":
            text = variable["query"]
            text = text["query"] if isinstance(text, dict) else text
            assert text == variable["definition"], f"{variable['name']}: definition ≠ query"
            match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", text)
            assert match, f"{path.name}: variable {variable['name']}: not label_values(…, label)"
            found.append(
                Query(
                    f"{path.name}: variable {variable['name']!r}",
                    match.group(1),
                    ["{{" + match.group(2) + "}}"],
                )
            )
    return found


# --- PromQL names -------------------------------------------------------------------------


@dataclass
class Names:
    metrics: list[str]  # series names the expression selects
    selectors: list[tuple[str | None, Labels]]  # (metric, labels its matchers name)
    grouping: Labels  # labels of by / without / on / ignoring / group_left / group_right
    variables: set[str]


STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")
MATCHERS = re.compile(r"([A-Za-z_:][\w:]*)?\s*\{([^{}]*)\}")
MATCHER_LABEL = re.compile(r"([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)")
GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^()]*)\)")
IDENTIFIER = re.compile(r"(?<![\w.:])([A-Za-z_:][\w:]*)(?![\w:])(?!\s*\()")


def names(expr: str) -> Names:
    """The series and labels a PromQL expression names. Strings (matcher values), ranges and
    Grafana's variables are cut out first; what follows ``(`` is a function or aggregation."""
    variables = {a or b for a, b in VARIABLE.findall(expr)}
    text = STRING.sub('""', expr)
    text = re.sub(r"\[[^\]]*\]", " ", text)  # [5m], [$__rate_interval], [$__range:]
    selectors: list[tuple[str | None, Labels]] = []

    def selector(match: re.Match[str]) -> str:
        metric = match.group(1)
        if metric in KEYWORDS:
            metric = None
        selectors.append((metric, frozenset(MATCHER_LABEL.findall(match.group(2)))))
        return f" {metric or ''} "

    text = MATCHERS.sub(selector, text)
    grouping = frozenset(
        label.strip() for labels in GROUPING.findall(text) for label in labels.split(",")
    ) - {""}
    text = GROUPING.sub(" ", text)
    text = VARIABLE.sub(" ", text)
    metrics = [m for m in IDENTIFIER.findall(text) if m not in KEYWORDS]
    return Names(metrics, selectors, grouping, variables)


def test_the_promql_name_extraction() -> None:
    found = names(
        'histogram_quantile(0.95, sum by (name, le) (rate(a_b{testid=~"$testid", x="y{z}"}'
        "[$__rate_interval]))) / ignoring(q) sum(c) * 1e3 or vector(0) > bool 2 and on() d"
    )

    assert found.metrics == ["a_b", "c", "d"]
    assert found.selectors == [("a_b", frozenset({"testid", "x"}))]
    assert found.grouping == {"name", "le", "q"}
    assert found.variables == {"testid", "__rate_interval"}


# --- what the project exposes -------------------------------------------------------------


def k6_series() -> dict[str, Any]:
    doc = json.loads(K6_SERIES.read_text())
    assert doc["k6_version"].startswith("k6 v1.1.0")
    series: dict[str, Any] = doc["series"]
    return series


def k6_labels() -> dict[str, Labels]:
    added = set(json.loads(K6_SERIES.read_text())["added_labels"])
    return {name: frozenset(s["labels"]) | added for name, s in k6_series().items()}


def declared_labels() -> dict[str, Labels]:
    """Label names of the process-local families, also those no sample has shown yet, and of
    the database's families as a snapshot with every figure set (a knee, say) shows them."""
    declared = {
        metric._name: frozenset(metric._labelnames)
        for metric in vars(vocabulary).values()
        if isinstance(metric, MetricWrapperBase)
    }
    full = vocabulary.DatabaseSnapshot(
        runs_by_state={},
        oldest_queued_age_s=None,
        results=[vocabulary.LatestResult("p", "e", "*", 1.0, 2.0, 0.0, 1, 0.0)],
        verdicts=[vocabulary.PlanVerdict("p", "e", "pass", 10.0, 2.0, "vus")],
        results_truncated=False,
    )
    for family in vocabulary.database_families(full):
        labels = {label for sample in family.samples for label in sample.labels}
        declared[family.name] = declared.get(family.name, frozenset()) | labels
    return declared


SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
}


async def exposed(client: AsyncClient, session: AsyncSession) -> dict[str, Labels]:
    """Every series name a real ``GET /metrics`` of the app exposes, with its label names, after
    a finished and analysed run has filled the database's families."""
    plan = await make_plan(session, name="dashboards")
    run = await make_run(session, plan, results=[result("*", p95=100), result("pay", p95=90)])
    session.add(
        Analysis(
            run_id=run.id, verdict="pass", slo_results=[], findings=[], warnings=[], report_md=""
        )
    )
    await session.commit()
    response = await client.get("/metrics")
    assert response.status_code == 200
    declared = declared_labels()
    series: dict[str, Labels] = {}
    for family in text_string_to_metric_families(response.text):
        seen = {label for sample in family.samples for label in sample.labels} - {"le"}
        labels = frozenset(seen) | declared.get(family.name, frozenset()) | SCRAPE_LABELS
        for suffix in SUFFIXES.get(family.type, ("",)):
            series[family.name + suffix] = labels | ({"le"} if suffix == "_bucket" else set())
        for sample in family.samples:
            series.setdefault(sample.name, labels)
    assert "perf_agent_latest_run_finished_timestamp_seconds" in series
    return series


async def test_every_series_and_label_the_dashboards_name_is_produced_by_the_project(
    client: AsyncClient, session: AsyncSession
) -> None:
    service = await exposed(client, session)
    k6 = k6_labels()
    assert not set(service) & set(k6)
    known = {**service, **k6}
    unknown: list[str] = []
    wrong_labels: list[str] = []

    for path in DASHBOARDS:
        for query in queries(path):
            found = names(query.expr)
            assert found.metrics, f"{query.where}: names no series: {query.expr}"
            unknown += [f"{query.where}: {m}" for m in found.metrics if m not in known]
            for metric, labels in found.selectors:
                assert metric is not None, f"{query.where}: a selector without a metric name"
                extra = labels - known.get(metric, labels)
                if extra:
                    wrong_labels.append(f"{query.where}: {metric} has no {sorted(extra)}")
            # Labels grouped on or shown must be on one of the series the expression reads.
            available = frozenset().union(*(known.get(m, frozenset()) for m in found.metrics))
            shown = {
                label for text in query.texts for label in re.findall(r"\{\{\s*(\w+)\s*\}\}", text)
            }
            extra = (found.grouping | shown) - available
            if extra:
                wrong_labels.append(f"{query.where}: no series it reads has {sorted(extra)}")

    assert unknown == []
    assert wrong_labels == []


def test_k6_durations_are_read_as_native_histograms() -> None:
    """k6's trends arrive as native histograms: no ``_bucket``/``_sum``/``_count`` series and no
    ``le`` label exist for them, and each is read through a histogram function."""
    histograms = {n for n, s in k6_series().items() if s["kind"] == "native_histogram"}
    assert "k6_http_req_duration_seconds" in histograms
    for path in DASHBOARDS:
        for query in queries(path):
            found = names(query.expr)
            k6 = [m for m in found.metrics if m.startswith("k6_")]
            classic = [m for m in k6 if re.search(r"_(bucket|sum|count)$", m)]
            assert classic == [], f"{query.where}: classic-histogram series of k6: {classic}"
            if k6:
                assert "le" not in found.grouping, f"{query.where}: k6 has no le label"
            if set(k6) & histograms and not query.where.split(": ")[1].startswith("variable"):
                assert re.search(r"histogram_(quantile|sum|count|fraction)\(", query.expr), (
                    f"{query.where}: a native histogram read without a histogram function"
                )


def test_the_k6_dashboard_filters_every_k6_series_on_the_run() -> None:
    """``testid`` (the run's id, set by the worker when it forwards) is what k6's own Grafana
    dashboards filter on; the plan, environment and endpoint narrow it further."""
    doc = load(K6_DASHBOARD)
    variables = {v["name"]: v for v in doc["templating"]["list"]}
    assert {"datasource", "testid", "plan", "environment", "name"} <= set(variables)
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for query in queries(K6_DASHBOARD):
        found = names(query.expr)
        for metric, labels in found.selectors:
            if metric and metric.startswith("k6_") and "variable" not in query.where:
                assert {"testid", "plan", "environment"} <= labels, query.where
                assert 'testid=~"$testid"' in query.expr, query.where
                if "name" in k6_labels().get(metric, frozenset()):
                    assert 'name=~"$name"' in query.expr, query.where
    exprs = " ".join(q.expr for q in queries(K6_DASHBOARD))
    assert (
        "histogram_quantile(0.95, sum by (name) "
        '(rate(k6_http_req_duration_seconds{testid=~"$testid"'
    ) in exprs
    for quantile in ("0.50", "0.95", "0.99"):
        assert f"histogram_quantile({quantile}, sum by (name)" in exprs


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_run_finishes_and_verdicts_are_annotations(path: Path) -> None:
    notes = {note["name"]: note for note in load(path)["annotations"]["list"]}
    finished = notes["Run finished"]
    # Grafana reads a series value used as the time in milliseconds.
    assert "perf_agent_latest_run_finished_timestamp_seconds" in finished["expr"]
    assert finished["expr"].rstrip().endswith("* 1000")
    assert finished["useValueForTime"] is True
    verdicts = [n for n in notes.values() if "perf_agent_plan_verdict" in n.get("expr", "")]
    assert {n["name"] for n in verdicts} == {"Verdict: fail", "Verdict: warning", "Verdict: pass"}
    for note in verdicts:
        assert note["expr"].rstrip().endswith("== 1")
        assert note["useValueForTime"] is False
        assert set(note["tagKeys"].split(",")) == {"plan", "environment", "verdict"}


# --- the dashboard model ------------------------------------------------------------------


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_each_file_is_a_grafana_dashboard(path: Path) -> None:
    doc = load(path)

    assert isinstance(doc["title"], str)
    assert doc["title"]
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,40}", doc["uid"]), "uid: 1-40 of [A-Za-z0-9_-]"
    assert is_int(doc["schemaVersion"])
    assert 36 <= doc["schemaVersion"] <= 41  # Grafana 9.4 … 11
    assert doc.get("id") is None, "an exported dashboard carries no instance's numeric id"
    assert all(isinstance(tag, str) for tag in doc["tags"])
    assert set(doc["time"]) == {"from", "to"}
    assert isinstance(doc["templating"]["list"], list)
    assert isinstance(doc["annotations"]["list"], list)

    ids = [panel["id"] for panel in all_panels(doc)]
    assert all(is_int(i) for i in ids), "panel ids are ints"
    assert len(ids) == len(set(ids)), "panel ids repeat"
    cells: dict[tuple[int, int], str] = {}
    for panel in all_panels(doc):
        name = f"panel {panel.get('title')!r}"
        for key in ("type", "title"):
            assert isinstance(panel[key], str), name
            assert panel[key], name
        grid = panel["gridPos"]
        assert set(grid) == {"x", "y", "w", "h"}, name
        assert all(is_int(grid[k]) for k in grid), name
        assert min(grid["x"], grid["y"]) >= 0, name
        assert min(grid["w"], grid["h"]) >= 1, name
        assert grid["x"] + grid["w"] <= GRID_COLUMNS, f"{name} is wider than the grid"
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{name} overlaps {cells[(x, y)]}"
                cells[(x, y)] = name
        if panel["type"] == "row":
            assert isinstance(panel["panels"], list), name
            assert "targets" not in panel, name
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, name
        targets = panel["targets"]
        assert isinstance(targets, list), name
        assert targets, f"{name} has no query"
        refs = [t["refId"] for t in targets]
        assert len(refs) == len(set(refs)), f"{name}: refIds repeat"
        for target in targets:
            assert isinstance(target["expr"], str), name
            assert target["expr"].strip(), name
            assert target["datasource"] == panel["datasource"], name
        assert isinstance(panel["fieldConfig"]["defaults"], dict), name
        assert isinstance(panel["fieldConfig"]["overrides"], list), name


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_variables_and_annotations_are_complete(path: Path) -> None:
    doc = load(path)
    variables = doc["templating"]["list"]
    defined = {v["name"] for v in variables}
    assert len(defined) == len(variables), "variable names repeat"
    for variable in variables:
        assert variable["type"] in {"datasource", "query"}, variable["name"]
        if variable["type"] == "query":
            assert variable["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            assert variable["refresh"] in (1, 2), f"{variable['name']}: never refreshed"
            if variable.get("includeAll"):
                assert variable["allValue"] == ".*", variable["name"]
    for note in doc["annotations"]["list"]:
        assert isinstance(note["name"], str)
        assert isinstance(note["enable"], bool), note["name"]
        assert isinstance(note["iconColor"], str), note["name"]
        if note.get("builtIn"):
            assert note["datasource"]["type"] == "grafana"
            continue
        assert note["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        # Grafana 10+ reads target; older versions the legacy expr and step.
        assert note["target"]["expr"] == note["expr"], note["name"]
        assert note["target"]["interval"] == note["step"], note["name"]
        assert isinstance(note["useValueForTime"], bool), note["name"]
    used = {v for query in queries(path) for v in names(query.expr).variables}
    assert used - GRAFANA_VARIABLES <= defined, f"undefined variables: {used - defined}"


def test_the_dashboards_uids_differ() -> None:
    uids = [load(path)["uid"] for path in DASHBOARDS]
    assert len(set(uids)) == len(uids)
    assert sorted(GRAFANA.glob("*.json")) == sorted(DASHBOARDS)


def grafana_substituted(expr: str) -> str:
    """An expression as Grafana sends it: its variables replaced (every custom one by All)."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return SUBSTITUTES.get(name, ".*")

    return VARIABLE.sub(value, expr)


def test_prometheus_parses_every_expression(tmp_path: Path) -> None:
    """Prometheus's own parser (``promtool check rules``, Prometheus 2.42 here) accepts each
    expression once Grafana's variables are in place: a typo, an unbalanced bracket or a
    function this Prometheus lacks fails here, not on a user's screen."""
    promtool = shutil.which(str(PROMTOOL)) or shutil.which("promtool")
    if promtool is None:
        pytest.fail(MISSING_PROMTOOL)
    every = [query for path in DASHBOARDS for query in queries(path)]
    rules = [
        {"record": f"dashboard:expr_{i}", "expr": grafana_substituted(query.expr)}
        for i, query in enumerate(every)
    ]
    rule_file = tmp_path / "dashboards.rules.yml"
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))

    checked = subprocess.run(
        [promtool, "check", "rules", str(rule_file)], capture_output=True, text=True, timeout=60
    )

    where = {f"expr_{i}": query.where for i, query in enumerate(every)}
    assert checked.returncode == 0, (checked.stdout + checked.stderr, where)
    assert f"SUCCESS: {len(rules)} rules found" in checked.stdout
