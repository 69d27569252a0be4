//! `mail:` (where reports and notifications go) and `links:` (what they
//! point at), read and checked without I/O.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::model::Dur;
use crate::secret::SecretUrl;
use crate::yaml::{Diags, Pos, Text};

/// `mail:`, how messages leave.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMail {
    /// `smtp://user:pass@host:587` (STARTTLS: required when the URL has a
    /// password, else opportunistic; `?tls=required|opportunistic|none`
    /// says which), or `smtps://…:465` (TLS from the start). Empty or
    /// absent: messages are written to `outbox` instead. Default none.
    smtp_url: Option<MaybeUrl>,
    /// A PEM file of the CA that signed the server's certificate, when it
    /// is not a public one. Default none (the system's roots).
    ca_file: Option<Text>,
    /// Default `runbookd <runbookd@localhost>`.
    from: Option<Text>,
    /// Recipients, comma-separated. Default none (then every message goes
    /// to the outbox's folder only, and validate says so for jobs that
    /// notify).
    to: Option<Text>,
    /// Copied recipients, comma-separated. Default none.
    cc: Option<Text>,
    /// Where messages go as `.eml` files when no SMTP URL is set. Default
    /// `outbox`.
    outbox: Option<Text>,
    /// Per SMTP conversation. Default `30s`.
    timeout: Option<Dur>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MailConfig {
    pub smtp_url: Option<SecretUrl>,
    pub ca_file: Option<PathBuf>,
    pub from: String,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub outbox: PathBuf,
    pub timeout: Duration,
}

pub const DEFAULT_FROM: &str = "runbookd <runbookd@localhost>";

impl Default for MailConfig {
    fn default() -> Self {
        MailConfig {
            smtp_url: None,
            ca_file: None,
            from: DEFAULT_FROM.into(),
            to: Vec::new(),
            cc: Vec::new(),
            outbox: PathBuf::from("outbox"),
            timeout: Duration::from_secs(30),
        }
    }
}

impl MailConfig {
    /// Where messages go, for people: the SMTP URL without its password,
    /// or the outbox folder.
    pub fn describe(&self) -> String {
        match &self.smtp_url {
            Some(u) => u.shown(),
            None => format!("the outbox folder {}", self.outbox.display()),
        }
    }
}

/// Splits a comma-separated address list, checking each address.
pub fn addresses(t: &Text, what: &str, diags: &mut Diags) -> Vec<String> {
    let mut out = Vec::new();
    for a in t.split(',').map(str::trim).filter(|a| !a.is_empty()) {
        match a.parse::<lettre::message::Mailbox>() {
            Ok(_) => out.push(a.to_string()),
            Err(e) => diags.at(t.at, format!("{what}: `{a}` is not an email address ({e})")),
        }
    }
    out
}

/// A URL that may be empty (`${SMTP_URL:-}`): empty is none. Every other
/// URL must be there ([`SecretUrl`] refuses an empty one).
#[derive(Debug, Clone, Default)]
pub(super) struct MaybeUrl(pub(super) Option<SecretUrl>);

impl<'de> Deserialize<'de> for MaybeUrl {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let t = Text::deserialize(d)?;
        if t.trim().is_empty() {
            return Ok(MaybeUrl(None));
        }
        let mut u = SecretUrl::new(t.as_str());
        u.at = t.at;
        Ok(MaybeUrl(Some(u)))
    }
}

pub(super) fn mail(raw: Option<&RawMail>, diags: &mut Diags) -> MailConfig {
    let mut m = MailConfig::default();
    let Some(raw) = raw else { return m };
    if let Some(MaybeUrl(Some(u))) = &raw.smtp_url {
        match smtp_url_problem(u.expose()) {
            Some(p) => diags.at(u.at, format!("mail.smtp_url {}: {p}", u.shown())),
            None => m.smtp_url = Some(u.clone()),
        }
    }
    if let Some(c) = raw.ca_file.as_ref().filter(|c| !c.trim().is_empty()) {
        m.ca_file = Some(PathBuf::from(c.as_str()));
    }
    if let Some(f) = raw.from.as_ref().filter(|f| !f.trim().is_empty()) {
        match f.trim().parse::<lettre::message::Mailbox>() {
            Ok(_) => m.from = f.trim().to_string(),
            Err(e) => diags.at(
                f.at,
                format!("mail.from: `{}` is not an email address ({e})", f.as_str()),
            ),
        }
    }
    if let Some(t) = &raw.to {
        m.to = addresses(t, "mail.to", diags);
    }
    if let Some(c) = &raw.cc {
        m.cc = addresses(c, "mail.cc", diags);
    }
    if let Some(o) = raw.outbox.as_ref().filter(|o| !o.trim().is_empty()) {
        m.outbox = PathBuf::from(o.as_str());
    }
    if let Some(t) = raw.timeout {
        m.timeout = t.0;
    }
    m
}

