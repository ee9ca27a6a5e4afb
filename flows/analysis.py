"""A flow's ``analysis:`` section: what the post-call analysis (``app.analysis``) computes.

::

    analysis:
      summary: true                  # a few sentences on what the call was about
      instructions: "Note whether the delivery date was given."  # guidance for the model
      fields:                        # JSON Schema (draft 2020-12) of the structured fields
        type: object
        properties:
          resolved: {type: boolean, description: "The caller got what they called for"}
          reason: {type: string, enum: [order_status, new_order, complaint, other]}
          follow_up_date: {type: string, format: date}
        required: [resolved, reason]
      success: resolved              # the boolean field that says the call succeeded
      campaign_outcome: outcome      # (campaign flows) a field whose value is the outcome

``fields`` must be a valid JSON Schema of an object (checked when the flow loads, with
line numbers like any flow error); the analysis is validated against it before it is
stored. JSON Schema 2020-12: https://json-schema.org/draft/2020-12/json-schema-core
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
#: Most structured fields one analysis may have.
MAX_FIELDS = 50


class AnalysisSettings(BaseModel):
    """The ``analysis:`` section (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    summary: bool = True
    instructions: str | None = Field(None, max_length=4000)
    fields: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    success: str | None = None
    campaign_outcome: str | None = None

    @property
    def properties(self) -> dict[str, Any]:
        props = self.fields.get("properties")
        return props if isinstance(props, dict) else {}

    @model_validator(mode="after")
    def _schema(self) -> AnalysisSettings:
        from jsonschema import Draft202012Validator
        from jsonschema.exceptions import SchemaError

        try:
            Draft202012Validator.check_schema(self.fields)
        except SchemaError as exc:
            raise ValueError(f"fields is not a valid JSON Schema: {exc.message}") from None
        if self.fields.get("type") != "object":
            raise ValueError("fields must be a JSON Schema with type: object")
        props = self.properties
        if len(props) > MAX_FIELDS:
            raise ValueError(f"at most {MAX_FIELDS} fields")
        bad = [name for name in props if not _NAME.match(name)]
        if bad:
            raise ValueError(f"field names must be lower_snake_case: {bad}")
        if self.success is not None:
            kind = props.get(self.success, {}).get("type")
            if kind != "boolean":
                raise ValueError(f"success must name a boolean field, not {self.success!r}")
        if self.campaign_outcome is not None:
            spec = props.get(self.campaign_outcome, {})
            if spec.get("type") != "string" or not spec.get("enum"):
                raise ValueError("campaign_outcome must name a string field with an enum")
        return self
