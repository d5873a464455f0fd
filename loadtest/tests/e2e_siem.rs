//! SIEM streaming: while both collectors are down, the IdP changes identities and the node
//! decides requests. When the collectors come back, each receives every identity event and
//! every decision record, once, as OCSF-shaped JSON: one over HTTP, one as RFC 5424 syslog
//! over TLS (octet-counted framing).

use axum::extract::State;
use axum::http::HeaderMap;
use portcullis_loadtest::cluster::{TestCa, eventually};
use portcullis_loadtest::http::chat;
use portcullis_loadtest::proc::free_addr;
use portcullis_loadtest::{Cluster, ClusterOptions};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

/// What a collector received: each event's `metadata.uid` and the event (with the syslog PRI).
type Received = Arc<Mutex<Vec<(String, Value, Option<u8>)>>>;

async fn http_collector(addr: SocketAddr, got: Received) -> anyhow::Result<()> {
    async fn ingest(
        State(got): State<Received>,
        headers: HeaderMap,
        axum::Json(events): axum::Json<Vec<Value>>,
    ) -> axum::http::StatusCode {
        if headers.get("x-test").and_then(|v| v.to_str().ok()) != Some("yes") {
            return axum::http::StatusCode::UNAUTHORIZED;
        }
        let mut got = got.lock().expect("lock");
        for e in events {
            let uid = e["metadata"]["uid"].as_str().unwrap_or("").to_owned();
            got.push((uid, e, None));
        }
        axum::http::StatusCode::NO_CONTENT
    }
    let app = axum::Router::new()
        .route("/ingest", axum::routing::post(ingest))
        .with_state(got);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(())
}

/// Reads octet-counted RFC 5424 messages from one TLS connection.
async fn read_syslog(
    stream: tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
    got: Received,
) -> anyhow::Result<()> {
    let mut r = BufReader::new(stream);
    loop {
        let mut len = Vec::new();
        if r.read_until(b' ', &mut len).await? == 0 {
            return Ok(());
        }
        let len: usize = std::str::from_utf8(&len)?.trim().parse()?;
        let mut msg = vec![0; len];
        r.read_exact(&mut msg).await?;
        let msg = String::from_utf8(msg)?;
        // <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID STRUCTURED-DATA MSG
        let pri: u8 = msg[1..msg.find('>').unwrap_or(1)].parse()?;
        let fields: Vec<&str> = msg.splitn(8, ' ').collect();
        anyhow::ensure!(fields.len() == 8, "not RFC 5424: {msg}");
        anyhow::ensure!(fields[0].ends_with(">1"), "version 1: {msg}");
        anyhow::ensure!(fields[2] == "portcullis-cp" && fields[3] == "portcullis");
        let event: Value = serde_json::from_str(fields[7])?;
        anyhow::ensure!(
            (fields[5] == "decision") == (event["class_uid"] == 6003),
            "MSGID names the stream: {msg}"
        );
        let uid = event["metadata"]["uid"].as_str().unwrap_or("").to_owned();
        got.lock().expect("lock").push((uid, event, Some(pri)));
    }
}

async fn syslog_collector(
    addr: SocketAddr,
    cert: &str,
    key: &str,
    got: Received,
) -> anyhow::Result<()> {
    use rustls::pki_types::pem::PemObject;
    let certs = rustls::pki_types::CertificateDer::pem_slice_iter(cert.as_bytes())
        .collect::<Result<Vec<_>, _>>()?;
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(key.as_bytes())?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(certs, key)?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, got) = (acceptor.clone(), got.clone());
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(tcp).await
                    && let Err(e) = read_syslog(tls, got).await
                {
                    eprintln!("syslog collector: {e}");
                }
            });
        }
    });
    Ok(())
}

