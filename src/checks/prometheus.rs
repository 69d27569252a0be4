//! `kind: prometheus`: an instant PromQL query compared with thresholds,
//! optionally against the same window on the previous days (the runbook's
//! "overnight anomalies"). Covers the error rate, p99 latency and the AI
//! token budget.
//!
//! An empty result is "no data", never zero: a missing series must not pass
//! a `< 0.01` check.

use async_trait::async_trait;
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use serde::Deserialize;

use super::compare::{Condition, Thresholds, fmt_number};
use super::{Check, CheckContext, CheckResult, CheckStatus};
use crate::config::urls::{self, UrlKind};
use crate::secret::SecretUrl;
use crate::yaml::{At, Diags, Lenient, Pos, Required};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reduce {
    /// The worst case for `>` thresholds.
    #[default]
    Max,
    Min,
    Sum,
}

crate::words! { Reduce { Max = "max", Min = "min", Sum = "sum" } }

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Anomaly {
    /// Previous days to compare with. Default 7.
    pub days: Option<u32>,
    /// Deviation that flags, in standard deviations. Default 3.
    pub sigmas: Option<f64>,
    /// Status of a flagged value. Default `fail`.
    pub status: Option<CheckStatus>,
    /// Whether the query counts things (errors, requests): a count's
    /// deviation is floored at √mean, its own noise. Default: taken as a
    /// count when every value is at least 0 and within 10% of a whole
    /// number, one of them at least 1 (what `increase()` over a counter
    /// returns: 1.0028, not 1, since it extrapolates to the window's
    /// edges).
    pub count: Option<bool>,
    /// A change from the mean smaller than this never flags, however many
    /// σ it is, in the query's units. Default 0 (any change may flag).
    pub min_change: Option<At<f64>>,
}

impl Anomaly {
    /// The rule this block states, with its defaults.
    pub fn rule(&self) -> AnomalyRule {
        AnomalyRule {
            sigmas: self.sigmas.unwrap_or(3.0),
            flagged: self.status.unwrap_or(CheckStatus::Fail),
            count: self.count,
            min_change: self.min_change.map(|m| m.value).unwrap_or(0.0),
        }
    }
}

/// How an anomaly is judged: [`Anomaly`] with its defaults filled in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AnomalyRule {
    pub sigmas: f64,
    pub flagged: CheckStatus,
    /// `None`: decided from the values ([`looks_like_counts`]).
    pub count: Option<bool>,
    pub min_change: f64,
}

impl Default for AnomalyRule {
    fn default() -> Self {
        Anomaly {
            days: None,
            sigmas: None,
            status: None,
            count: None,
            min_change: None,
        }
        .rule()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrometheusCheck {
    /// Prometheus base URL, e.g. `http://prometheus:9090`. Its password,
    /// if any, is a secret.
    pub url: SecretUrl,
    pub query: Required,
    pub fail_if: Option<Condition>,
    pub warn_if: Option<Condition>,
    /// Several series: `max` (default), `min` or `sum`.
    pub reduce: Option<Reduce>,
    /// Status when the query returns no series. Default `error`.
    pub no_data: Option<CheckStatus>,
    /// Compare with the same query at the same time on previous days.
    pub anomaly: Option<Lenient<Anomaly>>,
}

/// A Prometheus answer we could not use.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryError {
    /// `status: error` with its `errorType`.
    Prometheus {
        error_type: String,
        error: String,
    },
    Transport(String),
    Decode(String),
}

impl std::fmt::Display for QueryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QueryError::Prometheus { error_type, error } => {
                write!(f, "prometheus {error_type}: {error}")
            }
            QueryError::Transport(e) => f.write_str(e),
            QueryError::Decode(e) => write!(f, "unexpected answer: {e}"),
        }
    }
}

#[derive(Debug, Deserialize)]
struct Response {
    status: String,
    #[serde(rename = "errorType")]
    error_type: Option<String>,
    error: Option<String>,
    data: Option<Data>,
}

#[derive(Debug, Deserialize)]
struct Data {
    #[serde(rename = "resultType")]
    result_type: String,
    result: serde_json::Value,
}

#[async_trait]
impl Check for PrometheusCheck {
    fn threshold(&self) -> Option<String> {
        let t = self.thresholds().describe();
        match &self.anomaly {
            Some(Lenient(a)) if t.is_empty() => Some(format!(
                "within {}σ of the {}-day mean{}",
                fmt_number(a.sigmas.unwrap_or(3.0)),
                a.days.unwrap_or(7),
                min_change_text(a.rule().min_change)
            )),
            _ => Some(t),
        }
    }

