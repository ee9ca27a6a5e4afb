"""Where a call may be transferred: the one policy for operator and model transfers.

A transfer (``<Dial>`` through the REST API) bills the account for the outbound leg, so a
stolen admin key, a hijacked operator session or a caller talking the model round must
not be able to send calls anywhere. A number is allowed when

1. it is one of the call's flow's named ``transfer_targets``, or it matches a
   ``transfer_allowed_numbers`` pattern (``Settings``), and
2. it is not premium-rate or high-cost (``transfer_refused_prefixes``) nor outside the
   home country prefixes (``transfer_home_prefixes``), unless an allowed pattern lists
   it explicitly, and
3. it is not on the do-not-call list (checked in Redis by the REST client's guard,
   ``app.carrier.rest.TwilioCalls``, right before every transfer).

``TransferPolicy`` does 1 and 2 (pure, no I/O). ``PolicedControl`` applies it to the
model's ``transfer_call`` requests, so a refused number is a ``ToolRefused`` the model
hears about before it tells the caller anything.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from app.carrier.warm import is_sip
from app.errors import ToolRefused
from app.phone import is_e164, mask

if TYPE_CHECKING:
    from app.settings import Settings
    from tools.base import CallControl


def _compile(pattern: str) -> re.Pattern[str]:
    """``+1555010????`` / ``+44*`` → a regex: ``?`` one digit, a trailing ``*`` any rest."""
    body, star = (pattern[:-1], True) if pattern.endswith("*") else (pattern, False)
    regex = "".join(r"\d" if c == "?" else re.escape(c) for c in body)
    return re.compile("^" + regex + (r"\d*" if star else "") + "$")


class TransferPolicy:
    """Checks transfer destinations (see the module docstring).

    ``allowed``: E.164 patterns (``?`` one digit, trailing ``*``); ``refused_prefixes``:
    premium/high-cost prefixes (``?``/``*`` allowed too); ``home_prefixes``: country
    prefixes counted as domestic (an empty list makes every number domestic).
    """

    def __init__(
        self,
        allowed: Sequence[str] = (),
        refused_prefixes: Sequence[str] = (),
        home_prefixes: Sequence[str] = ("+1",),
    ) -> None:
        self._allowed = [_compile(p) for p in allowed]
        self._refused = [_compile(p.rstrip("*") + "*") for p in refused_prefixes]
        self._home = tuple(home_prefixes)

    @classmethod
    def from_settings(cls, settings: Settings) -> TransferPolicy:
        return cls(
            settings.transfer_allowed_numbers,
            settings.transfer_refused_prefixes,
            settings.transfer_home_prefixes,
        )

    def listed(self, number: str) -> bool:
        """Whether ``number`` matches an allowed pattern."""
        return any(p.match(number) for p in self._allowed)

    def destination_refusal(self, number: str) -> str | None:
        """Why ``number`` may not be dialled whatever the flow (rule 2), or None. A ``sip:``
        target is the flow's own (rule 1 admits it by name only) and has no prefix."""
        if is_sip(number):
            return None
        if not is_e164(number):
            return "not an E.164 number"
        if self.listed(number):
            return None
        if any(p.match(number) for p in self._refused):
            return "premium-rate or high-cost destination"
        if self._home and not number.startswith(self._home):
            return "international destination"
        return None

    def refusal(self, number: str, flow_targets: Iterable[str]) -> str | None:
        """Why a call whose flow names ``flow_targets`` (numbers) may not be transferred
        to ``number`` (rules 1 and 2), or None when it may. A ``sip:`` URI is allowed only
        as one of the flow's targets."""
        if is_sip(number):
            if number in set(flow_targets):
                return None
            return "a SIP target must be one of the call's flow's transfer targets"
        if not is_e164(number):
            return "not an E.164 number"
        if number not in set(flow_targets) and not self.listed(number):
            return "neither a transfer target of the call's flow nor on the allowed list"
        return self.destination_refusal(number)


class PolicedControl:
    """A ``CallControl`` that refuses transfers ``policy`` does not allow for the flow's
    ``targets`` (name → number) with ``ToolRefused``; everything else goes to ``inner``."""

    def __init__(
        self, inner: CallControl, policy: TransferPolicy, targets: Mapping[str, str]
    ) -> None:
        self.inner = inner
        self.policy = policy
        self.targets = dict(targets)

    def request_transfer(self, to_number: str, reason: str, mode: str | None = None) -> None:
        """Raises ``ToolRefused`` for a refused destination or a second transfer."""
        why = self.policy.refusal(to_number, self.targets.values())
        if why is not None:
            raise ToolRefused(f"transfer to {mask(to_number)} refused: {why}")
        self.inner.request_transfer(to_number, reason, mode)

    def request_hangup(self, reason: str) -> None:
        self.inner.request_hangup(reason)

    def record_routing(self, target: str, reason: str) -> None:
        self.inner.record_routing(target, reason)
