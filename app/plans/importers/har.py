"""HAR 1.2 recordings → a plan document with one workflow that replays the recorded requests.

What is kept: the requests to the first requested host, in recorded order, with their
method, path, query, meaningful headers and body, the recorded status as the expectation and
the recorded pause before the next request as think time. Tokens a response hands out and a
later request sends back are extracted and referenced (``{{vars.x}}``) instead of replayed.

What is dropped, and why:
- static assets: a load test of an API does not need the browser's images, styles and fonts;
- other hosts: a plan has one target, and the recording's hosts are public ones;
- cookies: k6 keeps the cookies the target sets, so recorded (stale) ones would only conflict;
- hop-by-hop and browser headers, and conditional ones (their validators come from the
  recorded host, so the target would answer differently than recorded);
- recorded credentials that no earlier response produced: a plan is stored and shown, and
  credentials belong in ``target.auth`` as a secret reference.
Non-standard fields (har-to-k6's checks, variables, sleep) are ignored.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import SplitResult, parse_qsl, quote, urlencode, urljoin, urlsplit

from app.plans import templating
from app.plans.importers import (
    DEFAULT_LOAD,
    MAX_STEPS,
    ImportProblem,
    as_dict,
    checked,
    describe,
    form_body,
    is_json_media,
    sanitise_name,
    unique_name,
)

__all__ = ["ImportProblem", "plan_from_har"]

METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}
MAX_THINK_S = 30.0
MIN_THINK_S = 0.1
MAX_PATH = 2000  # Step.path's limit
MIN_TOKEN_LENGTH = 8  # shorter values are too likely to occur by chance in later requests

_STATIC_MIME = tuple(
    "image/ font/ audio/ video/ text/css text/javascript application/javascript "
    "application/x-javascript application/ecmascript application/font application/x-font "
    "application/vnd.ms-fontobject".split()
)
_STATIC_EXTENSIONS = set(
    ".png .jpg .jpeg .gif .svg .ico .webp .avif .bmp .css .js .mjs .map .woff .woff2 .ttf "
    ".otf .eot .mp3 .mp4 .webm .ogg".split()
)
_STATIC_RESOURCE_TYPES = {"image", "stylesheet", "script", "font", "media"}  # Chrome's field
# Hop-by-hop, browser-made and conditional headers (validators name the recorded host's data).
_DROPPED_HEADERS = set(
    "host content-length cookie accept-encoding connection keep-alive proxy-connection "
    "proxy-authorization te trailer transfer-encoding upgrade user-agent referer origin pragma "
    "cache-control if-none-match if-modified-since if-match if-unmodified-since if-range dnt "
    "upgrade-insecure-requests priority purpose x-client-data".split()
)
_CREDENTIAL_HEADERS = set(
    "authorization x-api-key api-key x-auth-token x-access-token x-csrf-token x-xsrf-token".split()
)
_REDIRECTS = {301, 302, 303, 307, 308}
# Field names that hold tokens: matched as parts of the name (accessToken, session_id, …).
_TOKEN_PARTS = ("token", "jwt", "session", "csrf", "xsrf")
_TOKEN_WORDS = {"sid", "auth", "nonce", "ticket", "bearer", "apikey", "secret"}
_GJSON_SPECIAL = re.compile(r"([\\.*?|#@!=<>%])")


# --- reading the recording ---------------------------------------------------------------------


@dataclass
class _Entry:
    """One recorded exchange, as far as the plan needs it."""

    position: int  # 1-based, in the file, for messages
    method: str
    url: SplitResult
    request: dict[str, Any]
    response: dict[str, Any]
    started: datetime | None
    ended: datetime | None
    page: str | None
    status: int | None
    resource_type: str | None  # Chrome's entry._resourceType: document, xhr, image…
    location: str | None = None  # where a recorded redirect pointed (absolute)

    @property
    def url_text(self) -> str:
        return self.url._replace(fragment="").geturl()

    @property
    def host(self) -> str:
        hostname = (self.url.hostname or "").lower()
        return f"{hostname}:{self.url.port}" if self.url.port else hostname


def _log(har: Any) -> dict[str, Any]:
    log = har.get("log") if isinstance(har, dict) else None
    if not isinstance(log, dict) or not isinstance(log.get("entries"), list):
        raise ImportProblem("not a HAR file: it needs a 'log' object with an 'entries' list")
    if not log["entries"]:
        raise ImportProblem("the HAR file records no requests (log.entries is empty)")
    return log


def _started(raw: Any) -> datetime | None:
    if not isinstance(raw, str):
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _entry(position: int, raw: Any) -> _Entry:
    if not isinstance(raw, dict) or not isinstance(raw.get("request"), dict):
        raise ImportProblem(f"HAR entry {position} has no 'request' object")
    request = raw["request"]
    if not isinstance(request.get("url"), str) or not request["url"]:
        raise ImportProblem(f"HAR entry {position}: the request has no 'url'")
    if not isinstance(request.get("method"), str):
        raise ImportProblem(f"HAR entry {position}: the request has no 'method'")
    try:
        url = urlsplit(request["url"])
        url.port  # noqa: B018 - parsing the port is what raises on a malformed URL
    except ValueError as exc:
        raise ImportProblem(f"HAR entry {position}: {request['url']!r} is not a URL") from exc
    response = as_dict(raw.get("response"))
    started = _started(raw.get("startedDateTime"))
    took = raw.get("time")
    took_ms = float(took) if isinstance(took, int | float) and took > 0 else 0.0
    status = response.get("status")
    entry = _Entry(
        position=position,
        method=request["method"].upper(),
        url=url,
        request=request,
        response=response,
        started=started,
        ended=started + timedelta(milliseconds=took_ms) if started else None,
        page=raw.get("pageref") if isinstance(raw.get("pageref"), str) else None,
        status=status if isinstance(status, int) and not isinstance(status, bool) else None,
        resource_type=str(raw.get("_resourceType") or "") or None,
    )
    entry.location = _location(entry)
    return entry


def _location(entry: _Entry) -> str | None:
    if entry.status not in _REDIRECTS:
        return None
    target = entry.response.get("redirectURL") or _header(entry.response, "location")
    if not isinstance(target, str) or not target:
        return None
    return urlsplit(urljoin(entry.url_text, target))._replace(fragment="").geturl()


def _pairs(items: Any) -> list[tuple[str, str]]:
    """HAR name/value lists (headers, queryString, params) as pairs, skipping malformed ones."""
    if not isinstance(items, list):
        return []
    return [
        (str(item["name"]), "" if item.get("value") is None else str(item["value"]))
        for item in items
        if isinstance(item, dict) and item.get("name") is not None
    ]


def _header(message: dict[str, Any], name: str) -> str | None:
    for key, value in _pairs(message.get("headers")):
        if key.lower() == name:
            return value
    return None


# --- choosing entries --------------------------------------------------------------------------


def _is_static(entry: _Entry) -> bool:
    content = entry.response.get("content")
    mime = str(content.get("mimeType") or "") if isinstance(content, dict) else ""
    path = entry.url.path.lower()
    return (
        mime.lower().startswith(_STATIC_MIME)
        or PurePosixPath(path).suffix in _STATIC_EXTENSIONS
        or "favicon" in path
        or entry.resource_type in _STATIC_RESOURCE_TYPES
    )


def _is_preflight(entry: _Entry) -> bool:
    """A CORS preflight: the browser's own request, which k6 has no reason to send."""
    asks = _header(entry.request, "access-control-request-method")
    return entry.method == "OPTIONS" and asks is not None


