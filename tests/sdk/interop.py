"""Drive the official MKA1 Python SDK (meetkai-mka1) against a local dev issuer.

Run by tests/it/sdk_interop.rs as `python interop.py <base_url> <api_key> <audience> <other_audience>`.
Prints one JSON object on stdout: the tokens the SDK obtained, the request bodies it sent, the
SDK error class (and parsed error data) for each refusal, and a scoped API key's whole life
(create, list, exchange, regenerate, update, delete), for the Rust side to check.
"""

import json
import sys
import warnings
from datetime import datetime, timezone

import httpx
from meetkai_mka1 import SDK, errors, models

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
        try:
            paths = [d["path"] for d in json.loads(e.body).get("detail", [])]
        except (ValueError, AttributeError, TypeError, KeyError):
            paths = None
        return {
            "class": type(e).__name__,
            "status": e.status_code,
            "data": data.model_dump() if data is not None else None,
            "paths": paths,
        }
    return {"class": None}


def dump(model):
    return model.model_dump(mode="json", by_alias=True)


def unchecked(**fields):
    """A create body the SDK's own validation never saw: what a caller that bypassed it
    would put on the wire."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return models.CreateScopedAPIKeyRequestBody.model_construct(**fields)


def key_lifecycle(admin):
    """A scoped key from creation to deletion, through auth.api_keys, as the SDK calls it."""
    keys = admin.auth.api_keys
    life = {}
    created = keys.create(
        body={
            "name": "sdk-key",
            "team_id": "team-1",
            "scopes": ["files:read", "agent:read"],
            "expires_in": 86400,
        }
    )
    life["created"] = dump(created)
    listed = keys.list(team_id="team-1")
    life["listed"] = [dump(k) for k in listed]
    life["listed_without_secrets"] = all(k.key is None for k in listed)

    def exchange(client, user, **kw):
        return client.auth.api_keys.exchange_token(
            audience=audience, external_user_id=user, **kw
        ).token

    scoped = sdk(created.key)
    life["exchange_all"] = exchange(scoped, "sdk-user-4")
    life["exchange_subset"] = exchange(scoped, "sdk-user-4", permissions=["files:read"])
    life["exchange_outside"] = refusal(
        lambda: exchange(scoped, "sdk-user-4", permissions=["agent:write"])
    )
    life["not_a_manager"] = refusal(lambda: scoped.auth.api_keys.list())

    renewed = keys.regenerate(body={"key_id": created.id})
    life["regenerated"] = dump(renewed)
    life["old_secret"] = refusal(lambda: exchange(scoped, "sdk-user-5"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        life["old_secret_legacy"] = refusal(
            lambda: scoped.auth.api_key.get_jwt_from_key(
                audience=audience, external_user_id="sdk-user-5"
            )
        )
    current = sdk(renewed.key)
    life["exchange_regenerated"] = exchange(current, "sdk-user-5")

    updated = keys.update(
        body={
            "key_id": created.id,
            "scopes": ["agent:read"],
            "name": "renamed",
            "expires_at": datetime(2030, 1, 1, tzinfo=timezone.utc),
        }
    )
    life["updated"] = dump(updated)
    life["exchange_updated"] = exchange(current, "sdk-user-6")

    life["deleted"] = dump(keys.delete(body={"key_id": created.id}))
    life["after_delete"] = refusal(lambda: exchange(current, "sdk-user-7"))
    life["listed_after_delete"] = [k.id for k in keys.list()]

    life["bad_input"] = {
        "missing_name": refusal(
            lambda: keys.create(body=unchecked(team_id="t", scopes=["agent:read"]))
        ),
        "unknown_scope_format": refusal(
            lambda: keys.create(body={"name": "n", "team_id": "t", "scopes": ["admin"]})
        ),
        "empty_scopes": refusal(
            lambda: keys.create(body={"name": "n", "team_id": "t", "scopes": []})
        ),
        "non_numeric_expires_in": refusal(
            lambda: keys.create(
                body=unchecked(
                    name="n", team_id="t", scopes=["agent:read"], expires_in="soon"
                )
            )
        ),
    }
    return life


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

out["sent"] = list(sent)
out["lifecycle"] = key_lifecycle(client)
print(json.dumps(out))
