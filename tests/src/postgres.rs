//! A PostgreSQL cluster of the test process's own, for tests of the PostgreSQL store and of
//! gateways sharing one database.
//!
//! The cluster is started on first use, once per test process: `initdb` into
//! `/tmp/switchyard-pg-<pid>`, then `pg_ctl start` listening on a free port of 127.0.0.1 (its
//! Unix socket in the same folder), with durability off (`fsync`, `synchronous_commit`) since
//! nothing outlives the tests. PostgreSQL refuses to run as root, so under root the cluster
//! runs as the system user [`OS_USER`] (created with `useradd` if missing) through `runuser`.
//! A watchdog shell started with it stops the cluster and removes its folder once the test
//! process has exited; folders of processes that died without it are removed by the next run.
//!
//! The cluster offers TLS with a certificate for 127.0.0.1 from a throw-away CA
//! ([`Cluster::ca`]); [`Cluster::conninfo`] connects without it, [`Cluster::conninfo_tls`]
//! requires it.
//!
//! The binaries come from `pg_config --bindir`, else the newest `/usr/lib/postgresql/*/bin`
//! (Debian's `postgresql` package). Without them the tests fail, saying so: they never skip.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

/// The OS user the cluster runs as when the tests run as root.
pub const OS_USER: &str = "switchyard-pg";

/// Where the clusters' folders are: `/tmp` rather than `$TMPDIR`, which may be out of the
/// cluster user's reach or too deep for a Unix socket path (about 100 bytes at most).
const PARENT: &str = "/tmp";

/// The folder prefix of the clusters under [`PARENT`].
const DIR_PREFIX: &str = "switchyard-pg-";

/// The test process's cluster.
#[derive(Debug)]
pub struct Cluster {
    /// Its folder (data in `data/`, log in `log`, socket in the folder itself).
    pub dir: PathBuf,
    /// Its TCP port on 127.0.0.1.
    pub port: u16,
    /// The PEM CA that signed the certificate the cluster presents for TLS (for 127.0.0.1).
    pub ca: PathBuf,
    /// The server options it was started with (port, socket, TLS, durability).
    options: String,
}

impl Cluster {
    /// A connection string for `database` as the superuser `postgres`, without TLS.
    pub fn conninfo(&self, database: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname={database} sslmode=disable",
            self.port
        )
    }

    /// Stops the cluster (`fast`: sessions are cut, as when a database server restarts), waits
    /// `down`, and starts it again on the same port; for tests of what clients do while the
    /// database is away. Tests sharing the process's cluster see the outage too.
    pub fn restart(&self, down: std::time::Duration) -> Result<(), String> {
        let (bin, root) = (bindir()?, is_root()?);
        let data = self.dir.join("data");
        run(as_user(root, &bin.join("pg_ctl"))
            .current_dir(&self.dir)
            .arg("-D")
            .arg(&data)
            .arg("-m")
            .arg("fast")
            .arg("-w")
            .arg("stop"))?;
        std::thread::sleep(down);
        pg_ctl_start(&bin, root, &self.dir, &self.options)
    }

    /// A connection string for `database` that requires TLS (trust [`Cluster::ca`]).
    pub fn conninfo_tls(&self, database: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname={database} sslmode=require",
            self.port
        )
    }
}

/// The cluster, started on first call. Panics (failing the test) when it cannot be started.
pub fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
    match CLUSTER.get_or_init(start) {
        Ok(c) => c,
        Err(e) => panic!("cannot start a PostgreSQL cluster for the tests: {e}"),
    }
}

/// Runs `cmd`, returning its stdout, or an error with its stderr.
fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The folder with `initdb`, `pg_ctl` and `postgres`.
fn bindir() -> Result<PathBuf, String> {
    if let Ok(out) = run(Command::new("pg_config").arg("--bindir")) {
        let dir = PathBuf::from(out.trim());
        if dir.join("initdb").is_file() && dir.join("pg_ctl").is_file() {
            return Ok(dir);
        }
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|e| {
            format!(
                "PostgreSQL is not installed (no pg_config with initdb, /usr/lib/postgresql: {e}); \
                 install Debian's `postgresql` package"
            )
        })?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    found.sort();
    found
        .pop()
        .map(|(_, bin)| bin)
        .ok_or_else(|| "no initdb under /usr/lib/postgresql/*/bin; install `postgresql`".into())
}

/// Whether this process runs as root.
fn is_root() -> Result<bool, String> {
    Ok(run(Command::new("id").arg("-u"))?.trim() == "0")
}

/// A command running `program` as the cluster's user.
fn as_user(root: bool, program: &Path) -> Command {
    if root {
        let mut c = Command::new("runuser");
        c.arg("-u").arg(OS_USER).arg("--").arg(program);
        c
    } else {
        Command::new(program)
    }
}