@dataclass
class _Selection:
    kept: list[_Entry]
    other_hosts: Counter[str] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)  # reason → entries


def _select(entries: list[_Entry]) -> _Selection:
    """Entries worth replaying: first-host, non-static, HTTP(S), redirects folded in."""
    selection = _Selection(kept=[])
    candidates = []
    for entry in entries:
        if entry.url.scheme not in ("http", "https") or not entry.url.hostname:
            selection.dropped["not http(s)"] += 1
        elif entry.method not in METHODS:
            selection.dropped[f"method {entry.method}"] += 1
        elif _is_static(entry):
            selection.dropped["static assets"] += 1
        elif _is_preflight(entry):
            selection.dropped["CORS preflights"] += 1
        else:
            candidates.append(entry)
    candidates = _fold_redirects(candidates)
    first_host = candidates[0].host if candidates else ""
    for entry in candidates:
        if entry.host == first_host:
            selection.kept.append(entry)
        else:
            selection.other_hosts[entry.host] += 1
    return selection


def _fold_redirects(entries: list[_Entry]) -> list[_Entry]:
    """A redirect and the request that followed it become one step, as k6 follows redirects.

    The step then expects the final status, and its pause starts when the last hop ended.
    """
    folded: list[_Entry] = []
    for entry in entries:
        last = folded[-1] if folded else None
        if last is not None and last.location is not None and entry.url_text == last.location:
            last.status, last.location = entry.status, entry.location
            last.response, last.ended = entry.response, entry.ended
            continue
        folded.append(entry)
    return folded


