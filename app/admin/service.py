"""``Admin``: the per-process admin machinery the app starts and stops in its lifespan.

It names this instance (``instance``: host, pid and a random suffix), publishes its live
calls (``LiveRegistry``) and answers operator commands (``ControlListener``). Start it
after ``Services.build``; stop it after ``Services.drain`` and before ``Services.close``,
so calls stay listed and controllable while they drain.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException
from starlette.requests import HTTPConnection

from app.admin.control import ControlListener
from app.admin.flows import FlowBusy, FlowWork, reload_flows
from app.admin.live import LiveRegistry
from app.errors import StoreError
from app.services import Services

log = logging.getLogger(__name__)


def new_instance_id() -> str:
    """``<host>-<pid>-<hex>``: unique per process start, readable in the live list."""
    host = "".join(c for c in socket.gethostname() if c.isalnum() or c in "-.")[:40] or "host"
    return f"{host}-{os.getpid()}-{secrets.token_hex(3)}"


@dataclass
class Admin:
    instance: str
    registry: LiveRegistry
    listener: ControlListener
    #: Flow parsing off the event loop (validation and reloads).
    flow_work: FlowWork
    #: How long ``start`` waits for the control subscription (s).
    ready_timeout_s: float = 2.0

    @classmethod
    def build(cls, services: Services) -> Admin:
        instance = new_instance_id()
        work = FlowWork(services.settings.flow_parse_timeout_ms / 1000)

        async def reload() -> None:
            try:
                await reload_flows(services, work)
            except FlowBusy as exc:
                log.error("flow reload broadcast not applied: %s", exc)

        return cls(
            instance=instance,
            registry=LiveRegistry(services, instance),
            listener=ControlListener(services, instance, reload),
            flow_work=work,
            ready_timeout_s=services.settings.control_ready_timeout_ms / 1000,
        )

    async def start(self) -> None:
        """Start the heartbeat and the listener; waits (≤ ``ready_timeout_s``) for the
        subscription."""
        self.registry.start()
        self.listener.start()
        try:
            async with asyncio.timeout(self.ready_timeout_s):
                await self.listener.ready.wait()
        except TimeoutError:
            pass  # Redis is slow or down: the listener keeps retrying on its own

    async def stop(self) -> None:
        await self.listener.stop()
        await self.registry.stop()
        self.flow_work.close()


def get_admin(conn: HTTPConnection) -> Admin:
    """The app's ``Admin`` (a FastAPI dependency)."""
    admin: Admin = conn.app.state.admin
    return admin


@contextlib.contextmanager
def storage_errors() -> Iterator[None]:
    """Turn ``StoreError`` into a 503 answer (logged)."""
    try:
        yield
    except StoreError as exc:
        log.error("admin: storage unavailable: %s", exc)
        raise HTTPException(503, "storage unavailable") from None


AdminDep = Annotated[Admin, Depends(get_admin)]
