//! Errors of SLO sources: why a query produced no usable answer.
//!
//! Every variant means "no verdict can be drawn from this query": the evaluator turns them into
//! `inconclusive` (or `error` for a query Prometheus rejects as malformed), never `passed`.

use std::time::Duration;

/// A boxed error cause (transport errors, I/O errors of fakes).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why an SLO query failed.
#[derive(Debug, thiserror::Error)]
pub enum SloError {
    /// The configured base URL cannot be used.
    #[error("invalid Prometheus URL `{url}`: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The connection could not be established (refused, reset, DNS).
    #[error("Prometheus at {url} is unreachable")]
    Unreachable {
        /// The request URL.
        url: String,
        /// The transport error.
        #[source]
        source: BoxError,
    },
    /// No complete answer within the per-request timeout.
    #[error("Prometheus at {url} did not answer within {timeout:?}")]
    Timeout {
        /// The request URL.
        url: String,
        /// The per-request timeout that expired.
        timeout: Duration,
    },
    /// Any other transport failure while sending or reading (connection dropped mid-body, …).
    #[error("request to Prometheus at {url} failed")]
    Transport {
        /// The request URL.
        url: String,
        /// The transport error.
        #[source]
        source: BoxError,
    },
    /// A non-2xx answer without a Prometheus JSON error envelope (a proxy, a wrong URL).
    #[error("Prometheus answered HTTP {status}: {body}")]
    Http {
        /// HTTP status code.
        status: u16,
        /// The start of the body (at most 512 bytes), for the evidence.
        body: String,
    },
    /// Prometheus' error envelope: `{"status":"error","errorType":…,"error":…}`
    /// (Prometheus HTTP API, "Format overview"). `errorType` is e.g. `bad_data` (the query or its
    /// parameters are invalid), `execution`, `timeout`, `canceled`, `internal`, `unavailable`.
    #[error("Prometheus rejected the query ({error_type}): {message}")]
    Api {
        /// The envelope's `errorType`.
        error_type: String,
        /// The envelope's `error` text.
        message: String,
    },
    /// The query answered a type of result a check cannot judge (a `string`, or a range vector
    /// from an instant query): the check is written wrongly.
    #[error("the query returned a {found}: {hint}")]
    ResultType {
        /// `string` or `range vector`.
        found: &'static str,
        /// How to fix the query.
        hint: &'static str,
    },
    /// A 2xx answer that is not the documented JSON shape.
    #[error("unexpected Prometheus response: {reason}")]
    Decode {
        /// What did not match.
        reason: String,
    },
    /// The requested window itself is unusable (end before start).
    #[error("invalid query window: {reason}")]
    InvalidWindow {
        /// What is wrong with it.
        reason: String,
    },
}

impl SloError {
    /// True when the failure lies in the check's definition rather than in the monitoring system:
    /// Prometheus answered `bad_data` (malformed PromQL or parameters) the window was invalid, or the
    /// query returns a type that cannot be compared with a threshold.
    /// Such steps are judged `error` (fix the assertion); every other failure is `inconclusive`.
    pub fn is_definition_error(&self) -> bool {
        match self {
            SloError::Api { error_type, .. } => error_type == "bad_data",
            SloError::InvalidWindow { .. } | SloError::ResultType { .. } => true,
            _ => false,
        }
    }

    /// The message with its whole `source` chain, for evidence and logs.
    pub fn chain(&self) -> String {
        let mut text = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(c) = cause {
            text.push_str(": ");
            text.push_str(&c.to_string());
            cause = c.source();
        }
        text
    }
}