# --- requests ----------------------------------------------------------------------------------


@dataclass
class _Request:
    path: str
    query: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None

    def strings(self) -> Iterator[str]:
        yield self.path
        yield from self.query.values()
        yield from self.headers.values()
        yield from _strings(self.body)

    def replace(self, value: str, reference: str) -> None:
        self.path = self.path.replace(quote(value, safe=""), reference).replace(value, reference)
        self.query = {k: v.replace(value, reference) for k, v in self.query.items()}
        self.headers = {k: v.replace(value, reference) for k, v in self.headers.items()}
        self.body = _replaced(self.body, value, reference)

    def uses(self, value: str) -> bool:
        encoded = quote(value, safe="")
        return any(value in text or encoded in text for text in self.strings())


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _replaced(value: Any, old: str, new: str) -> Any:
    if isinstance(value, str):
        return value.replace(old, new)
    if isinstance(value, dict):
        return {k: _replaced(v, old, new) for k, v in value.items()}
    if isinstance(value, list):
        return [_replaced(v, old, new) for v in value]
    return value


def _request(entry: _Entry) -> _Request:
    path = entry.url.path or "/"
    pairs = parse_qsl(entry.url.query, keep_blank_values=True) or _pairs(
        entry.request.get("queryString")
    )
    request = _Request(path=path, headers=_headers(entry.request))
    names = [name for name, _ in pairs]
    if len(set(names)) == len(names):
        request.query = dict(pairs)
    else:
        # The plan's query holds one value per name; repeated ones stay in the path as recorded.
        request.path = f"{path}?{entry.url.query or urlencode(pairs)}"
    _add_body(entry.request.get("postData"), request)
    return request


def _headers(request: dict[str, Any]) -> dict[str, str]:
    kept: dict[str, str] = {}
    seen: dict[str, str] = {}  # lower-case name → the spelling first recorded
    for name, value in _pairs(request.get("headers")):
        low = name.lower()
        if low in _DROPPED_HEADERS or low.startswith(("sec-", ":")):
            continue
        if low in seen:
            kept[seen[low]] += ", " + value
        else:
            seen[low] = name
            kept[name] = value
    return kept


def _add_body(post: Any, request: _Request) -> None:
    if not isinstance(post, dict):
        return
    mime = str(post.get("mimeType") or "")
    text = post.get("text")
    content_type = mime
    if isinstance(text, str) and text:
        request.body = _json_or_text(text) if is_json_media(mime) else text
    elif _pairs(post.get("params")):
        # Encoded here with a boundary of our own, which replaces the recorded Content-Type.
        request.body, content_type = form_body(mime, _pairs(post["params"]))
        request.headers = {k: v for k, v in request.headers.items() if k.lower() != "content-type"}
    else:
        return
    if content_type and not any(k.lower() == "content-type" for k in request.headers):
        request.headers["Content-Type"] = content_type


def _json_or_text(text: str) -> Any:
    """Parsed JSON, except when the plan would send the parsed value differently than recorded.

    A string body is sent as it is, so a JSON string or null keeps its recorded text.
    """
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return text if value is None or isinstance(value, str) else value


def _expected(entry: _Entry) -> int | None:
    """The status the replay should see; None leaves the plan's default (200)."""
    if entry.status == 304 or entry.status in _REDIRECTS:
        # Validators are not replayed, and k6 follows redirects whose end was not recorded.
        return 200
    if entry.status is not None and 100 <= entry.status <= 599:
        return entry.status
    return None


# --- token correlation -------------------------------------------------------------------------


def _token_like(name: str) -> bool:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()
    words = set(re.split(r"[^a-z0-9]+", spaced))
    return any(part in spaced for part in _TOKEN_PARTS) or bool(words & _TOKEN_WORDS)


def _gjson(path: list[str]) -> str:
    return ".".join(_GJSON_SPECIAL.sub(r"\\\1", part) for part in path)


