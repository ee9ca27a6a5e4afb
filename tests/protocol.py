"""Validate Realtime events against the ``openai`` package's typed models (GA and beta).

The SDK's models accept unknown fields, so after validation every nested model is also
checked for extra fields: a misspelt or misplaced key fails here.
"""

from __future__ import annotations

from typing import Any

import pydantic
from openai.types.beta.realtime import realtime_client_event as beta_client
from openai.types.beta.realtime import realtime_server_event as beta_server
from openai.types.realtime import realtime_client_event as ga_client
from openai.types.realtime import realtime_server_event as ga_server

_ADAPTERS: dict[tuple[str, bool], pydantic.TypeAdapter[Any]] = {
    ("client", False): pydantic.TypeAdapter(ga_client.RealtimeClientEvent),
    ("client", True): pydantic.TypeAdapter(beta_client.RealtimeClientEvent),
    ("server", False): pydantic.TypeAdapter(ga_server.RealtimeServerEvent),
    ("server", True): pydantic.TypeAdapter(beta_server.RealtimeServerEvent),
}


def _extras(obj: Any, path: str = "") -> list[str]:
    found: list[str] = []
    if isinstance(obj, pydantic.BaseModel):
        for key in obj.__pydantic_extra__ or {}:
            found.append(f"{path}.{key}" if path else key)
        for name in type(obj).model_fields:
            found += _extras(getattr(obj, name), f"{path}.{name}" if path else name)
    elif isinstance(obj, list | tuple):
        for i, v in enumerate(obj):
            found += _extras(v, f"{path}[{i}]")
    elif isinstance(obj, dict):
        for k, v in obj.items():
            found += _extras(v, f"{path}.{k}")
    return found


def validate(
    event: dict[str, Any], *, side: str, beta: bool, allow_extra: tuple[str, ...] = ()
) -> Any:
    """Parse ``event`` with the SDK model for its type; raise AssertionError on failure."""
    try:
        model = _ADAPTERS[(side, beta)].validate_python(event)
    except pydantic.ValidationError as exc:
        raise AssertionError(f"{event.get('type')} is not a valid {side} event: {exc}") from None
    extras = [e for e in _extras(model) if e not in allow_extra]
    assert not extras, f"{event.get('type')}: fields unknown to the SDK model: {extras}"
    return model
