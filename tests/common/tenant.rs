//! Test fixture: spawns the real `cloudsync tenant serve` binary on 127.0.0.1:0, reads the address
//! file, gives a reqwest client that trusts the tenant's CA, and kills the process in `Drop`.
//!
//! Use from an integration test with `#[path = "common/tenant.rs"] mod tenant_fixture;`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Child;

use cloudsync_agent::bench::tenant_process::spawn_serve;

use serde_json::{Value, json};

#[path = "tenant_checks.rs"]
mod checks;
#[allow(unused_imports)]
pub use checks::*;

/// Global Administrator of the seeded tenant.
pub const GA: (&str, &str) = ("ga@contoso.onmicrosoft.com", "Ga-Passw0rd!");
/// Hybrid Identity Administrator.
pub const HIA: (&str, &str) = ("hia@contoso.onmicrosoft.com", "Hia-Passw0rd!");
/// A plain user.
pub const USER: (&str, &str) = ("bob@contoso.onmicrosoft.com", "Bob-Passw0rd!");
/// The seeded tenant id.
pub const TENANT_ID: &str = "3f2504e0-4f89-41d3-9a0c-0305e82c3301";
/// The seeded domain.
pub const DOMAIN: &str = "contoso.onmicrosoft.com";

const SEED: &str = r#"
tenant_id = "3f2504e0-4f89-41d3-9a0c-0305e82c3301"
domain = "contoso.onmicrosoft.com"
[[users]]
user_principal_name = "ga@contoso.onmicrosoft.com"
password = "Ga-Passw0rd!"
roles = ["GlobalAdministrator"]
[[users]]
user_principal_name = "hia@contoso.onmicrosoft.com"
password = "Hia-Passw0rd!"
roles = ["HybridIdentityAdministrator"]
[[users]]
user_principal_name = "bob@contoso.onmicrosoft.com"
password = "Bob-Passw0rd!"
"#;

/// The tenant's state on disk: tree (or `<releases directory>`) → its (key, value) entries.
pub type StateDump = std::collections::BTreeMap<String, Vec<(Vec<u8>, Vec<u8>)>>;

/// A running tenant process.
pub struct TenantFixture {
    child: Option<Child>,
    /// Base URL, e.g. `https://127.0.0.1:PORT`.
    pub url: String,
    /// A client trusting the tenant's CA (or a plain client with `--http`).
    pub client: reqwest::Client,
    /// Temporary directory holding the state, seed, address file and CA.
    pub dir: tempfile::TempDir,
    extra_args: Vec<String>,
    env: Vec<(String, String)>,
}

/// A registered agent and its client-credentials token.
pub struct Agent {
    /// Agent id.
    pub id: String,
    /// Client id.
    pub client_id: String,
    /// Client secret.
    pub client_secret: String,
    /// A bearer token obtained with client credentials.
    pub token: String,
}

impl TenantFixture {
    /// Starts a tenant over HTTPS with the standard seed.
    pub fn start() -> TenantFixture {
        Self::start_with(&[])
    }

    /// Starts a tenant with extra `tenant serve` flags.
    pub fn start_with(extra: &[&str]) -> TenantFixture {
        Self::start_with_env(extra, &[])
    }

    /// Starts a tenant with extra flags and environment variables (e.g. libfaketime's).
    pub fn start_with_env(extra: &[&str], env: &[(&str, &str)]) -> TenantFixture {
        let dir = tempfile::tempdir().unwrap();
        // 0600: it holds passwords, and the tenant refuses a seed others may read.
        cloudsync_private_fs::write_atomic(&dir.path().join("seed.toml"), SEED.as_bytes(), 0o600)
            .unwrap();
        let mut fixture = TenantFixture {
            child: None,
            url: String::new(),
            client: reqwest::Client::new(),
            dir,
            extra_args: extra.iter().map(|s| (*s).to_owned()).collect(),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        };
        fixture.spawn();
        fixture
    }

