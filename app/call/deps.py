"""What one call needs from the service (``CallDeps``): narrow, built by the composition
root (``app.services.Services.call_deps``), so the call layer never imports it."""

from __future__ import annotations

from dataclasses import dataclass

from app.call.keypad import DigitSink
from app.call.registry import LiveCalls
from app.carrier.rest import TwilioCalls
from app.carrier.transfers import TransferPolicy
from app.settings import Settings
from app.store.calls import CallStore
from app.store.objects import ObjectStore
from app.store.tokens import StreamTokens
from flows import FlowCatalog
from tools.base import Backends
from tools.registry import ToolRegistry


@dataclass(frozen=True)
class CallDeps:
    """Settings, flows, tools and the stores and carrier API a call uses."""

    settings: Settings
    flows: FlowCatalog
    registry: ToolRegistry
    backends: Backends
    store: CallStore
    tokens: StreamTokens
    calls_api: TwilioCalls
    transfers: TransferPolicy
    live: LiveCalls
    #: Where ``collect_digits`` hands the digits (None: dropped after the capture).
    digit_sink: DigitSink | None = None
    #: Where recordings go (flows with ``recording.mode: on``); None: not recorded.
    recordings: ObjectStore | None = None
