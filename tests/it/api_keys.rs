//! The dev issuer's API keys over loopback HTTP, shaped as the official SDK calls them:
//! create, list, exchange (both paths) with the calling key's scopes, regenerate, update,
//! delete and expiry; who may manage keys; every 400; secrets in no answer and no log. Also
//! the handle's methods that do the same without HTTP.
#![cfg(feature = "remote")]

use crate::common;
use crate::mock_mka1;

use std::time::Duration;

use mka1_auth::ConfigErrorKind;
use mka1_auth::ManualClock;
use mka1_auth_dev_issuer::{
    ApiKeySpec, DevIssuer, BOOTSTRAP_KEY_ID, EXCHANGE_TOKEN_PATH, LEGACY_EXCHANGE_TOKEN_PATH,
    SCOPED_API_KEY_DELETE_PATH, SCOPED_API_KEY_LIST_PATH, SCOPED_API_KEY_PATH,
    SCOPED_API_KEY_REGENERATE_PATH, SCOPED_API_KEY_UPDATE_PATH,
};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const NOW: u64 = 1_800_000_000;
/// `NOW` in RFC 3339, as `expiresAt` shows it.
const NOW_TEXT: &str = "2027-01-15T08:00:00.000Z";
const AUDIENCE: &str = "https://api.example.test";
const EXCHANGE_PATHS: [&str; 2] = [EXCHANGE_TOKEN_PATH, LEGACY_EXCHANGE_TOKEN_PATH];

async fn start(clock: &ManualClock) -> DevIssuer {
    DevIssuer::builder()
        .clock(clock.clone())
        .start()
        .await
        .unwrap()
}

/// Call `path` with `Bearer <key>` and an optional JSON body; the status and JSON answer.
async fn call(
    issuer: &DevIssuer,
    method: Method,
    path: &str,
    key: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut request = http
        .request(method, format!("{}{path}", issuer.base_url()))
        .header("authorization", format!("Bearer {key}"));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not json: {text}"));
    (status, body)
}

async fn post(issuer: &DevIssuer, path: &str, key: &str, body: Value) -> (StatusCode, Value) {
    call(issuer, Method::POST, path, key, Some(body)).await
}

async fn list(issuer: &DevIssuer, key: &str, query: &str) -> (StatusCode, Value) {
    let path = format!("{SCOPED_API_KEY_LIST_PATH}{query}");
    call(issuer, Method::GET, &path, key, None).await
}

/// Exchange with `key` on `path`; the status and the token's `permissions` (or the body).
async fn exchange(issuer: &DevIssuer, path: &str, key: &str, body: Value) -> (StatusCode, Value) {
    let (status, answer) = post(issuer, path, key, body).await;
    if status != StatusCode::OK {
        return (status, answer);
    }
    let claims = mock_mka1::payload(answer["token"].as_str().unwrap());
    (status, claims["permissions"].clone())
}

fn user(permissions: Option<&[&str]>) -> Value {
    let mut body = json!({"audience": AUDIENCE, "externalUserId": "user-1"});
    if let Some(permissions) = permissions {
        body["permissions"] = json!(permissions);
    }
    body
}

/// The `path`s of an error body's detail list; the body is what the SDK's error classes read.
fn paths(body: &Value) -> Vec<&str> {
    assert!(body["message"].is_string(), "{body}");
    body["detail"]
        .as_array()
        .unwrap_or_else(|| panic!("no detail list: {body}"))
        .iter()
        .map(|d| d["path"].as_str().unwrap())
        .collect()
}

