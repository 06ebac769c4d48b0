//! Reading the scoped-key endpoints' JSON bodies field by field, collecting every problem
//! as an [`Issue`] so one 400 names them all.

use serde_json::{Map, Value};

use super::api_keys::{check_lifetime, check_name, check_scope, Owner, RateLimit};
use super::reply::Issue;
use super::rfc3339;

/// A body's fields, and the problems found so far.
pub(super) struct Fields {
    fields: Map<String, Value>,
    issues: Vec<Issue>,
}

impl Fields {
    pub(super) fn new(fields: Map<String, Value>) -> Self {
        Fields {
            fields,
            issues: Vec::new(),
        }
    }

    fn issue(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.issues.push(Issue::new(path, message));
    }

    /// The problems found, if any. Unknown fields are ignored.
    pub(super) fn finish(self) -> Result<(), Vec<Issue>> {
        if self.issues.is_empty() {
            Ok(())
        } else {
            Err(self.issues)
        }
    }

    /// A required non-empty string.
    pub(super) fn required_string(&mut self, name: &str) -> Option<String> {
        match self.fields.remove(name) {
            Some(Value::String(s)) if !s.is_empty() => Some(s),
            Some(Value::String(_)) => {
                self.issue(name, "must not be empty");
                None
            }
            Some(_) => {
                self.issue(name, "expected a string");
                None
            }
            None => {
                self.issue(name, "required");
                None
            }
        }
    }

    /// A key name: 1-128 characters; when not `required`, absent or `null` is `None`.
    pub(super) fn name(&mut self, required: bool) -> Option<String> {
        match self.fields.remove("name") {
            None | Some(Value::Null) if required => {
                self.issue("name", "required");
                None
            }
            None | Some(Value::Null) => None,
            Some(Value::String(name)) => match check_name(&name) {
                Ok(()) => Some(name),
                Err(why) => {
                    self.issue("name", why);
                    None
                }
            },
            Some(_) => {
                self.issue("name", "expected a string");
                None
            }
        }
    }

    /// `scopes`: required, a non-empty array of well-formed scopes.
    pub(super) fn scopes(&mut self) -> Vec<String> {
        let items = match self.fields.remove("scopes") {
            Some(Value::Array(items)) if !items.is_empty() => items,
            Some(Value::Array(_)) => {
                self.issue("scopes", "a key must hold at least one scope");
                return Vec::new();
            }
            Some(_) => {
                self.issue("scopes", "expected an array of scopes");
                return Vec::new();
            }
            None => {
                self.issue("scopes", "required");
                return Vec::new();
            }
        };
        let mut scopes = Vec::with_capacity(items.len());
        for (i, item) in items.into_iter().enumerate() {
            match item {
                Value::String(scope) => match check_scope(&scope) {
                    Ok(()) => scopes.push(scope),
                    Err(why) => self.issue(format!("scopes.{i}"), format!("`{scope}`: {why}")),
                },
                _ => self.issue(format!("scopes.{i}"), "expected a string"),
            }
        }
        scopes
    }

    /// `expiresIn`: optional (`null` is absent), whole seconds from now.
    pub(super) fn expires_in(&mut self) -> Option<u64> {
        let secs = match self.fields.remove("expiresIn") {
            None | Some(Value::Null) => return None,
            Some(Value::Number(n)) => n.as_u64().or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && *f >= 0.0)
                    .map(|f| f as u64)
            }),
            Some(_) => {
                self.issue("expiresIn", "expected a number of seconds");
                return None;
            }
        };
        match secs.map(|s| (s, check_lifetime(s))) {
            Some((secs, Ok(()))) => Some(secs),
            Some((_, Err(why))) => {
                self.issue("expiresIn", why);
                None
            }
            None => {
                self.issue("expiresIn", "expected a whole number of seconds");
                None
            }
        }
    }

    /// `expiresAt`: absent (`None`), `null` (`Some(None)`: never), or an RFC 3339 date-time.
    pub(super) fn expires_at(&mut self) -> Option<Option<u64>> {
        match self.fields.remove("expiresAt") {
            None => None,
            Some(Value::Null) => Some(None),
            Some(Value::String(text)) => match rfc3339::parse(&text) {
                Some(at) => Some(Some(at)),
                None => {
                    self.issue("expiresAt", "expected an rfc 3339 date-time");
                    None
                }
            },
            Some(_) => {
                self.issue("expiresAt", "expected an rfc 3339 date-time or null");
                None
            }
        }
    }

    /// `rateLimitEnabled`, `rateLimitTimeWindow` and `rateLimitMax`, each optional.
    pub(super) fn rate_limit(&mut self) -> RateLimitPatch {
        let mut patch = RateLimitPatch::default();
        match self.fields.remove("rateLimitEnabled") {
            None | Some(Value::Null) => {}
            Some(Value::Bool(on)) => patch.enabled = Some(on),
            Some(_) => self.issue("rateLimitEnabled", "expected a boolean"),
        }
        for (name, slot) in [
            ("rateLimitTimeWindow", &mut patch.time_window),
            ("rateLimitMax", &mut patch.max),
        ] {
            match self.fields.remove(name) {
                None | Some(Value::Null) => {}
                Some(Value::Number(n)) if n.as_f64().is_some_and(|f| f >= 0.0) => {
                    *slot = n.as_f64();
                }
                Some(_) => self
                    .issues
                    .push(Issue::new(name, "expected a number, at least 0")),
            }
        }
        patch
    }

    /// `onBehalfOf`: optional `{"serviceAccountId", "userType": "service-account"}`.
    pub(super) fn owner(&mut self) -> Owner {
        let mut owner = Owner::default();
        match self.fields.remove("onBehalfOf") {
            None | Some(Value::Null) => {}
            Some(Value::Object(mut of)) => {
                match of.remove("userType") {
                    None => {}
                    Some(Value::String(t)) if t == "service-account" => {}
                    Some(_) => self.issue("onBehalfOf.userType", "must be `service-account`"),
                }
                match of.remove("serviceAccountId") {
                    Some(Value::String(id)) if !id.is_empty() => owner.service_account = Some(id),
                    _ => self.issue("onBehalfOf.serviceAccountId", "required, a string"),
                }
            }
            Some(_) => self.issue("onBehalfOf", "expected an object"),
        }
        owner
    }
}

/// The rate-limit settings a request gives; the others stay as they are.
#[derive(Debug, Default)]
pub(super) struct RateLimitPatch {
    enabled: Option<bool>,
    time_window: Option<f64>,
    max: Option<f64>,
}

impl RateLimitPatch {
    pub(super) fn apply(&self, to: &mut RateLimit) {
        if let Some(enabled) = self.enabled {
            to.enabled = enabled;
        }
        if self.time_window.is_some() {
            to.time_window = self.time_window;
        }
        if self.max.is_some() {
            to.max = self.max;
        }
    }
}
