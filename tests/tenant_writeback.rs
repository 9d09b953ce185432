//! Password writeback against the real tenant binary, with the test playing the agent over plain
//! HTTP: it registers an X25519 key, long-polls, opens the sealed password with its secret key and
//! answers. Covers Graph's resetPassword (202 + operation), PATCH passwordProfile (synchronous),
//! self-service reset and unlock with one-time codes, the switches, refusals that queue nothing,
//! isolation between agents, idempotent answers, the bounded wait, and that the cleartext password
//! is in no log line and no file of the tenant's state.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/tenant.rs"]
mod tenant_fixture;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use crypto_box::SecretKey;
use serde_json::{Value, json};
use tenant_fixture::*;

const METHOD: &str = "28c10230-6103-485e-b985-444c60001490";
const ALICE: &str = "alice@contoso.onmicrosoft.com";

/// The test's agent: plain HTTP calls with its token, and its writeback secret key.
#[derive(Clone)]
struct AgentSide {
    client: reqwest::Client,
    url: String,
    id: String,
    token: String,
    key: SecretKey,
}

impl AgentSide {
    async fn register_key(&self) -> u16 {
        let public = STANDARD.encode(self.key.public_key().as_bytes());
        self.client
            .put(format!(
                "{}/api/v1/agents/{}/writebackKey",
                self.url, self.id
            ))
            .bearer_auth(&self.token)
            .json(&json!({ "publicKey": public }))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    async fn poll_as(&self, agent_id: &str, wait: u64) -> (u16, Value) {
        let r = self
            .client
            .get(format!(
                "{}/api/v1/agents/{agent_id}/writeback/requests?waitSeconds={wait}",
                self.url
            ))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    async fn poll(&self, wait: u64) -> Vec<Value> {
        let (status, body) = self.poll_as(&self.id, wait).await;
        assert_eq!(status, 200, "{body}");
        body["value"].as_array().unwrap().clone()
    }

    async fn answer(&self, request: &str, code: u32, message: &str) -> u16 {
        self.client
            .post(format!(
                "{}/api/v1/agents/{}/writeback/requests/{request}/answer",
                self.url, self.id
            ))
            .bearer_auth(&self.token)
            .json(&json!({ "code": code, "message": message }))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    fn open(&self, request: &Value) -> String {
        let sealed = STANDARD
            .decode(request["sealedPassword"].as_str().unwrap())
            .unwrap();
        String::from_utf8(self.key.unseal(&sealed).unwrap()).unwrap()
    }

    /// Polls until one request arrives, answers it with `code`; returns the request and the
    /// opened password (if any).
    async fn serve_one(&self, code: u32, message: &str) -> (Value, Option<String>) {
        let got = self.poll(10).await;
        assert_eq!(got.len(), 1, "{got:?}");
        let request = got[0].clone();
        let password = request["sealedPassword"]
            .as_str()
            .map(|_| self.open(&request));
        let id = request["id"].as_str().unwrap();
        assert_eq!(self.answer(id, code, message).await, 204);
        (request, password)
    }
}

struct Env {
    t: TenantFixture,
    ga: String,
    agent: AgentSide,
    config: String,
    alice: String,
}

/// A tenant with a configuration for corp.example.com (writeback and unlock switches as given), an
/// agent serving it with a registered key, and Alice synced.
async fn env(writeback: bool, allow_unlock: bool, wait_secs: &str) -> Env {
    let t = TenantFixture::start_with(&["--writeback-wait-secs", wait_secs]);
    let ga = t.user_token(GA).await;
    let registered = t.register_agent(&ga, "dc1", &["corp.example.com"]).await;
    let config = t
        .create_config(
            &ga,
            json!({"domain": "corp.example.com", "passwordWriteback": writeback, "allowUnlock": allow_unlock}),
        )
        .await;
    let (status, r) = t
        .post_batch(
            &registered.token,
            &config,
            &batch(vec![user_upsert("anchor-alice", 1, ALICE, "Alice")]),
        )
        .await;
    assert_eq!(status, 200, "{r}");
    let alice = r["results"][0]["objectId"].as_str().unwrap().to_owned();
    let agent = AgentSide {
        client: t.client.clone(),
        url: t.url.clone(),
        id: registered.id,
        token: registered.token,
        key: SecretKey::generate(&mut crypto_box::aead::OsRng),
    };
    assert_eq!(agent.register_key().await, 204);
    Env {
        t,
        ga,
        agent,
        config,
        alice,
    }
}

impl Env {
    async fn reset(&self, user: &str, password: &str) -> reqwest::Response {
        self.t
            .client
            .post(self.t.at(&format!(
                "/v1.0/users/{user}/authentication/methods/{METHOD}/resetPassword"
            )))
            .bearer_auth(&self.ga)
            .json(&json!({ "newPassword": password }))
            .send()
            .await
            .unwrap()
    }

    async fn patch(&self, user: &str, body: Value) -> (u16, Value) {
        let r = self
            .t
            .client
            .patch(self.t.at(&format!("/v1.0/users/{user}")))
            .bearer_auth(&self.ga)
            .json(&body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    async fn sspr(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .t
            .client
            .post(self.t.at(&format!("/{DOMAIN}/sspr/{path}")))
            .json(&body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    async fn latest_code(&self, upn: &str) -> String {
        let body = self
            .t
            .get_json(
                &self.ga,
                format!("/api/v1/sspr/channel?userPrincipalName={upn}"),
            )
            .await;
        body["value"].as_array().unwrap().last().unwrap()["code"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// The files under the tenant's directory (state, log, seed) holding `needle`, and how many
    /// files were read.
    fn files_containing(&self, needle: &str) -> (Vec<std::path::PathBuf>, usize) {
        let mut stack = vec![self.t.dir.path().to_path_buf()];
        let (mut found, mut files) = (Vec::new(), 0);
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else if let Ok(bytes) = std::fs::read(&path) {
                    files += 1;
                    if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                        found.push(path);
                    }
                }
            }
        }
        (found, files)
    }

    /// The cleartext is in no log line and no file under the tenant's directory (state included).
    fn assert_nowhere(&self, password: &str) {
        assert!(
            !self.t.log().contains(password),
            "password in the tenant's log"
        );
        // The search does see the state: the synced user's anchor is in sled's files.
        let (with_anchor, files) = self.files_containing("anchor-alice");
        assert!(
            with_anchor
                .iter()
                .any(|p| p.starts_with(self.t.dir.path().join("state"))),
            "the search reads the state ({files} files)"
        );
        let (found, _) = self.files_containing(password);
        assert!(found.is_empty(), "password found in {found:?}");
    }
}

#[tokio::test]
async fn graph_reset_is_sealed_to_the_agent_and_the_operation_follows_its_answers() {
    let e = env(true, false, "20").await;
    let password = format!("Wb-{}-Aa1!", uuid::Uuid::new_v4().simple());
    let r = e.reset(ALICE, &password).await;
    assert_eq!(r.status(), 202);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.starts_with(&format!(
            "{}/v1.0/users/{}/authentication/operations/",
            e.t.url, e.alice
        )),
        "{location}"
    );
    let op = e.t.get_json(&e.ga, &location[e.t.url.len()..]).await;
    assert_eq!(op["status"], "notStarted", "{op}");

    let got = e.agent.poll(5).await;
    assert_eq!(got.len(), 1);
    let request = &got[0];
    assert_eq!(request["kind"], "reset");
    assert_eq!(request["sourceAnchor"], "anchor-alice");
    assert_eq!(request["userPrincipalName"], ALICE);
    assert_eq!(request["configurationId"], e.config.as_str());
    assert_eq!(request["requestedBy"], format!("admin:{}", GA.0));
    assert!(request["expiresAt"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        e.agent.open(request),
        password,
        "the password arrived intact"
    );
    let id = request["id"].as_str().unwrap();
    let op = e.t.get_json(&e.ga, &location[e.t.url.len()..]).await;
    assert_eq!(op["status"], "running", "{op}");

    assert_eq!(e.agent.answer(id, 0, "").await, 204);
    assert_eq!(
        e.agent.answer(id, 33001, "late").await,
        204,
        "a repeated answer is accepted and ignored"
    );
    let op = e.t.get_json(&e.ga, &location[e.t.url.len()..]).await;
    assert_eq!(op["status"], "succeeded", "{op}");
    assert_eq!(op["id"], id);
    assert!(e.agent.poll(0).await.is_empty(), "not handed out again");

    // A refusal: the operation fails with the agent's code.
    let r = e.reset(&e.alice, "Short1!").await;
    assert_eq!(r.status(), 202);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let (_, opened) = e
        .agent
        .serve_one(33008, "The password does not meet the length requirement.")
        .await;
    assert_eq!(opened.as_deref(), Some("Short1!"));
    let op = e.t.get_json(&e.ga, &location[e.t.url.len()..]).await;
    assert_eq!(op["status"], "failed", "{op}");
    assert!(
        op["statusDetail"].as_str().unwrap().starts_with("33008"),
        "{op}"
    );

    // Another method id, no body, a plain user's token.
    let r =
        e.t.client
            .post(e.t.at(&format!(
                "/v1.0/users/{ALICE}/authentication/methods/{}/resetPassword",
                uuid::Uuid::new_v4()
            )))
            .bearer_auth(&e.ga)
            .json(&json!({"newPassword": "x"}))
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 404);
    let r = e.reset(ALICE, "").await;
    assert_eq!(r.status(), 400);
    let bob = e.t.user_token(USER).await;
    let r =
        e.t.client
            .post(e.t.at(&format!(
                "/v1.0/users/{ALICE}/authentication/methods/{METHOD}/resetPassword"
            )))
            .bearer_auth(&bob)
            .json(&json!({"newPassword": "x"}))
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 403);
    e.assert_nowhere(&password);
}

#[tokio::test]
async fn patch_password_profile_waits_for_the_agent_and_reports_its_code() {
    let e = env(true, false, "20").await;
    let password = format!("Wb-{}-Bb2!", uuid::Uuid::new_v4().simple());
    let agent = e.agent.clone();
    let served = tokio::spawn(async move { agent.serve_one(0, "").await });
    let (status, body) = e
        .patch(
            ALICE,
            json!({"passwordProfile": {"password": password, "forceChangePasswordNextSignIn": true}}),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    let (request, opened) = served.await.unwrap();
    assert_eq!(opened.as_deref(), Some(password.as_str()));
    assert_eq!(request["forceChangeAtNextSignIn"], true);

    let agent = e.agent.clone();
    let served = tokio::spawn(async move {
        agent
            .serve_one(33008, "Password history: the password was used before.")
            .await
    });
    let (status, body) = e
        .patch(&e.alice, json!({"passwordProfile": {"password": password}}))
        .await;
    served.await.unwrap();
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "PasswordWritebackFailed");
    assert_eq!(body["error"]["innerError"]["writebackResultCode"], 33008);
    assert_eq!(body["error"]["details"][0]["code"], "33008");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("history")
    );

    // Properties mastered on-premises, and a missing password.
    let (status, body) = e.patch(ALICE, json!({"displayName": "Eve"})).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("displayName")
    );
    let (status, _) = e.patch(ALICE, json!({"passwordProfile": {}})).await;
    assert_eq!(status, 400);
    let (status, body) = e
        .patch(ALICE, json!({"passwordProfile": {"password": ["x"]}}))
        .await;
    assert_eq!(status, 400, "{body}");
    e.assert_nowhere(&password);
}

#[tokio::test]
async fn no_answer_in_time_is_a_timeout_and_the_request_is_withdrawn() {
    let e = env(true, false, "2").await;
    let started = std::time::Instant::now();
    let (status, body) = e
        .patch(
            ALICE,
            json!({"passwordProfile": {"password": "Never-Applied1!"}}),
        )
        .await;
    assert_eq!(status, 504, "{body}");
    assert_eq!(body["error"]["code"], "OnPremisesAgentTimeout");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert!(
        e.agent.poll(0).await.is_empty(),
        "a withdrawn request is never handed out"
    );
}

#[tokio::test]
async fn refusals_queue_nothing() {
    // Writeback off.
    let e = env(false, false, "5").await;
    let (status, body) = e
        .patch(ALICE, json!({"passwordProfile": {"password": "Pw-Off1!"}}))
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "PasswordWritebackDisabled");
    assert_eq!(e.reset(ALICE, "Pw-Off1!").await.status(), 403);
    let (status, _) = e
        .sspr("verificationCode", json!({"userPrincipalName": ALICE}))
        .await;
    assert_eq!(status, 403);
    assert!(e.agent.poll(0).await.is_empty());

    // Turned on through the admin API: a Hybrid Identity Administrator may.
    let hia = e.t.user_token(HIA).await;
    let r =
        e.t.client
            .put(e.t.at(&format!("/api/v1/configurations/{}/writeback", e.config)))
            .bearer_auth(&hia)
            .json(&json!({"enabled": true}))
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 200);
    let status: Value = r.json().await.unwrap();
    assert_eq!(status["enabled"], true);
    assert_eq!(status["allowUnlock"], false);
    assert_eq!(status["readyAgents"], json!([e.agent.id]));
    let cfg =
        e.t.get_json(&e.ga, format!("/api/v1/configurations/{}", e.config))
            .await;
    assert_eq!(cfg["spec"]["passwordWriteback"], true);
    assert_eq!(cfg["spec"]["allowUnlock"], false);
    assert!(cfg["revision"].as_u64().unwrap() > 1);

