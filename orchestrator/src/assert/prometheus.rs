//! Prometheus HTTP API client: `POST /api/v1/query` and `POST /api/v1/query_range`.
//!
//! Parameters go in an `application/x-www-form-urlencoded` body, which the API accepts like URL
//! parameters ("useful when specifying a large query that may breach server-side URL character
//! limits"): a query of any length works, where a GET fails in the client once the URL passes
//! 64 KiB ("not a valid Uri").
//!
//! Wire format (Prometheus HTTP API, "Format overview" and "Expression query result formats",
//! <https://prometheus.io/docs/prometheus/latest/querying/api/>):
//!
//! ```json
//! {"status":"success","data":{"resultType":"vector","result":[{"metric":{"cloud":"gcp"},"value":[1700000000.123,"0.25"]}]}}
//! {"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1700000000,"1"],[1700000001,"NaN"]]}]}}
//! {"status":"error","errorType":"bad_data","error":"1:5: parse error: …"}
//! ```
//!
//! Timestamps are Unix seconds as JSON floats; values are strings (`"NaN"`, `"+Inf"`, `"-Inf"`
//! allowed). Error envelopes come with HTTP 400 (`bad_data`), 422 (`execution`), 503
//! (`timeout`, `canceled`) or 500 (`internal`); all are mapped to [`SloError::Api`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Deserialize;
use url::Url;

use super::error::SloError;
use super::series::{Point, Sample, Series, SeriesLabels, parse_prom_float};
use super::source::SloSource;

/// Which endpoint a query used (for [`QueryObserver`]s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryKind {
    /// `/api/v1/query`.
    Instant,
    /// `/api/v1/query_range`.
    Range,
}

/// Called once per query with its kind, wall-clock latency and whether it succeeded. The hook
/// for a `prometheus_query_duration_seconds` histogram in the daemon.
pub type QueryObserver = Arc<dyn Fn(QueryKind, Duration, bool) + Send + Sync>;

/// Client of one Prometheus server. Cheap to clone (shares the connection pool).
#[derive(Clone)]
pub struct PrometheusClient {
    http: reqwest::Client,
    base: Url,
    timeout: Duration,
    observer: Option<QueryObserver>,
}

