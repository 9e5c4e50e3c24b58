//! Running SIPp (Debian package `sip-tester`, installed by `.ci/install`) from the tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Where `sipp` is. Fails (never skips) when it is missing.
pub fn path() -> PathBuf {
    let out = Command::new("which")
        .arg("sipp")
        .output()
        .expect("running which");
    let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(
        out.status.success() && !path.is_empty(),
        "sipp not found: run .ci/install as root (Debian package sip-tester)"
    );
    PathBuf::from(path)
}

/// SIPp's built-in UAC scenario: `calls` calls at 10 calls/s to `target` (`host:port`), with
/// `service` as the Request-URI user when given. Runs in `dir` (its error trace goes there) and
/// is killed after 60 s. Returns its exit code and everything it printed plus the error trace.
pub fn run_uac(target: &str, service: Option<&str>, calls: u32, dir: &Path) -> (i32, String) {
    run(&["-sn", "uac"], "127.0.0.1", target, service, calls, dir)
}

/// A scenario file from `tests/sipp/` (found through CARGO_MANIFEST_DIR at run time), run
/// like [`run_uac`] from local address `ip` with `extra` arguments (e.g. `-au`/`-ap`).
pub fn run_scenario(
    file: &str,
    ip: &str,
    extra: &[&str],
    target: &str,
    service: Option<&str>,
    calls: u32,
    dir: &Path,
) -> (i32, String) {
    let root = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| "tests".into());
    let scenario = Path::new(&root).join("sipp").join(file);
    let scenario = scenario.display().to_string();
    let mut args = vec!["-sf", scenario.as_str()];
    args.extend_from_slice(extra);
    run(&args, ip, target, service, calls, dir)
}

/// SIPp with `args` (a scenario and any options, e.g. `["-sn", "uac", "-t", "t1"]`), like
/// [`run_uac`] otherwise.
pub fn run(
    scenario: &[&str],
    ip: &str,
    target: &str,
    service: Option<&str>,
    calls: u32,
    dir: &Path,
) -> (i32, String) {
    let calls = calls.to_string();
    let err = dir.join("sipp_errors.log");
    let mut command = Command::new(path());
    command.args(scenario).arg(target);
    if let Some(service) = service {
        command.args(["-s", service]);
    }
    let mut child = command
        .args(["-i", ip, "-p", "0", "-m", &calls, "-r", "10"])
        .args(["-timeout", "30s", "-nostdin", "-trace_err"])
        .arg("-error_file")
        .arg(&err)
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting sipp");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for sipp") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("sipp did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = child.wait_with_output().expect("sipp's output");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    text.push_str(&std::fs::read_to_string(&err).unwrap_or_default());
    (status.code().unwrap_or(-1), text)
}
