use anyhow::Context;
use clap::Parser;
use runbookd::cli::{Cli, Command, LogFormat};
use tracing_subscriber::EnvFilter;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let daemon = matches!(cli.command, Command::Serve { .. });
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(runbookd::logging::default_directives(daemon)));
    let cli_format = cli.log_format;
    runbookd::logging::init(cli.log_format == LogFormat::Json, filter);

    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let result = runtime.block_on(runbookd::cli::run(cli));
    // A job task that ignores cancellation must not keep the process alive.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    if let Err(e) = result {
        let message = e.to_string();
        if !message.is_empty() && !e.is_quiet() {
            use std::io::Write;
            let line = match cli_format {
                LogFormat::Json => {
                    serde_json::json!({ "level": "ERROR", "message": message }).to_string()
                }
                LogFormat::Text => format!("error: {message}"),
            };
            let _ = writeln!(std::io::stderr(), "{line}");
        }
        std::process::exit(e.exit_code());
    }
    Ok(())
}
