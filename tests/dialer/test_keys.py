"""The dialer's part of the key scheme: every key of a campaign carries its hash tag."""

from __future__ import annotations

from app.dialer.store.attempts import new_attempt_id
from app.store.keys import Keys, attempt_campaign


def test_campaign_keys() -> None:
    k = Keys("p:")
    assert k.campaigns == "p:campaigns" and k.campaigns_active == "p:campaigns:active"
    assert k.campaign("cmp_1") == "p:campaign:{cmp_1}"
    assert k.contact("cmp_1", 7) == "p:campaign:{cmp_1}:contact:7"
    assert k.contact_attempts("cmp_1", 7) == "p:campaign:{cmp_1}:history:7"
    assert [f("c") for f in (k.campaign_due, k.campaign_inflight, k.campaign_optouts)] == [
        "p:campaign:{c}:due",
        "p:campaign:{c}:inflight",
        "p:campaign:{c}:optouts",
    ]
    assert (k.campaign_stats("c"), k.campaign_rate("c"), k.campaign_seq("c")) == (
        "p:campaign:{c}:stats",
        "p:campaign:{c}:rate",
        "p:campaign:{c}:seq",
    )
    assert k.campaign_phones("c") == "p:campaign:{c}:phones"
    assert (k.dialer_rate, k.dialer_instances) == ("p:dialer:rate", "p:dialer:instances")
    assert k.attempt_by_call("CA1") == "p:attempts:by_call:{CA1}"


def test_an_attempt_lives_in_its_campaigns_slot() -> None:
    k = Keys("p:")
    aid = new_attempt_id("cmp_1")
    assert aid.startswith("att_") and aid.endswith(".cmp_1")
    assert attempt_campaign(aid) == "cmp_1"
    assert k.attempt(aid) == f"p:attempt:{{cmp_1}}:{aid}"
    # An id from before hash tags keeps its old name.
    assert attempt_campaign("att_1") is None
    assert k.attempt("att_1") == "p:attempt:att_1"
