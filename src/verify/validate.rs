//! Stage 5: what the claims say. Times (`exp`, `nbf`, `iat`, the longest lifetime), then
//! `aud`, `iss`, `sub`, `jti` and the permissions.
//!
//! Leeway applies to every time comparison. NumericDates are JSON numbers; integers are used
//! as they are, and a fractional number (RFC 7519 allows one) is rounded toward the stricter
//! side: `exp` down, `nbf` and `iat` up. Negative numbers, numbers past the year 9999, and
//! strings, booleans, `null`, arrays or objects are refused as [`ErrorKind::InvalidClaim`].

use crate::jwks::Algorithm;
use serde_json::Value;

use super::payload::RawClaims;
use crate::claims::{validate_end_user_id, Fields, Permissions, VerifiedToken};
use crate::error::{Error, ErrorKind};
use crate::shown::{Shown, ShownList};

/// 9999-12-31T23:59:59Z: no real NumericDate lies beyond it.
const MAX_NUMERIC_DATE: u64 = 253_402_300_799;

pub(super) fn invalid_claim(detail: &'static str) -> Error {
    Error::with_detail(ErrorKind::InvalidClaim, detail)
}

/// What a verifier requires of a token's claims.
pub(super) struct ClaimRules {
    /// At least one, none empty.
    pub(super) audiences: Box<[Box<str>]>,
    /// None (any issuer, or none), or the issuers accepted.
    pub(super) issuers: Box<[Box<str>]>,
    /// Seconds of clock skew tolerated on every time check.
    pub(super) leeway: u64,
    /// Longest lifetime a token may claim, in seconds from now to its `exp`.
    pub(super) max_lifetime: u64,
}

/// The claims of a token that passed every check.
pub(super) struct ValidClaims {
    expires_at: u64,
    not_before: Option<u64>,
    issued_at: Option<u64>,
    audiences: Box<[Box<str>]>,
    issuer: Option<Box<str>>,
    subject: String,
    jti: Option<Box<str>>,
    permissions: Permissions,
}

impl ValidClaims {
    /// The verified token: these claims, the payload they came from, and the key and
    /// algorithm that verified it.
    #[inline]
    pub(super) fn into_token(
        self,
        raw_claims: String,
        key_id: &str,
        algorithm: Algorithm,
    ) -> Result<VerifiedToken, Error> {
        VerifiedToken::new(Fields {
            raw_claims,
            subject: &self.subject,
            audiences: &self.audiences,
            issuer: self.issuer.as_deref(),
            jti: self.jti.as_deref(),
            key_id,
            expires_at: self.expires_at,
            issued_at: self.issued_at,
            not_before: self.not_before,
            algorithm,
            permissions: self.permissions,
        })
    }
}

impl ClaimRules {
    /// Check every claim at `now` (Unix seconds), in this order: times, `aud`, `iss`,
    /// `sub`, `jti`, permissions; the first failure is the answer.
    #[inline]
    pub(super) fn validate(&self, claims: RawClaims, now: u64) -> Result<ValidClaims, Error> {
        let (expires_at, not_before, issued_at) = self.validate_times(&claims, now)?;
        let audiences = self.validate_audience(claims.aud)?;
        let issuer = self.validate_issuer(claims.iss)?;
        let subject = validate_subject(claims.sub)?;
        let jti = optional_string(claims.jti, "`jti` must be a string")?;
        let permissions = permissions(claims.permissions)?;
        Ok(ValidClaims {
            expires_at,
            not_before,
            issued_at,
            audiences,
            issuer,
            subject,
            jti,
            permissions,
        })
    }

    /// `exp` required; `exp`, `nbf` and `iat` NumericDates that [`check_times`] accepts;
    /// `exp` no further ahead than the longest lifetime.
    ///
    /// [`check_times`]: Self::check_times
    fn validate_times(
        &self,
        claims: &RawClaims,
        now: u64,
    ) -> Result<(u64, Option<u64>, Option<u64>), Error> {
        let exp = claims
            .exp
            .as_ref()
            .ok_or_else(|| Error::new(ErrorKind::MissingExpiry))?;
        let exp = numeric_date(exp, false, "`exp` must be a numeric date")?;
        let nbf = claims
            .nbf
            .as_ref()
            .map(|v| numeric_date(v, true, "`nbf` must be a numeric date"))
            .transpose()?;
        let iat = claims
            .iat
            .as_ref()
            .map(|v| numeric_date(v, true, "`iat` must be a numeric date"))
            .transpose()?;
        self.check_times(now, exp, nbf, iat)?;
        if exp
            > now
                .saturating_add(self.max_lifetime)
                .saturating_add(self.leeway)
        {
            return Err(Error::new(ErrorKind::LifetimeTooLong));
        }
        Ok((exp, nbf, iat))
    }

