//! How the process's own log lines look. Text for people; with
//! `--log-format json`, one flat JSON object per line whose fields include
//! those of every enclosing span, so a line logged anywhere inside a run
//! carries that run's `job` and `run` at the top level, as the run's own
//! output lines (`cli::render::tee`) do: `jq 'select(.run == 42)'` finds all
//! of them.

use std::fmt;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// A JSON line with span fields merged in; the event's own fields win over
/// a span's of the same name.
#[derive(Debug, Default, Clone, Copy)]
pub struct FlatJson;

impl<S> FormatEvent<S, JsonFields> for FlatJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut line = Map::new();
        line.insert(
            "timestamp".into(),
            chrono::Utc::now()
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                .into(),
        );
        line.insert("level".into(), meta.level().as_str().into());
        line.insert("target".into(), meta.target().into());
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let ext = span.extensions();
                if let Some(f) = ext.get::<FormattedFields<JsonFields>>()
                    && let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(&f.fields)
                {
                    line.extend(fields);
                }
            }
        }
        event.record(&mut Fields(&mut line));
        writeln!(writer, "{}", Value::Object(line))
    }
}

struct Fields<'a>(&'a mut Map<String, Value>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().into(), format!("{value:?}").into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }
}

/// The filter when `RUST_LOG` is not set. The daemon logs its decisions; a
/// foreground command shows only the run itself. Other crates say only what
/// an operator must act on: the AWS credential chain warns for every
/// provider it tries (the check that needed credentials reports the
/// outcome), and the timer crate announces its own start at INFO.
pub fn default_directives(daemon: bool) -> String {
    let level = if daemon { "info" } else { "warn" };
    format!("{level},aws_config=error,tokio_cron_scheduler=warn")
}

/// Installs the process's subscriber on stderr. A line that cannot be
/// written (the reader of stderr went away) is dropped: reporting that on
/// stderr would panic the task that logged, which once left the daemon deaf
/// to SIGTERM.
pub fn init(json: bool, filter: tracing_subscriber::EnvFilter) {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colour only on a terminal: logs in files and in `kubectl logs`
        // stay plain.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .log_internal_errors(false)
        .with_writer(std::io::stderr);
    if json {
        builder
            .fmt_fields(JsonFields::new())
            .event_format(FlatJson)
            .init();
    } else {
        builder.init();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn lines(f: impl FnOnce()) -> Vec<Value> {
        let buf = Buf::default();
        let out = buf.clone();
        let sub = tracing_subscriber::fmt()
            .with_writer(move || out.clone())
            .fmt_fields(JsonFields::new())
            .event_format(FlatJson)
            .finish();
        tracing::subscriber::with_default(sub, f);
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    #[test]
    fn a_line_inside_a_run_carries_its_job_and_run_at_the_top() {
        let got = lines(|| {
            let span = tracing::info_span!("run", job = "nightly", run = 42u64, attempt = 2u32);
            let _g = span.enter();
            tracing::warn!(check = "disk", "cannot read {}", "df");
        });
        assert_eq!(got.len(), 1, "{got:?}");
        let l = &got[0];
        assert_eq!(l["job"], "nightly");
        assert_eq!(l["run"], 42);
        assert_eq!(l["attempt"], 2);
        assert_eq!(l["check"], "disk");
        assert_eq!(l["message"], "cannot read df");
        assert_eq!(l["level"], "WARN");
        assert!(l["timestamp"].as_str().unwrap().ends_with('Z'), "{l}");
    }

    #[test]
    fn an_event_field_wins_over_a_span_field_and_lines_outside_runs_have_none() {
        let got = lines(|| {
            tracing::info!("serving");
            let span = tracing::info_span!("run", job = "a", run = 1u64);
            let _g = span.enter();
            tracing::info!(run = 2u64, "retry recorded");
        });
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got[0].get("job").is_none(), "{}", got[0]);
        assert_eq!(got[1]["run"], 2);
        assert_eq!(got[1]["job"], "a");
    }
}
