//! Mail behind a narrow trait: send this message. Two implementations: SMTP
//! (lettre, over rustls with ring) and an outbox folder that keeps each
//! message as a `.eml` file, the default when no SMTP server is configured.
//!
//! SMTP URLs: `smtps://user:pass@host:465` (TLS from the start);
//! `smtp://user:pass@host:587` (STARTTLS, required when there are
//! credentials, taken when offered otherwise); `?tls=required`,
//! `?tls=opportunistic` or `?tls=none` (a trusted local relay only) say it
//! explicitly. A private CA for the server's certificate can be given.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart, header};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::secret::redact_url;

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("mail settings: {0}")]
    Config(String),
    #[error("SMTP {server}: {cause}")]
    Send { server: String, cause: String },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A message ready to go: its id, who gets it, and its bytes (RFC 5322).
#[derive(Debug, Clone, PartialEq)]
pub struct Email {
    /// `<…@…>`, unique: what tells a resend from a new message.
    pub message_id: String,
    pub subject: String,
    pub recipients: Vec<String>,
    pub raw: Vec<u8>,
}

/// What goes into a message.
#[derive(Debug, Clone, Default)]
pub struct Draft {
    pub from: String,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub subject: String,
    /// Readable on its own.
    pub text: String,
    /// Styled inline, for mail clients; may reference `cid:` images.
    pub html: Option<String>,
    /// Inline images: content id and PNG bytes.
    pub images: Vec<(String, Vec<u8>)>,
}

fn mailbox(what: &str, s: &str) -> Result<Mailbox, MailError> {
    s.trim()
        .parse()
        .map_err(|e| MailError::Config(format!("{what} `{s}` is not an address: {e}")))
}

impl Draft {
    /// Builds the message: multipart/alternative of the plain text and
    /// (with images) a multipart/related of the HTML and its PNGs.
    pub fn compose(&self, message_id: &str) -> Result<Email, MailError> {
        let mut b = Message::builder()
            .message_id(Some(message_id.to_string()))
            .from(mailbox("from", &self.from)?)
            .subject(&self.subject);
        for t in &self.to {
            b = b.to(mailbox("to", t)?);
        }
        for c in &self.cc {
            b = b.cc(mailbox("cc", c)?);
        }
        if self.to.is_empty() && self.cc.is_empty() {
            return Err(MailError::Config("no recipients".into()));
        }
        let text = SinglePart::builder()
            .header(header::ContentType::TEXT_PLAIN)
            .body(self.text.clone());
        let body = match &self.html {
            None => MultiPart::alternative().singlepart(text),
            Some(html) => {
                let html = SinglePart::builder()
                    .header(header::ContentType::TEXT_HTML)
                    .body(html.clone());
                let mut related = MultiPart::related().singlepart(html);
                for (cid, png) in &self.images {
                    let ct = header::ContentType::parse("image/png").expect("a valid content type");
                    related = related
                        .singlepart(Attachment::new_inline(cid.clone()).body(png.clone(), ct));
                }
                MultiPart::alternative().singlepart(text).multipart(related)
            }
        };
        let message = b
            .multipart(body)
            .map_err(|e| MailError::Config(format!("cannot build the message: {e}")))?;
        let recipients = message
            .envelope()
            .to()
            .iter()
            .map(|a| a.to_string())
            .collect();
        Ok(Email {
            message_id: message_id.to_string(),
            subject: self.subject.clone(),
            recipients,
            raw: message.formatted(),
        })
    }
}

/// A fresh Message-ID on this host.
pub fn new_message_id() -> String {
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("<runbookd.{nanos:x}.{}@{host}>", std::process::id())
}

#[async_trait]
pub trait Mailer: Send + Sync + std::fmt::Debug {
    /// Where mail goes, for logs (no password).
    fn describe(&self) -> String;

    /// Sends (or keeps) one message; says where it went.
    async fn send(&self, email: &Email) -> Result<String, MailError>;
}

/// An SMTP server.
pub struct Smtp {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    shown: String,
}

impl std::fmt::Debug for Smtp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

