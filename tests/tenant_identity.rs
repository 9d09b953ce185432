//! The identity endpoints against the real tenant binary: OAuth2 token grants and their AADSTS-shaped
//! errors, OpenID discovery per environment, and the sign-in route's input checks.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/tenant.rs"]
mod tenant_fixture;

use serde_json::{Value, json};
use tenant_fixture::*;

#[tokio::test]
async fn token_and_discovery_endpoints() {
    let t = TenantFixture::start_with(&["--environment", "AzureUSGovernment"]);
    let conf: Value = t
        .send(&Req::get(format!(
            "/{DOMAIN}/v2.0/.well-known/openid-configuration"
        )))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        conf["token_endpoint"],
        json!(format!("{}/{TENANT_ID}/oauth2/v2.0/token", t.url))
    );
    assert_eq!(
        conf["issuer"],
        json!(format!("https://login.microsoftonline.us/{TENANT_ID}/v2.0"))
    );
    assert_eq!(conf["cloud_instance_name"], "microsoftonline.us");
    t.check([case(
        "discovery of another domain",
        Req::get("/other.onmicrosoft.com/v2.0/.well-known/openid-configuration"),
        404,
    )])
    .await;

    let token_url = format!("/{TENANT_ID}/oauth2/v2.0/token");
    let post = |body: String| {
        let req = Req::post(&token_url).form(body);
        let t = &t;
        async move {
            let r = t.send(&req).await;
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (status, ok) = post(form(&[
        ("grant_type", "password"),
        ("client_id", "cloudsync-installer"),
        ("username", GA.0),
        ("password", GA.1),
        ("scope", "https://graph.microsoft.com/.default"),
    ]))
    .await;
    assert_eq!(status, 200);
    assert_eq!(ok["token_type"], "Bearer");
    assert_eq!(ok["expires_in"], 3600);
    let (status, bad) = post(form(&[
        ("grant_type", "password"),
        ("client_id", "cloudsync-installer"),
        ("username", GA.0),
        ("password", "nope"),
        ("scope", "https://graph.microsoft.com/.default"),
    ]))
    .await;
    assert_eq!(
        (status, bad["error"].as_str().unwrap()),
        (400, "invalid_grant")
    );
    assert_eq!(bad["error_codes"], json!([50126]));
    let (status, bad) = post(form(&[
        ("grant_type", "authorization_code"),
        ("client_id", "cloudsync-installer"),
    ]))
    .await;
    assert_eq!(
        (status, bad["error"].as_str().unwrap()),
        (400, "unsupported_grant_type")
    );
    let (status, bad) = post(form(&[
        ("grant_type", "password"),
        ("username", GA.0),
        ("password", GA.1),
        ("scope", "openid"),
    ]))
    .await;
    assert_eq!(
        (status, bad["error"].as_str().unwrap()),
        (400, "invalid_scope")
    );
    let (status, bad) = post("%%%".into()).await;
    assert_eq!(
        (status, bad["error"].as_str().unwrap()),
        (400, "invalid_request")
    );
    let r = t
        .send(
            &Req::post("/nope.example/oauth2/v2.0/token").form(form(&[("grant_type", "password")])),
        )
        .await;
    assert_eq!(r.status(), 400);
    let big = format!(
        "grant_type=password&pad={}",
        "x".repeat(8 * 1024 * 1024 + 16)
    );
    // An oversized form is refused, and so is an agent registered for another cloud.
    let admin = t.user_token(GA).await;
    t.check([
        case("oversized form", Req::post(&token_url).form(big), 413),
        case(
            "agent for another cloud",
            Req::post("/api/v1/agents")
                .auth(&admin)
                .json(&json!({"hostName": "h", "version": "1", "environment": "AzureCloud"})),
            400,
        )
        .message_has("AzureUSGovernment"),
    ])
    .await;
}

#[tokio::test]
async fn signin_route_rejects_malformed_and_oversized_bodies() {
    let t = TenantFixture::start_with(&["--http"]);
    assert!(t.url.starts_with("http://"));
    let url = format!("/{DOMAIN}/signin");
    t.check([
        case(
            "malformed JSON",
            Req::post(&url).raw_json("{\"userPrincipalName\":"),
            400,
        ),
        case(
            "no password",
            Req::post(&url).json(&json!({"userPrincipalName": "a@b"})),
            400,
        ),
        case(
            "oversized body",
            Req::post(&url).raw_json(oversized_json()),
            413,
        ),
        // Seeded cloud-only admins have no synced hash: the sign-in check is for synced users.
        case(
            "cloud-only admin",
            Req::post(&url).json(&json!({"userPrincipalName": GA.0, "password": GA.1})),
            401,
        ),
        case(
            "unknown domain",
            Req::post("/other.example/signin")
                .json(&json!({"userPrincipalName": "a@b", "password": "x"})),
            404,
        ),
    ])
    .await;
}

#[tokio::test]
async fn tokens_expire() {
    let t = TenantFixture::start_with(&["--token-lifetime-secs", "3"]);
    let token = t.user_token(GA).await;
    let users = Req::get("/v1.0/users").auth(&token);
    let r = t.send(&users).await;
    assert_eq!(r.status(), 200);
    // Poll with a deadline until the token has expired.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let r = t.send(&users).await;
        if r.status() == 401 {
            let body = assert_odata(r, 401).await;
            assert!(
                body["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("expired"),
                "{body}"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the token never expired"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// Entra's AADSTS50053 text (learn.microsoft.com, "Microsoft Entra authentication and authorization
/// error codes"), the oracle for the lockout answers.
const AADSTS50053: &str = "AADSTS50053: Your account is locked because the user tried to sign in too many times with an incorrect user ID or password.";

#[tokio::test]
async fn password_guessing_is_locked_out_per_account_and_address_and_logged() {
    // Entra's threshold (10); a 2 s lockout so the test can wait it out.
    let t = TenantFixture::start_with(&["--http", "--lockout-duration-secs", "2"]);
    let token_url = format!("/{TENANT_ID}/oauth2/v2.0/token");
    let grant = |(upn, password): (&str, &str)| {
        Req::post(&token_url).form(form(&[
            ("grant_type", "password"),
            ("client_id", "cloudsync-installer"),
            ("username", upn),
            ("password", password),
            ("scope", "https://graph.microsoft.com/.default"),
        ]))
    };
    let send = |client: reqwest::Client, req: Req| {
        let t = &t;
        async move {
            let r = t.build(&client, &req).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let guess = "Wrong-Guess-7731!";
    for i in 0..10 {
        let (status, body) = send(t.client.clone(), grant((GA.0, guess))).await;
        assert_eq!(
            (status, &body["error_codes"]),
            (400, &json!([50126])),
            "guess {i}: {body}"
        );
    }
    // The 11th wrong password and then the right one: locked, in the token endpoint's OAuth shape.
    for password in [guess, GA.1] {
        let (status, body) = send(t.client.clone(), grant((GA.0, password))).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"], "invalid_grant");
        assert_eq!(body["error_codes"], json!([50053]));
        assert_eq!(body["error_description"], AADSTS50053);
    }
    // Another account from the same address, and the same account from another address, sign in.
    let (status, _) = send(t.client.clone(), grant(HIA)).await;
    assert_eq!(status, 200, "another account is not locked");
    let elsewhere = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap();
    let (status, body) = send(elsewhere, grant(GA)).await;
    assert_eq!(status, 200, "GA from another address is not locked: {body}");

    // The sign-in check counts the same way: 10 × 401, then 400 AADSTS50053.
    let signin = Req::post(format!("/{DOMAIN}/signin"))
        .json(&json!({"userPrincipalName": "ann@contoso.onmicrosoft.com", "password": guess}));
    for _ in 0..10 {
        t.check([case("wrong sign-in", signin.clone(), 401)]).await;
    }
    t.check([case("locked sign-in", signin, 400).message_has(AADSTS50053)])
        .await;

    // After the lockout the right password works again (polled with a deadline).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (status, body) = send(t.client.clone(), grant(GA)).await;
        if status == 200 {
            break;
        }
        assert_eq!(body["error_codes"], json!([50053]), "{body}");
        assert!(
            std::time::Instant::now() < deadline,
            "the lockout never ended"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }

    // Every failure is logged with account, address and reason; no password is.
    let log = t.log();
    let failures: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("Sign-in failed") && l.contains(GA.0))
        .collect();
    assert_eq!(failures.len(), 10, "{log}");
    assert!(
        failures
            .iter()
            .all(|l| l.contains("127.0.0.1") && l.contains("invalid_credentials")),
        "{failures:?}"
    );
    assert!(
        log.contains("AADSTS50053") && log.contains("lockout_remaining_secs"),
        "{log}"
    );
    for secret in [guess, GA.1, HIA.1] {
        assert!(!log.contains(secret), "the log holds a password: {secret}");
    }
}

#[tokio::test]
async fn an_address_spraying_many_accounts_is_locked_when_counted() {
    let t = TenantFixture::start_with(&["--http", "--lockout-address-threshold", "5"]);
    let signin = |upn: String| {
        Req::post(format!("/{DOMAIN}/signin"))
            .json(&json!({"userPrincipalName": upn, "password": "Spray-2026!"}))
    };
    // One wrong password for each of 5 accounts: no account reaches 10, the address reaches 5.
    for i in 0..5 {
        t.check([case("spray", signin(format!("u{i}@{DOMAIN}")), 401)])
            .await;
    }
    let grant = Req::post(format!("/{TENANT_ID}/oauth2/v2.0/token")).form(form(&[
        ("grant_type", "password"),
        ("client_id", "cloudsync-installer"),
        ("username", GA.0),
        ("password", GA.1),
        ("scope", "https://graph.microsoft.com/.default"),
    ]));
    let r = t.send(&grant).await;
    assert_eq!(
        r.status(),
        400,
        "the spraying address is locked for every account"
    );
    assert_eq!(
        r.json::<Value>().await.unwrap()["error_codes"],
        json!([50053])
    );
    let elsewhere = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap();
    let r = t.build(&elsewhere, &grant).send().await.unwrap();
    assert_eq!(r.status(), 200, "another address is not");
}

/// Posts a token request form and returns (status, body).
async fn token_request(t: &TenantFixture, pairs: &[(&str, &str)]) -> (u16, Value) {
    let r = t
        .send(&Req::post(format!("/{TENANT_ID}/oauth2/v2.0/token")).form(form(pairs)))
        .await;
    (r.status().as_u16(), r.json().await.unwrap())
}

/// Issue 18 item 7: a token is issued only for this tenant's resources and (password grant) only
/// to the installer's public client. Expected codes are Entra's (AADSTS500011 for an unknown
/// resource, AADSTS700016 for an unknown application).
#[tokio::test]
async fn tokens_are_issued_only_for_this_api_and_to_known_clients() {
    let t = TenantFixture::start();
    let password = |client: &'static str, scope: &'static str| {
        [
            ("grant_type", "password"),
            ("client_id", client),
            ("username", GA.0),
            ("password", GA.1),
            ("scope", scope),
        ]
    };
    // An unknown client id on the password grant.
    for client in ["i", "", "00000000-0000-0000-0000-000000000000"] {
        let (status, body) = token_request(
            &t,
            &password(client, "https://graph.microsoft.com/.default"),
        )
        .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("unauthorized_client")),
            "client {client:?}: {body}"
        );
        assert_eq!(body["error_codes"], json!([700016]));
    }
    // Another resource: no token at all.
    let (status, body) = token_request(
        &t,
        &password("cloudsync-installer", "https://evil.example/.default"),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_resource")),
        "{body}"
    );
    assert_eq!(body["error_codes"], json!([500011]));
    // The agent's client id is not a public client either.
    let admin = t.user_token(GA).await;
    let agent = t
        .register_agent(&admin, "dc1.corp.example.com", &["corp.example.com"])
        .await;
    let (status, body) = token_request(
        &t,
        &[
            ("grant_type", "password"),
            ("client_id", &agent.client_id),
            ("username", GA.0),
            ("password", GA.1),
            ("scope", "https://graph.microsoft.com/.default"),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("unauthorized_client")),
        "{body}"
    );
    // Agents and admins still get tokens for the two resources, and the `//.default` spelling.
    let (status, body) = token_request(
        &t,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &agent.client_id),
            ("client_secret", &agent.client_secret),
            ("scope", "https://evil.example/.default"),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_resource")),
        "{body}"
    );
    let (status, body) = token_request(
        &t,
        &password(
            "cloudsync-installer",
            "https://graph.microsoft.com//.default",
        ),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

/// Issue 18 item 7: a token whose audience or issuer is not this tenant's API is refused by the
/// API (401), though the tenant's own key signed it: minted with the key from the state directory,
/// as a mis-issued token would be.
#[tokio::test]
async fn the_api_refuses_tokens_of_another_audience_or_issuer() {
    let mut t = TenantFixture::start();
    let key = t.signing_key();
    let admin = t.user_token(GA).await;
    let signed = |claims: Value| mint(&key, &claims);
    let good: Value = claims_of(&admin);
    let mut evil = good.clone();
    evil["aud"] = json!("https://evil.example");
    let mut other_issuer = good.clone();
    other_issuer["iss"] = json!(format!("https://login.microsoftonline.us/{TENANT_ID}/v2.0"));
    assert_eq!(
        t.send(&Req::get("/v1.0/users").auth(&signed(good)))
            .await
            .status(),
        200,
        "the re-signed original is accepted (so the refusals below are the claims')"
    );
    t.check([
        case(
            "token for another audience",
            Req::get("/v1.0/users").auth(&signed(evil)),
            401,
        )
        .message_has("audience"),
        case(
            "token of another issuer",
            Req::get("/api/v1/configurations").auth(&signed(other_issuer)),
            401,
        )
        .message_has("issuer"),
    ])
    .await;
}

/// Issue 18 item 7: the role check runs before the body is parsed, so a caller without the role
/// gets 403 whatever its body, never a 400 that describes the schema.
#[tokio::test]
async fn roles_are_checked_before_the_body_is_parsed() {
    let t = TenantFixture::start();
    let admin = t.user_token(GA).await;
    let agent = t
        .register_agent(&admin, "dc1.corp.example.com", &["corp.example.com"])
        .await;
    t.check([
        // Authorize before parsing: an agent's malformed body to admin routes is 403, not 400.
        case(
            "agent's bad body to create a configuration",
            Req::post("/api/v1/configurations")
                .auth(&agent.token)
                .raw_json("{not json"),
            403,
        )
        .message_has("GlobalAdministrator"),
        case(
            "agent's bad body to register an agent",
            Req::post("/api/v1/agents")
                .auth(&agent.token)
                .raw_json("[]"),
            403,
        ),
        case(
            "agent's bad body to the fault settings",
            Req::put("/admin/faults")
                .auth(&agent.token)
                .raw_json("{\"latencyMs\":\"x\"}"),
            403,
        ),
        case(
            "admin's bad body to an agent's batch route",
            Req::post("/api/v1/configurations/3f2504e0-4f89-41d3-9a0c-0305e82c3301/batches")
                .auth(&admin)
                .raw_json("{"),
            403,
        ),
        case(
            "user's bad body to Graph $batch",
            Req::post("/v1.0/$batch")
                .auth(&t.user_token(USER).await)
                .raw_json("{"),
            403,
        ),
    ])
    .await;
}

/// Issue 18 item 7: an oversized body over HTTP/2 gets the same 413 as over HTTP/1.1 (and a body
/// sent without a token its 401), not a reset stream. hyper's own client tolerates the reset that
/// follows an early answer (RFC 9113 8.1); curl 7.88, the probe's client, reports "Stream error in
/// the HTTP/2 framing layer" and no status, so curl is the client here.
#[tokio::test]
async fn oversized_bodies_over_http2_get_413() {
    let t = TenantFixture::start();
    let admin = t.user_token(GA).await;
    let ca = t.dir.path().join("ca.pem");
    let body = t.dir.path().join("huge.json");
    std::fs::write(
        &body,
        format!("{{\"pad\":\"{}\"}}", "x".repeat(64 * 1024 * 1024)),
    )
    .unwrap();
    let url = t.at("/api/v1/configurations");
    let curl = |token: Option<&str>| {
        let mut cmd = std::process::Command::new("curl");
        cmd.args([
            "-sS",
            "--http2",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{http_version}",
        ])
        .arg("--cacert")
        .arg(&ca)
        .args(["-H", "content-type: application/json", "--data-binary"])
        .arg(format!("@{}", body.display()))
        .arg(&url);
        if let Some(token) = token {
            cmd.args(["-H", &format!("authorization: Bearer {token}")]);
        }
        let out = cmd.output().expect("curl runs");
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (got, err) = curl(Some(&admin));
    assert_eq!(
        got, "413 2",
        "over the limit with a token; curl said: {err}"
    );
    let (got, err) = curl(None);
    assert_eq!(got, "401 2", "without a token; curl said: {err}");

    // hyper's client over HTTP/2 gets the OData 413 body too.
    let h2 = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&std::fs::read(&ca).unwrap()).unwrap()])
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let r = t
        .build(
            &h2,
            &Req::post("/api/v1/configurations")
                .auth(&admin)
                .raw_json(oversized_json()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status(), 413);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "RequestEntityTooLarge", "{body}");
}