    // Unlock while allowUnlock is off.
    let (status, _) = e
        .sspr("verificationCode", json!({"userPrincipalName": ALICE}))
        .await;
    assert_eq!(status, 200);
    let code = e.latest_code(ALICE).await;
    let (status, body) = e
        .sspr("unlock", json!({"userPrincipalName": ALICE, "code": code}))
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "UnlockDisabled");

    // A cloud-only user, an unknown one.
    let (status, body) = e
        .patch(GA.0, json!({"passwordProfile": {"password": "Pw-Cloud1!"}}))
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "UserNotSynced");
    let (status, _) = e
        .patch(
            "nobody@contoso.onmicrosoft.com",
            json!({"passwordProfile": {"password": "Pw1!"}}),
        )
        .await;
    assert_eq!(status, 404);
    assert!(e.agent.poll(0).await.is_empty());

    // No agent with a key: a second tenant whose agent never registered one.
    let t = TenantFixture::start();
    let ga = t.user_token(GA).await;
    let agent = t.register_agent(&ga, "dc1", &["corp.example.com"]).await;
    let config = t
        .create_config(
            &ga,
            json!({"domain": "corp.example.com", "passwordWriteback": true}),
        )
        .await;
    t.post_batch(
        &agent.token,
        &config,
        &batch(vec![user_upsert("a", 1, ALICE, "Alice")]),
    )
    .await;
    let r = t
        .client
        .patch(t.at(&format!("/v1.0/users/{ALICE}")))
        .bearer_auth(&ga)
        .json(&json!({"passwordProfile": {"password": "Pw-NoKey1!"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "OnPremisesAgentUnavailable");
    let status = t
        .get_json(&ga, format!("/api/v1/configurations/{config}/writeback"))
        .await;
    assert_eq!(status["readyAgents"], json!([]));
}

#[tokio::test]
async fn another_configurations_agent_sees_nothing_and_cannot_answer() {
    let e = env(true, false, "20").await;
    let other =
        e.t.register_agent(&e.ga, "dc9", &["fabrikam.example.com"])
            .await;
    e.t.create_config(
        &e.ga,
        json!({"domain": "fabrikam.example.com", "passwordWriteback": true}),
    )
    .await;
    let other = AgentSide {
        id: other.id,
        token: other.token,
        key: SecretKey::generate(&mut crypto_box::aead::OsRng),
        ..e.agent.clone()
    };
    assert_eq!(other.register_key().await, 204);
    // Its key on the first agent: refused.
    let r =
        e.t.client
            .put(e.t.at(&format!("/api/v1/agents/{}/writebackKey", e.agent.id)))
            .bearer_auth(&other.token)
            .json(&json!({"publicKey": STANDARD.encode([7u8; 32])}))
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 403);
    // A bad key.
    let r =
        e.t.client
            .put(e.t.at(&format!("/api/v1/agents/{}/writebackKey", other.id)))
            .bearer_auth(&other.token)
            .json(&json!({"publicKey": "AAAA"}))
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 400);

    assert_eq!(e.reset(ALICE, "Pw-Iso-1!").await.status(), 202);
    assert!(
        other.poll(1).await.is_empty(),
        "another configuration's agent sees nothing"
    );
    let (status, _) = other.poll_as(&e.agent.id, 0).await;
    assert_eq!(status, 403, "nor through the first agent's path");
    let got = e.agent.poll(5).await;
    assert_eq!(got.len(), 1);
    let id = got[0]["id"].as_str().unwrap();
    assert_eq!(other.answer(id, 0, "").await, 404);
    assert_eq!(
        e.agent
            .answer(&uuid::Uuid::new_v4().to_string(), 0, "")
            .await,
        404
    );
    assert_eq!(e.agent.answer(id, 42, "").await, 400, "unknown code");
    assert_eq!(e.agent.answer(id, 0, "").await, 204);
}

