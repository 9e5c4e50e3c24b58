//! Running the gateway and its simulators for end-to-end tests: a temporary folder per test, a
//! configuration written from a few facts ([`GatewayConfig`]), `switchyard serve` and `smsc-sim`
//! processes on ephemeral ports, and reading the simulator's record of what it received.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::{binary, http_get, http_request, Process};

/// The operator key every [`GatewayConfig`] lists under `[operator]` (for
/// `/v1/routes/explain?tenant=…` with costs and carrier health).
pub const OPERATOR_KEY: &str = "sk_test_operator_key";

/// A folder under the system's temp folder, removed when dropped.
#[derive(Debug)]
pub struct TempDir {
    /// Its path.
    pub path: PathBuf,
}

impl TempDir {
    /// A new, empty folder whose name contains `name`, the process id and a counter.
    pub fn new(name: &str) -> anyhow::Result<TempDir> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "switchyard-e2e-{name}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(TempDir { path })
    }

    /// A path inside the folder.
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("SWITCHYARD_KEEP_TEMP").is_none() {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// The `sha256:<hex>` hash of an API key, as `switchyard hash-key` prints it.
pub fn hash_key(key: &str) -> anyhow::Result<String> {
    let exe = binary("switchyard-gateway", "switchyard")?;
    let out = std::process::Command::new(exe)
        .args(["hash-key", key])
        .output()
        .context("running switchyard hash-key")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("hash:"))
        .map(|h| h.trim().to_owned())
        .with_context(|| format!("no hash in {stdout:?}"))
}

/// One running `smsc-sim` with its control port.
#[derive(Debug)]
pub struct Sim {
    /// The process.
    pub process: Process,
    /// Its SMPP address.
    pub smpp: String,
    /// Its control address.
    pub control: String,
    /// The `--record` file, if recording.
    pub record: Option<PathBuf>,
}

impl Sim {
    /// Starts a simulator on ephemeral ports with `args`; records to `record` if given.
    pub fn start(args: &[&str], record: Option<&Path>) -> anyhow::Result<Sim> {
        let path = binary("switchyard-bench", "smsc-sim")?;
        let mut all: Vec<String> = ["--listen", "127.0.0.1:0", "--control", "127.0.0.1:0"]
            .map(String::from)
            .to_vec();
        if let Some(r) = record {
            all.push("--record".into());
            all.push(r.display().to_string());
        }
        all.extend(args.iter().map(|a| a.to_string()));
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        let process = Process::start(&path, &refs, 2)?;
        Ok(Sim {
            smpp: process.address("listening")?,
            control: process.address("control")?,
            process,
            record: record.map(Path::to_path_buf),
        })
    }

    /// The SMPP port.
    pub fn port(&self) -> u16 {
        self.smpp
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse().ok())
            .unwrap_or(0)
    }

    /// `GET /stats`.
    pub fn stats(&self) -> anyhow::Result<serde_json::Value> {
        Ok(serde_json::from_str(&http_get(&self.control, "/stats")?)?)
    }

    /// One counter of `GET /stats`.
    pub fn counter(&self, name: &str) -> anyhow::Result<u64> {
        self.stats()?[name]
            .as_u64()
            .with_context(|| format!("no counter {name}"))
    }

    /// `PUT /behaviour` with a JSON object (`{}` resets to the defaults).
    pub fn behave(&self, json: &str) -> anyhow::Result<()> {
        http_request(&self.control, "PUT", "/behaviour", Some(json)).map(drop)
    }

    /// Every submit_sm recorded so far (one JSON object per line).
    pub fn recorded(&self) -> anyhow::Result<Vec<serde_json::Value>> {
        let path = self.record.as_ref().context("not recording")?;
        let text = std::fs::read_to_string(path)?;
        // The last line may be half written while the simulator runs: keep complete ones.
        Ok(text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect())
    }
}

/// One carrier of a test configuration: an SMPP endpoint and its price for +44.
#[derive(Debug, Clone)]
pub struct CarrierSpec {
    /// Carrier name (also its system_id).
    pub name: String,
    /// The simulator's SMPP port on 127.0.0.1.
    pub port: u16,
    /// Price per segment for prefix 44, EUR.
    pub price: String,
    /// Parallel binds.
    pub binds: u32,
    /// Window per bind.
    pub window: u32,
    /// Extra lines for its `[carriers.smpp]` table.
    pub smpp_extra: String,
}

impl CarrierSpec {
    /// A transceiver carrier at `port` with `binds` × `window`.
    pub fn new(name: &str, port: u16, price: &str, binds: u32, window: u32) -> Self {
        CarrierSpec {
            name: name.to_owned(),
            port,
            price: price.to_owned(),
            binds,
            window,
            smpp_extra: String::new(),
        }
    }
}

