//! `fsync-probe` end to end: the binary measures a directory for a second and reports its
//! synced writes' latencies, leaving nothing behind.

use std::process::Command;

#[test]
fn the_probe_reports_its_fsyncs_and_removes_its_file() {
    let dir = std::env::temp_dir().join(format!("fsync-probe-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_fsync-probe"))
        .args(["--dir", dir.to_str().unwrap(), "--duration-s", "1"])
        .args(["--interval-ms", "50"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let fsyncs = report["fsyncs"].as_u64().unwrap();
    // About 20 at one per 50 ms; a stalled disk or a busy machine gives fewer.
    assert!((1..=21).contains(&fsyncs), "{report}");
    let (p50, p99, max) = (
        report["p50_us"].as_u64().unwrap(),
        report["p99_us"].as_u64().unwrap(),
        report["max_us"].as_u64().unwrap(),
    );
    assert!(0 < p50 && p50 <= p99 && p99 <= max, "{report}");
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        0,
        "the probe's file is removed"
    );
    std::fs::remove_dir(&dir).unwrap();
}

#[test]
fn a_directory_that_does_not_exist_is_an_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_fsync-probe"))
        .args(["--dir", "/nonexistent/fsync-probe", "--duration-s", "1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
}