impl std::fmt::Debug for PrometheusClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrometheusClient")
            .field("base", &self.base.as_str())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl PrometheusClient {
    /// A client for the server at `base_url` (e.g. `http://127.0.0.1:9090`, or with a path prefix
    /// such as `http://host/prometheus`). `timeout` bounds each request end to end (connect, send,
    /// read) and is also sent as the query's evaluation `timeout` parameter.
    pub fn new(base_url: &str, timeout: Duration) -> Result<Self, SloError> {
        let invalid = |reason: String| SloError::InvalidUrl {
            url: base_url.to_owned(),
            reason,
        };
        let mut base = Url::parse(base_url).map_err(|e| invalid(e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(invalid("the scheme must be http or https".into()));
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| invalid(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            http,
            base,
            timeout,
            observer: None,
        })
    }

    /// Installs a latency observer (see [`QueryObserver`]).
    pub fn with_observer(mut self, observer: QueryObserver) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The base URL (always ending in `/`).
    pub fn base_url(&self) -> &Url {
        &self.base
    }

    async fn call(
        &self,
        kind: QueryKind,
        endpoint: &str,
        params: &[(&str, String)],
    ) -> Result<Data, SloError> {
        let started = Instant::now();
        let result = self.call_inner(endpoint, params).await;
        let elapsed = started.elapsed();
        if let Some(observer) = &self.observer {
            observer(kind, elapsed, result.is_ok());
        }
        tracing::debug!(
            endpoint,
            elapsed_ms = elapsed.as_millis() as u64,
            ok = result.is_ok(),
            "Prometheus query answered."
        );
        result
    }

    async fn call_inner(
        &self,
        endpoint: &str,
        params: &[(&str, String)],
    ) -> Result<Data, SloError> {
        let url = self.base.join(endpoint).map_err(|e| SloError::InvalidUrl {
            url: self.base.to_string(),
            reason: e.to_string(),
        })?;
        let classify = |e: reqwest::Error| {
            if e.is_timeout() {
                SloError::Timeout {
                    url: url.to_string(),
                    timeout: self.timeout,
                }
            } else if e.is_connect() {
                SloError::Unreachable {
                    url: url.to_string(),
                    source: Box::new(e),
                }
            } else {
                SloError::Transport {
                    url: url.to_string(),
                    source: Box::new(e),
                }
            }
        };
        let send = || self.http.post(url.clone()).form(params).send();
        let response = match send().await {
            Ok(response) => response,
            // A pooled keep-alive connection the server has closed fails like this; queries only
            // read (the POST carries the parameters, nothing else), so retry once on a fresh
            // connection (a dead server then shows as a refused connect, i.e. `Unreachable`).
            Err(e) if !e.is_timeout() && !e.is_connect() => send().await.map_err(classify)?,
            Err(e) => return Err(classify(e)),
        };
        let status = response.status();
        let body = response.bytes().await.map_err(classify)?;
        decode(status.as_u16(), &body)
    }
}

/// Seconds since the epoch with millisecond precision, as the API's `time`/`start`/`end` take them.
fn unix_seconds(at: DateTime<Utc>) -> String {
    format!("{:.3}", at.timestamp_millis() as f64 / 1000.0)
}

/// Decodes a response body (any status) into the result data or the mapped error.
fn decode(status: u16, body: &[u8]) -> Result<Data, SloError> {
    match serde_json::from_slice::<Envelope>(body) {
        Ok(Envelope {
            status: ApiStatus::Success,
            data: Some(data),
            warnings,
            ..
        }) => {
            if !warnings.is_empty() {
                tracing::warn!(?warnings, "Prometheus answered with warnings.");
            }
            Ok(data)
        }
        Ok(Envelope {
            status: ApiStatus::Success,
            data: None,
            ..
        }) => Err(SloError::Decode {
            reason: "`status` is success but `data` is missing".into(),
        }),
        Ok(Envelope {
            status: ApiStatus::Error,
            error_type,
            error,
            ..
        }) => Err(SloError::Api {
            error_type: error_type.unwrap_or_else(|| "unknown".into()),
            message: error.unwrap_or_default(),
        }),
        Err(e) if !(200..300).contains(&status) => {
            let _ = e;
            let mut text = String::from_utf8_lossy(body).into_owned();
            if text.len() > 512 {
                let cut = (0..=512)
                    .rev()
                    .find(|i| text.is_char_boundary(*i))
                    .unwrap_or(0);
                text.truncate(cut);
            }
            Err(SloError::Http {
                status,
                body: text.trim().to_owned(),
            })
        }
        Err(e) => Err(SloError::Decode {
            reason: e.to_string(),
        }),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    status: ApiStatus,
    data: Option<Data>,
    error_type: Option<String>,
    error: Option<String>,
    #[serde(default)]
    warnings: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum ApiStatus {
    Success,
    Error,
}

/// `data` of a successful answer, by `resultType`.
#[derive(Deserialize)]
#[serde(tag = "resultType", content = "result", rename_all = "lowercase")]
enum Data {
    Vector(Vec<RawSample>),
    Matrix(Vec<RawSeries>),
    Scalar(RawPoint),
    String(serde::de::IgnoredAny),
}

#[derive(Deserialize)]
struct RawSample {
    #[serde(default)]
    metric: SeriesLabels,
    /// Absent for native-histogram samples (`histogram`), which are not judged.
    value: Option<RawPoint>,
}

#[derive(Deserialize)]
struct RawSeries {
    #[serde(default)]
    metric: SeriesLabels,
    /// Absent for native-histogram series (`histograms`), which are not judged.
    #[serde(default)]
    values: Vec<RawPoint>,
}

/// `[unix_seconds, "value"]`.
#[derive(Deserialize)]
struct RawPoint(f64, String);

impl RawPoint {
    fn point(&self) -> Result<Point, SloError> {
        let at =
            DateTime::from_timestamp_millis((self.0 * 1000.0).round() as i64).ok_or_else(|| {
                SloError::Decode {
                    reason: format!("timestamp out of range: {}", self.0),
                }
            })?;
        let value = parse_prom_float(&self.1).ok_or_else(|| SloError::Decode {
            reason: format!("not a sample value: `{}`", self.1),
        })?;
        Ok(Point { at, value })
    }
}

fn into_samples(data: Data) -> Result<Vec<Sample>, SloError> {
    match data {
        Data::Vector(samples) => samples
            .into_iter()
            .filter_map(|s| s.value.map(|v| (s.metric, v)))
            .map(|(labels, v)| {
                Ok(Sample {
                    labels,
                    point: v.point()?,
                })
            })
            .collect(),
        Data::Scalar(p) => Ok(vec![Sample {
            labels: SeriesLabels::new(),
            point: p.point()?,
        }]),
        Data::Matrix(_) => Err(SloError::ResultType {
            found: "range vector",
            hint: "an instant query needs an instant-vector expression (wrap `x[5m]` in `rate(…)` \
                   or `max_over_time(…)`)",
        }),
        Data::String(_) => Err(SloError::ResultType {
            found: "string",
            hint: "a check compares a number with its threshold",
        }),
    }
}

fn into_series(data: Data) -> Result<Vec<Series>, SloError> {
    match data {
        Data::Matrix(series) => series
            .into_iter()
            .filter(|s| !s.values.is_empty())
            .map(|s| {
                let points = s
                    .values
                    .iter()
                    .map(RawPoint::point)
                    .collect::<Result<_, _>>()?;
                Ok(Series {
                    labels: s.metric,
                    points,
                })
            })
            .collect(),
        // Prometheus always answers query_range with a matrix; accept the others defensively.
        other => Ok(into_samples(other)?.into_iter().map(Series::from).collect()),
    }
}

impl SloSource for PrometheusClient {
    async fn instant(
        &self,
        query: &str,
        at: Option<DateTime<Utc>>,
    ) -> Result<Vec<Sample>, SloError> {
        let mut params = vec![
            ("query", query.to_owned()),
            ("timeout", format!("{:.3}", self.timeout.as_secs_f64())),
        ];
        if let Some(at) = at {
            params.push(("time", unix_seconds(at)));
        }
        into_samples(
            self.call(QueryKind::Instant, "api/v1/query", &params)
                .await?,
        )
    }

    async fn range(
        &self,
        query: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        step: Duration,
    ) -> Result<Vec<Series>, SloError> {
        if end < start {
            return Err(SloError::InvalidWindow {
                reason: format!("end {end} is before start {start}"),
            });
        }
        if step.is_zero() {
            return Err(SloError::InvalidWindow {
                reason: "the step must be positive".into(),
            });
        }
        let params = [
            ("query", query.to_owned()),
            ("start", unix_seconds(start)),
            ("end", unix_seconds(end)),
            ("step", format!("{:.3}", step.as_secs_f64())),
            ("timeout", format!("{:.3}", self.timeout.as_secs_f64())),
        ];
        into_series(
            self.call(QueryKind::Range, "api/v1/query_range", &params)
                .await?,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_a_vector_with_special_values() {
        let body = br#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"cloud":"gcp"},"value":[1700000000.123,"0.25"]},
            {"metric":{"cloud":"aws"},"value":[1700000000.123,"NaN"]},
            {"metric":{"cloud":"azure"},"value":[1700000000.123,"+Inf"]},
            {"metric":{"cloud":"x"},"histogram":[1700000000.123,{"count":"1"}]}]}}"#;
        let samples = into_samples(decode(200, body).unwrap()).unwrap();
        assert_eq!(samples.len(), 3, "native histogram samples are skipped");
        assert_eq!(samples[0].labels["cloud"], "gcp");
        assert_eq!(samples[0].point.value, 0.25);
        assert_eq!(samples[0].point.at.timestamp_millis(), 1_700_000_000_123);
        assert!(samples[1].point.value.is_nan());
        assert_eq!(samples[2].point.value, f64::INFINITY);
    }

    #[test]
    fn decodes_a_matrix_and_a_scalar() {
        let body = br#"{"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{},"values":[[1700000000,"1"],[1700000001,"-Inf"]]}]}}"#;
        let series = into_series(decode(200, body).unwrap()).unwrap();
        assert_eq!(series.len(), 1);
        assert_eq!(series[0].points.len(), 2);
        assert_eq!(series[0].points[1].value, f64::NEG_INFINITY);

        let body =
            br#"{"status":"success","data":{"resultType":"scalar","result":[1700000000,"3"]}}"#;
        let samples = into_samples(decode(200, body).unwrap()).unwrap();
        assert_eq!(samples[0].point.value, 3.0);
        assert!(samples[0].labels.is_empty());
    }

    #[test]
    fn maps_the_error_envelope() {
        let body =
            br#"{"status":"error","errorType":"bad_data","error":"1:5: parse error: unexpected"}"#;
        let err = decode(400, body).err().unwrap();
        assert!(matches!(&err, SloError::Api { error_type, message }
            if error_type == "bad_data" && message.contains("parse error")));
        assert!(err.is_definition_error());

        let body = br#"{"status":"error","errorType":"timeout","error":"query timed out"}"#;
        let err = decode(503, body).err().unwrap();
        assert!(!err.is_definition_error());
    }

    #[test]
    fn maps_non_json_answers() {
        let err = decode(502, b"<html>Bad Gateway</html>").err().unwrap();
        assert!(
            matches!(err, SloError::Http { status: 502, ref body } if body.contains("Bad Gateway"))
        );
        let err = decode(200, b"not json").err().unwrap();
        assert!(matches!(err, SloError::Decode { .. }));
        let body = br#"{"status":"success","data":{"resultType":"string","result":[1,"x"]}}"#;
        assert!(matches!(
            into_samples(decode(200, body).unwrap()),
            Err(SloError::ResultType { .. })
        ));
        let body = br#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;
        assert!(matches!(
            into_samples(decode(200, body).unwrap()),
            Err(SloError::ResultType { .. })
        ));
    }

    #[test]
    fn rejects_bad_base_urls_and_normalises_paths() {
        assert!(PrometheusClient::new("not a url", Duration::from_secs(1)).is_err());
        assert!(PrometheusClient::new("ftp://x", Duration::from_secs(1)).is_err());
        let c = PrometheusClient::new("http://h:9090/prom", Duration::from_secs(1)).unwrap();
        assert_eq!(
            c.base_url().join("api/v1/query").unwrap().as_str(),
            "http://h:9090/prom/api/v1/query"
        );
    }

    /// Serves one HTTP/1.1 request with `body` (JSON) and hands back the request's head
    /// (request line and headers) and body.
    async fn serve_once(
        body: &'static str,
    ) -> (String, tokio::task::JoinHandle<(String, Vec<u8>)>) {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let served = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 8192];
            let head_end = loop {
                let n = socket.read(&mut buf).await.unwrap();
                assert!(n > 0, "connection closed before the end of the headers");
                request.extend_from_slice(&buf[..n]);
                if let Some(i) = request.windows(4).position(|w| w == b"\r\n\r\n") {
                    break i + 4;
                }
            };
            let head = String::from_utf8(request[..head_end].to_vec()).unwrap();
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().unwrap())
                })
                .unwrap_or(0);
            while request.len() < head_end + length {
                let n = socket.read(&mut buf).await.unwrap();
                assert!(n > 0, "connection closed before the end of the body");
                request.extend_from_slice(&buf[..n]);
            }
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            socket.write_all(answer.as_bytes()).await.unwrap();
            (head, request[head_end..].to_vec())
        });
        (url, served)
    }

    fn form(body: &[u8]) -> std::collections::HashMap<String, String> {
        url::form_urlencoded::parse(body).into_owned().collect()
    }

    /// A query far longer than a URL may be (hyper refuses URIs of 64 KiB and more) is sent
    /// form-encoded in a POST body, and answered.
    #[tokio::test]
    async fn huge_instant_queries_are_posted_form_encoded() {
        let (url, served) = serve_once(
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000,"1"]}]}}"#,
        )
        .await;
        let c = PrometheusClient::new(&url, Duration::from_secs(5)).unwrap();
        let query = format!(
            "sum(up{{job=~\"{}\"}})",
            vec!["payment-node&gateway"; 5_000].join("|")
        );
        assert!(query.len() > 100_000);
        let at = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let samples = c.instant(&query, Some(at)).await.unwrap();
        assert_eq!(samples[0].point.value, 1.0);
        let (head, body) = served.await.unwrap();
        assert!(
            head.starts_with("POST /api/v1/query HTTP/1.1\r\n"),
            "{head}"
        );
        assert!(
            head.to_ascii_lowercase()
                .contains("content-type: application/x-www-form-urlencoded"),
            "{head}"
        );
        let params = form(&body);
        assert_eq!(params["query"], query);
        assert_eq!(params["time"], "1700000000.000");
        assert_eq!(params["timeout"], "5.000");
    }

    #[tokio::test]
    async fn range_queries_are_posted_form_encoded() {
        let (url, served) = serve_once(
            r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1700000000,"1"]]}]}}"#,
        )
        .await;
        let c = PrometheusClient::new(&format!("{url}/prom"), Duration::from_secs(5)).unwrap();
        let start = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let end = start + chrono::Duration::seconds(30);
        let series = c
            .range("rate(x[1m]) > 0", start, end, Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!(series.len(), 1);
        let (head, body) = served.await.unwrap();
        assert!(
            head.starts_with("POST /prom/api/v1/query_range HTTP/1.1\r\n"),
            "{head}"
        );
        let params = form(&body);
        assert_eq!(params["query"], "rate(x[1m]) > 0");
        assert_eq!(params["start"], "1700000000.000");
        assert_eq!(params["end"], "1700000030.000");
        assert_eq!(params["step"], "1.000");
    }

    #[tokio::test]
    async fn unreachable_server_is_an_error_not_an_empty_result() {
        // Bind then drop a listener: the port is (very likely) closed.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let c = PrometheusClient::new(&format!("http://127.0.0.1:{port}"), Duration::from_secs(2))
            .unwrap();
        let err = c.instant("up", None).await.unwrap_err();
        assert!(matches!(err, SloError::Unreachable { .. }), "{err:?}");
    }
}
