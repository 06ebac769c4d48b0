//! The MKA1 exchange client against a loopback MKA1 stand-in: request shape, caching and
//! renewal by an injected clock, single flight, retries, and every refusal mapped to its
//! typed error.
#![cfg(feature = "remote")]

use crate::mock_mka1;

use std::time::Duration;

use mka1_auth::exchange::{ExchangeError, ExchangeErrorKind, ExchangeRequest};
use mka1_auth::outbound::{Refusal, RefusalKind};
use mka1_auth::protocol::{EXCHANGE_TOKEN_PATH, LEGACY_EXCHANGE_TOKEN_PATH};
use mka1_auth::{exchange::ExchangeClient, ManualClock};
use mock_mka1::{payload, MockMka1, Reply, Upstream, API_KEY};
use serde_json::json;

const NOW: u64 = 1_800_000_000;
const AUD: &str = "https://agents.example.test";

async fn mock() -> MockMka1 {
    MockMka1::start(ManualClock::at_unix(NOW)).await
}

fn req(user: &str) -> ExchangeRequest {
    ExchangeRequest::new(AUD, user)
}

fn exchange_error(err: &Refusal) -> &ExchangeError {
    assert!(
        matches!(
            err.kind(),
            RefusalKind::Exchange | RefusalKind::ApiKeyRejected
        ),
        "{err}"
    );
    ExchangeError::of(err).unwrap_or_else(|| panic!("no exchange error inside {err:?}"))
}

/// The API key must appear nowhere in what an error shows.
fn assert_no_key(err: &Refusal) {
    for text in [
        err.to_string(),
        format!("{err:?}"),
        format!("{:?}", exchange_error(err)),
    ] {
        assert!(!text.contains(API_KEY), "api key leaked: {text}");
    }
}

#[tokio::test]
async fn sends_the_documented_request_and_returns_the_token() {
    let mka1 = mock().await;
    let client = mka1.client().build().unwrap();
    let request = req("user-42")
        .expires_in(Duration::from_secs(300))
        .permissions(["agent:write", "agent:read", "agent:read"]);
    let token = client.token(&request).await.unwrap();

    let calls = mka1.calls();
    assert_eq!(calls.len(), 1);
    let call = &calls[0];
    assert_eq!(call.path, "/api/v1/authentication/api-keys/exchange-token");
    assert_eq!(call.authorization, vec![format!("Bearer {API_KEY}")]);
    assert_eq!(
        call.body,
        json!({"audience": AUD, "externalUserId": "user-42", "expiresIn": 300.0,
               "permissions": ["agent:read", "agent:write"]})
    );
    // Sent as a float, like the official SDK.
    assert!(call.body["expiresIn"].is_f64());

    let claims = payload(token.expose());
    assert_eq!(claims["sub"], "user-42");
    assert_eq!(token.expires_at(), NOW + 300);
    assert_eq!(
        token.authorization_value(),
        format!("Bearer {}", token.expose()).as_str()
    );
    assert!(token.authorization_value().is_sensitive());
    assert!(!format!("{token:?}").contains(token.expose()));
}

#[tokio::test]
async fn default_lifetime_and_no_permissions() {
    let mka1 = mock().await;
    let client = mka1.client().build().unwrap();
    let token = client.token(&req("u")).await.unwrap();
    // No permissions is `[]`: an omitted field would ask MKA1 for all of the key's scopes.
    assert_eq!(
        mka1.calls()[0].body,
        json!({"audience": AUD, "externalUserId": "u", "expiresIn": 3600.0, "permissions": []})
    );
    assert_eq!(token.expires_at(), NOW + 3600);

    // So is an empty list, however it was computed.
    client
        .token(&req("v").permissions(Vec::<String>::new()))
        .await
        .unwrap();
    assert_eq!(mka1.calls()[1].body["permissions"], json!([]));
}

