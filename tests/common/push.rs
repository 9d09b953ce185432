//! Push-stage test fixture: a real `cloudsync tenant serve` child that can be stopped and started
//! again ON THE SAME PORT and state directory (the tenant fixture restarts on a new port), plus
//! helpers to register an agent, create a configuration, read provisioning logs and build the
//! agent-side push client.
//!
//! Use with `#[path = "common/push.rs"] mod push_fixture;`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cloudsync_agent::bench::tenant_process::spawn_serve;
use cloudsync_agent::control::tenant_client::{Credentials, TenantClient, TlsOptions};
use cloudsync_api::logs::{LogEntry, LogPage};
use cloudsync_api::ops::OpStatus;
use serde_json::{Value, json};
use zeroize::Zeroizing;

/// The seeded tenant id.
pub const TENANT_ID: &str = "3f2504e0-4f89-41d3-9a0c-0305e82c3301";
/// The seeded tenant domain (UPN suffix of synthetic users).
pub const DOMAIN: &str = "contoso.onmicrosoft.com";
const GA: (&str, &str) = ("ga@contoso.onmicrosoft.com", "Ga-Passw0rd!");
const SEED: &str = r#"
tenant_id = "3f2504e0-4f89-41d3-9a0c-0305e82c3301"
domain = "contoso.onmicrosoft.com"
[[users]]
user_principal_name = "ga@contoso.onmicrosoft.com"
password = "Ga-Passw0rd!"
roles = ["GlobalAdministrator"]
"#;

/// A tenant child process that can go down and come back on the same port.
pub struct PushTenant {
    child: Option<Child>,
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    listen: String,
    /// State, seed, CA, logs.
    pub dir: tempfile::TempDir,
    /// A client trusting the tenant's CA.
    pub http: reqwest::Client,
    extra: Vec<String>,
    starts: u32,
}

/// A registered agent.
pub struct AgentCreds {
    /// Client id.
    pub client_id: String,
    /// Client secret.
    pub client_secret: String,
}

impl PushTenant {
    /// Starts a tenant with extra `tenant serve` flags on a free port.
    pub fn start(extra: &[&str]) -> PushTenant {
        let dir = tempfile::tempdir().unwrap();
        // 0600: it holds passwords, and the tenant refuses a seed others may read.
        cloudsync_private_fs::write_atomic(&dir.path().join("seed.toml"), SEED.as_bytes(), 0o600)
            .unwrap();
        let mut t = PushTenant {
            child: None,
            url: String::new(),
            listen: "127.0.0.1:0".into(),
            dir,
            http: reqwest::Client::new(),
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
            starts: 0,
        };
        t.spawn();
        let port = t.url.rsplit(':').next().unwrap().to_owned();
        t.listen = format!("127.0.0.1:{port}");
        t
    }

