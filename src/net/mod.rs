//! Host rules shared by everything that sends requests: the JWKS fetcher, the exchange client
//! and the outbound layer; and, in [`fetch`], the one way the crate builds an HTTP client and
//! reads an answer.

#[cfg(feature = "remote")]
pub(crate) mod fetch;

/// Whether a URL host (`localhost`, an IP address, `[::1]`) is a loopback address, where plain
/// `http` is acceptable because nothing leaves the machine.
pub(crate) fn is_loopback_host(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The port an authority names, `Ok(None)` when it names none.
///
/// `http::uri::Authority::port` answers `None` both for no port and for one it cannot read,
/// so `https://host:65536/` would look like port 443. Here a `:` after the host must be
/// followed by 1 to 5 digits that fit a `u16`; anything else is an error.
pub(crate) fn authority_port(authority: &http::uri::Authority) -> Result<Option<u16>, ()> {
    let text = authority.as_str();
    let host_and_port = text.rsplit_once('@').map_or(text, |(_, rest)| rest);
    // An IPv6 literal holds colons of its own; the port comes after its `]`.
    let after_host = match host_and_port.rfind(']') {
        Some(end) => &host_and_port[end + 1..],
        None => host_and_port,
    };
    let Some((_, port)) = after_host.rsplit_once(':') else {
        return Ok(None);
    };
    if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(());
    }
    port.parse().map(Some).map_err(|_| ())
}

/// What a reqwest error says, for error messages and logs: its text and its causes', joined
/// by `: `, without the request URL (it may carry a query string, and the endpoint is known
/// anyway). The causes name what failed (a refused connection, a TLS or timeout error); none
/// of them carries request headers, so no credential sent with the request shows up here.
/// Callers holding a secret still redact it from the result.
#[cfg(feature = "remote")]
pub(crate) fn transport_error_text(error: reqwest::Error) -> String {
    use std::error::Error as _;
    let error = error.without_url();
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

/// Whether a request failed because a timeout fired: reqwest's (connect, read or
/// total), an I/O `TimedOut`, or tokio's `Elapsed` (a `tower` timeout layer), anywhere in
/// the error's chain.
pub(crate) fn is_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(error) = next {
        #[cfg(feature = "remote")]
        if error
            .downcast_ref::<reqwest::Error>()
            .is_some_and(reqwest::Error::is_timeout)
        {
            return true;
        }
        if error
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::TimedOut)
            || error.is::<tokio::time::error::Elapsed>()
        {
            return true;
        }
        next = error.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::{authority_port, is_loopback_host};

    #[test]
    fn ports_are_read_or_refused() {
        let port = |s: &str| authority_port(&s.parse().unwrap());
        assert_eq!(port("example.com"), Ok(None));
        assert_eq!(port("example.com:443"), Ok(Some(443)));
        assert_eq!(port("user:pw@example.com:8080"), Ok(Some(8080)));
        assert_eq!(port("user:pw@example.com"), Ok(None));
        assert_eq!(port("[::1]"), Ok(None));
        assert_eq!(port("[::1]:65535"), Ok(Some(65535)));
        assert_eq!(port("example.com:0"), Ok(Some(0)));
        for bad in [
            "example.com:65536",
            "example.com:",
            "example.com:123456",
            "[::1]:70000",
            "[::1]:",
        ] {
            assert_eq!(port(bad), Err(()), "{bad}");
        }
    }

    #[test]
    fn loopback_hosts() {
        for host in [
            "localhost",
            "LOCALHOST",
            "127.0.0.1",
            "127.8.9.10",
            "[::1]",
            "::1",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "example.com",
            "10.0.0.1",
            "localhost.evil.test",
            "[::2]",
            "0.0.0.0",
            "",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }

    #[cfg(feature = "remote")]
    #[tokio::test]
    async fn transport_errors_name_their_causes_but_not_the_url() {
        // Bind and drop a listener to find a closed port.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let error = reqwest::Client::new()
            .get(format!("http://{addr}/jwks?token=hunter2"))
            .bearer_auth("sk-secret")
            .send()
            .await
            .unwrap_err();
        let text = super::transport_error_text(error);
        assert!(text.starts_with("error sending request"), "{text}");
        assert!(text.matches(": ").count() >= 1, "the causes follow: {text}");
        for hidden in ["hunter2", "sk-secret", "/jwks", "http://"] {
            assert!(!text.contains(hidden), "{hidden} in {text}");
        }
    }
}
