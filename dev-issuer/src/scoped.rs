//! The scoped API-key endpoints, shaped as the official SDK's `auth.api_keys` calls them:
//! create (201, the secret shown once), list (never a secret), update, regenerate (the old
//! secret stops working at once) and delete. Each needs a calling key holding
//! `write:apikeys`; what a key may grant is bounded by its own scopes. No key but the
//! bootstrap key itself may update, regenerate or delete the bootstrap key.

use axum::extract::Request;
use http::{Response, StatusCode};
use serde_json::{json, Map, Value};

use super::api_keys::{start_of, ApiKeyInfo, Caller, NewKey, BOOTSTRAP_KEY_ID, KEY_PREFIX, ORG_ID};
use super::fields::Fields;
use super::reply::{bad_request, json_response, refusal, Issue, Refused};
use super::request::{json_object, key_manager};
use super::rfc3339;
use super::state::IssuerState;

/// `POST .../api-key/scoped`: `{name, teamId, scopes, expiresIn?, rateLimit*?, onBehalfOf?}`.
pub(super) async fn create(shared: &IssuerState, request: Request) -> Response<String> {
    let (caller, body) = match manager_and_body(shared, request).await {
        Ok(found) => found,
        Err(refused) => return *refused,
    };
    let mut fields = Fields::new(body);
    let name = fields.name(true);
    let team_id = fields.required_string("teamId");
    let scopes = fields.scopes();
    let expires_in = fields.expires_in();
    let rate_limit = fields.rate_limit();
    let owner = fields.owner();
    if let Err(issues) = fields.finish() {
        return bad_request(issues);
    }
    let beyond = not_held(&caller, &scopes, |_| true);
    if !beyond.is_empty() {
        return forbidden(beyond);
    }
    let now = shared.clock.now_unix();
    let mut key = NewKey {
        scopes,
        name,
        team_id,
        expires_at: expires_in.map(|secs| now.saturating_add(secs)),
        owner,
        rate_limit: Default::default(),
    };
    rate_limit.apply(&mut key.rate_limit);
    match shared.api_keys.insert(key, None, None) {
        Ok((issued, info)) => {
            let mut body = key_json(&info);
            body["key"] = Value::from(issued.secret());
            json_response(StatusCode::CREATED, &body)
        }
        Err(_) => server_error("the key could not be created"),
    }
}

/// `GET .../api-key/scoped/list?teamId=&orgId=`: every key's metadata, never a secret.
pub(super) async fn list(shared: &IssuerState, request: Request) -> Response<String> {
    if let Err(refused) = key_manager(shared, request.headers()) {
        return *refused;
    }
    let query = request.uri().query().unwrap_or("");
    let team = query_value(query, "teamId");
    let org = query_value(query, "orgId");
    let in_org = org.as_deref().is_none_or(|org| org == ORG_ID);
    let keys: Vec<Value> = shared
        .api_keys
        .list()
        .iter()
        .filter(|key| in_org && team.as_deref().is_none_or(|t| key.team_id() == Some(t)))
        .map(key_json)
        .collect();
    json_response(StatusCode::OK, &Value::Array(keys))
}