/// Create a key with the bootstrap key; its answer.
async fn create(issuer: &DevIssuer, body: Value) -> Value {
    let (status, created) = post(issuer, SCOPED_API_KEY_PATH, issuer.api_key(), body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created
}

#[tokio::test]
async fn a_scoped_key_lives_through_create_list_exchange_regenerate_update_and_delete() {
    let clock = ManualClock::at_unix(NOW);
    let issuer = start(&clock).await;
    let boot = issuer.api_key().to_owned();

    let created = create(
        &issuer,
        json!({"name": "reports", "teamId": "team-1", "scopes": ["files:read", "agent:read"],
               "expiresIn": 86_400}),
    )
    .await;
    let (id, secret) = (
        created["id"].as_str().unwrap(),
        created["key"].as_str().unwrap(),
    );
    assert!(
        secret.starts_with("mka1_dev_") && secret.len() > 40,
        "{created}"
    );
    assert!(secret.starts_with(created["start"].as_str().unwrap()));
    assert_eq!(created["prefix"], "mka1_dev_");
    assert_eq!(created["scopes"], json!(["agent:read", "files:read"]));
    assert_eq!(
        (&created["name"], &created["teamId"], &created["orgId"]),
        (&json!("reports"), &json!("team-1"), &json!("dev-org"))
    );
    assert_eq!(
        (&created["userId"], &created["userType"]),
        (&json!("dev-user"), &json!("user"))
    );
    assert_eq!(created["expiresAt"], "2027-01-16T08:00:00.000Z");

    // The bootstrap key granted `files:read`, but its own exchanges stay within its scopes.
    let (status, _) = exchange(
        &issuer,
        EXCHANGE_TOKEN_PATH,
        &boot,
        user(Some(&["files:read"])),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Listed with its metadata, never a secret.
    let (status, listed) = list(&issuer, &boot, "").await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [BOOTSTRAP_KEY_ID, id]);
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k.get("key").is_none()),
        "{listed}"
    );
    assert!(!listed.to_string().contains(secret));
    assert_eq!(listed[1]["expiresAt"], created["expiresAt"]);

    // Exchange follows the key, on both paths alike.
    for path in EXCHANGE_PATHS {
        let all = exchange(&issuer, path, secret, user(None)).await;
        assert_eq!(
            all,
            (StatusCode::OK, json!(["agent:read", "files:read"])),
            "{path}"
        );
        let subset = exchange(&issuer, path, secret, user(Some(&["files:read"]))).await;
        assert_eq!(subset, (StatusCode::OK, json!(["files:read"])), "{path}");
        let (status, outside) = exchange(
            &issuer,
            path,
            secret,
            user(Some(&["files:read", "agent:write"])),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
        assert_eq!(paths(&outside), ["permissions.1"]);
    }

    // Regenerated: the old secret is refused at once, the new one works.
    let (status, renewed) = post(
        &issuer,
        SCOPED_API_KEY_REGENERATE_PATH,
        &boot,
        json!({"keyId": id}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{renewed}");
    let new_secret = renewed["key"].as_str().unwrap();
    assert_eq!(renewed["id"], id);
    assert_ne!(new_secret, secret);
    assert!(new_secret.starts_with(renewed["start"].as_str().unwrap()));
    for path in EXCHANGE_PATHS {
        let (status, refused) = exchange(&issuer, path, secret, user(None)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(paths(&refused), ["authorization"]);
        assert_eq!(
            exchange(&issuer, path, new_secret, user(None)).await.0,
            StatusCode::OK
        );
    }

    // Updated: narrower scopes, a new name, no expiry.
    let (status, updated) = post(
        &issuer,
        SCOPED_API_KEY_UPDATE_PATH,
        &boot,
        json!({"keyId": id, "scopes": ["agent:read"], "name": "renamed", "expiresAt": null}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(
        updated,
        json!({"id": id, "scopes": ["agent:read"], "userType": "user", "orgId": "dev-org",
               "expiresAt": null})
    );
    let all = exchange(&issuer, EXCHANGE_TOKEN_PATH, new_secret, user(None)).await;
    assert_eq!(all, (StatusCode::OK, json!(["agent:read"])));
    let gone = exchange(
        &issuer,
        EXCHANGE_TOKEN_PATH,
        new_secret,
        user(Some(&["files:read"])),
    )
    .await;
    assert_eq!(gone.0, StatusCode::FORBIDDEN);
    let (_, listed) = list(&issuer, &boot, "?teamId=team-1").await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["name"], "renamed");

    // Deleted: refused at once on both paths; a second delete finds nothing.
    let (status, deleted) = post(
        &issuer,
        SCOPED_API_KEY_DELETE_PATH,
        &boot,
        json!({"keyId": id}),
    )
    .await;
    assert_eq!(
        (status, deleted),
        (StatusCode::OK, json!({"id": id, "deleted": true}))
    );
    for path in EXCHANGE_PATHS {
        assert_eq!(
            exchange(&issuer, path, new_secret, user(None)).await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    let (status, missing) = post(
        &issuer,
        SCOPED_API_KEY_DELETE_PATH,
        &boot,
        json!({"keyId": id}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(paths(&missing), ["keyId"]);
    let (_, listed) = list(&issuer, &boot, "").await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn keys_expire_on_the_issuers_clock() {
    let clock = ManualClock::at_unix(NOW);
    let issuer = start(&clock).await;
    let created = create(
        &issuer,
        json!({"name": "short", "teamId": "t", "scopes": ["agent:read"], "expiresIn": 600}),
    )
    .await;
    let secret = created["key"].as_str().unwrap();
    clock.advance(Duration::from_secs(599));
    assert_eq!(
        exchange(&issuer, EXCHANGE_TOKEN_PATH, secret, user(None))
            .await
            .0,
        StatusCode::OK
    );
    clock.advance(Duration::from_secs(1));
    for path in EXCHANGE_PATHS {
        let (status, body) = exchange(&issuer, path, secret, user(None)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        assert!(
            body["message"].as_str().unwrap().contains("expired"),
            "{body}"
        );
    }

    // An update can end a key's life, or give it back.
    let id = created["id"].as_str().unwrap();
    let boot = issuer.api_key();
    let revive =
        json!({"keyId": id, "scopes": ["agent:read"], "expiresAt": "2030-01-01T00:00:00Z"});
    let (status, body) = post(&issuer, SCOPED_API_KEY_UPDATE_PATH, boot, revive).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["expiresAt"], "2030-01-01T00:00:00.000Z");
    assert_eq!(
        exchange(&issuer, EXCHANGE_TOKEN_PATH, secret, user(None))
            .await
            .0,
        StatusCode::OK
    );
    let end = json!({"keyId": id, "scopes": ["agent:read"], "expiresAt": NOW_TEXT});
    assert_eq!(
        post(&issuer, SCOPED_API_KEY_UPDATE_PATH, boot, end).await.0,
        StatusCode::OK
    );
    assert_eq!(
        exchange(&issuer, EXCHANGE_TOKEN_PATH, secret, user(None))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn managing_keys_needs_write_apikeys_and_grants_only_held_scopes() {
    let clock = ManualClock::at_unix(NOW);
    let issuer = start(&clock).await;
    let reader = issuer.create_key(ApiKeySpec::new(["agent:read"])).unwrap();
    let body = json!({"keyId": "x", "name": "n", "teamId": "t", "scopes": ["agent:read"]});
    for path in [
        SCOPED_API_KEY_PATH,
        SCOPED_API_KEY_UPDATE_PATH,
        SCOPED_API_KEY_REGENERATE_PATH,
        SCOPED_API_KEY_DELETE_PATH,
    ] {
        let (status, refused) = post(&issuer, path, reader.secret(), body.clone()).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
        assert!(refused["message"]
            .as_str()
            .unwrap()
            .contains("write:apikeys"));
    }
    assert_eq!(
        list(&issuer, reader.secret(), "").await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        list(&issuer, "no-such-key", "").await.0,
        StatusCode::UNAUTHORIZED
    );

    // A manager that holds `agent:read` but not `agent:write`.
    let manager = issuer
        .create_key(ApiKeySpec::new(["write:apikeys", "agent:read"]))
        .unwrap();
    let m = manager.secret();
    let ask = |scopes: Value| json!({"name": "n", "teamId": "t", "scopes": scopes});
    let (status, refused) = post(
        &issuer,
        SCOPED_API_KEY_PATH,
        m,
        ask(json!(["agent:read", "agent:write"])),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(paths(&refused), ["scopes.1"]);
    assert_eq!(
        post(&issuer, SCOPED_API_KEY_PATH, m, ask(json!(["agent:read"])))
            .await
            .0,
        StatusCode::CREATED
    );

    // A key with `agent:write`, made by the bootstrap key: the manager may keep that scope
    // on it while adding one it holds, but not add one it lacks, nor regenerate or delete it.
    let writer = create(&issuer, ask(json!(["agent:write"]))).await;
    let writer_id = writer["id"].as_str().unwrap();
    let keep = json!({"keyId": writer_id, "scopes": ["agent:write", "agent:read"]});
    assert_eq!(
        post(&issuer, SCOPED_API_KEY_UPDATE_PATH, m, keep).await.0,
        StatusCode::OK
    );
    let widen = json!({"keyId": writer_id, "scopes": ["agent:write", "files:read"]});
    let (status, refused) = post(&issuer, SCOPED_API_KEY_UPDATE_PATH, m, widen).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(paths(&refused), ["scopes.1"]);
    for path in [SCOPED_API_KEY_REGENERATE_PATH, SCOPED_API_KEY_DELETE_PATH] {
        let (status, refused) = post(&issuer, path, m, json!({"keyId": writer_id})).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
        assert_eq!(paths(&refused), ["keyId"]);
    }
    assert_eq!(
        exchange(
            &issuer,
            EXCHANGE_TOKEN_PATH,
            writer["key"].as_str().unwrap(),
            user(None)
        )
        .await,
        (StatusCode::OK, json!(["agent:read", "agent:write"]))
    );

    // A key may delete itself; then it is refused like any deleted key.
    let own = json!({"keyId": manager.id()});
    assert_eq!(
        post(&issuer, SCOPED_API_KEY_DELETE_PATH, m, own).await.0,
        StatusCode::OK
    );
    assert_eq!(list(&issuer, m, "").await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn no_other_key_may_take_over_or_disable_the_bootstrap_key() {
    let clock = ManualClock::at_unix(NOW);
    let issuer = start(&clock).await;
    let boot = issuer.api_key().to_owned();
    let before = issuer.keys()[0].clone();
    // A manager holding every scope the bootstrap key lists: it could manage any other key.
    let manager = issuer
        .create_key(ApiKeySpec::new(before.scopes().iter().cloned()))
        .unwrap();
    let m = manager.secret();
    let bootstrap = |more: Value| {
        let mut body = json!({"keyId": BOOTSTRAP_KEY_ID});
        body.as_object_mut()
            .unwrap()
            .extend(more.as_object().unwrap().clone());
        body
    };
    let attempts = [
        // Take over: a regeneration would answer the bootstrap key's new secret.
        (SCOPED_API_KEY_REGENERATE_PATH, bootstrap(json!({}))),
        // Disable: delete, narrow, expire.
        (SCOPED_API_KEY_DELETE_PATH, bootstrap(json!({}))),
        (
            SCOPED_API_KEY_UPDATE_PATH,
            bootstrap(json!({"scopes": ["agent:read"]})),
        ),
        (
            SCOPED_API_KEY_UPDATE_PATH,
            bootstrap(json!({"scopes": before.scopes(), "expiresAt": NOW_TEXT})),
        ),
    ];
    for (path, body) in attempts {
        let (status, refused) = post(&issuer, path, m, body.clone()).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path} {body}: {refused}");
        assert_eq!(paths(&refused), ["keyId"], "{path}");
        assert!(
            refused["message"]
                .as_str()
                .unwrap()
                .contains("bootstrap key"),
            "{refused}"
        );
        assert!(refused.get("key").is_none(), "no secret: {refused}");
    }
    // The bootstrap key is as it was, and still works.
    let after = &issuer.keys()[0];
    assert_eq!(after.id(), BOOTSTRAP_KEY_ID);
    assert_eq!(after.scopes(), before.scopes());
    assert_eq!(after.expires_at(), None);
    assert_eq!(after.start(), before.start());
    clock.advance(Duration::from_secs(3600));
    assert_eq!(list(&issuer, &boot, "").await.0, StatusCode::OK);
    let (status, _) = exchange(&issuer, EXCHANGE_TOKEN_PATH, &boot, user(None)).await;
    assert_eq!(status, StatusCode::OK);

    // The manager still manages other keys, and the bootstrap key itself may manage itself.
    let other = issuer.create_key(ApiKeySpec::new(["agent:read"])).unwrap();
    let regenerate = json!({"keyId": other.id()});
    let (status, _) = post(&issuer, SCOPED_API_KEY_REGENERATE_PATH, m, regenerate).await;
    assert_eq!(status, StatusCode::OK);
    let (status, regenerated) = post(
        &issuer,
        SCOPED_API_KEY_REGENERATE_PATH,
        &boot,
        bootstrap(json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{regenerated}");
    assert_eq!(list(&issuer, &boot, "").await.0, StatusCode::UNAUTHORIZED);
    let new_boot = regenerated["key"].as_str().unwrap();
    assert_eq!(list(&issuer, new_boot, "").await.0, StatusCode::OK);
}

#[tokio::test]
async fn bad_bodies_get_400_naming_every_bad_field() {
    let clock = ManualClock::at_unix(NOW);
    let issuer = start(&clock).await;
    let boot = issuer.api_key();
    let ok = || json!({"name": "n", "teamId": "t", "scopes": ["agent:read"]});
    let with = |field: &str, value: Value| {
        let mut body = ok();
        body[field] = value;
        body
    };
    let without = |field: &str| {
        let mut body = ok();
        body.as_object_mut().unwrap().remove(field);
        body
    };
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (without("name"), vec!["name"]),
        (with("name", json!("")), vec!["name"]),
        (with("name", json!(7)), vec!["name"]),
        (without("teamId"), vec!["teamId"]),
        (without("scopes"), vec!["scopes"]),
        (with("scopes", json!([])), vec!["scopes"]),
        (with("scopes", json!("agent:read")), vec!["scopes"]),
        (
            with("scopes", json!(["agent:read", "admin", "Read:X", 3])),
            vec!["scopes.1", "scopes.2", "scopes.3"],
        ),
        (with("expiresIn", json!("3600")), vec!["expiresIn"]),
        (with("expiresIn", json!(1.5)), vec!["expiresIn"]),
        (with("expiresIn", json!(0)), vec!["expiresIn"]),
        (with("expiresIn", json!(-60)), vec!["expiresIn"]),
        (
            with("rateLimitEnabled", json!("yes")),
            vec!["rateLimitEnabled"],
        ),
        (
            with("onBehalfOf", json!({"userType": "user"})),
            vec!["onBehalfOf.userType", "onBehalfOf.serviceAccountId"],
        ),
        (json!({}), vec!["name", "teamId", "scopes"]),
        (json!([]), vec![""]),
    ];
    for (body, expected) in cases {
        let (status, refused) = post(&issuer, SCOPED_API_KEY_PATH, boot, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(paths(&refused), expected, "{body}");
        assert_eq!(refused["detail"], refused["details"]);
    }
    let (status, _) = post(
        &issuer,
        SCOPED_API_KEY_PATH,
        boot,
        with("expiresIn", json!(3600.0)),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "a whole float is whole seconds"
    );

    let updates: Vec<(Value, Vec<&str>)> = vec![
        (json!({"scopes": ["agent:read"]}), vec!["keyId"]),
        (json!({"keyId": "k"}), vec!["scopes"]),
        (
            json!({"keyId": "k", "scopes": ["agent:read"], "expiresAt": "soon"}),
            vec!["expiresAt"],
        ),
        (
            json!({"keyId": "k", "scopes": ["agent:read"], "expiresAt": 5}),
            vec!["expiresAt"],
        ),
    ];
    for (body, expected) in updates {
        let (status, refused) = post(&issuer, SCOPED_API_KEY_UPDATE_PATH, boot, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(paths(&refused), expected, "{body}");
    }
    for path in [SCOPED_API_KEY_REGENERATE_PATH, SCOPED_API_KEY_DELETE_PATH] {
        let (status, refused) = post(&issuer, path, boot, json!({"keyId": 7})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(paths(&refused), ["keyId"]);
        let (status, _) = post(&issuer, path, boot, json!({"keyId": "no-such-key"})).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
    let update = json!({"keyId": "no-such-key", "scopes": ["agent:read"]});
    assert_eq!(
        post(&issuer, SCOPED_API_KEY_UPDATE_PATH, boot, update)
            .await
            .0,
        StatusCode::NOT_FOUND
    );

    // Wrong methods.
    let (status, _) = call(&issuer, Method::GET, SCOPED_API_KEY_PATH, boot, None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let (status, _) = call(&issuer, Method::POST, SCOPED_API_KEY_LIST_PATH, boot, None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn lists_narrow_by_team_and_org_and_show_service_accounts() {
    let clock = ManualClock::at_unix(NOW);
    let issuer = start(&clock).await;
    create(
        &issuer,
        json!({"name": "a", "teamId": "team a", "scopes": ["agent:read"]}),
    )
    .await;
    let b = create(
        &issuer,
        json!({"name": "b", "teamId": "b", "scopes": ["agent:read"], "rateLimitEnabled": true,
               "rateLimitMax": 10, "onBehalfOf": {"serviceAccountId": "sa-1", "userType": "service-account"}}),
    )
    .await;
    assert_eq!(
        (&b["userId"], &b["userType"]),
        (&json!("sa-1"), &json!("service-account"))
    );
    assert_eq!(
        (&b["rateLimitEnabled"], &b["rateLimitMax"]),
        (&json!(true), &json!(10.0))
    );
    let boot = issuer.api_key();
    let names = |listed: Value| -> Vec<String> {
        listed
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(names(list(&issuer, boot, "?teamId=team+a").await.1), ["a"]);
    assert_eq!(
        names(
            list(&issuer, boot, "?teamId=team%20a&orgId=dev-org")
                .await
                .1
        ),
        ["a"]
    );
    assert_eq!(
        names(list(&issuer, boot, "?orgId=other").await.1),
        Vec::<String>::new()
    );
    assert_eq!(
        names(list(&issuer, boot, "").await.1),
        ["bootstrap", "a", "b"]
    );
}

#[tokio::test]
async fn the_handle_creates_regenerates_and_revokes_keys_without_http() {
    let clock = ManualClock::at_unix(NOW);
    let issuer = DevIssuer::builder()
        .clock(clock.clone())
        .permissions(["orders:read"])
        .key(
            ApiKeySpec::new(["orders:read"])
                .name("fixed")
                .secret("fixed-secret"),
        )
        .start()
        .await
        .unwrap();
    let keys = issuer.keys();
    assert_eq!(keys[0].id(), BOOTSTRAP_KEY_ID);
    assert_eq!(keys[0].scopes(), ["orders:read", "write:apikeys"]);
    assert_eq!(keys[1].name(), Some("fixed"));
    let omitted = exchange(&issuer, EXCHANGE_TOKEN_PATH, "fixed-secret", user(None)).await;
    assert_eq!(omitted, (StatusCode::OK, json!(["orders:read"])));

    let key = issuer
        .create_key(
            ApiKeySpec::new(["orders:write"])
                .team_id("t")
                .expires_in(Duration::from_secs(60)),
        )
        .unwrap();
    assert!(!format!("{key:?}").contains(key.secret()));
    let info = issuer
        .keys()
        .into_iter()
        .find(|k| k.id() == key.id())
        .unwrap();
    assert_eq!(
        (info.team_id(), info.expires_at()),
        (Some("t"), Some(NOW + 60))
    );
    assert!(key.secret().starts_with(info.start()));
    assert_eq!(
        exchange(&issuer, EXCHANGE_TOKEN_PATH, key.secret(), user(None))
            .await
            .0,
        StatusCode::OK
    );

    let renewed = issuer.regenerate_key(key.id()).unwrap();
    assert_eq!(renewed.id(), key.id());
    assert_eq!(
        exchange(&issuer, EXCHANGE_TOKEN_PATH, key.secret(), user(None))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        exchange(&issuer, EXCHANGE_TOKEN_PATH, renewed.secret(), user(None))
            .await
            .0,
        StatusCode::OK
    );
    assert!(issuer.regenerate_key("no-such-key").is_none());

    // Revoking the bootstrap key locks out `api_key()` too.
    assert!(issuer.revoke_key(BOOTSTRAP_KEY_ID));
    assert!(!issuer.revoke_key(BOOTSTRAP_KEY_ID));
    assert_eq!(
        list(&issuer, issuer.api_key(), "").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        exchange(&issuer, EXCHANGE_TOKEN_PATH, issuer.api_key(), user(None))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(issuer.keys().len(), 2);
}

#[tokio::test]
async fn bad_key_specs_are_refused_with_the_rule() {
    let issuer = DevIssuer::builder().api_key("boot").start().await.unwrap();
    let cases = [
        (ApiKeySpec::new(Vec::<String>::new()), "scopes"),
        (ApiKeySpec::new(["admin"]), "scopes"),
        (ApiKeySpec::new(["a:b"]).secret("boot"), "secret"),
        (ApiKeySpec::new(["a:b"]).secret("two words"), "secret"),
        (ApiKeySpec::new(["a:b"]).name("n".repeat(129)), "name"),
        (
            ApiKeySpec::new(["a:b"]).expires_in(Duration::ZERO),
            "expires_in",
        ),
    ];
    for (spec, setting) in cases {
        let shown = format!("{spec:?}");
        match issuer.create_key(spec) {
            Err(err) if err.kind() == ConfigErrorKind::InvalidSetting => {
                assert_eq!(err.setting(), Some(setting), "{shown}")
            }
            other => panic!("{shown}: {other:?}"),
        }
    }
    for builder in [
        DevIssuer::builder().key(ApiKeySpec::new(["a:b"])),
        DevIssuer::builder().key(ApiKeySpec::new(["nope"]).secret("s")),
        DevIssuer::builder()
            .api_key("same")
            .key(ApiKeySpec::new(["a:b"]).secret("same")),
    ] {
        let err = builder.start().await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
    }
}

#[tokio::test]
async fn secrets_appear_in_no_log_and_refusals_leave_a_debug_event() {
    let logs = common::traced();
    let clock = ManualClock::at_unix(NOW);
    let issuer = start(&clock).await;
    let created = create(
        &issuer,
        json!({"name": "n", "teamId": "t", "scopes": ["agent:read"]}),
    )
    .await;
    let secret = created["key"].as_str().unwrap();
    let id = created["id"].as_str().unwrap();
    let (_, renewed) = post(
        &issuer,
        SCOPED_API_KEY_REGENERATE_PATH,
        issuer.api_key(),
        json!({"keyId": id}),
    )
    .await;
    // A refusal: the old secret.
    let (status, refused) = exchange(&issuer, EXCHANGE_TOKEN_PATH, secret, user(None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(!refused.to_string().contains(secret));
    let text = logs.text();
    assert!(text.contains("dev issuer refused a request"), "{text}");
    for secret in [secret, renewed["key"].as_str().unwrap(), issuer.api_key()] {
        assert!(!text.contains(secret), "a secret was logged");
    }
    assert!(!format!("{issuer:?}").contains(issuer.api_key()));
}
