"""``/admin/flows``: list, validate and hot-reload flows."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from app.admin import flows as flows_admin
from app.admin.control import broadcast
from app.admin.flows import FlowBusy, FlowProblem, FlowTooLarge, validate_text
from app.admin.schemas import (
    FlowPage,
    FlowProblemModel,
    FlowReload,
    FlowSummary,
    FlowValidateRequest,
    FlowValidation,
)
from app.admin.service import AdminDep, storage_errors
from app.api.auth import ADMIN_ERRORS, ADMIN_ERRORS_404, AdminRead, AdminWrite, ErrorBody
from app.api.deps import ServicesDep
from app.api.errors import ApiError
from flows import Flow

router = APIRouter(prefix="/admin/flows", tags=["admin: flows"])


def flow_summary(flow: Flow) -> FlowSummary:
    return FlowSummary(
        name=flow.name,
        description=flow.description,
        direction=flow.direction,
        default=flow.default,
        numbers=list(flow.numbers),
        voice=flow.voice,
        tools=list(flow.tools),
        transfer_targets=sorted(flow.transfer_targets),
    )


def _problems(problems: list[FlowProblem]) -> list[FlowProblemModel]:
    return [FlowProblemModel(file=p.file, line=p.line, message=p.message) for p in problems]


@router.get("", summary="The flows this instance runs", responses=ADMIN_ERRORS)
async def list_flows(services: ServicesDep, principal: AdminRead) -> FlowPage:
    catalog = services.flows
    items = [flow_summary(f) for _, f in sorted(catalog.flows.items())]
    for item in items:  # the catalog's default, also when no file says `default: true`
        item.default = item.name == catalog.default.name
    return FlowPage(items=items, next_cursor=None)


@router.get(
    "/{name}",
    summary="One flow, in full (as loaded)",
    responses=ADMIN_ERRORS_404,
    response_model=dict[str, object],
)
async def get_flow(services: ServicesDep, principal: AdminRead, name: str) -> JSONResponse:
    flow = services.flows.get(name)
    if flow is None:
        raise ApiError(404, "no such flow")
    return JSONResponse(flow.model_dump(mode="json"))


_BUSY: dict[int | str, dict[str, Any]] = {
    503: {"model": ErrorBody, "description": "Storage unavailable, or flow parsing busy/too slow"}
}


@router.post(
    "/validate",
    summary="Validate a flow file's YAML (errors carry line numbers); nothing is saved",
    responses={
        **ADMIN_ERRORS,
        413: {"model": ErrorBody, "description": "The YAML is over flow_max_bytes"},
        **_BUSY,
    },
)
async def validate_flow(
    services: ServicesDep, admin: AdminDep, principal: AdminRead, body: FlowValidateRequest
) -> FlowValidation:
    """Nesting, node and alias limits are problems in the answer (``valid: false``);
    parsing runs off the event loop within ``flow_parse_timeout_ms``."""
    try:
        flow, problems = await validate_text(services, admin.flow_work, body.yaml)
    except FlowTooLarge as exc:
        raise ApiError(413, str(exc)) from None
    except FlowBusy as exc:
        raise ApiError(503, str(exc), headers={"Retry-After": "1"}) from None
    return FlowValidation(
        valid=flow is not None,
        flow=flow_summary(flow) if flow is not None else None,
        errors=_problems(problems),
    )


@router.post(
    "/reload",
    summary="Reload flows/ on every instance; all files must validate or nothing changes",
    responses={
        **ADMIN_ERRORS,
        422: {"model": FlowReload, "description": "Rejected: the running flows are unchanged"},
        **_BUSY,
    },
)
async def reload_flows(services: ServicesDep, admin: AdminDep, principal: AdminWrite) -> FlowReload:
    try:
        result = await flows_admin.reload_flows(services, admin.flow_work)
    except FlowBusy as exc:
        raise ApiError(503, str(exc), headers={"Retry-After": "1"}) from None
    body = FlowReload(
        ok=result.ok,
        flows=result.flows,
        added=result.added,
        removed=result.removed,
        changed=result.changed,
        problems=_problems(result.problems),
    )
    if not result.ok:
        body.code = "flows_invalid"
        return JSONResponse(body.model_dump(), status_code=422)  # type: ignore[return-value]
    with storage_errors():
        others = await broadcast(
            services.redis, services.keys, {"op": "reload_flows", "origin": admin.instance}
        )
    body.notified_instances = max(0, others - 1)
    return body