    fn target(&self) -> String {
        format!("{} query {}", self.url, self.query)
    }

    fn validate(&self, at: Pos, diags: &mut Diags) {
        if self.fail_if.is_none() && self.warn_if.is_none() && self.anomaly.is_none() {
            diags.at(
                at,
                "a prometheus check needs `fail_if`, `warn_if` or `anomaly`",
            );
        }
        urls::check(&self.url, "url", UrlKind::Http, at, diags);
        if let Some(Lenient(Anomaly {
            min_change: Some(m),
            ..
        })) = &self.anomaly
            && !(m.value.is_finite() && m.value >= 0.0)
        {
            diags.at(m.at, "min_change must be a number, 0 or more");
        }
    }

    async fn run(&self, name: &str, ctx: &CheckContext) -> Vec<CheckResult> {
        vec![self.check(name, ctx).await]
    }
}

impl PrometheusCheck {
    fn thresholds(&self) -> Thresholds {
        Thresholds {
            fail_if: self.fail_if,
            warn_if: self.warn_if,
        }
    }

    /// The reduced value of the query at `at`; `None` when no series.
    pub async fn value_at(
        &self,
        ctx: &CheckContext,
        at: DateTime<Utc>,
    ) -> Result<Option<f64>, QueryError> {
        let url = format!("{}/api/v1/query", self.url.expose().trim_end_matches('/'));
        let time = format!("{:.3}", at.timestamp_millis() as f64 / 1000.0);
        let resp = ctx
            .adapters
            .http
            .get(&url)
            .query(&[("query", self.query.as_str()), ("time", time.as_str())])
            .timeout(ctx.timeout)
            .send()
            .await
            .map_err(|e| QueryError::Transport(super::http::describe_error("GET", &url, &e)))?;
        let code = resp.status();
        let text = resp
            .text()
            .await
            .map_err(|e| QueryError::Transport(super::http::describe_error("GET", &url, &e)))?;
        let parsed: Response = serde_json::from_str(&text).map_err(|e| {
            QueryError::Decode(format!(
                "HTTP {code} from {url}: {e}: {}",
                ctx.redactor
                    .redact(&text)
                    .chars()
                    .take(120)
                    .collect::<String>()
            ))
        })?;
        parse_value(parsed, self.reduce.unwrap_or_default())
    }

    async fn check(&self, name: &str, ctx: &CheckContext) -> CheckResult {
        let value = match self.value_at(ctx, ctx.now).await {
            Err(e) => return CheckResult::error(name, e.to_string()),
            Ok(None) => {
                let status = self.no_data.unwrap_or(CheckStatus::Error);
                return CheckResult::new(name, status, "no data: the query returned no series")
                    .threshold(self.thresholds().describe());
            }
            Ok(Some(v)) => v,
        };
        let t = self.thresholds();
        let (mut status, mut reason) = if t.is_empty() {
            (CheckStatus::Pass, format!("value {}", fmt_number(value)))
        } else {
            t.reason("value", value)
        };
        let mut threshold = t.describe();
        if let Some(Lenient(a)) = &self.anomaly {
            let days = a.days.unwrap_or(7).max(1);
            let past = futures::future::join_all(
                (1..=days).map(|d| self.value_at(ctx, ctx.now - ChronoDuration::days(d as i64))),
            )
            .await;
            let mut history = Vec::new();
            for r in past {
                match r {
                    Ok(Some(v)) => history.push(v),
                    Ok(None) => {}
                    Err(e) => {
                        return CheckResult::error(name, format!("anomaly baseline: {e}"))
                            .number(value);
                    }
                }
            }
            let verdict = anomaly(value, &history, a.rule());
            if !threshold.is_empty() {
                threshold.push_str("; ");
            }
            threshold.push_str(&verdict.threshold);
            if verdict.status > status {
                status = verdict.status;
                reason = verdict.reason;
            } else if status == CheckStatus::Pass {
                reason = format!("{reason}; {}", verdict.reason);
            }
        }
        CheckResult::new(name, status, reason)
            .number(value)
            .threshold(threshold)
    }
}

