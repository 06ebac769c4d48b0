"""Drive the official MKA1 Python SDK (meetkai-mka1) against a local dev issuer.

Run by tests/sdk_interop.rs as `python interop.py <base_url> <api_key> <audience> <other_audience>`.
Prints one JSON object on stdout: the tokens the SDK obtained, the request bodies it sent, and
the SDK error class (and parsed error data) for each refusal, for the Rust side to check.
"""

import json
import sys
import warnings

import httpx
from meetkai_mka1 import SDK, errors

base_url, api_key, audience, other_audience = sys.argv[1:5]

sent = []


def record(request: httpx.Request) -> None:
    sent.append({"path": request.url.path, "body": request.content.decode()})


def sdk(key: str) -> SDK:
    # The SDK's own client construction, plus a hook that records what goes on the wire and
    # no proxies from the environment (the issuer is on loopback).
    client = httpx.Client(
        follow_redirects=True, trust_env=False, event_hooks={"request": [record]}
    )
    return SDK(server_url=base_url, bearer_auth=key, client=client)


def refusal(call):
    """Run a call that must fail; report the SDK error class and its parsed data."""
    try:
        call()
    except errors.SDKError as e:
        data = getattr(e, "data", None)
        return {
            "class": type(e).__name__,
            "status": e.status_code,
            "data": data.model_dump() if data is not None else None,
        }
    return {"class": None}


client = sdk(api_key)
out = {}

out["exchange_token"] = client.auth.api_keys.exchange_token(
    audience=audience,
    external_user_id="sdk-user-1",
    expires_in=600,
    permissions=["agent:read"],
).token

out["exchange_token_defaults"] = client.auth.api_keys.exchange_token(
    audience=audience, external_user_id="sdk-user-2"
).token

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    out["get_jwt_from_key"] = client.auth.api_key.get_jwt_from_key(
        audience=audience, external_user_id="sdk-user-3", expires_in=900
    ).token

out["foreign_audience"] = client.auth.api_keys.exchange_token(
    audience=other_audience, external_user_id="sdk-user-1"
).token

out["errors"] = {
    "bad_user": refusal(
        lambda: client.auth.api_keys.exchange_token(
            audience=audience, external_user_id="*"
        )
    ),
    "short_lifetime": refusal(
        lambda: client.auth.api_keys.exchange_token(
            audience=audience, external_user_id="u", expires_in=299.5
        )
    ),
    "superset": refusal(
        lambda: client.auth.api_keys.exchange_token(
            audience=audience, external_user_id="u", permissions=["admin:all"]
        )
    ),
    "wrong_key": refusal(
        lambda: sdk("not-the-key").auth.api_keys.exchange_token(
            audience=audience, external_user_id="u"
        )
    ),
}
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    out["errors"]["legacy_bad_user"] = refusal(
        lambda: client.auth.api_key.get_jwt_from_key(
            audience="not a uri", external_user_id="u"
        )
    )

out["sent"] = sent
print(json.dumps(out))
