"""The README's webhook verification snippet, run as written, accepts what Switchboard
signs and refuses a forged or replayed delivery."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from app.webhooks.signing import sign

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_snippet_verifies_signatures() -> None:
    text = README.read_text()
    marker = text.index("<!-- webhook-verify:")
    code = re.search(r"```python\n(.*?)```", text[marker:], re.S)
    assert code is not None
    namespace: dict[str, Any] = {}
    exec(code.group(1), namespace)  # the snippet as a receiver would paste it
    verify = namespace["verify"]
    body = b'{"id":"evt_1","type":"call.ended","created_at_ms":1,"data":{}}'
    header = sign("whsec_test", body)
    assert verify("whsec_test", header, body)
    assert not verify("whsec_other", header, body)
    assert not verify("whsec_test", header, body.replace(b"evt_1", b"evt_2"))
    old = sign("whsec_test", body, timestamp=int(time.time()) - 3600)
    assert not verify("whsec_test", old, body)
