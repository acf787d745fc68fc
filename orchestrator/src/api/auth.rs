//! Bearer-token authentication and roles.
//!
//! Tokens are configured in the config directory (`spec.api.tokens`: name, role, `tokenEnv`) and
//! their secrets read from the environment when the API starts; secrets are never written to
//! files or logs. Only SHA-256 digests of the secrets are kept, and a presented token's digest is
//! compared with every configured digest in constant time (`subtle`), so neither the secret's
//! bytes nor its length leak through response timing.
//!
//! Roles are ordered `viewer < operator < admin` ([`ApiRole`]): viewers read, operators also start
//! runs on non-production stacks, admins also on production stacks — and only for scenarios with
//! `allowProduction: true`.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};
use base64::Engine as _;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use super::{ApiError, ApiState};
use crate::config::{ApiRole, ApiToken};

/// Shortest secret accepted, in characters (≈ 96 bits of entropy for random base64).
pub const MIN_SECRET_LEN: usize = 16;

/// Why the configured tokens cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The token's environment variable is unset or empty.
    #[error("API token `{name}`: environment variable {env} is not set")]
    MissingSecret {
        /// Token name.
        name: String,
        /// The variable.
        env: String,
    },
    /// The secret is too short to resist guessing.
    #[error("API token `{name}`: the secret in {env} is shorter than {MIN_SECRET_LEN} characters")]
    WeakSecret {
        /// Token name.
        name: String,
        /// The variable.
        env: String,
    },
    /// Two tokens have the same secret, so a caller could not be told apart.
    #[error("API tokens `{first}` and `{second}` have the same secret")]
    DuplicateSecret {
        /// One token.
        first: String,
        /// The other.
        second: String,
    },
}

struct Entry {
    name: String,
    role: ApiRole,
    digest: [u8; 32],
}

/// The accepted tokens (digests only). Build with [`Tokens::from_config`] or
/// [`Tokens::from_secrets`].
#[derive(Default)]
pub struct Tokens {
    entries: Vec<Entry>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Names and roles only: never the digests.
        f.debug_list()
            .entries(self.entries.iter().map(|e| (&e.name, e.role)))
            .finish()
    }
}

fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

impl Tokens {
    /// Reads each configured token's secret from its `token_env` variable.
    ///
    /// # Errors
    /// [`TokenError`]: a variable unset or empty, a secret shorter than [`MIN_SECRET_LEN`], or
    /// two tokens with the same secret.
    pub fn from_config(tokens: &[ApiToken]) -> Result<Self, TokenError> {
        let mut secrets = Vec::with_capacity(tokens.len());
        for t in tokens {
            let secret = std::env::var(&t.token_env)
                .ok()
                .filter(|s| !s.is_empty())
                .ok_or_else(|| TokenError::MissingSecret {
                    name: t.name.clone(),
                    env: t.token_env.clone(),
                })?;
            if secret.chars().count() < MIN_SECRET_LEN {
                return Err(TokenError::WeakSecret {
                    name: t.name.clone(),
                    env: t.token_env.clone(),
                });
            }
            secrets.push((t.name.clone(), t.role, secret));
        }
        Self::from_secrets(secrets)
    }

    /// Tokens from `(name, role, secret)` triples (no length rule: for tests and embedding).
    ///
    /// # Errors
    /// [`TokenError::DuplicateSecret`].
    pub fn from_secrets(
        tokens: impl IntoIterator<Item = (String, ApiRole, String)>,
    ) -> Result<Self, TokenError> {
        let mut entries: Vec<Entry> = Vec::new();
        for (name, role, secret) in tokens {
            let digest = digest(&secret);
            if let Some(other) = entries.iter().find(|e| e.digest == digest) {
                return Err(TokenError::DuplicateSecret {
                    first: other.name.clone(),
                    second: name,
                });
            }
            entries.push(Entry { name, role, digest });
        }
        Ok(Self { entries })
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no token is configured (then every `/api/v1/` request is refused with 401).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The caller holding `presented`, if any. Compares against every token in constant time.
    pub fn authenticate(&self, presented: &str) -> Option<Caller> {
        let wanted = digest(presented);
        let mut found = None;
        for entry in &self.entries {
            if bool::from(entry.digest.ct_eq(&wanted)) {
                found = Some(Caller {
                    name: entry.name.clone(),
                    role: entry.role,
                });
            }
        }
        found
    }
}

/// An authenticated caller: the token's name and role. As an axum extractor it answers 401
/// (with `WWW-Authenticate: Bearer`) when the `Authorization: Bearer …` header is missing,
/// malformed or names no configured token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's name (recorded as `started_by`).
    pub name: String,
    /// The token's role.
    pub role: ApiRole,
}

impl Caller {
    /// `Ok` when the caller's role is at least `needed`.
    ///
    /// # Errors
    /// [`ApiError::Forbidden`] naming `needed` and what it was needed for.
    pub fn require(&self, needed: ApiRole, for_what: &str) -> Result<(), ApiError> {
        if self.role >= needed {
            Ok(())
        } else {
            Err(ApiError::Forbidden {
                needed: Some(needed),
                message: format!(
                    "{for_what} needs the {} role; token `{}` is {}",
                    needed.as_str(),
                    self.name,
                    self.role.as_str()
                ),
            })
        }
    }
}

impl FromRequestParts<ApiState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
            return Err(ApiError::Unauthorized(
                "missing `Authorization: Bearer <token>` header",
            ));
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| {
                let (scheme, token) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .filter(|t| !t.is_empty())
            .ok_or(ApiError::Unauthorized(
                "the Authorization header is not `Bearer <token>`",
            ))?;
        state
            .inner
            .tokens
            .authenticate(token)
            .ok_or(ApiError::Unauthorized("unknown token"))
    }
}

/// The token in an `Authorization` header: `Bearer <token>`, or `Basic base64(user:token)` (any
/// user name; what a browser sends after its login prompt).
fn presented_token(value: &HeaderValue) -> Option<String> {
    let (scheme, rest) = value.to_str().ok()?.split_once(' ')?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(rest.to_owned()).filter(|t| !t.is_empty());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (_, password) = text.split_once(':')?;
        return Some(password.to_owned()).filter(|t| !t.is_empty());
    }
    None
}

/// Middleware for the dashboard when the daemon serves it next to the API: every request needs a
/// token of at least the viewer role, as a bearer token or as the password of HTTP Basic
/// authentication (RFC 7617; browsers prompt for it on the `WWW-Authenticate: Basic` answer).
/// Without a configured token the dashboard is open (as the API is then closed to everyone,
/// nothing else is reachable).
pub async fn require_viewer(
    State(state): State<ApiState>,
    request: Request,
    next: Next,
) -> Response {
    let tokens = &state.inner.tokens;
    if tokens.is_empty() {
        return next.run(request).await;
    }
    let caller = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(presented_token)
        .and_then(|token| tokens.authenticate(&token));
    match caller {
        Some(caller) if caller.role >= ApiRole::Viewer => next.run(request).await,
        _ => {
            let mut response = (
                StatusCode::UNAUTHORIZED,
                "The dashboard needs an f3-chaos API token (viewer role or above): \
                 any user name, the token as password.",
            )
                .into_response();
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"f3-chaos\", charset=\"UTF-8\""),
            );
            response
        }
    }
}