#[tokio::test]
async fn only_all_key_scopes_leaves_permissions_out() {
    let mka1 = mock().await;
    let client = mka1.client().build().unwrap();
    client
        .token(&req("u").permissions(["agent:read"]).all_key_scopes())
        .await
        .unwrap();
    assert_eq!(
        mka1.calls()[0].body,
        json!({"audience": AUD, "externalUserId": "u", "expiresIn": 3600.0})
    );
}

#[tokio::test]
async fn legacy_path_can_be_chosen() {
    let mka1 = mock().await;
    let client = mka1
        .client()
        .endpoint_path(LEGACY_EXCHANGE_TOKEN_PATH)
        .build()
        .unwrap();
    client.token(&req("u")).await.unwrap();
    assert_eq!(mka1.calls()[0].path, LEGACY_EXCHANGE_TOKEN_PATH);
}

#[tokio::test]
async fn many_calls_for_one_user_cause_one_exchange_and_a_second_user_a_second() {
    let mka1 = mock().await;
    let client = mka1.client().build().unwrap();
    let first = client.token(&req("alice")).await.unwrap();
    for _ in 0..10 {
        let again = client.token(&req("alice")).await.unwrap();
        assert_eq!(again.expose(), first.expose());
    }
    assert_eq!(mka1.calls().len(), 1);

    let bob = client.token(&req("bob")).await.unwrap();
    assert_ne!(bob.expose(), first.expose());
    assert_eq!(payload(bob.expose())["sub"], "bob");
    assert_eq!(mka1.calls().len(), 2);

    // Permissions and audience are part of the key; their order is not.
    client
        .token(&req("alice").permissions(["b", "a"]))
        .await
        .unwrap();
    client
        .token(&req("alice").permissions(["a", "b"]))
        .await
        .unwrap();
    client
        .token(&ExchangeRequest::new("https://other.example.test", "alice"))
        .await
        .unwrap();
    assert_eq!(mka1.calls().len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_callers_share_one_exchange() {
    let mka1 = mock().await;
    let client = mka1.client().build().unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..32 {
        let client = client.clone();
        tasks.spawn(async move {
            client
                .token(&req("carol"))
                .await
                .unwrap()
                .expose()
                .to_owned()
        });
    }
    let tokens: Vec<String> = tasks.join_all().await;
    assert!(tokens.iter().all(|t| *t == tokens[0]));
    assert_eq!(mka1.calls().len(), 1);
}

#[tokio::test]
async fn a_token_is_renewed_shortly_before_exp_by_the_injected_clock() {
    let mka1 = mock().await;
    let client = mka1
        .client()
        .renew_before(Duration::from_secs(60))
        .build()
        .unwrap();
    let request = req("dave").expires_in(Duration::from_secs(600));
    let first = client.token(&request).await.unwrap();

    // 539 s in: 61 s left, still reused.
    mka1.clock.advance(Duration::from_secs(539));
    assert_eq!(
        client.token(&request).await.unwrap().expose(),
        first.expose()
    );
    assert_eq!(mka1.calls().len(), 1);

    // 540 s in: 60 s left, renewed.
    mka1.clock.advance(Duration::from_secs(1));
    let second = client.token(&request).await.unwrap();
    assert_ne!(second.expose(), first.expose());
    assert_eq!(second.expires_at(), NOW + 540 + 600);
    assert_eq!(mka1.calls().len(), 2);
    assert_eq!(
        client.token(&request).await.unwrap().expose(),
        second.expose()
    );
    assert_eq!(mka1.calls().len(), 2);
}

#[tokio::test]
async fn exp_is_never_trusted_beyond_the_lifetime_asked_for() {
    let mka1 = mock().await;
    let client = mka1.client().build().unwrap();
    // A token claiming a far exp, then an opaque one without a readable payload.
    let far = format!("e30.{}.c2ln", "eyJleHAiOjk5OTk5OTk5OTl9"); // {"exp":9999999999}
    mka1.script([
        Reply::status(200, json!({"token": far})),
        Reply::status(200, json!({"token": "opaque-token"})),
    ]);
    let t = client
        .token(&req("erin").expires_in(Duration::from_secs(300)))
        .await
        .unwrap();
    assert_eq!(t.expires_at(), NOW + 300);
    let t = client
        .token(&req("frank").expires_in(Duration::from_secs(900)))
        .await
        .unwrap();
    assert_eq!(t.expires_at(), NOW + 900);

    // Both are renewed on schedule, not kept for ever.
    mka1.clock.advance(Duration::from_secs(300));
    client
        .token(&req("erin").expires_in(Duration::from_secs(300)))
        .await
        .unwrap();
    assert_eq!(mka1.calls().len(), 3);
}

#[tokio::test]
async fn invalid_input_is_refused_before_sending() {
    let mka1 = mock().await;
    let client = mka1.client().build().unwrap();
    let cases = [
        (req(""), "externalUserId"),
        (req("*"), "externalUserId"),
        (req(&"x".repeat(151)), "externalUserId"),
        (req("caf\u{e9}"), "externalUserId"),
        (req(" padded"), "externalUserId"),
        (req("u").expires_in(Duration::from_secs(299)), "expiresIn"),
        (
            req("u").expires_in(Duration::from_secs(2_592_001)),
            "expiresIn",
        ),
        (
            req("u").expires_in(Duration::from_millis(300_500)),
            "expiresIn",
        ),
        (ExchangeRequest::new("", "u"), "audience"),
        (req("u").permissions([""]), "permissions"),
    ];
    for (request, path) in cases {
        let err = client.token(&request).await.unwrap_err();
        let ex = exchange_error(&err);
        assert_eq!(ex.kind(), ExchangeErrorKind::InvalidRequest, "{err}");
        assert_eq!(ex.issues()[0].path(), path, "{err}");
        assert_eq!(ex.attempts(), 0);
        assert_eq!(ex.status(), None);
    }
    // The bounds themselves are fine.
    for secs in [300, 2_592_000] {
        client
            .token(&req("u").expires_in(Duration::from_secs(secs)))
            .await
            .unwrap();
    }
    assert_eq!(
        mka1.calls().len(),
        2,
        "only the valid requests were sent, one per lifetime"
    );
}

#[tokio::test]
async fn mka1_400_becomes_a_typed_error_with_its_detail_list() {
    let mka1 = mock().await;
    let client = mka1.client().build().unwrap();
    mka1.script([Reply::status(
        400,
        json!({"detail": [
            {"path": "audience", "message": "Invalid url"},
            {"path": ["permissions", 0], "message": "Unknown permission"},
        ]}),
    )]);
    let err = client.token(&req("u")).await.unwrap_err();
    let ex = exchange_error(&err);
    assert_eq!(ex.kind(), ExchangeErrorKind::BadRequest);
    assert_eq!(ex.status(), Some(400));
    let issues: Vec<(&str, &str)> = ex
        .issues()
        .iter()
        .map(|i| (i.path(), i.message()))
        .collect();
    assert_eq!(
        issues,
        [
            ("audience", "Invalid url"),
            ("permissions.0", "Unknown permission")
        ]
    );
    assert_eq!(ex.attempts(), 1, "a 400 is not retried");
    assert!(err.to_string().contains("`audience` Invalid url"), "{err}");
    assert_no_key(&err);
    assert_eq!(mka1.calls().len(), 1);
}

#[tokio::test]
async fn mka1_401_and_403_say_what_was_refused_without_the_key() {
    let mka1 = mock().await;
    let client = mka1.client().build().unwrap();
    mka1.script([
        // A server that echoes the key back must not make us echo it.
        Reply::status(
            401,
            json!({"detail": format!("api key {API_KEY} is revoked")}),
        ),
        Reply::status(
            403,
            json!({"detail": "Permission agent:write not granted to this key"}),
        ),
    ]);
    let err = client.token(&req("u")).await.unwrap_err();
    assert_eq!(err.kind(), RefusalKind::ApiKeyRejected);
    let ex = exchange_error(&err);
    assert_eq!(ex.kind(), ExchangeErrorKind::Unauthorized);
    assert_eq!(ex.status(), Some(401));
    assert_eq!(ex.attempts(), 1, "a rejected key is not retried");
    assert!(
        err.to_string().contains("did not accept the api key"),
        "{err}"
    );
    assert!(
        err.to_string().contains("check the configured api key"),
        "{err}"
    );
    assert!(ex.message().unwrap().contains("<redacted> is revoked"));
    assert_no_key(&err);

    let err = client.token(&req("u")).await.unwrap_err();
    let ex = exchange_error(&err);
    assert_eq!(ex.kind(), ExchangeErrorKind::Forbidden);
    assert_eq!(ex.status(), Some(403));
    assert!(err.to_string().contains("agent:write not granted"), "{err}");
    assert_eq!(ex.attempts(), 1);
    assert_no_key(&err);
    assert_eq!(mka1.calls().len(), 2);
}

#[tokio::test]
async fn other_statuses_are_unexpected_and_not_retried() {
    let mka1 = mock().await;
    let client = mka1.client().build().unwrap();
    mka1.script([Reply::raw(404, "<html>not found</html>")]);
    let err = client.token(&req("u")).await.unwrap_err();
    let ex = exchange_error(&err);
    assert_eq!(ex.kind(), ExchangeErrorKind::UnexpectedStatus);
    assert_eq!(ex.status(), Some(404));
    assert_eq!(ex.attempts(), 1);
    assert_eq!(mka1.calls().len(), 1);
}

/// The exchange endpoint's answer: `status` pointing to `location`.
fn redirect(status: u16, location: &str) -> Reply {
    Reply::raw(status, "").header("location", location)
}

/// A redirect answer failed the exchange on its one attempt, said so, and did not show the
/// key or the location.
fn assert_redirect_refused(err: &Refusal, status: u16, location: &str) {
    let ex = exchange_error(err);
    assert_eq!(ex.kind(), ExchangeErrorKind::UnexpectedStatus, "{err}");
    assert_eq!(ex.status(), Some(status), "{err}");
    assert_eq!(ex.attempts(), 1, "a redirect is not retried: {err}");
    let text = err.to_string();
    assert!(
        text.contains(&format!(
            "(status {status}): a redirect, which is not followed"
        )),
        "{text}"
    );
    assert!(
        !text.contains(location) && !text.contains("127.0.0.1"),
        "{text}"
    );
    assert_no_key(err);
}

#[tokio::test]
async fn a_redirect_to_another_origin_fails_the_exchange_and_the_key_never_gets_there() {
    let mka1 = mock().await;
    let elsewhere = Upstream::start().await;
    let client = mka1.client().max_attempts(3).build().unwrap();
    let (mka1_port, other_port) = (mka1.addr.port(), elsewhere.addr.port());
    let locations = [
        // Another port: a server that records everything it is sent.
        format!("http://127.0.0.1:{other_port}{EXCHANGE_TOKEN_PATH}"),
        // Another host name for MKA1's own socket: it would record a second call.
        format!("http://localhost:{mka1_port}{EXCHANGE_TOKEN_PATH}"),
        // Another scheme on MKA1's socket: following it would end in a transport error.
        format!("https://127.0.0.1:{mka1_port}{EXCHANGE_TOKEN_PATH}"),
    ];
    let mut sent = 0;
    for location in &locations {
        for status in [301, 302, 303, 307, 308] {
            mka1.script([redirect(status, location)]);
            let err = client.token(&req("u")).await.unwrap_err();
            assert_redirect_refused(&err, status, location);
            sent += 1;
        }
    }
    assert!(elsewhere.seen().is_empty(), "{:?}", elsewhere.seen());
    let calls = mka1.calls();
    assert_eq!(
        calls.len(),
        sent,
        "one request per exchange, none redirected"
    );
    assert!(calls.iter().all(|c| c.path == EXCHANGE_TOKEN_PATH));
    // Nothing is left over: the next exchange works.
    client.token(&req("u")).await.unwrap();
}

#[tokio::test]
async fn a_redirect_within_the_origin_is_not_followed_either() {
    let mka1 = mock().await;
    let client = mka1.client().build().unwrap();
    // The legacy path, which this MKA1 stand-in would answer with a token.
    let absolute = format!("{}{LEGACY_EXCHANGE_TOKEN_PATH}", mka1.base_url());
    for location in [LEGACY_EXCHANGE_TOKEN_PATH, absolute.as_str()] {
        mka1.script([redirect(307, location)]);
        let err = client.token(&req("u")).await.unwrap_err();
        assert_redirect_refused(&err, 307, location);
    }
    let calls = mka1.calls();
    assert_eq!(calls.len(), 2);
    assert!(calls.iter().all(|c| c.path == EXCHANGE_TOKEN_PATH));
}

#[tokio::test]
async fn failures_are_not_cached() {
    let mka1 = mock().await;
    let client = mka1.client().build().unwrap();
    mka1.script([Reply::status(401, json!({"detail": "no"}))]);
    assert!(client.token(&req("u")).await.is_err());
    client.token(&req("u")).await.unwrap();
    client.token(&req("u")).await.unwrap();
    assert_eq!(mka1.calls().len(), 2);
}

#[tokio::test]
async fn rate_limits_and_server_errors_are_retried() {
    let mka1 = mock().await;
    let client = mka1.client().max_attempts(4).build().unwrap();
    mka1.script([
        Reply::status(429, json!({})).header("retry-after", "0"),
        Reply::raw(503, "upstream down"),
        Reply::raw(500, ""),
    ]);
    let token = client.token(&req("u")).await.unwrap();
    assert_eq!(payload(token.expose())["sub"], "u");
    assert_eq!(mka1.calls().len(), 4);
}

#[tokio::test]
async fn retries_stop_at_max_attempts() {
    let mka1 = mock().await;
    let client = mka1.client().max_attempts(3).build().unwrap();
    mka1.script(std::iter::repeat_n(Reply::raw(502, "bad gateway"), 3));
    let err = client.token(&req("u")).await.unwrap_err();
    let ex = exchange_error(&err);
    assert_eq!(ex.kind(), ExchangeErrorKind::Unavailable);
    assert_eq!(ex.status(), Some(502));
    assert_eq!(ex.attempts(), 3);
    assert_eq!(mka1.calls().len(), 3);

    mka1.script(std::iter::repeat_n(
        Reply::status(429, json!({"detail": "slow down"})).header("retry-after", "0"),
        2,
    ));
    let client = mka1.client().max_attempts(2).build().unwrap();
    let err = client.token(&req("u")).await.unwrap_err();
    let ex = exchange_error(&err);
    assert_eq!(ex.kind(), ExchangeErrorKind::RateLimited);
    assert_eq!(ex.retry_after(), Some(Duration::ZERO));
    assert_eq!(ex.attempts(), 2);
}

#[tokio::test]
async fn a_retry_after_beyond_the_cap_is_not_waited_for() {
    let mka1 = mock().await;
    let client = mka1
        .client()
        .max_retry_after(Duration::from_secs(30))
        .build()
        .unwrap();
    mka1.script([Reply::status(429, json!({})).header("retry-after", "3600")]);
    let err = client.token(&req("u")).await.unwrap_err();
    let ex = exchange_error(&err);
    assert_eq!(ex.kind(), ExchangeErrorKind::RateLimited);
    assert_eq!(ex.retry_after(), Some(Duration::from_secs(3600)));
    assert_eq!(ex.attempts(), 1);
    assert_eq!(mka1.calls().len(), 1);
    // The wait holds back every exchange of the client (at most 5 minutes): not sent.
    let err = client.token(&req("v")).await.unwrap_err();
    assert_eq!(exchange_error(&err).attempts(), 0);
    assert_eq!(
        exchange_error(&err).retry_after(),
        Some(Duration::from_secs(300))
    );
    assert_eq!(mka1.calls().len(), 1);

    // An HTTP date is read with the client's clock: this one is 3600 s after NOW.
    // 1_800_003_600 is Fri, 15 Jan 2027 09:00:00 GMT.
    mka1.script([
        Reply::status(503, json!({})).header("retry-after", "Fri, 15 Jan 2027 09:00:00 GMT")
    ]);
    let client = mka1.client().build().unwrap();
    let err = client.token(&req("u")).await.unwrap_err();
    assert_eq!(
        exchange_error(&err).retry_after(),
        Some(Duration::from_secs(3600))
    );
}

#[tokio::test]
async fn unusable_success_answers_are_invalid_responses() {
    let mka1 = mock().await;
    let client = mka1.client().build().unwrap();
    for body in [
        "not json",
        r#"{"jwt":"x"}"#,
        r#"{"token":""}"#,
        r#"{"token":"a b"}"#,
        r#"{"token":7}"#,
    ] {
        mka1.script([Reply::raw(200, body)]);
        let err = client.token(&req("u")).await.unwrap_err();
        assert_eq!(
            exchange_error(&err).kind(),
            ExchangeErrorKind::InvalidResponse,
            "{body}"
        );
    }
    assert_eq!(mka1.calls().len(), 5, "invalid answers are not retried");
}

#[tokio::test]
async fn an_answer_over_64_kib_is_refused_not_cut() {
    let mka1 = mock().await;
    let client = mka1
        .client()
        .max_attempts(2)
        .backoff(Duration::ZERO, Duration::ZERO)
        .build()
        .unwrap();
    // Valid json whose first 64 KiB alone would not parse: refused for its size.
    let padded = format!(r#"{{"token":"a.b.c"{}}}"#, " ".repeat(64 * 1024));
    mka1.script([Reply::raw(200, &padded)]);
    let err = client.token(&req("u")).await.unwrap_err();
    let error = exchange_error(&err);
    assert_eq!(error.kind(), ExchangeErrorKind::InvalidResponse);
    assert!(error.message().unwrap_or("").contains("64 KiB"), "{err}");
    // An error answer over the cap keeps its status's kind (and is retried as such).
    let huge = " ".repeat(65 * 1024);
    mka1.script([Reply::raw(503, &huge), Reply::raw(503, &huge)]);
    let err = client.token(&req("u")).await.unwrap_err();
    let error = exchange_error(&err);
    assert_eq!(error.kind(), ExchangeErrorKind::Unavailable);
    assert_eq!(error.attempts(), 2);
}

#[tokio::test]
async fn an_unreachable_mka1_is_a_transport_error() {
    // Bind and drop a listener to find a closed port.
    let addr = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let client = ExchangeClient::builder()
        .base_url(format!("http://{addr}"))
        .api_key(API_KEY)
        .max_attempts(2)
        .backoff(Duration::ZERO, Duration::ZERO)
        .build()
        .unwrap();
    let err = client.token(&req("u")).await.unwrap_err();
    let ex = exchange_error(&err);
    assert_eq!(ex.kind(), ExchangeErrorKind::Transport);
    assert_eq!(ex.attempts(), 2);
    assert_no_key(&err);
}

#[tokio::test]
async fn a_failed_renewal_keeps_using_the_unexpired_token() {
    let mka1 = mock().await;
    let client = mka1.client().max_attempts(1).build().unwrap();
    let request = req("gina").expires_in(Duration::from_secs(600));
    let first = client.token(&request).await.unwrap();
    mka1.clock.advance(Duration::from_secs(570)); // due for renewal, 30 s left
    mka1.script([Reply::raw(503, "")]);
    assert_eq!(
        client.token(&request).await.unwrap().expose(),
        first.expose()
    );
    mka1.clock.advance(Duration::from_secs(30)); // expired now
    mka1.script([Reply::raw(503, "")]);
    let err = client.token(&request).await.unwrap_err();
    assert_eq!(exchange_error(&err).kind(), ExchangeErrorKind::Unavailable);
    assert_eq!(mka1.calls().len(), 3);
}

#[tokio::test]
async fn configuration_is_checked() {
    let no_key = ExchangeClient::builder().build().unwrap_err();
    assert!(no_key.to_string().contains("api_key"), "{no_key}");
    let bad_key = ExchangeClient::builder()
        .api_key("two words")
        .build()
        .unwrap_err();
    assert!(!bad_key.to_string().contains("two words"));
    let plain = ExchangeClient::builder()
        .api_key(API_KEY)
        .base_url("http://apigw.mka1.example")
        .build()
        .unwrap_err();
    assert!(plain.to_string().contains("https"), "{plain}");
    let client = ExchangeClient::builder().api_key(API_KEY).build().unwrap();
    assert!(!format!("{client:?}").contains(API_KEY));
    let builder = ExchangeClient::builder().api_key(API_KEY);
    assert!(!format!("{builder:?}").contains(API_KEY));
}

/// Against the dev issuer, which reads `permissions` as MKA1 does: `[]` is none, a request
/// without the field gets all of the key's scopes. Tokens are verified, not just decoded.
mod on_the_dev_issuer {
    use std::time::Duration;

    use http::Request;
    use mka1_auth::exchange::{ExchangeClient, ExchangeRequest, ExchangeSource, ExchangedToken};
    use mka1_auth::outbound::{OutboundLayer, ReqwestService};
    use mka1_auth::protocol::MAX_EXPIRES_IN;
    use mka1_auth::{ManualClock, VerifiedToken, Verifier};
    use mka1_auth_dev_issuer::{ApiKeySpec, DevIssuer};
    use tower::{Layer, ServiceExt};

    use super::mock_mka1::Upstream;
    use super::{AUD, NOW};

    const KEY_SCOPES: [&str; 2] = ["agent:read", "agent:write"];

    struct World {
        clock: ManualClock,
        // Kept alive: the server stops when its handle is dropped.
        _issuer: DevIssuer,
        client: ExchangeClient,
        verifier: Verifier,
    }

    impl World {
        async fn start() -> World {
            let clock = ManualClock::at_unix(NOW);
            let issuer = DevIssuer::builder()
                .clock(clock.clone())
                .start()
                .await
                .unwrap();
            let key = issuer.create_key(ApiKeySpec::new(KEY_SCOPES)).unwrap();
            let client = ExchangeClient::builder()
                .base_url(issuer.base_url())
                .api_key(key.secret())
                .clock(clock.clone())
                .build()
                .unwrap();
            let verifier = Verifier::builder()
                .jwks(issuer.jwks_json())
                .issuer(issuer.issuer())
                .audience(AUD)
                .clock(clock.clone())
                .build()
                .unwrap();
            World {
                clock,
                _issuer: issuer,
                client,
                verifier,
            }
        }

        async fn verify(&self, token: &str) -> VerifiedToken {
            self.verifier.verify(token).await.unwrap()
        }

        async fn exchange(&self, request: &ExchangeRequest) -> (ExchangedToken, VerifiedToken) {
            let token = self.client.token(request).await.unwrap();
            let verified = self.verify(token.expose()).await;
            (token, verified)
        }

        /// The permissions of the token `source` sends upstream for `user`, through the
        /// outbound layer.
        async fn sent_permissions(&self, source: ExchangeSource, user: &str) -> Vec<String> {
            let upstream = Upstream::start().await;
            let user = user.to_owned();
            let client = OutboundLayer::builder(source)
                .allow_origin(upstream.origin())
                .end_user_from(move |_| Some(user.clone()))
                .build()
                .unwrap()
                .layer(ReqwestService::new().unwrap());
            let req = Request::get(upstream.url("/x"))
                .body(String::new())
                .unwrap();
            assert_eq!(client.oneshot(req).await.unwrap().status(), 200);
            let auth = upstream.seen()[0].all("authorization");
            let token = auth[0].strip_prefix("Bearer ").unwrap();
            permissions(&self.verify(token).await)
        }
    }

    fn permissions(verified: &VerifiedToken) -> Vec<String> {
        verified.permissions().iter().map(str::to_owned).collect()
    }

    #[tokio::test]
    async fn an_empty_permission_list_gets_a_token_with_no_permissions() {
        let world = World::start().await;
        let computed: Vec<String> = Vec::new(); // a least-privilege list that came out empty
        let (_, verified) = world
            .exchange(&ExchangeRequest::new(AUD, "u1").permissions(computed))
            .await;
        assert_eq!(verified.subject(), "u1");
        assert!(
            verified.permissions().is_empty(),
            "{:?}",
            permissions(&verified)
        );

        // Nothing asked for is the default, for a request and for a source.
        let (_, verified) = world.exchange(&ExchangeRequest::new(AUD, "u2")).await;
        assert!(
            verified.permissions().is_empty(),
            "{:?}",
            permissions(&verified)
        );
        let source = world.client.source(AUD);
        assert!(world.sent_permissions(source, "u3").await.is_empty());
        let source = world.client.source(AUD).permissions(Vec::<String>::new());
        assert!(world.sent_permissions(source, "u4").await.is_empty());
    }

    #[tokio::test]
    async fn all_key_scopes_gets_every_scope_the_key_holds_and_a_list_exactly_that() {
        let world = World::start().await;
        let all = ExchangeRequest::new(AUD, "u1").all_key_scopes();
        assert_eq!(permissions(&world.exchange(&all).await.1), KEY_SCOPES);
        let source = world.client.source(AUD).all_key_scopes();
        assert_eq!(world.sent_permissions(source, "u2").await, KEY_SCOPES);

        let read = ExchangeRequest::new(AUD, "u1").permissions(["agent:read"]);
        assert_eq!(permissions(&world.exchange(&read).await.1), ["agent:read"]);
        let source = world.client.source(AUD).permissions(["agent:read"]);
        assert_eq!(world.sent_permissions(source, "u2").await, ["agent:read"]);
    }

    #[tokio::test]
    async fn none_and_all_are_cached_apart() {
        let world = World::start().await;
        let none = ExchangeRequest::new(AUD, "u").permissions(Vec::<String>::new());
        let all = ExchangeRequest::new(AUD, "u").all_key_scopes();
        for _ in 0..2 {
            assert!(world.exchange(&none).await.1.permissions().is_empty());
            assert_eq!(permissions(&world.exchange(&all).await.1), KEY_SCOPES);
        }
    }

    #[tokio::test]
    async fn a_shorter_lifetime_never_gets_a_longer_lived_cached_token() {
        let world = World::start().await;
        let request = |secs: u64| {
            ExchangeRequest::new(AUD, "u")
                .permissions(["agent:read"])
                .expires_in(Duration::from_secs(secs))
        };
        let (month, verified) = world.exchange(&request(MAX_EXPIRES_IN)).await;
        assert_eq!(verified.expires_at(), NOW + MAX_EXPIRES_IN);

        world.clock.advance(Duration::from_secs(10));
        let now = NOW + 10;
        let (short, verified) = world.exchange(&request(300)).await;
        assert_ne!(short.expose(), month.expose(), "a fresh token");
        assert!(
            verified.expires_at() <= now + 300,
            "{}",
            verified.expires_at()
        );
        assert!(short.expires_at() <= now + 300, "{}", short.expires_at());

        // Each lifetime keeps its own cached token.
        let again = world.client.token(&request(300)).await.unwrap();
        assert_eq!(again.expose(), short.expose());
        let again = world.client.token(&request(MAX_EXPIRES_IN)).await.unwrap();
        assert_eq!(again.expose(), month.expose());
    }
}