    /// Starts a tenant over the directory another run left (its `seed.toml`, state and CA), e.g.
    /// the one `cloudsync bench --state-dir` keeps.
    pub fn over(dir: tempfile::TempDir) -> TenantFixture {
        let mut fixture = TenantFixture {
            child: None,
            url: String::new(),
            client: reqwest::Client::new(),
            dir,
            extra_args: Vec::new(),
            env: Vec::new(),
        };
        fixture.spawn();
        fixture
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn spawn(&mut self) {
        self.spawn_on("127.0.0.1:0", false);
    }

    /// Starts the process listening on `listen`; with `append`, its log continues the old one.
    fn spawn_on(&mut self, listen: &str, append: bool) {
        let log_path = self.path("tenant.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(append)
            .truncate(!append)
            .open(&log_path)
            .unwrap();
        let exe = Path::new(env!("CARGO_BIN_EXE_cloudsync"));
        let (dir, extra, env) = (self.dir.path(), &self.extra_args, &self.env);
        let (child, url) = spawn_serve(exe, dir, listen, extra, env, log, &log_path)
            .unwrap_or_else(|e| panic!("{e}:\n{}", self.log()));
        self.child = Some(child);
        let http = url.starts_with("http://");
        self.client = if http {
            reqwest::Client::new()
        } else {
            let ca = std::fs::read(self.path("ca.pem")).unwrap();
            reqwest::Client::builder()
                .tls_certs_only([reqwest::Certificate::from_pem(&ca).unwrap()])
                .build()
                .unwrap()
        };
        self.url = url;
    }

    /// Kills the process and starts it again over the same state directory.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Kills the process (SIGKILL: a crash) and starts it again over the same state on the same
    /// address, so clients configured with [`TenantFixture::url`] reach it again; the log goes on
    /// in the same file.
    pub fn crash_and_restart_in_place(&mut self) {
        let listen = self
            .url
            .split("://")
            .nth(1)
            .expect("the tenant's URL has a scheme")
            .to_owned();
        self.kill();
        self.spawn_on(&listen, true);
    }

    /// Stops the tenant, runs `f` on its state directory, then starts it again over the same state
    /// (sled locks the database while the tenant runs). In-memory state (portal sessions, lockouts,
    /// writeback requests, run-time fault settings) does not survive this.
    pub fn while_stopped<R>(&mut self, f: impl FnOnce(&std::path::Path) -> R) -> R {
        self.kill();
        // Opened here with the binary's umask, so the files sled writes stay private and the tenant,
        // which refuses group/world-readable state, starts again over them.
        cloudsync_private_fs::restrict_umask();
        let result = f(&self.path("state"));
        self.spawn();
        result
    }

    /// The tenant's HS256 signing key, read from its state while the process is stopped, then the
    /// tenant is started again over the same state.
    pub fn signing_key(&mut self) -> Vec<u8> {
        self.while_stopped(|state| {
            let store = cloudsync_tenant::store::Store::open(&state.join("db")).unwrap();
            let key = store.meta.get("signing_key").unwrap().unwrap().to_vec();
            drop(store);
            key
        })
    }

    /// Everything the tenant keeps on disk, read while it is stopped: every sled tree's entries and
    /// every file under `releases/` (name → bytes). Equal dumps mean nothing was changed.
    pub fn state_dump(&mut self) -> StateDump {
        self.while_stopped(|state| {
            let mut dump = std::collections::BTreeMap::new();
            let db = sled::open(state.join("db")).unwrap();
            for name in db.tree_names() {
                let tree = db.open_tree(&name).unwrap();
                let entries = tree
                    .iter()
                    .map(|e| {
                        let (k, v) = e.unwrap();
                        (k.to_vec(), v.to_vec())
                    })
                    .collect();
                dump.insert(String::from_utf8_lossy(&name).into_owned(), entries);
            }
            drop(db);
            let mut files = Vec::new();
            if let Ok(dir) = std::fs::read_dir(state.join("releases")) {
                for entry in dir {
                    let path = entry.unwrap().path();
                    let name = path.file_name().unwrap().to_string_lossy().into_owned();
                    files.push((name.into_bytes(), std::fs::read(&path).unwrap_or_default()));
                }
            }
            files.sort();
            dump.insert("<releases directory>".into(), files);
            dump
        })
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The tenant's log so far (for assertion messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.path("tenant.log")).unwrap_or_default()
    }

    /// An absolute URL for `path`.
    pub fn at(&self, path: &str) -> String {
        format!("{}{}", self.url, path)
    }

    /// GET `path` with a bearer token and decode the JSON body (any status; callers assert on it).
    pub async fn get_json(&self, token: &str, path: impl AsRef<str>) -> Value {
        self.client
            .get(self.at(path.as_ref()))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Every page of a Graph collection, from `first` (a path below the base URL).
    pub async fn graph_all(&self, token: &str, first: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut next = Some(self.at(first));
        while let Some(url) = next {
            let r = self
                .client
                .get(&url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{url}");
            let page: Value = r.json().await.unwrap();
            out.extend(page["value"].as_array().unwrap().iter().cloned());
            next = page["@odata.nextLink"].as_str().map(str::to_owned);
        }
        out
    }

    /// A password-grant token.
    pub async fn user_token(&self, (upn, password): (&str, &str)) -> String {
        let r = self
            .client
            .post(self.at(&format!("/{DOMAIN}/oauth2/v2.0/token")))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&[
                ("grant_type", "password"),
                ("client_id", "cloudsync-installer"),
                ("username", upn),
                ("password", password),
                ("scope", "https://graph.microsoft.com/.default"),
            ]))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "token for {upn}");
        r.json::<Value>().await.unwrap()["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// A client like [`TenantFixture::client`] that does not follow redirects.
    pub fn no_redirect_client(&self) -> reqwest::Client {
        let mut b = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none());
        if self.url.starts_with("https://") {
            let ca = std::fs::read(self.path("ca.pem")).unwrap();
            b = b.tls_certs_only([reqwest::Certificate::from_pem(&ca).unwrap()]);
        }
        b.build().unwrap()
    }

    /// Signs in to the portal's form; returns the session's `Set-Cookie` value.
    pub async fn portal_set_cookie(&self, (upn, password): (&str, &str)) -> String {
        let r = self
            .no_redirect_client()
            .post(self.at("/portal/signin"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&[("username", upn), ("password", password)]))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303, "portal sign-in of {upn}");
        assert_eq!(r.headers()["location"], "/");
        r.headers()["set-cookie"].to_str().unwrap().to_owned()
    }

    /// Signs in to the portal and returns the HTML of `path` (e.g. `/`).
    pub async fn portal_page(&self, who: (&str, &str), path: &str) -> String {
        let set_cookie = self.portal_set_cookie(who).await;
        let cookie = set_cookie.split(';').next().unwrap();
        let r = self
            .client
            .get(self.at(path))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "portal page {path}");
        r.text().await.unwrap()
    }