impl Smtp {
    /// From an `smtp://` or `smtps://` URL; `ca`: a PEM file of a private CA
    /// the server's certificate is signed by.
    pub fn new(url: &str, ca: Option<&Path>, timeout: Duration) -> Result<Smtp, MailError> {
        crate::adapters::install_crypto_provider();
        let shown = redact_url(url);
        let bad = |m: String| MailError::Config(format!("{shown}: {m}"));
        let u = url::Url::parse(url).map_err(|e| bad(format!("not a URL: {e}")))?;
        let host = u
            .host_str()
            .ok_or_else(|| bad("no host".into()))?
            .to_string();
        let tls_mode = u
            .query_pairs()
            .find(|(k, _)| k == "tls")
            .map(|(_, v)| v.to_string());
        let mut params = TlsParameters::builder(host.clone());
        if let Some(ca) = ca {
            let pem = std::fs::read(ca)
                .map_err(|e| bad(format!("cannot read the CA file {}: {e}", ca.display())))?;
            let cert = Certificate::from_pem(&pem).map_err(|e| {
                bad(format!(
                    "the CA file {} is not a PEM certificate: {e}",
                    ca.display()
                ))
            })?;
            params = params.add_root_certificate(cert);
        }
        let params = params
            .build_rustls()
            .map_err(|e| bad(format!("TLS settings: {e}")))?;
        let has_credentials = u.password().is_some();
        let (tls, default_port) = match (u.scheme(), tls_mode.as_deref()) {
            ("smtps", _) => (Tls::Wrapper(params), 465),
            ("smtp", Some("none")) => (Tls::None, 25),
            ("smtp", Some("required")) => (Tls::Required(params), 587),
            ("smtp", Some("opportunistic")) => (Tls::Opportunistic(params), 587),
            ("smtp", None) if has_credentials => (Tls::Required(params), 587),
            ("smtp", None) => (Tls::Opportunistic(params), 587),
            (s, t) => {
                return Err(bad(format!(
                    "use smtp:// or smtps:// (and tls=required, opportunistic or none), not {s}://{}",
                    t.map(|t| format!(" with tls={t}")).unwrap_or_default()
                )));
            }
        };
        let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(u.port().unwrap_or(default_port))
            .tls(tls)
            .timeout(Some(timeout));
        if let Some(p) = u.password() {
            b = b.credentials(Credentials::new(
                crate::secret::percent_decode(u.username()),
                crate::secret::percent_decode(p),
            ));
        }
        Ok(Smtp {
            transport: b.build(),
            shown,
        })
    }
}

#[async_trait]
impl Mailer for Smtp {
    fn describe(&self) -> String {
        self.shown.clone()
    }

    async fn send(&self, email: &Email) -> Result<String, MailError> {
        let envelope = envelope_of(email)?;
        self.transport
            .send_raw(&envelope, &email.raw)
            .await
            .map(|r| format!("{} ({})", self.shown, r.code()))
            .map_err(|e| MailError::Send {
                server: self.shown.clone(),
                cause: describe_smtp(&e),
            })
    }
}

fn envelope_of(email: &Email) -> Result<lettre::address::Envelope, MailError> {
    let text = String::from_utf8_lossy(&email.raw);
    let from = text
        .lines()
        .find_map(|l| l.strip_prefix("From: "))
        .and_then(|f| f.parse::<Mailbox>().ok())
        .map(|m| m.email);
    let to: Vec<lettre::Address> = email
        .recipients
        .iter()
        .filter_map(|r| r.parse().ok())
        .collect();
    lettre::address::Envelope::new(from, to)
        .map_err(|e| MailError::Config(format!("envelope of {}: {e}", email.message_id)))
}

/// The SMTP error as an SRE reads it: the reply code and text, or the
/// connection failure.
fn describe_smtp(e: &lettre::transport::smtp::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = std::error::Error::source(e);
    while let Some(c) = cur {
        let t = c.to_string();
        if !parts.iter().any(|p| p.contains(&t)) {
            parts.push(t);
        }
        cur = c.source();
    }
    let code = e.status().map(|c| format!("{c} ")).unwrap_or_default();
    format!("{code}{}", parts.join(": "))
}