    /// A path inside the fixture directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn spawn(&mut self) {
        self.starts += 1;
        let log_path = self.path("tenant.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .unwrap();
        let exe = Path::new(env!("CARGO_BIN_EXE_cloudsync"));
        let (dir, listen) = (self.dir.path(), &self.listen);
        let (child, url) = spawn_serve(exe, dir, listen, &self.extra, &[], log, &log_path)
            .unwrap_or_else(|e| {
                panic!(
                    "{e}:\n{}",
                    std::fs::read_to_string(&log_path).unwrap_or_default()
                )
            });
        self.child = Some(child);
        let ca = std::fs::read(self.path("ca.pem")).unwrap();
        self.http = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&ca).unwrap()])
            .build()
            .unwrap();
        self.url = url;
    }

    /// Kills the tenant (the agent then sees connection refused).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends `signal` to the tenant process and waits (polling) until it exits or `deadline`
    /// passes; returns its exit status, or `None` if it is still running (it is then killed).
    pub fn signal_and_wait(
        &mut self,
        signal: i32,
        deadline: Duration,
    ) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        // std has no API to send a signal; the `kill` utility does it without unsafe code.
        let sent = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(child.id().to_string())
            .status()
            .unwrap();
        assert!(sent.success(), "kill -{signal} {}", child.id());
        let until = Instant::now() + deadline;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() >= until {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the tenant again on the same port and state directory.
    pub fn start_again(&mut self) {
        self.stop();
        self.spawn();
    }

    /// The tenant's log (all runs).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.path("tenant.log")).unwrap_or_default()
    }

    /// The CA certificate PEM.
    pub fn ca_pem(&self) -> Vec<u8> {
        std::fs::read(self.path("ca.pem")).unwrap()
    }

    fn at(&self, path: &str) -> String {
        format!("{}{}", self.url, path)
    }

    /// A Global Administrator token.
    pub async fn admin(&self) -> String {
        let body = format!(
            "grant_type=password&client_id=cloudsync-installer&username={}&password={}&scope=https%3A%2F%2Fgraph.microsoft.com%2F.default",
            GA.0.replace('@', "%40"),
            GA.1.replace('!', "%21")
        );
        let r = self
            .http
            .post(self.at(&format!("/{DOMAIN}/oauth2/v2.0/token")))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json::<Value>().await.unwrap()["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Sends an admin request, retrying injected 503s and cut answers (faults hit every `/api/`
    /// route). Set up agents and configurations before turning faults on: a POST is not idempotent.
    async fn admin_call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let token = self.admin().await;
        for _ in 0..50 {
            let mut req = self
                .http
                .request(method.clone(), self.at(path))
                .bearer_auth(&token);
            if let Some(b) = &body {
                req = req.json(b);
            }
            let Ok(r) = req.send().await else {
                continue;
            };
            let status = r.status().as_u16();
            if status == 503 || status == 429 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            assert!(r.status().is_success(), "{method} {path}: {status}");
            // A body cut by an injected dropped connection: ask again (only GETs run under faults).
            match r.json().await {
                Ok(v) => return v,
                Err(_) => continue,
            }
        }
        panic!("{method} {path} kept failing");
    }

    /// Registers an agent for `corp.example.com`.
    pub async fn register_agent(&self) -> AgentCreds {
        let reg = self
            .admin_call(
                reqwest::Method::POST,
                "/api/v1/agents",
                Some(json!({"hostName": "push-test", "version": "1.0.0", "environment": "AzureCloud", "domains": ["corp.example.com"]})),
            )
            .await;
        AgentCreds {
            client_id: reg["clientId"].as_str().unwrap().to_owned(),
            client_secret: reg["clientSecret"].as_str().unwrap().to_owned(),
        }
    }

    /// Creates the configuration for `corp.example.com`.
    pub async fn create_config(&self) -> uuid::Uuid {
        let c = self
            .admin_call(
                reqwest::Method::POST,
                "/api/v1/configurations",
                Some(json!({"domain": "corp.example.com", "deleteThreshold": 0})),
            )
            .await;
        c["id"].as_str().unwrap().parse().unwrap()
    }

    /// Replaces the fault and throttle settings.
    pub async fn set_faults(&self, settings: Value) {
        let token = self.admin().await;
        let r = self
            .http
            .put(self.at("/admin/faults"))
            .bearer_auth(token)
            .json(&settings)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "PUT /admin/faults");
    }

    /// Restarts a configuration with the given scopes.
    pub async fn restart_config(&self, config: uuid::Uuid, scopes: &[&str]) {
        self.admin_call(
            reqwest::Method::POST,
            &format!("/api/v1/configurations/{config}/restart"),
            Some(json!({ "scopes": scopes })),
        )
        .await;
    }

    /// Every provisioning log entry, newest first.
    pub async fn all_logs(&self) -> Vec<LogEntry> {
        let mut out = Vec::new();
        let mut before: Option<u64> = None;
        loop {
            let path = match before {
                Some(b) => format!("/api/v1/provisioningLogs?top=1000&before={b}"),
                None => "/api/v1/provisioningLogs?top=1000".to_owned(),
            };
            let page: LogPage =
                serde_json::from_value(self.admin_call(reqwest::Method::GET, &path, None).await)
                    .unwrap();
            out.extend(page.value);
            match page.next_before {
                Some(b) => before = Some(b),
                None => return out,
            }
        }
    }

    /// Agent-side credentials for the push client.
    pub fn credentials(&self, agent: &AgentCreds) -> Credentials {
        Credentials {
            base_url: self.url.clone(),
            token_endpoint: format!("/{TENANT_ID}/oauth2/v2.0/token"),
            client_id: agent.client_id.clone(),
            client_secret: Zeroizing::new(agent.client_secret.clone()),
            scope: "api://cloudsync/.default".into(),
        }
    }

    /// The agent's push client (TLS verified against the tenant's CA).
    pub fn push_client(&self, agent: &AgentCreds) -> Arc<TenantClient> {
        let tls = TlsOptions {
            ca_pem: Some(self.ca_pem()),
            insecure: false,
        };
        Arc::new(TenantClient::new(self.credentials(agent), &tls, Duration::from_secs(10)).unwrap())
    }
}

impl Drop for PushTenant {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Success entries per source anchor.
pub fn successes(logs: &[LogEntry]) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for e in logs.iter().filter(|e| e.result == OpStatus::Success) {
        *m.entry(e.source_anchor.clone()).or_insert(0) += 1;
    }
    m
}

/// Asserts that synthetic users `0..n` were each applied exactly once.
pub fn assert_exactly_once(logs: &[LogEntry], n: u64) {
    let s = successes(logs);
    let twice: Vec<_> = s.iter().filter(|(_, c)| **c > 1).take(5).collect();
    assert!(twice.is_empty(), "applied more than once: {twice:?}");
    let missing: Vec<_> = (0..n)
        .map(cloudsync_agent::push::synthetic::anchor)
        .filter(|a| !s.contains_key(a))
        .take(5)
        .collect();
    assert!(missing.is_empty(), "never applied: {missing:?}");
    assert_eq!(s.len() as u64, n, "unexpected extra objects");
}

/// Polls `f` until it returns true, or panics after `timeout`.
pub async fn wait_until(timeout: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Writes a 0600 file.
pub fn write_secret(path: &Path, text: &str) {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .unwrap();
    std::io::Write::write_all(&mut f, text.as_bytes()).unwrap();
}