    /// Registers an agent serving `domains` and returns it with a client-credentials token.
    pub async fn register_agent(&self, admin: &str, host: &str, domains: &[&str]) -> Agent {
        let r = self
            .client
            .post(self.at("/api/v1/agents"))
            .bearer_auth(admin)
            .json(&json!({"hostName": host, "version": "1.2.3", "environment": "AzureCloud", "domains": domains}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let reg: Value = r.json().await.unwrap();
        let client_id = reg["clientId"].as_str().unwrap().to_owned();
        let client_secret = reg["clientSecret"].as_str().unwrap().to_owned();
        let token = self.client_token(&client_id, &client_secret).await.unwrap();
        Agent {
            id: reg["agentId"].as_str().unwrap().to_owned(),
            client_id,
            client_secret,
            token,
        }
    }

    /// A client-credentials token, or the error response body.
    pub async fn client_token(
        &self,
        client_id: &str,
        secret: &str,
    ) -> Result<String, (u16, Value)> {
        let r = self
            .client
            .post(self.at(&format!("/{TENANT_ID}/oauth2/v2.0/token")))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&[
                ("grant_type", "client_credentials"),
                ("client_id", client_id),
                ("client_secret", secret),
                ("scope", "api://cloudsync/.default"),
            ]))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap();
        if status == 200 {
            Ok(body["access_token"].as_str().unwrap().to_owned())
        } else {
            Err((status, body))
        }
    }

