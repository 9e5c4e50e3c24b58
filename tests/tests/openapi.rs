//! `/openapi.json` checked by independent tools against a running gateway: Python's
//! `openapi-spec-validator` validates the document, then `openapi-core` checks real requests
//! and answers against it, every documented operation at least once, errors (401, 404, 422,
//! 400) included (`tests/interop/openapi_check.py`). The gateway runs with its sandbox SMSC.
//!
//! It fails, saying so, when the Python venv lacks those packages (`.ci/install` installs them
//! into `/tmp/switchyard-venv`; `SWITCHYARD_PYTHON` names another interpreter).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use switchyard_tests::gateway::{hash_key, Gateway, TempDir, OPERATOR_KEY};
use switchyard_tests::workspace_root;

/// Tenant "acme"'s key (every scope).
const ACME: &str = "sk_openapi_acme_aaaaaaaaaaaaaaaaaaaaaaaaaaaa";

/// A gateway with tenant "acme", an operator key and the sandbox SMS carrier "Sms".
fn write_config(dir: &TempDir) -> anyhow::Result<PathBuf> {
    let mut toml = String::new();
    writeln!(
        toml,
        "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = {:?}\nshutdown_timeout_s = 2\n\n\
         [store]\ngroup_commit_linger_ms = 1\n\n\
         [operator]\napi_keys = [{:?}]\n\n\
         [[tenants]]\nname = \"acme\"\napi_keys = [{:?}]\n\n\
         [[carriers]]\nname = \"Sms\"\nchannels = [\"sms\"]\n\
         smpp = {{ sandbox = true, system_id = \"acme\" }}\n\n\
         [[decks]]\ncarrier = \"Sms\"\nchannel = \"sms\"\nsandbox = true\n",
        dir.join("data").display().to_string(),
        hash_key(OPERATOR_KEY)?,
        hash_key(ACME)?,
    )?;
    let path = dir.join("switchyard.toml");
    std::fs::write(&path, toml)?;
    Ok(path)
}

#[test]
fn the_document_validates_and_the_running_gateway_answers_as_it_says() -> anyhow::Result<()> {
    let dir = TempDir::new("openapi")?;
    let gateway = Gateway::start(&write_config(&dir)?)?;
    gateway.wait_ready(Duration::from_secs(30))?;

    let python = std::env::var("SWITCHYARD_PYTHON")
        .unwrap_or_else(|_| "/tmp/switchyard-venv/bin/python".into());
    let script = workspace_root().join("tests/interop/openapi_check.py");
    let out = std::process::Command::new(&python)
        .arg(&script)
        .arg(format!("http://{}", gateway.api))
        .arg(ACME)
        .arg(OPERATOR_KEY)
        .output()
        .map_err(|e| anyhow::anyhow!("cannot run {python} (run .ci/install first): {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the gateway does not answer as /openapi.json says (or the venv lacks \
         openapi-spec-validator/openapi-core: run .ci/install):\n{stdout}\n{stderr}"
    );
    let report: serde_json::Value = serde_json::from_str(stdout.trim())?;
    let operations = report["operations"].as_u64().unwrap_or(0);
    assert!(operations >= 25, "{report}");
    let checked = report["checked"].as_array().cloned().unwrap_or_default();
    let statuses: Vec<u64> = checked.iter().filter_map(|c| c[2].as_u64()).collect();
    for status in [200, 201, 202, 204, 400, 401, 404, 422] {
        assert!(statuses.contains(&status), "no {status} checked: {report}");
    }
    assert!(
        statuses.iter().filter(|s| **s == 401).count() >= 14,
        "every keyed operation is checked without a key: {report}"
    );
    Ok(())
}
