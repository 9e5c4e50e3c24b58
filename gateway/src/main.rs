//! The `switchyard` binary.
//!
//! This is the foundation stage: `serve` starts the runtime and waits for a shutdown signal.
//! The SMS delivery path (HTTP API, store, binds) arrives with its own issue.

use clap::{Parser, Subcommand};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Switchyard: a telecom messaging gateway (SMS over SMPP, voice over SIP).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway until SIGINT or SIGTERM.
    Serve {
        /// Configuration file (TOML). Without it the embedded defaults apply.
        #[arg(long)]
        config: Option<std::path::PathBuf>,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    switchyard_ops::logging::init("info");
    match cli.command {
        Command::Serve { config } => {
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(serve(config))
        }
    }
}

async fn serve(config: Option<std::path::PathBuf>) -> anyhow::Result<()> {
    if let Some(path) = &config {
        anyhow::bail!(
            "configuration files arrive with the SMS delivery path; {} was not read",
            path.display()
        );
    }
    tracing::info!(
        "switchyard {} started (foundation stage: no API yet)",
        env!("CARGO_PKG_VERSION")
    );
    shutdown_signal().await?;
    tracing::info!("shutting down");
    Ok(())
}

async fn shutdown_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    Ok(())
}