/// A folder that keeps each message as `<id>.eml`: the embedded default,
/// and what a machine without a mail server sends to.
#[derive(Debug)]
pub struct Outbox {
    dir: PathBuf,
}

impl Outbox {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Outbox { dir: dir.into() }
    }
}

/// The file name a message id gives.
pub fn eml_name(message_id: &str) -> String {
    let clean: String = message_id
        .trim_matches(['<', '>'])
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{clean}.eml")
}

#[async_trait]
impl Mailer for Outbox {
    fn describe(&self) -> String {
        format!("outbox {}", self.dir.display())
    }

    async fn send(&self, email: &Email) -> Result<String, MailError> {
        let path = self.dir.join(eml_name(&email.message_id));
        let write = |source| MailError::Write {
            path: path.clone(),
            source,
        };
        tokio::fs::create_dir_all(&self.dir).await.map_err(write)?;
        tokio::fs::write(&path, &email.raw).await.map_err(write)?;
        Ok(path.display().to_string())
    }
}

/// The mailer a jobs file asks for: SMTP when a URL is set, else the
/// outbox.
pub fn mailer(
    smtp_url: Option<&str>,
    ca: Option<&Path>,
    outbox: &Path,
    timeout: Duration,
) -> Result<Arc<dyn Mailer>, MailError> {
    match smtp_url.filter(|u| !u.trim().is_empty()) {
        Some(u) => Ok(Arc::new(Smtp::new(u, ca, timeout)?)),
        None => Ok(Arc::new(Outbox::new(outbox))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft() -> Draft {
        Draft {
            from: "runbookd <runbookd@flexoraa.com>".into(),
            to: vec!["oncall@flexoraa.com".into()],
            cc: vec!["cto@flexoraa.com".into()],
            subject: "[runbookd] all clear".into(),
            text: "All clear.\n".into(),
            html: Some("<p>All clear.</p><img src=\"cid:chart-1\">".into()),
            images: vec![("chart-1".into(), vec![0x89, b'P', b'N', b'G'])],
        }
    }

    #[test]
    fn a_message_has_both_parts_its_image_and_its_id() {
        let e = draft().compose("<r.1@host>").unwrap();
        let raw = String::from_utf8(e.raw.clone()).unwrap();
        assert!(raw.contains("Message-ID: <r.1@host>"), "{raw}");
        assert!(raw.contains("multipart/alternative"));
        assert!(raw.contains("multipart/related"));
        assert!(raw.contains("text/plain"));
        assert!(raw.contains("text/html"));
        assert!(raw.contains("Content-ID: <chart-1>"), "{raw}");
        assert_eq!(e.recipients, ["oncall@flexoraa.com", "cto@flexoraa.com"]);
        assert!(
            Draft {
                to: vec![],
                cc: vec![],
                ..draft()
            }
            .compose("<x@y>")
            .is_err()
        );
    }

    #[test]
    fn smtp_urls_pick_their_tls() {
        for ok in [
            "smtp://relay:25?tls=none",
            "smtp://u:p@mail:587",
            "smtps://u:p@mail",
            "smtp://mail?tls=opportunistic",
        ] {
            Smtp::new(ok, None, Duration::from_secs(5)).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        let e = Smtp::new("http://u:secret@mail", None, Duration::from_secs(5)).unwrap_err();
        assert!(e.to_string().contains("use smtp:// or smtps://"), "{e}");
        assert!(!e.to_string().contains("secret"), "{e}");
    }

    #[tokio::test]
    async fn the_outbox_keeps_a_file_per_message() {
        let dir = tempfile::tempdir().unwrap();
        let e = draft().compose("<r.2@host>").unwrap();
        let at = Outbox::new(dir.path()).send(&e).await.unwrap();
        assert!(at.ends_with("r.2_host.eml"), "{at}");
        assert_eq!(std::fs::read(at).unwrap(), e.raw);
    }
}
