"""Customer tools: ``lookup_customer``."""

from __future__ import annotations

from typing import Any

from app.phone import is_e164, normalize
from tools.base import Tool, ToolContext

E164_PATTERN = r"^\+[1-9][0-9]{6,14}$"
ACCOUNT_ID_SCHEMA: dict[str, Any] = {
    "type": "string",
    "minLength": 1,
    "maxLength": 64,
    "pattern": r"^[A-Za-z0-9][A-Za-z0-9_-]*$",
    "description": "Customer account id, e.g. ACME-1001.",
}


def caller_e164(ctx: ToolContext) -> str | None:
    """The caller's number in E.164, or None (withheld, ``anonymous``, SIP client ids)."""
    number = ctx.call.from_number
    if not number:
        return None
    try:
        e164 = normalize(number)
    except ValueError:
        return None
    return e164 if is_e164(e164) else None


async def find_customer(
    ctx: ToolContext, *, account_id: str | None = None, phone: str | None = None
) -> dict[str, Any] | None:
    """Customer by ``account_id``, else by ``phone``, else by the caller's number; or None."""
    customers = ctx.backends.customers
    if account_id:
        return await customers.by_account(account_id)
    number = phone or caller_e164(ctx)
    if number is None:
        return None
    return await customers.by_phone(number)


async def lookup_customer(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    """``{phone?, account_id?}`` → ``{ok, found: true, account_id, name, phone_masked, tier,
    email?}`` or ``{ok, found: false}``. Raw numbers never appear in the output."""
    customer = await find_customer(ctx, account_id=args.get("account_id"), phone=args.get("phone"))
    if customer is None:
        return {"ok": True, "found": False}
    return {"ok": True, "found": True, **customer}


LOOKUP_CUSTOMER = Tool(
    name="lookup_customer",
    description=(
        "Look up the caller's customer account. With no arguments it uses the number the "
        "caller is calling from, so call it with {} first. Pass account_id if the caller "
        "reads out an account id, or phone (E.164, e.g. +15555550123) if they give another "
        "number. Returns found=false when there is no match; then ask for an account id. "
        "The phone number in the result is masked: never read it out as the full number."
    ),
    parameters={
        "type": "object",
        "properties": {
            "phone": {
                "type": "string",
                "pattern": E164_PATTERN,
                "description": "Phone number in E.164 form, e.g. +15555550123.",
            },
            "account_id": ACCOUNT_ID_SCHEMA,
        },
        "additionalProperties": False,
    },
    fn=lookup_customer,
    timeout_ms=3000,
)