/// What is wrong with an SMTP URL, if anything. Pure: the same rules the
/// mailer applies when it connects, found by `validate`.
fn smtp_url_problem(url: &str) -> Option<String> {
    let u = match url::Url::parse(url) {
        Ok(u) => u,
        Err(e) => return Some(format!("not a URL ({e})")),
    };
    if !matches!(u.scheme(), "smtp" | "smtps") {
        return Some(format!(
            "scheme `{}`: use smtp:// (STARTTLS) or smtps:// (TLS)",
            u.scheme()
        ));
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Some("no host".into());
    }
    for (k, v) in u.query_pairs() {
        match (k.as_ref(), v.as_ref()) {
            ("tls", "required" | "opportunistic" | "none") if u.scheme() == "smtp" => {}
            ("tls", other) => {
                return Some(format!(
                    "tls={other}: smtp:// takes tls=required (default), opportunistic or none; smtps:// is always TLS"
                ));
            }
            (k, _) => return Some(format!("unknown parameter `{k}`; only `tls` is known")),
        }
    }
    None
}

/// `links:`, where a report or notification sends the reader.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLinks {
    /// A Grafana URL for a metric, with `{check}` replaced by the check's
    /// name (URL-encoded). Default none.
    grafana: Option<Text>,
    /// The runbook's URL; an anchor is appended as `#anchor`. Default none.
    runbook: Option<Text>,
    /// Runbook anchors by check name or job name (a check's name is looked
    /// up first). Default none.
    #[serde(default)]
    anchors: BTreeMap<String, Text>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Links {
    pub grafana: Option<String>,
    pub runbook: Option<String>,
    pub anchors: BTreeMap<String, String>,
}

impl Links {
    /// The Grafana link for a check, when configured.
    pub fn grafana(&self, check: &str) -> Option<String> {
        let t = self.grafana.as_ref()?;
        let enc: String = url::form_urlencoded::byte_serialize(check.as_bytes()).collect();
        Some(t.replace("{check}", &enc))
    }

    /// The runbook section for a check or a job, by the first name with an
    /// anchor.
    pub fn runbook(&self, names: &[&str]) -> Option<String> {
        let base = self.runbook.as_ref()?;
        let anchor = names.iter().find_map(|n| self.anchors.get(*n))?;
        Some(format!("{base}#{anchor}"))
    }
}

pub(super) fn links(raw: Option<&RawLinks>, diags: &mut Diags) -> Links {
    let Some(raw) = raw else {
        return Links::default();
    };
    let url = |t: &Text, what: &str, diags: &mut Diags| -> Option<String> {
        let s = t.trim();
        if s.is_empty() {
            return None;
        }
        let probe = s.replace("{check}", "x");
        match url::Url::parse(&probe) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => Some(s.to_string()),
            _ => {
                diags.at(t.at, format!("links.{what}: `{s}` is not an http(s) URL"));
                None
            }
        }
    };
    let grafana = raw.grafana.as_ref().and_then(|t| url(t, "grafana", diags));
    let runbook = raw.runbook.as_ref().and_then(|t| url(t, "runbook", diags));
    if !raw.anchors.is_empty() && runbook.is_none() {
        let at = raw
            .anchors
            .values()
            .next()
            .map(|t| t.at)
            .unwrap_or(Pos::default());
        diags.at(
            at,
            "links.anchors need links.runbook, the page they are anchors of",
        );
    }
    let anchors = raw
        .anchors
        .iter()
        .map(|(k, v)| (k.clone(), v.trim().trim_start_matches('#').to_string()))
        .collect();
    Links {
        grafana,
        runbook,
        anchors,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_urls_table() {
        let cases = [
            ("smtp://u:p@mail:587", None),
            ("smtps://mail:465", None),
            ("smtp://mail:25?tls=opportunistic", None),
            ("smtp://mail:25?tls=none", None),
            ("http://mail", Some("scheme `http`")),
            ("smtps://mail?tls=none", Some("smtps:// is always TLS")),
            ("smtp://mail?tls=maybe", Some("tls=maybe")),
            ("smtp://mail?auth=plain", Some("unknown parameter `auth`")),
            ("smtp://", Some("no host")),
            ("mail:25", Some("scheme `mail`")),
        ];
        for (url, want) in cases {
            let got = smtp_url_problem(url);
            match want {
                None => assert_eq!(got, None, "{url}"),
                Some(w) => assert!(got.as_deref().unwrap_or("").contains(w), "{url}: {got:?}"),
            }
        }
    }

    #[test]
    fn links_fill_checks_and_anchors() {
        let l = Links {
            grafana: Some("https://g/d/api?var-check={check}".into()),
            runbook: Some("https://git/RUNBOOK.md".into()),
            anchors: [("redis".to_string(), "issue-redis".to_string())].into(),
        };
        assert_eq!(
            l.grafana("p99 latency").as_deref(),
            Some("https://g/d/api?var-check=p99+latency")
        );
        assert_eq!(
            l.runbook(&["redis", "daily"]).as_deref(),
            Some("https://git/RUNBOOK.md#issue-redis")
        );
        assert_eq!(l.runbook(&["nope"]), None);
    }
}
