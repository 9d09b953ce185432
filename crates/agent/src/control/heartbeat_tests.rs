//! Tests of the heartbeat task against hand-made tenants on 127.0.0.1: one that never answers, one
//! that answers slowly.

use super::*;
use crate::control::tenant_client::{Credentials, TlsOptions};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A heartbeat task against `http://{addr}` sending every `every`.
fn task(addr: std::net::SocketAddr, every: Duration, dir: &std::path::Path) -> HeartbeatTask {
    let client = TenantClient::new(
        Credentials {
            base_url: format!("http://{addr}"),
            token_endpoint: "/t/oauth2/v2.0/token".into(),
            client_id: "c".into(),
            client_secret: zeroize::Zeroizing::new("s".into()),
            scope: "api://x/.default".into(),
        },
        &TlsOptions::default(),
        Duration::from_secs(60),
    )
    .expect("client");
    let creds: AgentCredentials = serde_json::from_value(serde_json::json!({
        "agentId": Uuid::nil(), "tenantId": Uuid::nil(), "clientId": "c", "clientSecret": "s",
        "tokenEndpoint": "/t/oauth2/v2.0/token", "configurations": {}
    }))
    .expect("credentials");
    let (releases, _rx) = mpsc::channel(1);
    HeartbeatTask {
        client: Arc::new(client),
        creds,
        staged: ProjectionStore::open(&dir.join("projection")).expect("store"),
        domains: BTreeMap::new(),
        every,
        beat_now: Arc::new(Notify::new()),
        restarts: Arc::new(RestartTracker::default()),
        resyncs: ResyncRequests::new(),
        releases,
        configurations: None,
        revisions: BTreeMap::new(),
        leases: Default::default(),
    }
}

/// A tenant that accepts connections and never answers: the heartbeat task must still stop as
/// soon as it is cancelled (before, it sat in the call until the request timeout, 60 s here).
#[tokio::test]
async fn cancellation_ends_a_heartbeat_waiting_for_a_silent_tenant() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("listener");
    let addr = listener.local_addr().expect("address");
    let dir = tempfile::tempdir().expect("tempdir");
    let task = task(addr, Duration::from_secs(600), dir.path());
    let cancel = CancellationToken::new();
    let running = tokio::spawn(task.run(cancel.clone()));
    // The token request is in flight once the tenant has accepted its connection.
    let (_silent, _) = tokio::time::timeout(Duration::from_secs(10), listener.accept())
        .await
        .expect("the heartbeat connects")
        .expect("accept");
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .expect("the heartbeat task stops promptly after cancellation")
        .expect("no panic");
}

/// Serves HTTP/1.1 on `listener`: a token for the token endpoint at once, an empty heartbeat
/// answer `delay` after each heartbeat arrives (whose arrival times go to `arrivals`).
async fn slow_tenant(
    listener: tokio::net::TcpListener,
    delay: Duration,
    arrivals: mpsc::UnboundedSender<std::time::Instant>,
) {
    loop {
        let Ok((mut conn, _)) = listener.accept().await else {
            return;
        };
        let arrivals = arrivals.clone();
        tokio::spawn(async move {
            let mut buf = Vec::new();
            loop {
                // One request: the head, then Content-Length bytes of body.
                let head_end = loop {
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                    let mut chunk = [0u8; 4096];
                    match conn.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                while buf.len() < head_end + length {
                    let mut chunk = [0u8; 4096];
                    match conn.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                buf.drain(..head_end + length);
                let body = if head.contains("/heartbeat") {
                    let _ = arrivals.send(std::time::Instant::now());
                    tokio::time::sleep(delay).await;
                    r#"{"serverTime":"2026-01-01T00:00:00Z","heartbeatIntervalSeconds":600,"configurations":[],"pendingRestarts":[],"leases":[]}"#
                } else {
                    r#"{"access_token":"t","token_type":"Bearer","expires_in":3600}"#
                };
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
                if conn.write_all(answer.as_bytes()).await.is_err() {
                    return;
                }
            }
        });
    }
}

/// Heartbeats are due `every` after the previous one started, not after its answer: a tenant that
/// takes `delay` to answer must not stretch the time between a holder's renewals to `every + delay`
/// (with a lease of twice the interval, a delay of one interval lost a healthy holder its lease;
/// measured in tests/ha_spread.rs: answers of 2.1 s under load, renewals 4.1–4.6 s apart, lease 4 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_answer_does_not_delay_the_next_heartbeat() {
    let every = Duration::from_millis(1_000);
    let delay = Duration::from_millis(800);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("listener");
    let addr = listener.local_addr().expect("address");
    let (tx, mut arrivals) = mpsc::unbounded_channel();
    let server = tokio::spawn(slow_tenant(listener, delay, tx));
    let dir = tempfile::tempdir().expect("tempdir");
    let cancel = CancellationToken::new();
    let running = tokio::spawn(task(addr, every, dir.path()).run(cancel.clone()));
    let mut at = Vec::new();
    while at.len() < 6 {
        let t = tokio::time::timeout(Duration::from_secs(30), arrivals.recv())
            .await
            .expect("heartbeats keep coming")
            .expect("the tenant runs");
        at.push(t);
    }
    cancel.cancel();
    let _ = running.await;
    server.abort();
    // The first heartbeat also hashes the test binary (`executable::running_sha256`): leave it out.
    let gaps: Vec<Duration> = at.windows(2).skip(1).map(|w| w[1] - w[0]).collect();
    let mean = gaps.iter().sum::<Duration>() / u32::try_from(gaps.len()).expect("few");
    // Started `every` apart: 1.0 s (more only when the machine is slow); answered-then-slept
    // would be every + delay = 1.8 s at least.
    assert!(
        mean < every + delay / 2,
        "heartbeats {mean:?} apart on average ({gaps:?}); want about {every:?}"
    );
}
