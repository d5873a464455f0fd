//! The README's first command: the quickstart comes up, the demo it prints behaves as printed,
//! and stopping it stops every part.

use serde_json::{Value, json};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A base port with six free ports after it.
fn base_port() -> u16 {
    for _ in 0..200 {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let base = 20_000 + (seed % 30_000) as u16;
        if (0..6).all(|i| TcpListener::bind(("127.0.0.1", base + i)).is_ok()) {
            return base;
        }
    }
    panic!("no free port range");
}

fn tokens(path: &std::path::Path) -> HashMap<String, String> {
    std::fs::read_to_string(path)
        .expect("tokens.env")
        .lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.trim_matches('\'').to_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quickstart_runs_the_demo_it_prints() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = base_port();
    let mut child = Kill(
        Command::new(env!("CARGO_BIN_EXE_portcullis-quickstart"))
            .arg("--dir")
            .arg(dir.path())
            .args(["--base-port", &base.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn quickstart"),
    );
    let stdout = child.0.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut banner = String::new();
    loop {
        match rx.recv_timeout(Duration::from_millis(500)) {
            Ok(line) => {
                banner.push_str(&line);
                banner.push('\n');
                if banner.contains("Ctrl-C stops everything") {
                    break;
                }
            }
            Err(_) => {
                if let Ok(Some(status)) = child.0.try_wait() {
                    let mut err = String::new();
                    if let Some(mut e) = child.0.stderr.take() {
                        use std::io::Read;
                        let _ = e.read_to_string(&mut err);
                    }
                    panic!("quickstart exited ({status}): {err}");
                }
                assert!(
                    Instant::now() < deadline,
                    "no banner within 180 s: {banner}"
                );
            }
        }
    }
    let edge = format!("http://127.0.0.1:{base}");
    assert!(
        banner.contains(&format!("curl -s {edge}/openai/v1/chat/completions")),
        "{banner}"
    );
    let t = tokens(&dir.path().join("tokens.env"));
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let chat = |token: &str, model: &str| {
        http.post(format!("{edge}/openai/v1/chat/completions"))
            .bearer_auth(token)
            .json(&json!({"model": model, "messages": [{"role": "user", "content": "hello"}]}))
            .send()
    };

    // 1 and 2 of the banner.
    let r = chat(&t["ALICE"], "gpt-4o-mini").await.expect("call");
    assert_eq!(r.status(), 200);
    let r = chat(&t["ALICE"], "gpt-4o").await.expect("call");
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["error"]["type"], "permission_error");

    // 3: Bob gets a JSON-RPC error for the CRM tool.
    let r = http
        .post(format!("{edge}/mcp/crm"))
        .bearer_auth(&t["BOB"])
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "update_opportunity", "arguments": {"id": "42", "stage": "won"}}}))
        .send()
        .await
        .expect("call");
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["id"], 1);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("update_opportunity")
    );

    // 4: the printed SCIM PATCH deactivates Alice; her next call is denied.
    let r = http
        .patch(format!("http://127.0.0.1:{}/scim/v2/demo/Users/{}", base + 2, t["ALICE_ID"]))
        .bearer_auth(&t["SCIM_TOKEN"])
        .header("content-type", "application/scim+json")
        .body(r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"active":false}}]}"#)
        .send()
        .await
        .expect("patch");
    assert_eq!(r.status(), 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if chat(&t["ALICE"], "gpt-4o-mini")
            .await
            .expect("call")
            .status()
            == 403
        {
            break;
        }
        assert!(Instant::now() < deadline, "deactivation not enforced");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // SIGTERM stops every part.
    let pid = child.0.id().to_string();
    // The shell's builtin `kill`: minimal images may not ship procps.
    let killed = Command::new("sh")
        .args(["-c", &format!("kill -TERM {pid}")])
        .status()
        .expect("kill");
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.0.try_wait().expect("wait").is_none() {
        assert!(Instant::now() < deadline, "quickstart ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    for i in 0..6 {
        let addr = SocketAddr::from(([127, 0, 0, 1], base + i));
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            assert!(
                Instant::now() < deadline,
                "a part still listens on {addr} after stop"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
