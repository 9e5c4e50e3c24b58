//! The `switchyard` binary: `serve`, `check-config`, `hash-key`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use switchyard_ops::config::{self, Config};

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
    /// Run the gateway until SIGINT or SIGTERM (SIGHUP reloads routing and API keys).
    Serve {
        /// Configuration file (TOML). Without it: embedded defaults, a sandbox carrier and a
        /// sandbox tenant whose key is printed at start.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Check a configuration file (and its rate decks); print every error, with file and key.
    CheckConfig {
        /// The file to check.
        #[arg(long, default_value = "switchyard.toml")]
        config: PathBuf,
    },
    /// Print the hash of an API key, as it goes in `tenants.api_keys` (or make a new key).
    HashKey {
        /// The key; a new random key is generated when absent.
        key: Option<String>,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Serve { .. }) {
        // `serve` sets up logging once its configuration (`[log]`) is read.
        switchyard_ops::logging::init("info");
    }
    match cli.command {
        Command::Serve { config } => {
            // The blocking pool runs the SQLite store's reads (eight connections), file and DNS
            // work: 64 threads are plenty, and each idle one costs its stack and its
            // allocator's thread heap (the default allows 512).
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .max_blocking_threads(64)
                .build()?;
            runtime.block_on(serve(config))
        }
        Command::CheckConfig { config: path } => match config::check(&path) {
            Ok(_) => {
                println!("{}: ok", path.display());
                Ok(())
            }
            Err(errors) => {
                eprintln!("{errors}");
                std::process::exit(1);
            }
        },
        Command::HashKey { key } => {
            let key = key.unwrap_or_else(config::generate_api_key);
            println!("key:  {key}\nhash: {}", config::hash_api_key(&key));
            Ok(())
        }
    }
}

async fn serve(path: Option<PathBuf>) -> anyhow::Result<()> {
    let (config, base_dir) = match &path {
        Some(p) => (
            config::load(p).map_err(|e| anyhow::anyhow!("{e}"))?,
            config::base_dir(p),
        ),
        None => (Config::embedded_default(), std::env::current_dir()?),
    };
    switchyard_ops::logging::init_with("info", config.log.format);
    let sandbox_key = path.is_none().then_some(config::SANDBOX_API_KEY);
    let running = switchyard_gateway::app::start(config, base_dir, path).await?;
    // Scripts and tests read this line to find the port.
    println!("switchyard listening on {}", running.api);
    if let Some(ops) = running.ops {
        println!("switchyard operator endpoints (/metrics, /readyz) on {ops}");
    }
    if let Some(sip) = running.sip {
        println!("switchyard SIP proxy on udp {sip}");
    }
    if let Some(smpp) = running.smpp {
        println!("switchyard SMPP server for tenants on tcp {smpp}");
    }
    if let Some(tls) = running.smpp_tls {
        println!("switchyard SMPP server for tenants (TLS) on tcp {tls}");
    }
    if let Some(voice) = running.voice {
        println!("switchyard voice calls on udp {voice}");
    }
    if let Some(key) = sandbox_key {
        println!(
            "sandbox carrier on {}",
            running.sandbox.map(|a| a.to_string()).unwrap_or_default()
        );
        println!("sandbox API key: {key}");
        println!(
            "try: curl -s -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' -d '{{\"to\":\"+447911123456\",\"from\":\"Switchyard\",\"body\":\"Hello\"}}' http://{}/v1/messages",
            running.api
        );
    }
    running.wait().await
}