/// A test configuration: tenants (name, key) and carriers, plus extra TOML at the end.
#[derive(Debug, Clone, Default)]
pub struct GatewayConfig {
    /// Tenants: name and plain API key (hashed into the file).
    pub tenants: Vec<(String, String)>,
    /// Carriers, each with its own +44 deck.
    pub carriers: Vec<CarrierSpec>,
    /// `server.max_body_bytes`, if not the default.
    pub max_body_bytes: Option<usize>,
    /// More lines for the `[server]` table (timeouts, TLS, `ops_listen`).
    pub server_extra: String,
    /// Leave out the `[egress]` table that allows 127.0.0.1 (every test's webhook sink and
    /// file server listens there), so the default policy applies or `extra` sets its own.
    pub strict_egress: bool,
    /// More lines for the `[store]` table (e.g. `kind = "postgres"` and its `url`).
    pub store_extra: String,
    /// Appended verbatim (e.g. a `[routing.breaker]` table).
    pub extra: String,
}

/// The `[egress]` table test configurations carry: the tests' sinks and servers are on
/// 127.0.0.1, which the default policy refuses.
pub const ALLOW_LOOPBACK: &str = "[egress]\nallow = [\"127.0.0.1/32\"]\n";

impl GatewayConfig {
    /// Writes `switchyard.toml` and the decks into `dir` (state in `dir/data`); returns the
    /// config file's path.
    pub fn write(&self, dir: &Path) -> anyhow::Result<PathBuf> {
        let mut toml = String::new();
        writeln!(
            toml,
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = {:?}\nshutdown_timeout_s = 2",
            dir.join("data").display().to_string()
        )?;
        if let Some(max) = self.max_body_bytes {
            writeln!(toml, "max_body_bytes = {max}")?;
        }
        writeln!(toml, "{}", self.server_extra)?;
        writeln!(
            toml,
            "\n[store]\ngroup_commit_linger_ms = 1\n{}",
            self.store_extra
        )?;
        writeln!(
            toml,
            "\n[operator]\napi_keys = [{:?}]",
            hash_key(OPERATOR_KEY)?
        )?;
        if !self.strict_egress {
            writeln!(toml, "\n{ALLOW_LOOPBACK}")?;
        }
        for (name, key) in &self.tenants {
            writeln!(
                toml,
                "\n[[tenants]]\nname = {name:?}\napi_keys = [{:?}]\npreference = \"cheapest\"",
                hash_key(key)?
            )?;
        }
        for c in &self.carriers {
            writeln!(
                toml,
                "\n[[carriers]]\nname = {:?}\nchannels = [\"sms\"]\n\n[carriers.smpp]\n\
                 host = \"127.0.0.1\"\nport = {}\nsystem_id = {:?}\npassword = \"pw\"\n\
                 binds = {}\nwindow = {}\nreconnect_min_ms = 50\nreconnect_max_ms = 500\n{}",
                c.name, c.port, c.name, c.binds, c.window, c.smpp_extra
            )?;
            let deck = format!("{}.csv", c.name);
            std::fs::write(
                dir.join(&deck),
                format!(
                    "Prefix,Price,Currency,Effective Date,Country,Network\n\
                     44,{},EUR,2025-01-01,United Kingdom,All networks\n",
                    c.price
                ),
            )?;
            writeln!(
                toml,
                "[[decks]]\ncarrier = {:?}\nchannel = \"sms\"\npath = {deck:?}",
                c.name
            )?;
        }
        toml.push('\n');
        toml.push_str(&self.extra);
        let path = dir.join("switchyard.toml");
        std::fs::write(&path, toml)?;
        Ok(path)
    }
}

/// A running `switchyard serve`.
#[derive(Debug)]
pub struct Gateway {
    /// The process.
    pub process: Process,
    /// Where its API listens.
    pub api: String,
}

impl Gateway {
    /// Starts the gateway on `config` and waits (bounded) until it announces its address.
    pub fn start(config: &Path) -> anyhow::Result<Gateway> {
        let exe = binary("switchyard-gateway", "switchyard")?;
        let config = config.display().to_string();
        let process = Process::start(&exe, &["serve", "--config", &config], 1)?;
        let api = process.address("listening")?;
        Ok(Gateway { process, api })
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.process.child.id()
    }

    /// Waits (bounded) until `/readyz` says ready (the store takes writes, a bind is up).
    pub fn wait_ready(&self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        let mut client = crate::http::Client::new(&self.api);
        loop {
            let last = client.get("/readyz");
            if matches!(&last, Ok(r) if r.status == 200) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "gateway not ready within {timeout:?}: {:?}",
                    last.map(|r| r.text())
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Polls `check` every `every` until it returns `Some`, or fails after `timeout` with `what`.
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut check: impl FnMut() -> anyhow::Result<Option<T>>,
) -> anyhow::Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check()? {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(every);
    }
}
