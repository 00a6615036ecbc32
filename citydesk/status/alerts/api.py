"""``/api/status/alert-rules``: create, read, change and delete alert rules (``alerts.manage``),
and ``/api/status/alert-kinds``: the kinds with their params schema.

Invalid params are a 400 in our error format, with pydantic's details (``kinds.parse_params``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response

from citydesk.auth import Permission, Principal, requires
from citydesk.status.alerts import kinds, service
from citydesk.web.deps import get_app

router = APIRouter(prefix="/api/status", tags=["city status: alert rules"])
Manager = Annotated[Principal, Depends(requires(Permission.ALERTS_MANAGE))]


@router.get("/alert-kinds", summary="Alert-rule kinds, with the JSON Schema of their params")
def alert_kinds(who: Manager) -> dict[str, Any]:
    return {"kinds": kinds.describe()}


@router.get("/alert-rules", summary="Every alert rule")
def list_rules(request: Request, who: Manager) -> dict[str, Any]:
    return service.list_rules(get_app(request))


@router.post("/alert-rules", status_code=201, summary="Create an alert rule")
def create_rule(request: Request, body: service.RuleIn, who: Manager) -> dict[str, Any]:
    app = get_app(request)
    return service.create_rule(app, body, now=app.now())


@router.get("/alert-rules/{rule_id}", summary="One alert rule")
def get_rule(request: Request, rule_id: int, who: Manager) -> dict[str, Any]:
    return service.get_rule(get_app(request), rule_id)


@router.patch("/alert-rules/{rule_id}", summary="Change an alert rule (unset fields are kept)")
def update_rule(request: Request, rule_id: int, body: service.RulePatch, who: Manager) -> dict[str, Any]:
    app = get_app(request)
    return service.update_rule(app, rule_id, body, now=app.now())


@router.delete("/alert-rules/{rule_id}", status_code=204, summary="Delete an alert rule (its events stay)")
def delete_rule(request: Request, rule_id: int, who: Manager) -> Response:
    service.delete_rule(get_app(request), rule_id)
    return Response(status_code=204)