def _json_tokens(
    value: Any, path: list[str], inherited: bool = False
) -> Iterator[tuple[str, dict[str, str], str]]:
    """(field name, extraction, value) for each token-like string field of a JSON value."""
    if len(path) > 12:
        return
    items: list[tuple[str, Any]] = []
    if isinstance(value, dict):
        items = [(str(k), v) for k, v in value.items()]
    elif isinstance(value, list):
        items = [(str(i), v) for i, v in enumerate(value)]
    for key, item in items:
        tokenish = inherited or (isinstance(value, dict) and _token_like(key))
        if isinstance(item, str) and tokenish:
            yield (
                (path[-1] if key.isdigit() and path else key),
                {"json": _gjson([*path, key])},
                item,
            )
        elif isinstance(item, dict | list):
            yield from _json_tokens(item, [*path, key], tokenish)


def _response_text(response: dict[str, Any]) -> str | None:
    content = response.get("content")
    if not isinstance(content, dict) or not isinstance(content.get("text"), str):
        return None
    text: str = content["text"]
    if content.get("encoding") == "base64":
        try:
            return base64.b64decode(text).decode("utf-8", errors="replace")
        except (binascii.Error, ValueError):
            return None
    return text


def _tokens(entry: _Entry) -> Iterator[tuple[str, dict[str, str], str]]:
    """Token-like values the entry's response hands out: JSON body fields, then headers."""
    text = _response_text(entry.response)
    if text and text.lstrip()[:1] in ("{", "["):
        try:
            yield from _json_tokens(json.loads(text), [])
        except ValueError:
            pass
    for name, value in _pairs(entry.response.get("headers")):
        if name.lower() != "set-cookie" and _token_like(name):
            # k6 exposes response headers under Go's canonical spelling.
            canonical = "-".join(p[:1].upper() + p[1:].lower() for p in name.split("-"))
            yield name, {"header": canonical}, value


def _var_name(field_name: str, taken: set[str]) -> str:
    base = re.sub(r"\W+", "_", field_name).strip("_") or "token"
    base = ("_" + base if base[0].isdigit() else base)[:60]
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}_{n}"
    taken.add(name)
    return name


@dataclass
class _Correlation:
    var: str
    producer: int  # index of the step that extracts it
    users: int  # later steps that reference it


def _correlate(
    entries: list[_Entry], requests: list[_Request]
) -> tuple[list[dict[str, dict[str, str]]], list[_Correlation]]:
    """Extractions per step, after replacing produced token values in later requests."""
    extracts: list[dict[str, dict[str, str]]] = [{} for _ in entries]
    found: list[_Correlation] = []
    known: set[str] = set()
    taken: set[str] = set()
    for i, entry in enumerate(entries):
        for field_name, source, value in _tokens(entry):
            if len(value) < MIN_TOKEN_LENGTH or value in known:
                continue
            users = [r for r in requests[i + 1 :] if r.uses(value)]
            if not users:
                continue
            known.add(value)
            var = _var_name(field_name, taken)
            extracts[i][var] = source
            for request in users:
                request.replace(value, "{{vars." + var + "}}")
            found.append(_Correlation(var, i, len(users)))
    return extracts, found


def _drop_credentials(requests: list[_Request], names: list[str]) -> dict[str, list[str]]:
    """Removes recorded credentials that are not references; returns header → step names."""
    removed: dict[str, list[str]] = {}
    for request, name in zip(requests, names, strict=True):
        for header, value in list(request.headers.items()):
            if header.lower() in _CREDENTIAL_HEADERS and not templating.references(value):
                del request.headers[header]
                removed.setdefault(header, []).append(name)
    return removed


# --- the plan ----------------------------------------------------------------------------------


def _think_times(entries: list[_Entry]) -> list[float | None]:
    """The recorded pause between one request's end and the next one's start."""
    pauses: list[float | None] = []
    for entry, following in zip(entries, [*entries[1:], None], strict=True):
        pause = None
        if following is not None and entry.ended and following.started:
            gap = min((following.started - entry.ended).total_seconds(), MAX_THINK_S)
            pause = round(gap, 1) if gap >= MIN_THINK_S else None
        pauses.append(pause)
    return pauses


def _step_names(entries: list[_Entry]) -> list[str]:
    width = max(2, len(str(len(entries))))
    taken: set[str] = set()
    names = []
    for number, entry in enumerate(entries, start=1):
        last = [part for part in entry.url.path.split("/") if part][-1:] or ["root"]
        base = sanitise_name(f"{number:0{width}d}_{entry.method.lower()}_{last[0]}")
        names.append(unique_name(base, taken))
    return names


