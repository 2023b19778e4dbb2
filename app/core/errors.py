"""RFC 9457 problem details: one exception hierarchy, one renderer, a stable machine code."""

from __future__ import annotations

import difflib
import logging
import re
import types
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal, TypeGuard, Union, get_args, get_origin

import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Tag, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.core import metrics
from app.core.storable import is_unstorable_text_error

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


class ProblemError(Exception):
    """An error the client can act on. ``code`` is stable and machine-readable."""

    status: int = 400
    code: str = "bad_request"
    title: str = "Bad request"

    def __init__(
        self,
        detail: str,
        *,
        code: str | None = None,
        status: int | None = None,
        title: str | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        if title is not None:
            self.title = title
        self.extra = extra


# --- validation errors as a client reads them ------------------------------------------------

NO_DOCUMENT: Any = object()
MAX_LISTED_ERRORS = 100  # in ``errors``; ``detail`` names the first few places
MAX_SUMMARISED = 10
# pydantic's names for union members it tried: function-after[_ordered(), ThinkRange], list[int] …
_PYDANTIC_TAG = re.compile(r"^[a-z][a-z0-9-]*\[.*\]$")


def _unwrap(tp: Any) -> tuple[Any, Any]:
    """``Annotated[X, …]`` → (X, its discriminator if one is declared)."""
    discriminator = None
    while get_origin(tp) is Annotated:
        for meta in tp.__metadata__:
            found = getattr(meta, "discriminator", None)
            if found is not None:
                discriminator = found
        tp = tp.__origin__
    return tp, discriminator


def _is_model(tp: Any) -> TypeGuard[type[BaseModel]]:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _union_member(members: Sequence[Any], tag: Any, discriminator: Any) -> Any:
    """The member of a union that pydantic named ``tag`` in an error's location, or None."""
    for member in members:
        if get_origin(member) is Annotated and any(
            isinstance(meta, Tag) and meta.tag == tag for meta in member.__metadata__
        ):
            return member
        inner, _ = _unwrap(member)
        if isinstance(discriminator, str) and _is_model(inner):
            field = inner.model_fields.get(discriminator)
            if field is not None and get_origin(field.annotation) is Literal:
                if tag in get_args(field.annotation):
                    return member
        name = getattr(inner, "__name__", None)
        if name and isinstance(tag, str) and re.search(rf"(?:^|[\[, ]){re.escape(name)}\]*$", tag):
            return member
    return None


def _field_keys(model: type[BaseModel]) -> dict[str, Any]:
    """Every key a document may use for a model's fields (aliases and names) → the field."""
    keys: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        if isinstance(field.validation_alias, str):
            keys[field.validation_alias] = field
        if field.alias:
            keys[field.alias] = field
        if field.alias is None or model.model_config.get("populate_by_name"):
            keys[name] = field
    return keys


def _in_document(node: Any, part: Any) -> bool:
    if isinstance(node, Mapping):
        try:
            return part in node
        except TypeError:
            return False
    return isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)


def document_location(
    model: Any, loc: Sequence[Any], document: Any = NO_DOCUMENT
) -> tuple[tuple[Any, ...], list[str] | None]:
    """An error's location as a path in the document, and the keys the mapping it ends in may
    hold (when the model there is known).

    pydantic puts the member it tried into the location when a value is a union
    (``load.load.duration``: the second ``load`` is the ``profile`` tag); such tags are dropped.
    The model's types say where they are; where the types give out, the document does.
    """
    tp, discriminator = _unwrap(model) if model is not None else (None, None)
    node = document
    path: list[Any] = []
    known: list[str] | None = None
    parts = list(loc)
    i = 0
    while i < len(parts):
        part, last = parts[i], i == len(parts) - 1
        known = None
        origin = get_origin(tp)
        if origin is Union or origin is types.UnionType:
            members = [m for m in get_args(tp) if m is not type(None)]
            if len(members) == 1:  # X | None: no tag in the location
                tp, inner = _unwrap(members[0])
                discriminator = inner or discriminator
                continue
            member = _union_member(members, part, discriminator)
            tp, discriminator = _unwrap(member) if member is not None else (None, None)
            i += 1  # the tag is not part of the document's path
            continue
        if _is_model(tp):
            keys = _field_keys(tp)
            field = keys.get(part) if isinstance(part, str) else None
            if field is None:
                if last:  # an unknown key
                    path.append(part)
                    known = list(keys)
                    break
                tp = None  # unexpected: let the document decide
                continue
            path.append(part)
            node = node[part] if _in_document(node, part) else NO_DOCUMENT
            tp, inner = _unwrap(field.annotation)
            discriminator = field.discriminator or inner
            i += 1
            continue
        if origin in (list, tuple, set, frozenset) or origin is Sequence:
            if not isinstance(part, int):
                tp = None
                continue
            args = get_args(tp)
            path.append(part)
            node = node[part] if _in_document(node, part) else NO_DOCUMENT
            tp, discriminator = _unwrap(args[0]) if args else (None, None)
            i += 1
            continue
        if origin is dict or origin is Mapping:
            args = get_args(tp)
            path.append(part)
            node = node[part] if _in_document(node, part) else NO_DOCUMENT
            tp, discriminator = _unwrap(args[1]) if len(args) == 2 else (None, None)
            i += 1
            continue
        # No type to go by: a part the document holds is a path; one it lacks is a tag, unless
        # it ends the location (a missing or unknown key).
        if _in_document(node, part):
            path.append(part)
            node = node[part]
        elif isinstance(node, Mapping | list):
            if last:
                path.append(part)
        elif not (isinstance(part, str) and _PYDANTIC_TAG.match(part)):
            path.append(part)
        tp = None
        i += 1
    return tuple(path), known


