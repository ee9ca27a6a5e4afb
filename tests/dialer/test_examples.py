"""The shipped campaign examples stay valid and fit the reminder flow."""

from __future__ import annotations

from pathlib import Path

import yaml

from app.dialer.contacts import parse_csv
from app.dialer.models import CampaignSpec
from flows import FlowCatalog

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_example_campaign_and_contacts_are_valid() -> None:
    spec = CampaignSpec.model_validate(yaml.safe_load((EXAMPLES / "campaign.yaml").read_text()))
    assert FlowCatalog.load().get(spec.flow) is not None
    parsed = parse_csv((EXAMPLES / "contacts.csv").read_text())
    assert parsed.errors == [] and len(parsed.contacts) == 3
    for _, contact in parsed.contacts:
        assert {"first_name", "appointment"} <= contact.variables.keys()