fn parse_value(r: Response, reduce: Reduce) -> Result<Option<f64>, QueryError> {
    if r.status != "success" {
        return Err(QueryError::Prometheus {
            error_type: r.error_type.unwrap_or_else(|| "unknown".into()),
            error: r.error.unwrap_or_default(),
        });
    }
    let data = r
        .data
        .ok_or_else(|| QueryError::Decode("success without data".into()))?;
    let sample = |v: &serde_json::Value| -> Result<f64, QueryError> {
        let s = v
            .get(1)
            .and_then(|x| x.as_str())
            .ok_or_else(|| QueryError::Decode(format!("sample {v}")))?;
        // Prometheus writes NaN, +Inf, -Inf as strings.
        match s {
            "NaN" => Ok(f64::NAN),
            "+Inf" => Ok(f64::INFINITY),
            "-Inf" => Ok(f64::NEG_INFINITY),
            n => n
                .parse()
                .map_err(|_| QueryError::Decode(format!("sample value `{n}`"))),
        }
    };
    match data.result_type.as_str() {
        "scalar" => sample(&data.result).map(Some),
        "vector" => {
            let series = data.result.as_array().cloned().unwrap_or_default();
            let values = series
                .iter()
                .map(|s| sample(s.get("value").unwrap_or(&serde_json::Value::Null)))
                .collect::<Result<Vec<f64>, _>>()?;
            if values.is_empty() {
                return Ok(None);
            }
            Ok(Some(match reduce {
                Reduce::Max => values.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
                Reduce::Min => values.iter().cloned().fold(f64::INFINITY, f64::min),
                Reduce::Sum => values.iter().sum(),
            }))
        }
        other => Err(QueryError::Decode(format!(
            "result type `{other}`: use an instant vector or scalar query"
        ))),
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub status: CheckStatus,
    pub reason: String,
    pub threshold: String,
}

/// Values that look like counts: each at least 0 and within 10% of a
/// whole number, one of them at least 1. `increase()` over a counter
/// returns a count stretched by the window's share the samples did not
/// cover (1.0028 for one error in 12 h of 2-minute samples; up to about
/// 1.1 for a window of 20 samples); a ratio or a latency in seconds is
/// rarely near whole numbers, and never when all of them are below 1.
pub fn looks_like_counts(values: &[f64]) -> bool {
    values
        .iter()
        .all(|v| *v >= 0.0 && (v - v.round()).abs() <= 0.1 * v.round().max(1.0))
        && values.iter().any(|v| v.round() >= 1.0)
}

/// The smallest deviation an anomaly is measured in: 10% of the mean, and
/// for counts √mean, at least 1, the noise of a count (Poisson). A steady
/// history has σ near 0; without a floor, a change of 0.15% or one error
/// after seven quiet nights would be "billions of σ". `count` says whether
/// the values are counts; `None` decides from them.
pub fn deviation_floor(
    value: f64,
    history: &[f64],
    mean: f64,
    count: Option<bool>,
) -> (f64, &'static str) {
    let tenth = 0.1 * mean.abs();
    let counts = count.unwrap_or_else(|| {
        let all: Vec<f64> = std::iter::once(value)
            .chain(history.iter().copied())
            .collect();
        looks_like_counts(&all)
    });
    let root = if counts { mean.max(1.0).sqrt() } else { 0.0 };
    if root > tenth {
        (root, "√mean, the noise of a count")
    } else {
        (tenth, "10% of the mean")
    }
}

/// "; a change under min_change 10 never flags", or nothing for 0.
fn min_change_text(min_change: f64) -> String {
    if min_change > 0.0 {
        format!(
            "; a change under min_change {} never flags",
            fmt_number(min_change)
        )
    } else {
        String::new()
    }
}

/// Today's value against the same window on previous days. Pure.
pub fn anomaly(value: f64, history: &[f64], rule: AnomalyRule) -> Verdict {
    let AnomalyRule {
        sigmas,
        flagged,
        count,
        min_change,
    } = rule;
    let threshold = format!(
        "within {}σ of the {}-day mean{}",
        fmt_number(sigmas),
        history.len(),
        min_change_text(min_change)
    );
    if history.len() < 3 {
        return Verdict {
            status: CheckStatus::Warn,
            reason: format!(
                "only {} previous day(s) with data; need 3 to judge anomalies",
                history.len()
            ),
            threshold,
        };
    }
    let n = history.len() as f64;
    let mean = history.iter().sum::<f64>() / n;
    let measured = (history.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    let (floor, why) = deviation_floor(value, history, mean, count);
    let (sd, floored) = if measured < floor {
        (
            floor,
            format!(
                " (σ {} floored to {}: {why})",
                fmt_number(measured),
                fmt_number(floor)
            ),
        )
    } else {
        (measured, String::new())
    };
    let threshold = format!(
        "within {}σ of the {}-day mean {} (σ {}){}",
        fmt_number(sigmas),
        history.len(),
        fmt_number(mean),
        fmt_number(sd),
        min_change_text(min_change)
    );
    let deviation = value - mean;
    let z = if sd > 0.0 {
        deviation / sd
    } else if deviation == 0.0 {
        0.0
    } else {
        f64::INFINITY.copysign(deviation)
    };
    let dir = if z >= 0.0 { "above" } else { "below" };
    let z_text = if z.is_finite() {
        format!("{:.1}σ", z.abs())
    } else {
        "infinitely many σ".into()
    };
    let small = deviation.abs() < min_change;
    if z.abs() > sigmas && !small {
        Verdict {
            status: flagged,
            reason: format!(
                "anomaly: {} is {z_text} {dir} the {}-day mean {}{floored}",
                fmt_number(value),
                history.len(),
                fmt_number(mean)
            ),
            threshold,
        }
    } else {
        let under = if small && z.abs() > sigmas {
            format!(
                ", a change of {} under min_change {}",
                fmt_number(deviation.abs()),
                fmt_number(min_change)
            )
        } else {
            String::new()
        };
        Verdict {
            status: CheckStatus::Pass,
            reason: format!(
                "{z_text} {dir} the {}-day mean{floored}{under}",
                history.len()
            ),
            threshold,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(json: &str) -> Response {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn parse_table() {
        let cases: &[(&str, Reduce, Result<Option<f64>, &str>)] = &[
            (
                r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#,
                Reduce::Max,
                Ok(None),
            ),
            (
                r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"0.5"]},{"metric":{},"value":[1,"2"]}]}}"#,
                Reduce::Max,
                Ok(Some(2.0)),
            ),
            (
                r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"0.5"]},{"metric":{},"value":[1,"2"]}]}}"#,
                Reduce::Sum,
                Ok(Some(2.5)),
            ),
            (
                r#"{"status":"success","data":{"resultType":"scalar","result":[1,"3"]}}"#,
                Reduce::Max,
                Ok(Some(3.0)),
            ),
            (
                r#"{"status":"error","errorType":"bad_data","error":"parse error at char 5"}"#,
                Reduce::Max,
                Err("prometheus bad_data: parse error at char 5"),
            ),
            (
                r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#,
                Reduce::Max,
                Err("result type `matrix`"),
            ),
        ];
        for (json, reduce, want) in cases {
            let got = parse_value(resp(json), *reduce);
            match (want, got) {
                (Ok(w), Ok(g)) => assert_eq!(&g, w, "{json}"),
                (Err(w), Err(e)) => assert!(e.to_string().contains(w), "{json}: {e}"),
                (w, g) => panic!("{json}: want {w:?}, got {g:?}"),
            }
        }
    }

    #[test]
    fn anomaly_table() {
        let week = [100.0, 110.0, 90.0, 105.0, 95.0, 100.0, 100.0];
        let cases: &[(f64, &[f64], CheckStatus, &str)] = &[
            (102.0, &week, CheckStatus::Pass, "above the 7-day mean"),
            (200.0, &week, CheckStatus::Fail, "anomaly: 200 is"),
            (10.0, &week, CheckStatus::Fail, "below the 7-day mean 100"),
            (100.0, &[100.0, 100.0, 100.0], CheckStatus::Pass, "0.0σ"),
            // A steady history: σ is floored, so noise never flags.
            (
                101.0,
                &[100.0, 100.0, 100.0],
                CheckStatus::Pass,
                "0.1σ above the 3-day mean (σ 0 floored to 10",
            ),
            // 0.15% below a steady mean of about 1.5e12 (the issue's case).
            (
                1_497_104_549_898.6 * 0.9985,
                &[
                    1_497_104_549_898.6,
                    1_497_104_549_898.7,
                    1_497_104_549_898.5,
                ],
                CheckStatus::Pass,
                "10% of the mean",
            ),
            // One error after seven nights of none: the noise of a count.
            (
                1.0,
                &[0.0; 7],
                CheckStatus::Pass,
                "1.0σ above the 7-day mean (σ 0 floored to 1: √mean",
            ),
            // Fifty after seven nights of none is a real change.
            (
                50.0,
                &[0.0; 7],
                CheckStatus::Fail,
                "anomaly: 50 is 50.0σ above",
            ),
            // An error rate (not a count) jumping fiftyfold.
            (
                0.05,
                &[0.001, 0.0012, 0.0009, 0.0011],
                CheckStatus::Fail,
                "anomaly: 0.05 is",
            ),
            (100.0, &[100.0], CheckStatus::Warn, "need 3"),
            // One error as `increase()` returns it, extrapolated: a count.
            (
                1.0028,
                &[0.0; 7],
                CheckStatus::Pass,
                "1.0σ above the 7-day mean (σ 0 floored to 1: √mean",
            ),
            (
                2.06,
                &[1.03, 0.0, 2.05, 1.0, 0.0, 0.0, 1.01],
                CheckStatus::Pass,
                "√mean",
            ),
        ];
        for (v, hist, status, reason) in cases {
            let got = anomaly(*v, hist, AnomalyRule::default());
            assert_eq!(got.status, *status, "{v} vs {hist:?}: {got:?}");
            assert!(got.reason.contains(reason), "{v}: {}", got.reason);
        }
    }

    #[test]
    fn counts_are_told_from_ratios_and_latencies() {
        let cases: &[(&[f64], bool)] = &[
            (&[0.0, 0.0, 1.0028], true),
            (&[100.0, 103.4, 96.2], true),
            (&[0.0, 0.0, 0.0], false),
            // Error ratios: all below 1.
            (&[0.001, 0.0012, 0.05], false),
            // Latencies in seconds.
            (&[0.46, 0.52, 1.4], false),
            (&[1.5, 2.0, 3.0], false),
            (&[-1.0, 2.0, 3.0], false),
        ];
        for (values, want) in cases {
            assert_eq!(looks_like_counts(values), *want, "{values:?}");
        }
    }

    #[test]
    fn count_and_min_change_override_what_the_values_suggest() {
        let rule = |count, min_change| AnomalyRule {
            count,
            min_change,
            ..Default::default()
        };
        // Told it is no count: one after zeros is a change from a σ of 0.
        let v = anomaly(1.0028, &[0.0; 7], rule(Some(false), 0.0));
        assert_eq!(v.status, CheckStatus::Fail, "{v:?}");
        // Told it is a count: 0.4 after zeros is within a count's noise.
        let v = anomaly(0.4, &[0.0; 7], rule(Some(true), 0.0));
        assert_eq!(v.status, CheckStatus::Pass, "{v:?}");
        // Under min_change: never flags, however many σ, either way.
        let week = [100.0, 100.0, 100.0];
        for value in [150.0, 50.0] {
            let v = anomaly(value, &week, rule(None, 60.0));
            assert_eq!(v.status, CheckStatus::Pass, "{v:?}");
            assert!(v.reason.contains("under min_change 60"), "{v:?}");
            assert!(v.threshold.contains("min_change 60 never flags"), "{v:?}");
        }
        let v = anomaly(170.0, &week, rule(None, 60.0));
        assert_eq!(v.status, CheckStatus::Fail, "{v:?}");
    }

    #[test]
    fn min_change_is_a_number_zero_or_more() {
        let with = |m: &str| {
            crate::checks::parse(&format!(
                "{{name: a, kind: prometheus, url: 'http://p:9090', query: up, anomaly: {{min_change: {m}}}}}"
            ))
        };
        assert!(with("0").is_ok());
        assert!(with("2.5").is_ok());
        for bad in ["-1", ".nan", ".inf"] {
            let e = with(bad).unwrap_err().to_string();
            assert!(
                e.contains("min_change must be a number, 0 or more"),
                "{bad}: {e}"
            );
            assert!(e.starts_with("1:"), "{bad}: a position: {e}");
        }
    }

    /// Every anomaly check the shipped jobs.yaml has sets `min_change`, so
    /// a handful of errors on a quiet night never pages anyone.
    #[test]
    fn the_shipped_anomaly_checks_set_min_change() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("jobs.yaml");
        let text = std::fs::read_to_string(&path).unwrap();
        let config =
            crate::jobs::load_str(&path, &text, &|_| None).unwrap_or_else(|e| panic!("{e}"));
        let mut seen = 0;
        for job in config.jobs.values() {
            let Some(list) = job.spec_as::<crate::jobs::checklist::ChecklistSpec>() else {
                continue;
            };
            for c in list.checks.value.iter().filter(|c| c.kind == "prometheus") {
                let threshold = c.spec.threshold().unwrap_or_default();
                if threshold.contains('σ') {
                    seen += 1;
                    assert!(
                        threshold.contains("min_change"),
                        "{}/{}: {threshold}",
                        job.name,
                        c.name
                    );
                }
            }
        }
        assert!(seen > 0, "the shipped jobs have an anomaly check");
    }
}