def _phrase(error: Mapping[str, Any]) -> str:
    kind, msg = error.get("type", ""), str(error.get("msg", ""))
    if kind == "extra_forbidden":
        hint = error.get("suggestion")
        return f"unknown key (did you mean `{hint}`?)" if hint else "unknown key"
    if kind == "missing":
        return "field required"
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            return msg[len(prefix) :]
    if len(msg) > 1 and msg[0].isupper() and not msg[1].isupper():
        return msg[0].lower() + msg[1:]
    return msg


def _shown(loc: Sequence[Any]) -> str:
    """``body.load.vus`` → ``load.vus``: a body's paths are the document's (the whole body:
    its message alone); ``query.name`` and the like keep their source."""
    if loc[:1] == ("body",) or loc[:1] == ["body"]:
        loc = loc[1:]
    return ".".join(str(part) for part in loc)


def summarise_errors(errors: Sequence[Mapping[str, Any]], *, unexplained: int = 0) -> str:
    """``3 errors: load.duration: field required; endpoint: unknown key (did you mean …)``.

    Errors at the same place (the members of a union pydantic tried) are one item;
    ``unexplained`` counts the places of further errors, not listed."""
    places: dict[tuple[str, ...], list[str]] = {}
    for error in errors:
        loc = tuple(str(p) for p in error.get("loc", ()))
        phrases = places.setdefault(loc, [])
        phrase = _phrase(error)
        if loc == ("body",) and error.get("type") == "missing":
            phrase = "the request needs a body"
        if phrase not in phrases:
            phrases.append(phrase)
    items = []
    for loc, phrases in places.items():
        lead = "input should be "
        if len(phrases) > 1 and all(p.startswith(lead) for p in phrases):
            text = lead + " or ".join(p[len(lead) :] for p in phrases)
        else:
            text = " or ".join(phrases)
        where = _shown(loc)
        items.append(f"{where}: {text}" if where else text)
    if not items:
        return "invalid input"
    total = len(items) + unexplained
    if total == 1:
        return items[0]
    shown = "; ".join(items[:MAX_SUMMARISED])
    more = total - min(len(items), MAX_SUMMARISED)
    return f"{total} errors: {shown}" + (f"; … and {more} more" if more > 0 else "")


def describe_errors(
    raw: Sequence[Mapping[str, Any]],
    *,
    model: Any = None,
    document: Any = NO_DOCUMENT,
    prefix: Sequence[Any] = (),
) -> tuple[str, list[dict[str, Any]]]:
    """pydantic's errors → (a one-line summary of all of them, the machine-readable list)."""
    errors: list[dict[str, Any]] = []
    for err in raw:
        raw_loc = tuple(err.get("loc", ()))
        try:
            loc, known = document_location(model, raw_loc, document)
        except Exception:  # a type this walk does not know: pydantic's location as it is
            log.debug("could not map %r to a document path", raw_loc, exc_info=True)
            loc, known = raw_loc, None
        error: dict[str, Any] = {
            "loc": [*prefix, *loc],
            "msg": err.get("msg", ""),
            "type": err.get("type", ""),
        }
        if error["type"] == "extra_forbidden" and known and loc and isinstance(loc[-1], str):
            close = difflib.get_close_matches(loc[-1], known, n=1, cutoff=0.6)
            if close:
                error["suggestion"] = close[0]
        errors.append(error)
    return summarise_errors(errors), errors