def _groups(log: dict[str, Any]) -> dict[str, str]:
    """Page id → the title its steps are grouped under."""
    pages = log.get("pages")
    return {
        str(page["id"]): str(page.get("title") or page["id"])[:200]
        for page in (pages if isinstance(pages, list) else [])
        if isinstance(page, dict) and page.get("id") is not None
    }


def _step(
    entry: _Entry,
    request: _Request,
    name: str,
    extract: dict[str, dict[str, str]],
    pause: float | None,
    group: str | None,
) -> dict[str, Any]:
    step: dict[str, Any] = {"name": name, "method": entry.method, "path": request.path}
    optional = {
        "query": request.query,
        "headers": request.headers,
        "body": request.body,
        "expect_status": _expected(entry),
        "extract": extract,
        "think_time": pause,
        "group": group,
    }
    step.update({k: v for k, v in optional.items() if v not in (None, {})})
    return step


def _summary(
    log: dict[str, Any],
    total: int,
    selection: _Selection,
    correlations: list[_Correlation],
    names: list[str],
    credentials: dict[str, list[str]],
) -> str:
    creator = as_dict(log.get("creator"))
    made_by = " ".join(str(creator[k]) for k in ("name", "version") if creator.get(k))
    lines = [
        f"Imported from a HAR recording{f' made with {made_by}' if made_by else ''} of "
        f"{selection.kept[0].host}: {len(selection.kept)} of {total} requests, replayed in order "
        f"as one workflow with the recorded pauses (at most {MAX_THINK_S:g}s).",
        _counted("Dropped", selection.dropped),
        _counted("Kept only the first host's requests; dropped", selection.other_hosts, "to "),
        *(
            f"Correlated {c.var}: extracted by {names[c.producer]}, used by {c.users} later "
            "step(s)."
            for c in correlations
        ),
        *(
            f"Removed the recorded {header} header from {_listed(steps)}: credentials belong "
            "in target.auth as a secret."
            for header, steps in credentials.items()
        ),
        "Cookies are not replayed: k6 keeps the cookies the target sets.",
    ]
    return describe(lines)


def _counted(lead: str, counts: Counter[str], joiner: str = "") -> str:
    if not counts:
        return ""
    return f"{lead} {_listed([f'{n} {joiner}{what}' for what, n in counts.most_common()])}."


def _listed(items: list[str], shown: int = 10) -> str:
    """A list for people: long ones are cut, saying how many more there were."""
    more = f" and {len(items) - shown} more" if len(items) > shown else ""
    return ", ".join(items[:shown]) + more


def plan_from_har(
    har: dict[str, Any],
    *,
    base_url: str | None = None,
    name: str | None = None,
    load: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A plan document replaying a HAR recording's requests to its first host.

    ``base_url`` defaults to the recorded origin; pass the host under test instead.
    """
    log = _log(har)
    entries = [_entry(i, raw) for i, raw in enumerate(log["entries"], start=1)]
    selection = _select(entries)
    kept = selection.kept
    if not kept:
        raise ImportProblem(
            "no request left to replay: every entry was a static asset, not http(s), "
            "or used an unsupported method"
        )
    if len(kept) > MAX_STEPS:
        raise ImportProblem(
            f"{len(kept)} requests left after filtering, but a workflow holds at most "
            f"{MAX_STEPS} steps: record a shorter session or split the HAR file"
        )
    requests = [_request(entry) for entry in kept]
    too_long = [e.position for e, r in zip(kept, requests, strict=True) if len(r.path) > MAX_PATH]
    if too_long:
        raise ImportProblem(f"HAR entries {too_long}: URL path longer than {MAX_PATH} characters")
    names = _step_names(kept)
    extracts, correlations = _correlate(kept, requests)
    credentials = _drop_credentials(requests, names)
    groups = _groups(log)
    steps = [
        _step(entry, request, step_name, extract, pause, groups.get(entry.page or ""))
        for entry, request, step_name, extract, pause in zip(
            kept, requests, names, extracts, _think_times(kept), strict=True
        )
    ]
    origin = f"{kept[0].url.scheme}://{kept[0].url.netloc.rsplit('@', 1)[-1]}"
    return checked(
        {
            "name": (name or f"HAR recording of {kept[0].host}")[:200],
            "description": _summary(log, len(entries), selection, correlations, names, credentials),
            "target": {"base_url": base_url or origin},
            "scenarios": [{"name": "recording", "steps": steps}],
            "load": dict(load) if load is not None else dict(DEFAULT_LOAD),
        }
    )
