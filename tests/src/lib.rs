//! Shared helpers for the end-to-end tests in `tests/tests/`: locating the workspace's binaries,
//! starting them on ephemeral ports of 127.0.0.1, stopping exactly the processes we started, and
//! a small blocking ESME ([`esme::TestEsme`]), a keep-alive HTTP client ([`http::Client`]), and
//! the gateway and simulator harness ([`gateway`]), the SIP proxy harness ([`sip`]), a webhook
//! receiver ([`sink::Sink`]), an event-stream reader ([`sse::collect`]) and a PostgreSQL cluster
//! of the test process's own ([`postgres`]).

pub mod audio;
pub mod esme;
pub mod gateway;
pub mod http;
pub mod modgraph;
pub mod pki;
pub mod postgres;
pub mod sink;
pub mod sip;
pub mod sipp;
pub mod smtp;
pub mod sse;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{bail, Context};

/// The workspace's root folder.
pub fn workspace_root() -> PathBuf {
    Path::new(
        &std::env::var("CARGO_MANIFEST_DIR")
            .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned()),
    )
    .parent()
    .map(Path::to_path_buf)
    .unwrap_or_default()
}

/// The path of a workspace binary, built (brought up to date) once per test process: a binary
/// left over from other sources must not be what a test runs. Tests run from
/// `target/<profile>/deps/`, so the binaries are one folder up. Every binary of the workspace
/// is built together, as `.ci/test` builds them before the tests: a build of one package alone
/// unifies its dependencies' features differently, so it and the workspace build would each
/// rebuild and relink what the other just built.
pub fn binary(package: &str, name: &str) -> anyhow::Result<PathBuf> {
    static BUILT: std::sync::Mutex<bool> = std::sync::Mutex::new(false);
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .context("test executable has no target folder")?;
    let path = dir.join(name);
    let mut built = BUILT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if !*built {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = Command::new(cargo);
        build
            .args(["build", "-q", "--workspace", "--bins"])
            .current_dir(workspace_root());
        // What cargo sets for this test process describes its own package; inherited by the
        // build, those variables would change dependencies' fingerprints and rebuild them all.
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy();
            if key.starts_with("CARGO_PKG_")
                || key.starts_with("CARGO_MANIFEST_")
                || key == "CARGO_CRATE_NAME"
                || key == "CARGO_PRIMARY_PACKAGE"
            {
                build.env_remove(key.as_ref());
            }
        }
        let status = build.status().context("running cargo build")?;
        if !status.success() {
            bail!("could not build the workspace's binaries (for {package}'s {name})");
        }
        *built = true;
    }
    if !path.exists() {
        bail!(
            "{package} has no binary {name} (expected at {})",
            path.display()
        );
    }
    Ok(path)
}

/// A child process that is killed (by its PID, which we own) when dropped.
#[derive(Debug)]
pub struct Process {
    /// The running child.
    pub child: Child,
    /// Lines the child printed on stdout that announce an address (`… listening on ADDR`).
    pub announced: Vec<String>,
}

impl Process {
    /// Starts `program` with `args` and waits (bounded) for it to print `expect_lines` lines
    /// containing " on " (its listening addresses), which it must do once it accepts connections.
    pub fn start(program: &Path, args: &[&str], expect_lines: usize) -> anyhow::Result<Process> {
        let mut child = Command::new(program)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut announced = Vec::new();
        while announced.len() < expect_lines {
            match rx.recv_timeout(Duration::from_secs(20)) {
                Ok(line) if line.contains(" on ") => announced.push(line),
                Ok(_) => {}
                Err(_) => {
                    let _ = child.kill();
                    bail!(
                        "{} did not announce its addresses within 20 s",
                        program.display()
                    );
                }
            }
        }
        Ok(Process { child, announced })
    }

    /// The address announced on the line containing `what` (e.g. "listening", "control").
    pub fn address(&self, what: &str) -> anyhow::Result<String> {
        self.announced
            .iter()
            .find(|l| l.contains(what))
            .and_then(|l| l.rsplit(' ').next())
            .map(str::to_owned)
            .with_context(|| format!("no {what} address in {:?}", self.announced))
    }

    /// Sends SIGTERM and waits (bounded) for the child to exit; kills it if it does not.
    pub fn terminate(&mut self) -> anyhow::Result<std::process::ExitStatus> {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        for _ in 0..100 {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.child.kill()?;
        Ok(self.child.wait()?)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Fetches `http://ADDR/PATH` with a plain HTTP/1.1 GET and returns the body.
pub fn http_get(addr: &str, path: &str) -> anyhow::Result<String> {
    http_request(addr, "GET", path, None)
}

/// A minimal HTTP/1.1 client for the simulators' control ports (no keep-alive, small bodies).
pub fn http_request(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> anyhow::Result<String> {
    use std::io::{Read, Write};
    let mut stream =
        std::net::TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let body = body.unwrap_or("");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .context("malformed HTTP response")?;
    let status = head.split(' ').nth(1).unwrap_or("");
    if !status.starts_with('2') {
        bail!("{method} {path}: {head}\n{body}");
    }
    Ok(body.to_owned())
}