/// `POST .../scoped/update`: `{keyId, scopes, name?, rateLimit*?, expiresAt?}`. The key's
/// scopes become `scopes`; those it did not already hold must be the caller's.
pub(super) async fn update(shared: &IssuerState, request: Request) -> Response<String> {
    let (caller, body) = match manager_and_body(shared, request).await {
        Ok(found) => found,
        Err(refused) => return *refused,
    };
    let mut fields = Fields::new(body);
    let key_id = fields.required_string("keyId");
    let scopes = fields.scopes();
    let name = fields.name(false);
    let rate_limit = fields.rate_limit();
    let expires_at = fields.expires_at();
    let key_id = match finished(fields, key_id) {
        Ok(key_id) => key_id,
        Err(refused) => return *refused,
    };
    let updated = shared.api_keys.modify(&key_id, |info| {
        may_manage(&caller, info)?;
        let beyond = not_held(&caller, &scopes, |s| {
            !info.scopes.iter().any(|had| had == s)
        });
        if !beyond.is_empty() {
            return Err(Box::new(forbidden(beyond)));
        }
        info.set_scopes(scopes);
        if name.is_some() {
            info.name = name;
        }
        rate_limit.apply(&mut info.rate_limit);
        if let Some(at) = expires_at {
            info.expires_at = at;
        }
        Ok(json!({
            "id": info.id,
            "scopes": info.scopes,
            "userType": info.owner.user_type(),
            "orgId": ORG_ID,
            "expiresAt": info.expires_at.map(rfc3339::format),
        }))
    });
    match updated {
        None => not_found(&key_id),
        Some(Err(refused)) => *refused,
        Some(Ok(body)) => json_response(StatusCode::OK, &body),
    }
}

/// `POST .../scoped/regenerate`: `{keyId}` -> `{id, key, start}`.
pub(super) async fn regenerate(shared: &IssuerState, request: Request) -> Response<String> {
    let (caller, key_id) = match manager_and_key_id(shared, request).await {
        Ok(found) => found,
        Err(refused) => return *refused,
    };
    match shared
        .api_keys
        .regenerate(&key_id, |key| holds_every_scope_of(&caller, key))
    {
        None => not_found(&key_id),
        Some(Err(refused)) => *refused,
        Some(Ok(Err(_))) => server_error("no new secret could be generated"),
        Some(Ok(Ok(issued))) => {
            let start = start_of(issued.secret());
            let body = json!({"id": issued.id(), "key": issued.secret(), "start": start});
            json_response(StatusCode::OK, &body)
        }
    }
}

/// `POST .../scoped/delete`: `{keyId}` -> `{id, deleted: true}`. Takes effect at once.
pub(super) async fn delete(shared: &IssuerState, request: Request) -> Response<String> {
    let (caller, key_id) = match manager_and_key_id(shared, request).await {
        Ok(found) => found,
        Err(refused) => return *refused,
    };
    match shared
        .api_keys
        .remove(&key_id, |key| holds_every_scope_of(&caller, key))
    {
        None => not_found(&key_id),
        Some(Err(refused)) => *refused,
        Some(Ok(())) => json_response(StatusCode::OK, &json!({"id": key_id, "deleted": true})),
    }
}

/// The calling key manager and the body, or the answer that refuses the request.
async fn manager_and_body(
    shared: &IssuerState,
    request: Request,
) -> Result<(Caller, Map<String, Value>), Refused> {
    let caller = key_manager(shared, request.headers())?;
    Ok((caller, json_object(request).await?))
}

/// The calling key manager and the body's `keyId`, or the answer that refuses the request.
async fn manager_and_key_id(
    shared: &IssuerState,
    request: Request,
) -> Result<(Caller, String), Refused> {
    let (caller, body) = manager_and_body(shared, request).await?;
    let mut fields = Fields::new(body);
    let key_id = fields.required_string("keyId");
    Ok((caller, finished(fields, key_id)?))
}

/// The `keyId` read from a body whose every field was fine; else the 400 naming them.
fn finished(fields: Fields, key_id: Option<String>) -> Result<String, Refused> {
    match (fields.finish(), key_id) {
        (Ok(()), Some(key_id)) => Ok(key_id),
        (Err(issues), _) => Err(Box::new(bad_request(issues))),
        (Ok(()), None) => Err(Box::new(bad_request(vec![Issue::new("keyId", "required")]))),
    }
}

/// The scopes among `scopes` that `counts` picks and the caller does not hold, as issues.
fn not_held(caller: &Caller, scopes: &[String], counts: impl Fn(&str) -> bool) -> Vec<Issue> {
    scopes
        .iter()
        .enumerate()
        .filter(|(_, scope)| counts(scope) && !caller.holds(scope))
        .map(|(i, scope)| {
            Issue::new(
                format!("scopes.{i}"),
                format!("`{scope}` is not held by the calling api key"),
            )
        })
        .collect()
}