#[tokio::test]
async fn self_service_codes_reset_and_unlock() {
    let e = env(true, true, "20").await;
    let password = format!("Wb-{}-Cc3!", uuid::Uuid::new_v4().simple());
    let (status, body) = e
        .sspr("verificationCode", json!({"userPrincipalName": ALICE}))
        .await;
    assert_eq!(status, 200, "{body}");
    let code = e.latest_code(ALICE).await;
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let (status, body) = e
        .sspr(
            "resetPassword",
            json!({"userPrincipalName": ALICE, "code": wrong, "newPassword": password}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "InvalidVerificationCode");
    assert!(
        e.agent.poll(0).await.is_empty(),
        "nothing queued on a wrong code"
    );

    let agent = e.agent.clone();
    let served = tokio::spawn(async move { agent.serve_one(0, "").await });
    let (status, body) = e
        .sspr(
            "resetPassword",
            json!({"userPrincipalName": ALICE, "code": code, "newPassword": password}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["code"], 0);
    let (request, opened) = served.await.unwrap();
    assert_eq!(opened.as_deref(), Some(password.as_str()));
    assert_eq!(request["requestedBy"], format!("self-service:{ALICE}"));

    // Single use.
    let (status, body) = e
        .sspr(
            "resetPassword",
            json!({"userPrincipalName": ALICE, "code": code, "newPassword": password}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "VerificationCodeExpired");

    // Three wrong tries lock the code.
    e.sspr("verificationCode", json!({"userPrincipalName": ALICE}))
        .await;
    let code = e.latest_code(ALICE).await;
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for expected in [
        "InvalidVerificationCode",
        "InvalidVerificationCode",
        "VerificationCodeLocked",
    ] {
        let (status, body) = e
            .sspr("unlock", json!({"userPrincipalName": ALICE, "code": wrong}))
            .await;
        assert_eq!(status, 400);
        assert_eq!(body["error"]["code"], expected);
    }
    let (_, body) = e
        .sspr("unlock", json!({"userPrincipalName": ALICE, "code": code}))
        .await;
    assert_eq!(body["error"]["code"], "VerificationCodeLocked");

    // Unlock: no password travels; the agent's refusal comes back with its code.
    e.sspr("verificationCode", json!({"userPrincipalName": ALICE}))
        .await;
    let code = e.latest_code(ALICE).await;
    let agent = e.agent.clone();
    let served =
        tokio::spawn(async move { agent.serve_one(33005, "The account is disabled.").await });
    let (status, body) = e
        .sspr("unlock", json!({"userPrincipalName": ALICE, "code": code}))
        .await;
    let (request, opened) = served.await.unwrap();
    assert_eq!(request["kind"], "unlock");
    assert_eq!(opened, None);
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], 33005);
    assert_eq!(body["message"], "The account is disabled.");

    // The channel is for Global Administrators.
    let hia = e.t.user_token(HIA).await;
    let r =
        e.t.client
            .get(e.t.at(&format!("/api/v1/sspr/channel?userPrincipalName={ALICE}")))
            .bearer_auth(&hia)
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 403);
    e.assert_nowhere(&password);
}

