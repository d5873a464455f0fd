//! The node binary on its own: with no control plane and no last-known-good it fails closed;
//! a bad configuration stops it with a clear error before it listens.

mod common;

use common::{Kill, get, port};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn without_control_plane_or_last_known_good_protected_routes_answer_503() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (proxy, admin, cp) = (port(), port(), port());
    let config = dir.path().join("dp.toml");
    std::fs::write(
        &config,
        format!(
            r#"
node_id = "lonely"
state_dir = "state"
control_plane = "http://127.0.0.1:{cp}"
control_plane_keys = ["iojj3XQJ8ZX9UtstPLpdcspnCb8dlBIb83SIAbQPb1w="]
threads = 1
[listen]
proxy = "127.0.0.1:{proxy}"
admin = "127.0.0.1:{admin}"
[[routes]]
prefix = "/openai"
kind = "openai"
name = "openai"
upstream = "http://127.0.0.1:9"
[[routes]]
prefix = "/mcp/crm"
kind = "mcp"
name = "crm"
upstream = "http://127.0.0.1:9/mcp"
"#
        ),
    )
    .expect("config");
    let _node = Kill(
        Command::new(env!("CARGO_BIN_EXE_portcullis-dp"))
            .arg("--config")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn"),
    );
    let admin = format!("127.0.0.1:{admin}");
    let proxy = format!("127.0.0.1:{proxy}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(&admin).is_err() {
        assert!(Instant::now() < deadline, "node did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(get(&admin, "/healthz", None).0, 200);
    assert_eq!(get(&admin, "/readyz", None).0, 503);

    let (status, text) = get(
        &proxy,
        "/openai/v1/chat/completions",
        Some(r#"{"model":"gpt-4o-mini"}"#),
    );
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("\"type\":\"server_error\""), "{text}");
    let (status, text) = get(
        &proxy,
        "/mcp/crm",
        Some(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#),
    );
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("\"jsonrpc\":\"2.0\""), "{text}");
    assert_eq!(get(&proxy, "/elsewhere", None).0, 404);

    let (_, status) = get(&admin, "/status", None);
    assert!(
        status.contains("\"snapshot\":null")
            && status.contains("\"control_plane_connected\":false"),
        "{status}"
    );
    let (_, metrics) = get(&admin, "/metrics", None);
    assert!(metrics.contains("portcullis_requests_total"), "{metrics}");
}

#[test]
fn bad_configurations_exit_with_a_usage_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("dp.toml");
    let cases = [
        ("node_id = \"x\"\n", "missing field"),
        (
            "node_id = \"x\"\nstate_dir = \"s\"\ncontrol_plane = \"http://127.0.0.1:1\"\ncontrol_plane_keys = [\"iojj3XQJ8ZX9UtstPLpdcspnCb8dlBIb83SIAbQPb1w=\"]\n[listen]\nproxy = \"127.0.0.1:1\"\nadmin = \"127.0.0.1:2\"\n[[routes]]\nprefix = \"/o\"\nkind = \"openai\"\nname = \"o\"\nupstream = \"http://127.0.0.1:1\"\n[routes.credential]\nheader = \"authorization\"\nvalue_env = \"PORTCULLIS_TEST_SURELY_UNSET\"\n",
            "PORTCULLIS_TEST_SURELY_UNSET",
        ),
        (
            "node_id = \"x\"\nstate_dir = \"s\"\ncontrol_plane = \"http://127.0.0.1:1\"\ncontrol_plane_keys = [\"iojj3XQJ8ZX9UtstPLpdcspnCb8dlBIb83SIAbQPb1w=\"]\n[listen]\nproxy = \"127.0.0.1:1\"\nadmin = \"127.0.0.1:2\"\n[[routes]]\nprefix = \"o\"\nkind = \"openai\"\nname = \"o\"\nupstream = \"http://127.0.0.1:1\"\n",
            "must start with '/'",
        ),
        (
            "node_id = \"x\"\nstate_dir = \"s\"\ncontrol_plane = \"http://127.0.0.1:1\"\n[listen]\nproxy = \"127.0.0.1:1\"\nadmin = \"127.0.0.1:2\"\n",
            "control_plane_keys",
        ),
    ];
    for (text, expected) in cases {
        std::fs::write(&config, text).expect("write");
        let out = Command::new(env!("CARGO_BIN_EXE_portcullis-dp"))
            .arg("--config")
            .arg(&config)
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(2), "{text}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expected), "expected {expected:?} in {err}");
    }
}