/// The bootstrap key stands for the account's administrator (in MKA1, the session that
/// creates the first keys), which no API key manages: another key may not update,
/// regenerate or delete it, however many scopes it holds. Any other key may be managed.
fn may_manage(caller: &Caller, key: &ApiKeyInfo) -> Result<(), Refused> {
    if key.id != BOOTSTRAP_KEY_ID || caller.is_administrator() {
        return Ok(());
    }
    let message =
        "only the bootstrap key itself may update, regenerate or delete the bootstrap key";
    Err(Box::new(refusal(
        StatusCode::FORBIDDEN,
        message,
        vec![Issue::new("keyId", message)],
    )))
}

/// A key may regenerate or delete only keys whose every scope it holds (itself included),
/// and never the bootstrap key but itself ([`may_manage`]).
fn holds_every_scope_of(caller: &Caller, key: &ApiKeyInfo) -> Result<(), Refused> {
    may_manage(caller, key)?;
    if caller.holds_all(&key.scopes) {
        return Ok(());
    }
    let message = "the calling api key does not hold every scope of this key";
    Err(Box::new(refusal(
        StatusCode::FORBIDDEN,
        message,
        vec![Issue::new("keyId", message)],
    )))
}

fn forbidden(beyond: Vec<Issue>) -> Response<String> {
    refusal(
        StatusCode::FORBIDDEN,
        "a key may not grant scopes the calling api key does not hold",
        beyond,
    )
}

fn not_found(key_id: &str) -> Response<String> {
    let message = "no api key has this id";
    let mut issue = Issue::new("keyId", message);
    if key_id.len() <= 64 {
        issue.message = format!("no api key has the id `{key_id}`");
    }
    refusal(StatusCode::NOT_FOUND, message, vec![issue])
}

fn server_error(message: &str) -> Response<String> {
    refusal(StatusCode::INTERNAL_SERVER_ERROR, message, Vec::new())
}

/// A key as the SDK's `CreateScopedAPIKeyResponse` / `ListScopedAPIKeysResponse` reads it,
/// without `key`.
fn key_json(key: &ApiKeyInfo) -> Value {
    json!({
        "id": key.id,
        "name": key.name,
        "start": key.start,
        "prefix": key.start.starts_with(KEY_PREFIX).then_some(KEY_PREFIX),
        "userId": key.owner.user_id(),
        "userType": key.owner.user_type(),
        "orgId": ORG_ID,
        "teamId": key.team_id,
        "scopes": key.scopes,
        "rateLimitEnabled": key.rate_limit.enabled,
        "rateLimitTimeWindow": key.rate_limit.time_window,
        "rateLimitMax": key.rate_limit.max,
        "expiresAt": key.expires_at.map(rfc3339::format),
    })
}

/// The first value of `name` in a form-encoded query, decoded.
fn query_value(query: &str, name: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (form_decode(key) == name).then(|| form_decode(value))
        })
        .next()
}

/// `application/x-www-form-urlencoded` decoding: `+` is a space, `%XX` a byte; a broken
/// escape stays as it is; invalid UTF-8 becomes U+FFFD.
fn form_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'+', _) => out.push(b' '),
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 2;
            }
            (other, _) => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_form_decoded() {
        let query = "orgId=dev-org&teamId=team%201&x&teamId=second&name=a+b%2";
        assert_eq!(query_value(query, "teamId").as_deref(), Some("team 1"));
        assert_eq!(query_value(query, "orgId").as_deref(), Some("dev-org"));
        assert_eq!(query_value(query, "name").as_deref(), Some("a b%2"));
        assert_eq!(query_value(query, "x").as_deref(), Some(""));
        assert_eq!(query_value(query, "missing"), None);
        assert_eq!(form_decode("%e2%82%ac%ff"), "\u{20ac}\u{fffd}");
    }
}
