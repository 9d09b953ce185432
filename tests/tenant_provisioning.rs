//! The provisioning routes against the real tenant binary: for each route the happy path, a wrong
//! token, a wrong role, a malformed body (400, OData error) and an oversized body (413).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/tenant.rs"]
mod tenant_fixture;

use serde_json::{Value, json};
use tenant_fixture::*;

#[tokio::test]
async fn batch_route_rejects_wrong_token_role_malformed_and_oversized() {
    let t = TenantFixture::start();
    let (admin, agent, config) = setup(&t, json!({"domain": "corp.example.com"})).await;
    let url = t.at(&format!("/api/v1/configurations/{config}/batches"));
    let ok = batch(vec![user_upsert("a", 1, "a@contoso.onmicrosoft.com", "A")]);

    t.check([
        case("no token", Req::post(&url).json(&ok), 401),
        case(
            "garbage token",
            Req::post(&url).auth("not.a.token").json(&ok),
            401,
        ),
        case("admin token", Req::post(&url).auth(&admin).json(&ok), 403).message_has("Agent"),
        case(
            "malformed JSON",
            Req::post(&url)
                .auth(&agent.token)
                .raw_json("{\"batchId\": 1"),
            400,
        ),
        case(
            "unknown op",
            Req::post(&url)
                .auth(&agent.token)
                .json(&json!({"batchId": "x", "operations": [{"op": "explode"}]})),
            400,
        ),
        case(
            "oversized body",
            Req::post(&url)
                .auth(&agent.token)
                .raw_json(oversized_json()),
            413,
        ),
    ])
    .await;
    let many: Vec<Value> = (0..501)
        .map(|i| json!({"op": "addMember", "groupAnchor": "g", "memberAnchor": format!("m{i}")}))
        .collect();
    let (status, body) = t.post_batch(&agent.token, &config, &batch(many)).await;
    assert_eq!(status, 413, "{body}");
    let unknown = format!("/api/v1/configurations/{}/batches", uuid::Uuid::new_v4());
    t.check([
        case(
            "configuration id not a GUID",
            Req::post("/api/v1/configurations/not-a-guid/batches")
                .auth(&agent.token)
                .json(&ok),
            400,
        ),
        case(
            "unknown configuration",
            Req::post(unknown).auth(&agent.token).json(&ok),
            404,
        ),
    ])
    .await;
    let (status, _) = t.post_batch(&agent.token, &config, &ok).await;
    assert_eq!(status, 200);
    // An agent of another domain may not push to this configuration; to it the configuration does
    // not exist (as for its GET), and the refusal does not name the configuration's domain.
    let stranger = t
        .register_agent(&admin, "dc.other", &["other.example.com"])
        .await;
    let body = t
        .expect_error(
            "agent of another domain",
            &Req::post(&url).auth(&stranger.token).json(&ok),
            404,
        )
        .await;
    assert!(!body.to_string().contains("corp.example.com"), "{body}");
}

