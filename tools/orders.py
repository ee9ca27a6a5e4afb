"""Order tools: ``get_order_status`` and ``create_order``."""

from __future__ import annotations

from typing import Any

from app.errors import ToolError
from tools.base import Tool, ToolContext
from tools.customers import ACCOUNT_ID_SCHEMA, find_customer


class NoAccount(ToolError):
    """No customer account to place the order on."""

    code = "no_account"


async def get_order_status(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    """``{order_id}`` → ``{ok, found: true, order_id, account_id, item, quantity, status,
    delivery_date, created_at_ms}`` or ``{ok, found: false, order_id}``."""
    order_id = str(args["order_id"])
    order = await ctx.backends.orders.get(order_id)
    if order is None:
        return {"ok": True, "found": False, "order_id": order_id}
    return {"ok": True, "found": True, **order}


async def create_order(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    """``{item, quantity, account_id?}`` → ``{ok, created: true, **order}``.

    The account defaults to the customer found by the caller's number. Raises
    ``NoAccount`` (code ``no_account``) when there is none or ``account_id`` is unknown.
    """
    account_id = args.get("account_id")
    customer = await find_customer(ctx, account_id=account_id)
    if customer is None:
        if account_id:
            raise NoAccount(f"there is no customer account {account_id}")
        raise NoAccount("no customer account matches the caller's number; ask for their account id")
    order = await ctx.backends.orders.create(
        str(customer["account_id"]), str(args["item"]).strip(), int(args["quantity"])
    )
    return {"ok": True, "created": True, **order}


GET_ORDER_STATUS = Tool(
    name="get_order_status",
    description=(
        'Get the status of an order by its number (digits only, e.g. "1042"). Returns '
        "found=false if there is no such order. Tell the caller the status (processing, "
        "shipped, delivered or cancelled) and the delivery date."
    ),
    parameters={
        "type": "object",
        "properties": {
            "order_id": {
                "type": "string",
                "pattern": "^[0-9]{3,10}$",
                "description": 'The order number as digits, e.g. "1042".',
            }
        },
        "required": ["order_id"],
        "additionalProperties": False,
    },
    fn=get_order_status,
    timeout_ms=4000,
)

CREATE_ORDER = Tool(
    name="create_order",
    description=(
        "Place a new order for the caller. Confirm the item and quantity with the caller "
        "before calling. The order goes on the account found from the caller's number "
        "unless you pass account_id. Fails with code no_account when no account is found; "
        "then ask for the account id. Returns the new order number and delivery date."
    ),
    parameters={
        "type": "object",
        "properties": {
            "item": {
                "type": "string",
                "minLength": 1,
                "maxLength": 100,
                "description": 'What to order, as the caller said it, e.g. "coffee grinder".',
            },
            "quantity": {
                "type": "integer",
                "minimum": 1,
                "maximum": 20,
                "description": "How many, 1 to 20.",
            },
            "account_id": ACCOUNT_ID_SCHEMA,
        },
        "required": ["item", "quantity"],
        "additionalProperties": False,
    },
    fn=create_order,
    timeout_ms=5000,
)