/// Every identity event's uid, from the admin API.
async fn identity_uids(c: &Cluster) -> anyhow::Result<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    let mut after = 0;
    loop {
        let page = c
            .get_json(&format!(
                "http://{}/admin/v1/events?after={after}&limit=1000",
                c.cp_addrs.admin
            ))
            .await?;
        let events = page["events"].as_array().cloned().unwrap_or_default();
        let Some(last) = events.last() else {
            return Ok(out);
        };
        after = last["seq"].as_u64().unwrap_or(u64::MAX);
        out.extend(events.iter().map(|e| format!("identity:{}", e["seq"])));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_that_was_down_receives_every_event_once_it_is_back() -> anyhow::Result<()> {
    let (http_addr, syslog_addr) = (free_addr(), free_addr());
    let ca = TestCa::new()?;
    let (cert, key) = ca.issue("siem.test", false)?;
    let dir = tempfile::tempdir()?;
    let ca_path = dir.path().join("siem-ca.pem");
    std::fs::write(&ca_path, &ca.pem)?;
    let sinks = format!(
        r#"
[[siem]]
name = "http-collector"
kind = "http"
url = "http://{http_addr}/ingest"
headers = {{ "x-test" = "yes" }}
max_backoff_ms = 300

[[siem]]
name = "syslog-collector"
kind = "syslog"
address = "{syslog_addr}"
tls = {{ ca = "{}", server_name = "siem.test" }}
max_backoff_ms = 300
"#,
        ca_path.display()
    );
    let c = Cluster::start(ClusterOptions {
        nodes: 1,
        cp_extra_toml: Some(sinks),
        ..Default::default()
    })
    .await?;
    let edge = c.nodes[0].proxy;

    // Collectors down: decisions and identity changes happen meanwhile.
    let (alice, dave) = (c.token("alice@example.com"), c.token("dave@example.com"));
    for _ in 0..10 {
        assert_eq!(
            chat(&c.http, edge, &alice, "gpt-4o-mini").await?.status,
            200
        );
        assert_eq!(chat(&c.http, edge, &dave, "gpt-4o-mini").await?.status, 403);
    }
    let bob = c.ids.user("bob@example.com").to_owned();
    c.scim().set_active(&bob, false).await?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let page = reqwest::get(format!("http://{}/metrics", c.cp_addrs.admin))
        .await?
        .text()
        .await?;
    assert!(
        page.lines()
            .any(|l| l.starts_with("portcullis_siem_failures_total")),
        "deliveries failed while the collectors were down"
    );

    // Every event the control plane holds, by uid.
    let mut expected = identity_uids(&c).await?;
    let mut decisions = Vec::new();
    for _ in 0..50 {
        decisions = c.stored_decisions("").await?;
        if decisions.len() >= 20 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(decisions.len(), 20);
    expected.extend(decisions.iter().map(|d| {
        format!(
            "decision:{}/{}/{}",
            d["node"].as_str().unwrap_or(""),
            d["epoch"].as_str().unwrap_or(""),
            d["seq"]
        )
    }));
    assert!(expected.len() > 25, "{expected:?}");

    // The collectors come back.
    let (over_http, over_syslog): (Received, Received) = Default::default();
    http_collector(http_addr, over_http.clone()).await?;
    syslog_collector(syslog_addr, &cert, &key, over_syslog.clone()).await?;
    for (name, got) in [("HTTP", &over_http), ("syslog", &over_syslog)] {
        let took = eventually(
            &format!("the {name} collector has every event"),
            Duration::from_secs(20),
            || async {
                let uids: BTreeSet<String> = got
                    .lock()
                    .expect("lock")
                    .iter()
                    .map(|e| e.0.clone())
                    .collect();
                Ok(expected.is_subset(&uids))
            },
        )
        .await?;
        let got = got.lock().expect("lock");
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for (uid, _, _) in got.iter() {
            *counts.entry(uid).or_default() += 1;
        }
        assert!(
            counts.values().all(|&n| n == 1),
            "{name}: an event delivered twice"
        );
        println!(
            "{name} collector: {} events within {:.0} ms of coming back",
            got.len(),
            took.as_secs_f64() * 1e3
        );
        // The OCSF shapes.
        let find = |pred: &dyn Fn(&Value) -> bool| {
            got.iter()
                .find(|(_, e, _)| pred(e))
                .cloned()
                .expect("an event of that kind")
        };
        let (_, denied, pri) = find(&|e| e["class_uid"] == 6003 && e["disposition"] == "Blocked");
        assert_eq!(denied["actor"]["user"]["name"], "dave@example.com");
        assert_eq!(denied["api"]["operation"], "chat");
        assert_eq!(denied["resources"][0]["uid"], "Model::\"gpt-4o-mini\"");
        assert_eq!(denied["unmapped"]["reason"], "no_matching_permit");
        assert_eq!(denied["type_uid"], 600399);
        if name == "syslog" {
            assert_eq!(
                pri,
                Some(13 * 8 + 4),
                "a denial is a warning in facility log audit"
            );
        }
        let (_, allowed, _) = find(&|e| e["class_uid"] == 6003 && e["disposition"] == "Allowed");
        assert_eq!(
            allowed["unmapped"]["policies"],
            serde_json::json!(["sales-chat-gpt-4o-mini"])
        );
        let (_, disabled, _) = find(&|e| e["class_uid"] == 3001 && e["activity_id"] == 5);
        assert_eq!(disabled["user"]["uid"], bob.as_str());
        assert_eq!(disabled["unmapped"]["after"]["active"], false);
    }
    Ok(())
}