#[tokio::test]
async fn admin_routes_reject_wrong_token_role_malformed_and_oversized() {
    let t = TenantFixture::start();
    let (admin, agent, config) = setup(&t, json!({"domain": "corp.example.com"})).await;
    let user = t.user_token(USER).await;
    let spec = json!({"domain": "other.example.com"});
    let routes: Vec<(reqwest::Method, String, Value)> = vec![
        (
            reqwest::Method::POST,
            "/api/v1/agents".into(),
            json!({"hostName": "h", "version": "1", "environment": "AzureCloud"}),
        ),
        (
            reqwest::Method::POST,
            "/api/v1/configurations".into(),
            spec.clone(),
        ),
        (
            reqwest::Method::PUT,
            format!("/api/v1/configurations/{config}"),
            json!({"domain": "corp.example.com", "passwordWriteback": true}),
        ),
        (
            reqwest::Method::POST,
            format!("/api/v1/configurations/{config}/restart"),
            json!({"scopes": ["Watermark"]}),
        ),
    ];
    for (method, path, body) in routes {
        let req = Req::new(method.clone(), &path);
        t.check([
            case("no token", req.clone().json(&body), 401),
            case("plain user", req.clone().auth(&user).json(&body), 403)
                .message_has("HybridIdentityAdministrator"),
            case("agent", req.clone().auth(&agent.token).json(&body), 403),
            case(
                "malformed JSON",
                req.clone().auth(&admin).raw_json("[1,"),
                400,
            ),
            case(
                "oversized body",
                req.clone().auth(&admin).raw_json(oversized_json()),
                413,
            ),
        ])
        .await;
        let ok = t.send(&req.auth(&admin).json(&body)).await;
        assert!(ok.status().is_success(), "{method} {path}: {}", ok.status());
    }
    // Reads: admins list every configuration, agents only those of their domains (issue 18 item
    // 2: the other domain's configuration is left out); plain users may not list.
    let r = t
        .send(&Req::get("/api/v1/configurations").auth(&agent.token))
        .await;
    assert_eq!(r.status(), 200);
    let list: Value = r.json().await.unwrap();
    assert_eq!(list["value"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list["value"][0]["id"], config.as_str());
    let all = t.get_json(&admin, "/api/v1/configurations").await;
    assert_eq!(all["value"].as_array().unwrap().len(), 2, "{all}");
    t.check([case(
        "plain user lists configurations",
        Req::get("/api/v1/configurations").auth(&user),
        403,
    )])
    .await;
    let one: Value = t
        .get_json(&agent.token, &format!("/api/v1/configurations/{config}"))
        .await;
    assert_eq!(one["spec"]["passwordWriteback"], true);
    assert_eq!(one["revision"], 3, "created (1), edited (2), restarted (3)");
    // A second configuration for the same domain conflicts; restart needs at least one scope, and
    // only known ones.
    let restart = format!("/api/v1/configurations/{config}/restart");
    t.check([
        case(
            "second configuration for the domain",
            Req::post("/api/v1/configurations").auth(&admin).json(&spec),
            409,
        ),
        case(
            "restart without scopes",
            Req::post(&restart)
                .auth(&admin)
                .json(&json!({"scopes": []})),
            400,
        ),
        case(
            "restart with an unknown scope",
            Req::post(&restart)
                .auth(&admin)
                .json(&json!({"scopes": ["Escrows2"]})),
            400,
        ),
    ])
    .await;
}

#[tokio::test]
async fn heartbeat_and_logs_routes_check_identity_and_input() {
    let t = TenantFixture::start();
    let (admin, agent, config) = setup(&t, json!({"domain": "corp.example.com"})).await;
    let other = t.register_agent(&admin, "dc2", &["corp.example.com"]).await;
    let hb = Req::post(format!("/api/v1/agents/{}/heartbeat", agent.id));
    let body = json!({"version": "1.2.4"});
    t.check([
        case("no token", hb.clone().json(&body), 401),
        case("admin token", hb.clone().auth(&admin).json(&body), 403),
        // One agent cannot heartbeat for another.
        case(
            "another agent",
            hb.clone().auth(&other.token).json(&body),
            403,
        ),
        case(
            "malformed JSON",
            hb.clone().auth(&agent.token).raw_json("{\"version\":"),
            400,
        ),
        case(
            "oversized body",
            hb.clone().auth(&agent.token).raw_json(oversized_json()),
            413,
        ),
    ])
    .await;
    let r = t.send(&hb.auth(&agent.token).json(&body)).await;
    assert_eq!(r.status(), 200);
    let agents: Value = t.get_json(&admin, "/api/v1/agents").await;
    let me = agents["value"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == json!(agent.id))
        .unwrap();
    assert_eq!(me["version"], "1.2.4");
    assert_eq!(me["status"], "Active");

    // Client credentials: a wrong secret and an unknown client are refused in the AADSTS shape.
    let (status, err) = t.client_token(&agent.client_id, "wrong").await.unwrap_err();
    assert_eq!(status, 401);
    assert_eq!(err["error"], "invalid_client");
    assert!(
        err["error_description"]
            .as_str()
            .unwrap()
            .starts_with("AADSTS7000215")
    );
    let (status, _) = t
        .client_token("no-such-client", &agent.client_secret)
        .await
        .unwrap_err();
    assert_eq!(status, 401);

    // Logs: searchable by object id; admins only; malformed query → 400.
    let (_, r) = t
        .post_batch(
            &agent.token,
            &config,
            &batch(vec![
                user_upsert("l1", 1, "l1@contoso.onmicrosoft.com", "L1"),
                user_upsert("l2", 1, "l2@contoso.onmicrosoft.com", "L2"),
            ]),
        )
        .await;
    let id = r["results"][1]["objectId"].as_str().unwrap();
    let page: Value = t
        .get_json(&admin, &format!("/api/v1/provisioningLogs?objectId={id}"))
        .await;
    let entries = page["value"].as_array().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["sourceAnchor"], "l2");
    assert_eq!(entries[0]["action"], "upsert");
    assert_eq!(entries[0]["result"], "success");
    assert_eq!(entries[0]["agentId"], json!(agent.id));
    assert!(entries[0]["time"].as_str().unwrap().ends_with('Z'));
    let logs = "/api/v1/provisioningLogs";
    t.check([
        case("logs without token", Req::get(logs), 401),
        case("logs as agent", Req::get(logs).auth(&agent.token), 403),
        case(
            "logs with a malformed objectId",
            Req::get(format!("{logs}?objectId=nope")).auth(&admin),
            400,
        ),
    ])
    .await;
    // Paging: newest first, `nextBefore` continues.
    let p1 = t.get_json(&admin, format!("{logs}?top=1")).await;
    assert_eq!(p1["value"][0]["sourceAnchor"], "l2");
    let before = p1["nextBefore"].as_u64().unwrap();
    let p2 = t
        .get_json(&admin, format!("{logs}?top=1&before={before}"))
        .await;
    assert_eq!(p2["value"][0]["sourceAnchor"], "l1");
}