/// Makes sure [`OS_USER`] exists (another test process may be creating it at the same time).
fn ensure_user() -> Result<(), String> {
    if run(Command::new("id").arg("-u").arg(OS_USER)).is_ok() {
        return Ok(());
    }
    let created = run(Command::new("useradd")
        .arg("--system")
        .arg("--no-create-home")
        .arg("--home-dir")
        .arg("/nonexistent")
        .arg("--shell")
        .arg("/usr/sbin/nologin")
        .arg(OS_USER));
    match created {
        Ok(_) => Ok(()),
        Err(e) if run(Command::new("id").arg("-u").arg(OS_USER)).is_ok() => {
            let _ = e;
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Stops the clusters of test processes that are gone and removes their folders.
fn remove_stale(bin: &Path, root: bool) {
    let Ok(entries) = std::fs::read_dir(PARENT) else {
        return;
    };
    for e in entries.filter_map(|e| e.ok()) {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(DIR_PREFIX))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let data = e.path().join("data");
        if data.join("postmaster.pid").exists() {
            let _ = run(as_user(root, &bin.join("pg_ctl"))
                .arg("-D")
                .arg(&data)
                .arg("-m")
                .arg("immediate")
                .arg("stop"));
        }
        let _ = std::fs::remove_dir_all(e.path());
    }
}

/// A port of 127.0.0.1 free right now.
fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

fn start() -> Result<Cluster, String> {
    let bin = bindir()?;
    let root = is_root()?;
    if root {
        ensure_user()?;
    }
    remove_stale(&bin, root);
    let pid = std::process::id();
    let dir = Path::new(PARENT).join(format!("{DIR_PREFIX}{pid}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if root {
        run(Command::new("chown").arg(OS_USER).arg(&dir))?;
    }
    let data = dir.join("data");
    run(as_user(root, &bin.join("initdb"))
        .current_dir(&dir)
        .arg("-D")
        .arg(&data)
        .arg("-U")
        .arg("postgres")
        .arg("-A")
        .arg("trust")
        .arg("-E")
        .arg("UTF8")
        .arg("--locale=C")
        .arg("--no-sync"))?;
    // TLS: a certificate for 127.0.0.1 signed by a CA of the test's own; the key must belong
    // to the server's user and be private to it.
    let pki = crate::pki::make(&dir, "pg", &["127.0.0.1", "localhost"])
        .map_err(|e| format!("making the cluster's certificate: {e:#}"))?;
    run(Command::new("chmod").arg("600").arg(&pki.key))?;
    if root {
        run(Command::new("chown")
            .arg(OS_USER)
            .arg(&pki.key)
            .arg(&pki.cert))?;
    }
    let mut last = String::new();
    // Another process may take the port between our check and the server's bind: try again.
    for _ in 0..5 {
        let port = free_port()?;
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={} \
             -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
             -c max_connections=300 -c shared_buffers=32MB \
             -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
            dir.display(),
            pki.cert,
            pki.key
        );
        match pg_ctl_start(&bin, root, &dir, &options) {
            Ok(()) => {
                watch(&bin, root, &dir, pid)?;
                return Ok(Cluster {
                    dir,
                    port,
                    ca: PathBuf::from(&pki.ca),
                    options,
                });
            }
            Err(e) => {
                last = format!(
                    "{e}\n{}",
                    std::fs::read_to_string(dir.join("log")).unwrap_or_default()
                );
            }
        }
    }
    Err(last)
}

/// Starts the cluster in `dir` with the server `options`, waiting until it takes connections.
fn pg_ctl_start(bin: &Path, root: bool, dir: &Path, options: &str) -> Result<(), String> {
    run(as_user(root, &bin.join("pg_ctl"))
        .current_dir(dir)
        .arg("-D")
        .arg(dir.join("data"))
        .arg("-l")
        .arg(dir.join("log"))
        .arg("-w")
        .arg("-t")
        .arg("60")
        .arg("-o")
        .arg(options)
        .arg("start"))
    .map(drop)
}

/// Starts a shell that waits for this process to exit, then stops the cluster and removes its
/// folder.
fn watch(bin: &Path, root: bool, dir: &Path, pid: u32) -> Result<(), String> {
    let pg_ctl = bin.join("pg_ctl");
    let stop = if root {
        format!("runuser -u {OS_USER} -- '{}'", pg_ctl.display())
    } else {
        format!("'{}'", pg_ctl.display())
    };
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
         {stop} -D '{data}' -m immediate stop >/dev/null 2>&1; rm -rf '{dir}'",
        data = dir.join("data").display(),
        dir = dir.display(),
    );
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(drop)
        .map_err(|e| format!("cannot start the cluster's watchdog: {e}"))
}

/// A new empty database in the cluster (named `<prefix>_<n>`); returns its connection string.
pub fn create_database(prefix: &str) -> Result<String, String> {
    static N: AtomicU32 = AtomicU32::new(0);
    let cluster = cluster();
    let name = format!("{prefix}_{}", N.fetch_add(1, Ordering::Relaxed));
    let psql = |sql: &str| {
        run(Command::new(bindir()?.join("psql"))
            .arg("-h")
            .arg("127.0.0.1")
            .arg("-p")
            .arg(cluster.port.to_string())
            .arg("-U")
            .arg("postgres")
            .arg("-d")
            .arg("postgres")
            .arg("-v")
            .arg("ON_ERROR_STOP=1")
            .arg("-tAc")
            .arg(sql))
    };
    // Copying the template's files is much faster than WAL-logging them (PostgreSQL ≥ 15).
    let version: u32 = psql("SHOW server_version_num")?.trim().parse().unwrap_or(0);
    let strategy = if version >= 150_000 {
        " STRATEGY = FILE_COPY"
    } else {
        ""
    };
    psql(&format!("CREATE DATABASE {name}{strategy}"))?;
    Ok(cluster.conninfo(&name))
}

/// Runs `sql` on the database `conninfo` names (as [`create_database`] returns it) with
/// `psql`; returns what it printed (unaligned, tuples only). For tests that set up a state
/// the nodes would reach only through a race, or read what the nodes wrote.
pub fn execute(conninfo: &str, sql: &str) -> Result<String, String> {
    run(Command::new(bindir()?.join("psql"))
        .arg("-d")
        .arg(conninfo)
        .arg("-v")
        .arg("ON_ERROR_STOP=1")
        .arg("-tAc")
        .arg(sql))
}