def errors_extra(errors: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``errors`` member of a problem, capped; ``errors_omitted`` counts the rest."""
    extra: dict[str, Any] = {"errors": errors[:MAX_LISTED_ERRORS]}
    if len(errors) > MAX_LISTED_ERRORS:
        extra["errors_omitted"] = len(errors) - MAX_LISTED_ERRORS
    return extra


class NotFound(ProblemError):
    status = 404
    code = "not_found"
    title = "Not found"


class Conflict(ProblemError):
    status = 409
    code = "conflict"
    title = "Conflict"


class InvalidInput(ProblemError):
    status = 422
    code = "validation_error"
    title = "Invalid input"


def invalid_body(
    exc: ValidationError, *, model: Any = None, document: Any = NO_DOCUMENT
) -> InvalidInput:
    """A pydantic error about a request body as a 422 problem: ``detail`` sums up every error,
    ``errors`` lists them (loc, msg, type, and a ``suggestion`` for a misspelt key).

    Give the validated ``model`` and ``document`` and the locations are the document's own paths
    (pydantic's union tags dropped) and unknown keys get the closest known key as a hint."""
    detail, errors = describe_errors(
        exc.errors(include_url=False, include_input=False),
        model=model,
        document=document,
        prefix=("body",),
    )
    return InvalidInput(detail, **errors_extra(errors))


class GuardrailViolation(ProblemError):
    status = 422
    code = "guardrail"
    title = "Guardrail violation"


class UnsupportedMediaType(ProblemError):
    status = 415
    code = "unsupported_media_type"
    title = "Unsupported media type"


def problem_body(
    *, status: int, code: str, title: str, detail: str, instance: str, **extra: Any
) -> dict[str, Any]:
    return {
        "type": f"urn:perf-agent:problem:{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        "instance": instance,
        **extra,
    }


def problem_response(
    request: Request,
    *,
    status: int,
    code: str,
    title: str,
    detail: str,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body = problem_body(
        status=status, code=code, title=title, detail=detail, instance=request.url.path, **extra
    )
    return JSONResponse(
        jsonable_encoder(body), status_code=status, media_type=PROBLEM_JSON, headers=headers
    )


def request_validation_problem(request: Request, exc: RequestValidationError) -> ProblemError:
    """FastAPI's validation errors as one problem: a 415 when a JSON body was not sent as
    JSON, else a 422 that sums up every error (see :func:`describe_errors`)."""
    from app.core.content_type import unsupported_body_type

    raw = list(exc.errors())
    wrong_type = unsupported_body_type(request, raw)
    if wrong_type is not None:
        return wrong_type
    for err in raw:
        if err.get("type") == "json_invalid":
            position = tuple(err.get("loc", ()))[1:]
            reason = (err.get("ctx") or {}).get("error") or "malformed"
            at = f" at character {position[0]}" if position else ""
            return InvalidInput(
                f"the body is not valid JSON: {reason}{at}",
                errors=[
                    {"loc": list(err["loc"]), "msg": err.get("msg", ""), "type": "json_invalid"}
                ],
            )
    body_field = getattr(request.scope.get("route"), "body_field", None)
    model = body_field.field_info.annotation if body_field is not None else None
    located: list[dict[str, Any]] = []
    unexplained: set[tuple[Any, ...]] = set()
    for err in raw:
        loc = tuple(err.get("loc", ()))
        if len(located) >= MAX_LISTED_ERRORS:
            # Counted, not explained: a body of 100,000 unknown keys would otherwise cost
            # seconds of CPU (a document path and a did-you-mean for each).
            unexplained.add(loc)
            continue
        if loc[:1] == ("body",):
            one = {**err, "loc": loc[1:]}
            located += describe_errors([one], model=model, document=exc.body, prefix=("body",))[1]
        else:
            located += describe_errors([err])[1]
    extra = errors_extra(located)
    if len(raw) > len(located):
        extra["errors_omitted"] = len(raw) - len(located)
    return InvalidInput(summarise_errors(located, unexplained=len(unexplained)), **extra)


_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ProblemError)
    async def _problem(request: Request, exc: ProblemError) -> JSONResponse:
        if isinstance(exc, GuardrailViolation):
            metrics.GUARDRAIL_REFUSALS.labels(code=exc.code, at="request").inc()
        return problem_response(
            request,
            status=exc.status,
            code=exc.code,
            title=exc.title,
            detail=exc.detail,
            **exc.extra,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return await _problem(request, request_validation_problem(request, exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem_response(
            request,
            status=exc.status_code,
            code=_STATUS_CODES.get(exc.status_code, f"http_{exc.status_code}"),
            title=str(exc.detail) if exc.status_code != 404 else "Not found",
            detail=str(exc.detail),
            headers=exc.headers,  # e.g. a 405's Allow
        )

    @app.exception_handler(sqlalchemy.exc.TimeoutError)
    async def _pool_exhausted(request: Request, exc: Exception) -> JSONResponse:
        # Every connection of this process's pool stayed busy for db_pool_timeout_s: say so
        # and when to come back, rather than a 500 after a long wait.
        metrics.SHED.labels(reason="database_pool").inc()
        retry = str(request.app.state.settings.retry_after_s)
        return problem_response(
            request,
            status=503,
            code="overloaded.database_pool",
            title="Overloaded",
            detail=f"every database connection of this process is busy; retry after {retry} s",
            headers={"Retry-After": retry},
        )

    @app.exception_handler(sqlalchemy.exc.DataError)
    @app.exception_handler(UnicodeEncodeError)
    async def _unstorable(request: Request, exc: Exception) -> JSONResponse:
        # A NUL character or a lone surrogate in a request's text: the database refuses it.
        if not is_unstorable_text_error(exc):
            return await _unexpected(request, exc)
        return problem_response(
            request,
            status=422,
            code="unstorable_text",
            title="Text that cannot be stored",
            detail="the request holds a NUL character (\\u0000) or a lone surrogate (\\ud800-"
            "\\udfff) in a text, which cannot be stored; remove it",
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Logged with its traceback for us; the client gets an opaque, stable problem.
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(
            request,
            status=500,
            code="internal_error",
            title="Internal server error",
            detail="The server failed to handle this request; it has been logged.",
        )