    /// Creates a configuration and returns its id.
    pub async fn create_config(&self, admin: &str, spec: Value) -> String {
        let r = self
            .client
            .post(self.at("/api/v1/configurations"))
            .bearer_auth(admin)
            .json(&spec)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        r.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Posts a batch and returns (status, body).
    pub async fn post_batch(&self, agent: &str, config: &str, batch: &Value) -> (u16, Value) {
        let r = self
            .client
            .post(self.at(&format!("/api/v1/configurations/{config}/batches")))
            .bearer_auth(agent)
            .json(batch)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }
}

impl Drop for TenantFixture {
    fn drop(&mut self) {
        self.kill();
    }
}

/// An upsert of a user.
pub fn user_upsert(anchor: &str, version: u64, upn: &str, name: &str) -> Value {
    json!({
        "op": "upsert", "kind": "user", "sourceAnchor": anchor, "version": version,
        "onPremises": {"samAccountName": name.to_lowercase().replace(' ', "."), "distinguishedName": format!("CN={name},OU=Staff,DC=corp,DC=example,DC=com"),
                        "securityIdentifier": "S-1-5-21-1-2-3-1105", "domainName": "corp.example.com"},
        "attributes": {"displayName": name, "userPrincipalName": upn, "accountEnabled": true}
    })
}

/// An upsert of a group.
pub fn group_upsert(anchor: &str, version: u64, name: &str) -> Value {
    json!({"op": "upsert", "kind": "group", "sourceAnchor": anchor, "version": version,
           "attributes": {"displayName": name, "securityEnabled": true, "mailEnabled": false}})
}

/// A batch with a fresh id.
/// The status of the tenant's PHS sign-in check (`POST /{DOMAIN}/signin`) for `upn` and `password`.
pub async fn signin(t: &TenantFixture, upn: &str, password: &str) -> u16 {
    t.client
        .post(t.at(&format!("/{DOMAIN}/signin")))
        .json(&json!({"userPrincipalName": upn, "password": password}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

pub fn batch(ops: Vec<Value>) -> Value {
    json!({"batchId": uuid::Uuid::new_v4(), "operations": ops})
}

/// The claims of a token (its middle part), to re-sign altered copies with [`mint`].
pub fn claims_of(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

/// Signs `claims` with an HS256 key (RFC 7515 JWS): with the tenant's own key
/// ([`TenantFixture::signing_key`]) as a token mis-issued by the tenant itself would be signed,
/// with another key as a forgery.
pub fn mint(key: &[u8], claims: &Value) -> String {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use hmac::{KeyInit, Mac};
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap())
    );
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
    mac.update(input.as_bytes());
    format!(
        "{input}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

/// A JSON body just over the tenant's 8 MiB limit.
pub fn oversized_json() -> String {
    format!("{{\"pad\":\"{}\"}}", "x".repeat(8 * 1024 * 1024 + 16))
}

/// Encodes an `application/x-www-form-urlencoded` body.
pub fn form(pairs: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect::<String>()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Registers an agent for corp.example.com and creates a configuration: (admin token, agent, config id).
pub async fn setup(t: &TenantFixture, spec: Value) -> (String, Agent, String) {
    let admin = t.user_token(HIA).await;
    let agent = t
        .register_agent(&admin, "dc1.corp.example.com", &["corp.example.com"])
        .await;
    let config = t.create_config(&admin, spec).await;
    (admin, agent, config)
}

/// The status of each result, `error:<code>` for errors.
pub fn statuses(body: &Value) -> Vec<String> {
    body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| match r["error"]["code"].as_str() {
            Some(code) => format!("error:{code}"),
            None => r["status"].as_str().unwrap().to_owned(),
        })
        .collect()
}
