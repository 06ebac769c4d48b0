//! The allowed origins of the outbound layer and the check every request passes: an
//! absolute URI naming an allowed origin (scheme, host, port), and a `Host` header, if any,
//! naming the same host.

use std::fmt;

use http::header::HOST;
use http::{HeaderMap, Uri};

use super::{Refusal, RefusalKind};
use crate::net::{authority_port, is_loopback_host};

/// One allowed origin: scheme, lowercase host, port.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    https: bool,
    host: Box<str>,
    port: u16,
}

impl Origin {
    fn of(uri: &Uri) -> Option<Origin> {
        let https = match uri.scheme_str()? {
            s if s.eq_ignore_ascii_case("https") => true,
            s if s.eq_ignore_ascii_case("http") => false,
            _ => return None,
        };
        let authority = uri.authority()?;
        let host = authority.host();
        if host.is_empty() {
            return None;
        }
        let port = authority_port(authority)
            .ok()?
            .unwrap_or(if https { 443 } else { 80 });
        Some(Origin {
            https,
            host: host.to_ascii_lowercase().into(),
            port,
        })
    }

    fn parse(text: &str) -> Result<Origin, String> {
        let uri: Uri = text
            .parse()
            .map_err(|_| "it is not a valid url".to_owned())?;
        let origin = Origin::of(&uri).ok_or("it needs an http or https scheme and a host")?;
        let plain_origin = uri.path_and_query().is_none_or(|pq| pq.as_str() == "/");
        let has_userinfo = uri.authority().is_some_and(|a| a.as_str().contains('@'));
        if !plain_origin || has_userinfo {
            return Err("give only scheme, host and optional port".into());
        }
        Ok(origin)
    }

    fn is_loopback(&self) -> bool {
        is_loopback_host(&self.host)
    }

    fn same_host(&self, authority: &str) -> bool {
        let Ok(authority) = authority.parse::<http::uri::Authority>() else {
            return false;
        };
        let default = if self.https { 443 } else { 80 };
        authority.host().eq_ignore_ascii_case(&self.host)
            && authority_port(&authority).is_ok_and(|p| p.unwrap_or(default) == self.port)
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        write!(f, "{scheme}://{}:{}", self.host, self.port)
    }
}

/// The origins a layer sends credentials to, checked when the layer is built.
#[derive(Debug, Clone)]
pub(super) struct AllowedOrigins(Box<[Origin]>);

impl AllowedOrigins {
    /// Parse each origin; plain `http` is refused off loopback unless `allow_plain_http`.
    /// The error is the reason, for `allow_origin`'s [`ConfigError`](crate::ConfigError).
    pub(super) fn parse(texts: &[String], allow_plain_http: bool) -> Result<Self, String> {
        if texts.is_empty() {
            return Err("no origin allowed: credentials could go nowhere".into());
        }
        let mut origins = Vec::with_capacity(texts.len());
        for text in texts {
            let origin = Origin::parse(text).map_err(|r| format!("`{text}`: {r}"))?;
            if !origin.https && !origin.is_loopback() && !allow_plain_http {
                return Err(format!(
                    "`{text}`: plain http would send credentials in clear text; use https, \
                     a loopback host, or `allow_plain_http`"
                ));
            }
            origins.push(origin);
        }
        Ok(AllowedOrigins(origins.into()))
    }

    /// The origins as `scheme://host:port`, for `Debug`.
    pub(super) fn names(&self) -> Vec<String> {
        self.0.iter().map(Origin::to_string).collect()
    }

    /// The origin check: absolute URI, allowed origin, and a `Host` header that agrees.
    pub(super) fn check(&self, uri: &Uri, headers: &HeaderMap) -> Result<(), Refusal> {
        let Some(target) = Origin::of(uri) else {
            return Err(Refusal::with_detail(
                RefusalKind::HostNotAllowed,
                "the request uri is not an absolute http or https url",
            ));
        };
        let Some(origin) = self.0.iter().find(|o| **o == target) else {
            return Err(Refusal::with_detail(
                RefusalKind::HostNotAllowed,
                format!("{target} is not an allowed origin"),
            ));
        };
        let mut hosts = headers.get_all(HOST).iter();
        if let Some(host) = hosts.next() {
            let agrees = host.to_str().is_ok_and(|h| origin.same_host(h));
            if !agrees || hosts.next().is_some() {
                return Err(Refusal::with_detail(
                    RefusalKind::HostNotAllowed,
                    "the host header names another host than the request uri",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_parse_and_match() {
        let o = Origin::parse("https://ApiGW.mka1.com").unwrap();
        assert_eq!(o.to_string(), "https://apigw.mka1.com:443");
        assert_eq!(
            Origin::of(&"https://apigw.mka1.com:443/x?y".parse().unwrap()),
            Some(o.clone())
        );
        assert_ne!(
            Origin::of(&"http://apigw.mka1.com/".parse().unwrap()),
            Some(o.clone())
        );
        assert_ne!(
            Origin::of(&"https://apigw.mka1.com:8443/".parse().unwrap()),
            Some(o.clone())
        );
        assert!(Origin::of(&"/relative".parse().unwrap()).is_none());
        // A port past 65535 is no port at all, not the scheme's default.
        for bad in [
            "https://apigw.mka1.com:65536/",
            "https://apigw.mka1.com:99999999999/",
            "https://apigw.mka1.com:/",
            "https://apigw.mka1.com:44x/",
            "http://[::1]:70000/",
        ] {
            assert!(Origin::of(&bad.parse().unwrap()).is_none(), "{bad}");
            assert!(Origin::parse(bad).is_err(), "{bad}");
        }
        assert!(!o.same_host("apigw.mka1.com:65979"));
        assert!(!o.same_host("apigw.mka1.com:"));
        assert!(Origin::parse("https://apigw.mka1.com/api").is_err());
        assert!(Origin::parse("https://user@apigw.mka1.com").is_err());
        assert!(Origin::parse("ftp://apigw.mka1.com").is_err());
        assert!(o.same_host("APIGW.mka1.com"));
        assert!(o.same_host("apigw.mka1.com:443"));
        assert!(!o.same_host("apigw.mka1.com:80"));
        assert!(!o.same_host("evil.example"));
        for lo in [
            "http://localhost:1",
            "http://127.0.0.1",
            "http://[::1]:8080",
        ] {
            assert!(Origin::parse(lo).unwrap().is_loopback(), "{lo}");
        }
        assert!(!Origin::parse("http://10.0.0.1").unwrap().is_loopback());
    }
}
