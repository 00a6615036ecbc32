"""``POST /$batch``: several requests in one (SensorThings 1.1 §11, after OData §11.7).

Two formats carry a batch: multipart/mixed, the format of the standard's batch conformance class
(``batch_multipart``), and the JSON format of OData 4.01 (``batch_json``), which FROST serves as
an extension. Both become ``BatchRequest``s that run here, in order:

* an atomicity group (a multipart change set) is one ``service.unit``: all of it or none of it;
* every request runs the code its single route runs (``service.read_request``, ``request``,
  ``perform``) with the caller's own rights, so a batch reaches nothing a request could not;
* ``$<id>`` names the entity an earlier request created or read: as the first segment of a URL
  (OData) and as an ``@iot.id`` link in a body (the SensorThings §11.2.2 example);
* a request whose ``dependsOn`` failed is answered ``424 Failed Dependency`` without running.

JSON batches run every request (OData's ``continue-on-error`` default for that format), multipart
ones stop at the first failure; a ``Prefer: continue-on-error[=true|false]`` header says otherwise.

One limit comes from the store: Observations created in a group are checked inside its
transaction but stored by the ingest pipeline right after the commit, as a single deep insert's
are. Only a concurrent change in between can still refuse one; its response then says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlsplit

from citydesk.auth import Principal
from citydesk.errors import (
    BadRequest,
    CitydeskError,
    FailedDependency,
    UnsupportedMediaType,
    ValidationFailed,
)
from citydesk.hub.sta import batch_json, batch_multipart, service
from citydesk.hub.sta.batch_model import BatchRequest, BatchResponse, chunks, error_response
from citydesk.hub.sta.body import parse_json
from citydesk.hub.sta.entities import SETS, EntitySet
from citydesk.hub.sta.paths import parse_path

if TYPE_CHECKING:
    from citydesk.web.app import App

MAX_REQUESTS = 1000
METHODS = ("GET", *service.WRITES)
CREATE_OBSERVATIONS = "CreateObservations"


def handle(
    app: App, principal: Principal, content_type: str, prefer: str, raw: bytes, base: str
) -> tuple[str, bytes]:
    """Run a batch body; returns the response's content type and body (the request's format)."""
    media = content_type.split(";")[0].strip().lower()
    if media == "application/json":
        requests = batch_json.parse(parse_json(raw))
    elif media == "multipart/mixed":
        requests = batch_multipart.parse(content_type, raw)
    else:
        raise UnsupportedMediaType("a batch is sent as application/json or multipart/mixed")
    check(requests)
    go_on = _continue_on_error(prefer, default=media == "application/json")
    responses = _Run(app, principal, base, requests).all(requests, continue_on_error=go_on)
    if media == "application/json":
        return "application/json", batch_json.render(responses)
    return batch_multipart.render(requests, responses)


def _continue_on_error(prefer: str, *, default: bool) -> bool:
    """The ``continue-on-error`` preference (OData 4.01; ``odata.``-prefixed in 4.0)."""
    for token in prefer.split(","):
        name, _, value = token.strip().partition("=")
        if name.strip().lower() in ("continue-on-error", "odata.continue-on-error"):
            return value.strip().lower() != "false"
    return default


def check(requests: list[BatchRequest]) -> None:
    """Refuse a malformed batch as a whole (400), before anything runs: methods, unique ids,
    adjacent atomicity groups, and ``dependsOn`` naming only what came before."""
    if len(requests) > MAX_REQUESTS:
        raise BadRequest(f"a batch holds at most {MAX_REQUESTS} requests")
    group_of: dict[str, str | None] = {}
    closed: set[str] = set()
    for i, r in enumerate(requests):
        if r.method not in METHODS:
            raise BadRequest(f"request {r.id!r}: {r.method} is not one of {', '.join(METHODS)}")
        if r.id in group_of:
            raise BadRequest(f"request id {r.id!r} is used twice")
        previous = requests[i - 1].group if i else None
        if previous is not None and previous != r.group:
            closed.add(previous)
        if r.group in closed:
            raise BadRequest(f"the requests of atomicity group {r.group!r} must be adjacent")
        for name in r.depends_on:
            if name not in group_of and name not in closed:
                raise BadRequest(
                    f"request {r.id!r} depends on {name!r}, which is no earlier request or group"
                )
            if group_of.get(name) not in (None, r.group):
                raise BadRequest(
                    f"request {r.id!r} must depend on the atomicity group of {name!r}, not on it"
                )
        group_of[r.id] = r.group
    clash = sorted(set(group_of) & {g for g in group_of.values() if g is not None})
    if clash:
        raise BadRequest(f"{clash[0]!r} names both a request and an atomicity group")


class _Run:
    """One batch being run: the entities its requests created or read, and what failed."""

    def __init__(self, app: App, principal: Principal, base: str, requests: list[BatchRequest]) -> None:
        self.app, self.principal, self.base = app, principal, base
        self.ids = {r.id for r in requests}
        self.entities: dict[str, tuple[EntitySet, int | None]] = {}
        self.failed: set[str] = set()

    def all(self, requests: list[BatchRequest], *, continue_on_error: bool) -> list[BatchResponse]:
        out: list[BatchResponse] = []
        for chunk in chunks(requests):
            answers = self.group(chunk) if chunk[0].group is not None else [self.one(chunk[0])]
            out += answers
            if not continue_on_error and not all(a.ok for a in answers):
                break
        return out

    def one(self, req: BatchRequest) -> BatchResponse:
        """A request outside any group: exactly what its single route does."""
        app, who, base = self.app, self.principal, self.base
        try:
            self.check_dependencies(req)
            method, path, options, body = self.resolve(req)
            if method == "GET":
                outcome = service.read_request(app, who, path, options, base)
            elif method == "POST" and path.strip("/") == CREATE_OBSERVATIONS:
                return self.answer(req, service.create_observations(app, who, body, base), remember=False)
            else:
                outcome = service.request(app, who, method, path, body, base, json_patch=req.json_patch)
        except CitydeskError as exc:
            return self.refuse(req, exc)
        return self.answer(req, outcome)

    def group(self, chunk: list[BatchRequest]) -> list[BatchResponse]:
        """An atomicity group: one transaction; if a request fails, none of the group applies."""
        outcomes: list[service.Outcome] = []
        current = chunk[0]
        try:
            for current in chunk:
                self.check_dependencies(current)
            for current in chunk:
                self.prepare(current)
            with service.unit(self.app, self.principal, self.base) as work:
                for current in chunk:
                    method, path, options, body = self.resolve(current)
                    if method == "POST" and path.strip("/") == CREATE_OBSERVATIONS:
                        raise BadRequest("CreateObservations cannot be part of an atomicity group")
                    outcome = service.perform(
                        work, method, path, options, body, json_patch=current.json_patch
                    )
                    outcomes.append(outcome)
                    self.remember(current, outcome)
        except CitydeskError as exc:
            for r in chunk:
                self.entities.pop(r.id, None)
            self.failed |= {r.id for r in chunk} | {str(current.group)}
            cause = FailedDependency(
                f"not applied: request {current.id!r} of atomicity group {current.group!r} failed"
            )
            return [error_response(r, exc if r is current else cause) for r in chunk]
        return [self.answer(r, outcome) for r, outcome in zip(chunk, outcomes, strict=True)]

    def prepare(self, req: BatchRequest) -> None:
        """What a write of a group needs before the group's transaction opens (``service.prepare``).
        A URL naming an entity the group itself creates cannot be resolved yet; such a request
        never addresses an Observation (those are stored after the commit), so it needs nothing."""
        try:
            method, path, _, body = self.resolve(req)
        except CitydeskError:
            return
        service.prepare(self.app, self.principal, method, path, body, json_patch=req.json_patch)

    def check_dependencies(self, req: BatchRequest) -> None:
        failed = next((name for name in req.depends_on if name in self.failed), None)
        if failed is not None:
            raise FailedDependency(f"not run: {failed!r}, which this request depends on, failed")

    def resolve(self, req: BatchRequest) -> tuple[str, str, Mapping[str, str], Any]:
        """The method, resource path, query options and body of ``req``, ``$``-references replaced."""
        url = urlsplit(req.url)
        path = unquote(url.path)
        if url.scheme or path.startswith("/"):
            if path != service.VERSION_PREFIX and not path.startswith(service.VERSION_PREFIX + "/"):
                raise BadRequest(f"{req.url} is not a SensorThings path under {service.VERSION_PREFIX}")
            path = path[len(service.VERSION_PREFIX) :].lstrip("/")
        head, sep, rest = path.partition("/")
        if head.startswith("$") and head[1:] in self.ids:
            es, ident = self.entity(head[1:])
            path = f"{es.name}({ident})" + sep + rest
        body = req.body if req.payload is None else parse_json(req.payload)
        entity_body = req.method in ("POST", "PATCH", "PUT") and not req.json_patch
        if body is not None and entity_body and path.strip("/") != CREATE_OBSERVATIONS:
            body = self.bind(parse_path(path).target, body)
        return req.method, path, dict(parse_qsl(url.query, keep_blank_values=True)), body

    def entity(self, name: str) -> tuple[EntitySet, int]:
        if name in self.failed:
            raise FailedDependency(f"not run: ${name} names a request that failed")
        found = self.entities.get(name)
        if found is None:
            raise BadRequest(f"${name} names no earlier request that created or read one entity")
        es, ident = found
        if ident is None:
            raise BadRequest(
                f"${name} is an Observation of an atomicity group: it is stored when the group "
                "commits, so only later requests can name it"
            )
        return es, ident

    def bind(self, es: EntitySet, value: Any) -> Any:
        """``value`` with each ``{"@iot.id": "$name"}`` link replaced by the id ``$name`` stands
        for, checked to be an entity of the set the link points into."""
        if isinstance(value, list):
            return [self.bind(es, item) for item in value]
        if not isinstance(value, dict):
            return value
        out: dict[str, Any] = {}
        for key, item in value.items():
            rel = es.relation(key)
            if rel is not None:
                out[key] = self.bind(SETS[rel.target], item)
            elif key == "@iot.id" and isinstance(item, str) and item.startswith("$") and item[1:] in self.ids:
                target, ident = self.entity(item[1:])
                if target is not es:
                    raise ValidationFailed(f"{item} is a {target.singular}, not one of the {es.name}")
                out[key] = ident
            else:
                out[key] = item
        return out

    def remember(self, req: BatchRequest, outcome: service.Outcome) -> None:
        """Keep the entity a create (or a read of one entity) names, for later ``$`` references."""
        if outcome.set is not None and (outcome.status == 201 or (req.method == "GET" and outcome.id)):
            self.entities[req.id] = (outcome.set, outcome.id)

    def answer(self, req: BatchRequest, outcome: service.Outcome, *, remember: bool = True) -> BatchResponse:
        if outcome.refused is not None:
            return self.refuse(req, ValidationFailed(outcome.refused))
        if remember:
            self.remember(req, outcome)
        headers: dict[str, str] = {}
        location = outcome.location(self.base)
        if location:
            headers["location"] = location
        raw = outcome.raw and not isinstance(outcome.body, dict | list)
        if raw:
            headers["content-type"] = "text/plain"
        body = ("" if outcome.body is None else str(outcome.body)) if raw else outcome.body
        return BatchResponse(req.id, outcome.status, body, headers, req.group, raw)

    def refuse(self, req: BatchRequest, error: CitydeskError) -> BatchResponse:
        self.failed.add(req.id)
        if req.group is not None:
            self.failed.add(req.group)
        return error_response(req, error)
