//! An SMTP relay for tests: `tests/interop/smtp_relay.py` on aiosmtpd (installed by
//! `.ci/install`), storing what it accepts as files.

use std::path::Path;

use crate::{workspace_root, Process};

/// Starts a relay storing what it accepts in `out`, with more arguments (`--starttls CERT KEY`,
/// `--tls CERT KEY`, `--auth USER:PASSWORD`, `--defer-all`).
pub fn relay(out: &Path, args: &[&str]) -> anyhow::Result<Process> {
    let python = std::env::var("SWITCHYARD_PYTHON")
        .unwrap_or_else(|_| "/tmp/switchyard-venv/bin/python".into());
    let script = workspace_root().join("tests/interop/smtp_relay.py");
    let mut all = vec![
        script.to_string_lossy().into_owned(),
        out.to_string_lossy().into_owned(),
    ];
    all.extend(args.iter().map(|a| a.to_string()));
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    Process::start(Path::new(&python), &all, 1)
}

/// The port a relay listens on.
pub fn port(relay: &Process) -> anyhow::Result<u16> {
    let addr = relay.address("listening")?;
    let (_, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| anyhow::anyhow!("no port in {addr}"))?;
    Ok(port.parse()?)
}