    /// At `now`: not expired, not yet valid, nor issued in the future, each with leeway.
    /// Also run on every cache hit.
    #[inline]
    pub(super) fn check_times(
        &self,
        now: u64,
        exp: u64,
        nbf: Option<u64>,
        iat: Option<u64>,
    ) -> Result<(), Error> {
        if exp.saturating_add(self.leeway) <= now {
            return Err(Error::new(ErrorKind::Expired));
        }
        let latest = now.saturating_add(self.leeway);
        if nbf.is_some_and(|nbf| nbf > latest) {
            return Err(Error::new(ErrorKind::NotYetValid));
        }
        if iat.is_some_and(|iat| iat > latest) {
            return Err(Error::new(ErrorKind::IssuedInFuture));
        }
        Ok(())
    }

    /// `aud` a string or an array of strings, naming one of the configured audiences.
    fn validate_audience(&self, aud: Option<Value>) -> Result<Box<[Box<str>]>, Error> {
        let audiences = match aud {
            None => {
                return Err(Error::with_detail(
                    ErrorKind::InvalidAudience,
                    "no `aud` claim",
                ))
            }
            Some(aud) => string_list(aud, "`aud` must be a string or an array of strings")?,
        };
        if !audiences.iter().any(|a| self.audiences.contains(a)) {
            // A token's `aud` is no secret; showing it beside the configured ones turns the
            // commonest mistake (a trailing `/`, `localhost` for `127.0.0.1`) into one look.
            // The signature is checked by now, but the text is still the issuer's: escaped.
            tracing::debug!(
                token_aud = ?ShownList(&audiences),
                configured = ?self.audiences,
                "token refused: its `aud` names none of the configured audiences exactly"
            );
            return Err(Error::with_detail(
                ErrorKind::InvalidAudience,
                "`aud` must equal one of the configured audiences exactly",
            ));
        }
        Ok(audiences)
    }

    /// [`check_issuer`](Self::check_issuer), keeping the issuer.
    fn validate_issuer(&self, iss: Option<Value>) -> Result<Option<Box<str>>, Error> {
        self.check_issuer(iss.as_ref(), true)?;
        Ok(match iss {
            Some(Value::String(s)) => Some(s.into_boxed_str()),
            _ => None,
        })
    }

    /// `iss`, when present, a string; when issuers are configured, present and one of them.
    /// Also run before any key work when the issuer picks the key source, with
    /// `signature_checked` false: the refused `iss` is then the sender's unverified text.
    pub(super) fn check_issuer<'c>(
        &self,
        iss: Option<&'c Value>,
        signature_checked: bool,
    ) -> Result<Option<&'c str>, Error> {
        let issuer = match iss {
            Some(Value::String(s)) => Some(s.as_str()),
            None => None,
            Some(_) => {
                let kind = if self.issuers.is_empty() {
                    ErrorKind::InvalidClaim
                } else {
                    ErrorKind::InvalidIssuer
                };
                return Err(Error::with_detail(kind, "`iss` must be a single string"));
            }
        };
        if !self.issuers.is_empty() {
            match issuer {
                Some(iss) if self.issuers.iter().any(|i| **i == *iss) => {}
                Some(iss) => {
                    tracing::debug!(
                        token_iss = ?Shown(iss),
                        signature_checked,
                        configured = ?self.issuers,
                        "token refused: its `iss` is none of the configured issuers"
                    );
                    return Err(Error::with_detail(
                        ErrorKind::InvalidIssuer,
                        "`iss` must equal one of the configured issuers exactly",
                    ));
                }
                None => {
                    return Err(Error::with_detail(
                        ErrorKind::InvalidIssuer,
                        "no `iss` claim",
                    ))
                }
            }
        }
        Ok(issuer)
    }
}

/// `sub` a valid end-user id ([`validate_end_user_id`]).
fn validate_subject(sub: Option<Value>) -> Result<String, Error> {
    match sub {
        Some(Value::String(s)) => {
            validate_end_user_id(&s)?;
            Ok(s)
        }
        None => Err(Error::with_detail(
            ErrorKind::InvalidSubject,
            "no `sub` claim",
        )),
        Some(_) => Err(Error::with_detail(
            ErrorKind::InvalidSubject,
            "`sub` must be a string",
        )),
    }
}

/// A NumericDate, rounded toward the stricter side (`round_up` for `nbf`/`iat`).
fn numeric_date(value: &Value, round_up: bool, wrong: &'static str) -> Result<u64, Error> {
    let Value::Number(n) = value else {
        return Err(invalid_claim(wrong));
    };
    let secs = if let Some(u) = n.as_u64() {
        u
    } else if n.is_i64() {
        return Err(invalid_claim(wrong));
    } else {
        let f = n.as_f64().filter(|f| f.is_finite() && *f >= 0.0);
        let Some(f) = f.filter(|f| *f <= MAX_NUMERIC_DATE as f64) else {
            return Err(invalid_claim(wrong));
        };
        (if round_up { f.ceil() } else { f.floor() }) as u64
    };
    if secs > MAX_NUMERIC_DATE {
        return Err(invalid_claim(wrong));
    }
    Ok(secs)
}

