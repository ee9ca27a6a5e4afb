"""The dialer's part of the key scheme."""

from __future__ import annotations

from app.store.keys import Keys


def test_campaign_keys() -> None:
    k = Keys("p:")
    assert k.campaigns == "p:campaigns" and k.campaigns_active == "p:campaigns:active"
    assert k.campaign("cmp_1") == "p:campaign:cmp_1"
    assert k.contact("cmp_1", 7) == "p:campaign:cmp_1:contact:7" == k.contact_prefix("cmp_1") + "7"
    assert k.contact_attempts("cmp_1", 7) == "p:campaign:cmp_1:history:7"
    assert [f("c") for f in (k.campaign_due, k.campaign_inflight, k.campaign_optouts)] == [
        "p:campaign:c:due",
        "p:campaign:c:inflight",
        "p:campaign:c:optouts",
    ]
    assert (k.campaign_stats("c"), k.campaign_rate("c"), k.campaign_seq("c")) == (
        "p:campaign:c:stats",
        "p:campaign:c:rate",
        "p:campaign:c:seq",
    )
    assert k.campaign_phones("c") == "p:campaign:c:phones"
    assert (k.dialer_rate, k.dialer_instances) == ("p:dialer:rate", "p:dialer:instances")
    assert k.attempt("att_1") == "p:attempt:att_1" == k.attempt_prefix + "att_1"
    assert k.attempt_by_call("CA1") == "p:attempts:by_call:CA1"
