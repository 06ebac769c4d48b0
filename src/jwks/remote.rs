//! Remote JWKS (feature `remote`). NOT IMPLEMENTED YET: issue 3 replaces this placeholder.

use std::sync::Arc;

use jsonwebtoken::Algorithm;

use super::{Lookup, VerificationKey};
use crate::clock::SharedClock;
use crate::error::{ConfigError, Error, ErrorKind};

/// Options for fetching and caching a remote JWKS.
#[derive(Debug, Clone, Default)]
pub struct RemoteJwksConfig {}

#[derive(Clone)]
pub(crate) struct RemoteJwks {}

impl RemoteJwks {
    pub(crate) fn new(
        _url: &str,
        _config: RemoteJwksConfig,
        _clock: SharedClock,
        _algorithms: Vec<Algorithm>,
    ) -> Result<Self, ConfigError> {
        Ok(RemoteJwks {})
    }

    pub(crate) fn lookup(&self, _kid: &str) -> Lookup {
        Lookup::Missing
    }

    pub(crate) async fn resolve_missing(&self, _kid: &str) -> Result<Arc<VerificationKey>, Error> {
        Err(Error::new(ErrorKind::KeysUnavailable))
    }
}