fn string_list(value: Value, wrong: &'static str) -> Result<Box<[Box<str>]>, Error> {
    match value {
        Value::String(s) => Ok(vec![s.into_boxed_str()].into_boxed_slice()),
        Value::Array(items) => items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.into_boxed_str()),
                _ => Err(invalid_claim(wrong)),
            })
            .collect(),
        _ => Err(invalid_claim(wrong)),
    }
}

fn optional_string(value: Option<Value>, wrong: &'static str) -> Result<Option<Box<str>>, Error> {
    match value {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.into_boxed_str())),
        Some(_) => Err(invalid_claim(wrong)),
    }
}

/// Permissions: an array of strings or one space-separated string, or absent.
fn permissions(value: Option<Value>) -> Result<Permissions, Error> {
    let wrong = || {
        Error::with_detail(
            ErrorKind::InvalidPermissions,
            "expected an array of strings or a space-separated string",
        )
    };
    let names = match value {
        None => Vec::new(),
        Some(Value::String(s)) => return Ok(Permissions::from_names(s.split(' '))),
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                _ => Err(wrong()),
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => return Err(wrong()),
    };
    Ok(Permissions::from_names(names))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn rules() -> ClaimRules {
        ClaimRules {
            audiences: vec![Box::from("https://api.example.test")].into(),
            issuers: vec![Box::from("https://issuer.example.test")].into(),
            leeway: 60,
            max_lifetime: 3600,
        }
    }

    fn claims(value: Value) -> RawClaims {
        let get = |name: &str| value.get(name).cloned();
        RawClaims {
            exp: get("exp"),
            nbf: get("nbf"),
            iat: get("iat"),
            aud: get("aud"),
            sub: get("sub"),
            iss: get("iss"),
            jti: get("jti"),
            permissions: get("permissions"),
        }
    }

    fn kind(value: Value) -> Option<ErrorKind> {
        rules().validate(claims(value), NOW).err().map(|e| e.kind())
    }

    #[test]
    fn each_check_in_turn() {
        let good = json!({"exp": NOW + 60, "aud": "https://api.example.test",
            "iss": "https://issuer.example.test", "sub": "u", "permissions": ["a"]});
        assert_eq!(kind(good.clone()), None);
        let with = |name: &str, v: Value| {
            let mut c = good.clone();
            c[name] = v;
            kind(c)
        };
        assert_eq!(with("exp", json!(NOW - 61)), Some(ErrorKind::Expired));
        assert_eq!(
            with("exp", json!(NOW + 3661)),
            Some(ErrorKind::LifetimeTooLong)
        );
        assert_eq!(with("exp", json!("soon")), Some(ErrorKind::InvalidClaim));
        assert_eq!(with("nbf", json!(NOW + 61)), Some(ErrorKind::NotYetValid));
        assert_eq!(
            with("iat", json!(NOW as f64 + 60.5)),
            Some(ErrorKind::IssuedInFuture)
        );
        assert_eq!(with("aud", json!(["x"])), Some(ErrorKind::InvalidAudience));
        assert_eq!(with("aud", json!([1])), Some(ErrorKind::InvalidClaim));
        assert_eq!(with("iss", json!("x")), Some(ErrorKind::InvalidIssuer));
        assert_eq!(with("sub", json!("*")), Some(ErrorKind::InvalidSubject));
        assert_eq!(with("jti", json!(1)), Some(ErrorKind::InvalidClaim));
        assert_eq!(
            with("permissions", json!({})),
            Some(ErrorKind::InvalidPermissions)
        );
        // Times are checked before anything else.
        assert_eq!(
            kind(json!({"exp": NOW - 61, "aud": 1})),
            Some(ErrorKind::Expired)
        );
        assert_eq!(kind(json!({"aud": 1})), Some(ErrorKind::MissingExpiry));
    }

    #[test]
    fn numeric_dates_round_toward_the_stricter_side() {
        assert_eq!(numeric_date(&json!(10.9), false, "x").unwrap(), 10);
        assert_eq!(numeric_date(&json!(10.1), true, "x").unwrap(), 11);
        for bad in [
            json!(-1),
            json!(-0.5),
            json!(MAX_NUMERIC_DATE + 1),
            json!(null),
        ] {
            assert!(numeric_date(&bad, false, "x").is_err(), "{bad}");
        }
    }
}