#[tokio::test]
async fn the_portal_shows_the_writeback_agent_and_switches_unlock() {
    let e = env(true, false, "5").await;
    let set_cookie = e.t.portal_set_cookie(GA).await;
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let page = |cookie: String| {
        let client = e.t.client.clone();
        let url = e.t.at("/");
        async move {
            let r = client
                .get(url)
                .header("cookie", cookie)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            r.text().await.unwrap()
        }
    };
    let html = page(cookie.clone()).await;
    assert!(
        html.contains("Allow users to unlock accounts without resetting their password"),
        "{html}"
    );
    assert!(
        html.contains(
            "<td class=\"writeback-agent\"><span class=\"status-active\">Active</span>: dc1</td>"
        ),
        "{html}"
    );
    assert!(html.contains("action=\"/portal/unlock\" class=\"unlock\""));
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    let post = |fields: Vec<(&'static str, String)>| {
        let client = e.t.no_redirect_client();
        let url = e.t.at("/portal/unlock");
        let cookie = cookie.clone();
        async move {
            let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            client
                .post(url)
                .header("cookie", cookie)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form(&pairs))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let fields = |csrf: &str| {
        vec![
            ("configurationId", e.config.clone()),
            ("enabled", "true".to_owned()),
            ("csrf", csrf.to_owned()),
        ]
    };
    assert_eq!(
        post(fields("wrong")).await,
        403,
        "the CSRF token is checked"
    );
    assert_eq!(post(fields(&csrf)).await, 303);
    let cfg =
        e.t.get_json(&e.ga, format!("/api/v1/configurations/{}", e.config))
            .await;
    assert_eq!(cfg["spec"]["allowUnlock"], true);
    assert_eq!(
        cfg["spec"]["passwordWriteback"], true,
        "the other switch kept"
    );

    // Without a key no agent serves writeback.
    let t = TenantFixture::start();
    let ga = t.user_token(GA).await;
    t.register_agent(&ga, "dc2", &["corp.example.com"]).await;
    t.create_config(&ga, json!({"domain": "corp.example.com"}))
        .await;
    let html = t.portal_page(GA, "/").await;
    assert!(
        html.contains(
            "<td class=\"writeback-agent\"><span class=\"status-inactive\">None active</span></td>"
        ),
        "{html}"
    );
}
