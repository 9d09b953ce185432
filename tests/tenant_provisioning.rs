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

    let r = t.client.post(&url).json(&ok).send().await.unwrap();
    assert_odata(r, 401).await;
    let r = t
        .client
        .post(&url)
        .bearer_auth("not.a.token")
        .json(&ok)
        .send()
        .await
        .unwrap();
    assert_odata(r, 401).await;
    let r = t
        .client
        .post(&url)
        .bearer_auth(&admin)
        .json(&ok)
        .send()
        .await
        .unwrap();
    let body = assert_odata(r, 403).await;
    assert!(
        body["error"]["message"].as_str().unwrap().contains("Agent"),
        "{body}"
    );
    let r = t
        .client
        .post(&url)
        .bearer_auth(&agent.token)
        .header("content-type", "application/json")
        .body("{\"batchId\": 1")
        .send()
        .await
        .unwrap();
    assert_odata(r, 400).await;
    let r = t
        .client
        .post(&url)
        .bearer_auth(&agent.token)
        .json(&json!({"batchId": "x", "operations": [{"op": "explode"}]}))
        .send()
        .await
        .unwrap();
    assert_odata(r, 400).await;
    let r = t
        .client
        .post(&url)
        .bearer_auth(&agent.token)
        .header("content-type", "application/json")
        .body(oversized_json())
        .send()
        .await
        .unwrap();
    assert_odata(r, 413).await;
    let many: Vec<Value> = (0..501)
        .map(|i| json!({"op": "addMember", "groupAnchor": "g", "memberAnchor": format!("m{i}")}))
        .collect();
    let (status, body) = t.post_batch(&agent.token, &config, &batch(many)).await;
    assert_eq!(status, 413, "{body}");
    let r = t
        .client
        .post(t.at("/api/v1/configurations/not-a-guid/batches"))
        .bearer_auth(&agent.token)
        .json(&ok)
        .send()
        .await
        .unwrap();
    assert_odata(r, 400).await;
    let r = t
        .client
        .post(t.at(&format!(
            "/api/v1/configurations/{}/batches",
            uuid::Uuid::new_v4()
        )))
        .bearer_auth(&agent.token)
        .json(&ok)
        .send()
        .await
        .unwrap();
    assert_odata(r, 404).await;
    let (status, _) = t.post_batch(&agent.token, &config, &ok).await;
    assert_eq!(status, 200);
    // An agent of another domain may not push to this configuration.
    let stranger = t
        .register_agent(&admin, "dc.other", &["other.example.com"])
        .await;
    let r = t
        .client
        .post(&url)
        .bearer_auth(&stranger.token)
        .json(&ok)
        .send()
        .await
        .unwrap();
    let body = assert_odata(r, 403).await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("corp.example.com"),
        "{body}"
    );
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
        let req = |token: Option<&str>| {
            let r = t.client.request(method.clone(), t.at(&path));
            match token {
                Some(tok) => r.bearer_auth(tok),
                None => r,
            }
        };
        assert_odata(req(None).json(&body).send().await.unwrap(), 401).await;
        let forbidden = assert_odata(req(Some(&user)).json(&body).send().await.unwrap(), 403).await;
        assert!(
            forbidden["error"]["message"]
                .as_str()
                .unwrap()
                .contains("HybridIdentityAdministrator"),
            "{path}: {forbidden}"
        );
        assert_odata(
            req(Some(&agent.token)).json(&body).send().await.unwrap(),
            403,
        )
        .await;
        assert_odata(
            req(Some(&admin))
                .header("content-type", "application/json")
                .body("[1,")
                .send()
                .await
                .unwrap(),
            400,
        )
        .await;
        assert_odata(
            req(Some(&admin))
                .header("content-type", "application/json")
                .body(oversized_json())
                .send()
                .await
                .unwrap(),
            413,
        )
        .await;
        let ok = req(Some(&admin)).json(&body).send().await.unwrap();
        assert!(ok.status().is_success(), "{method} {path}: {}", ok.status());
    }
    // Reads: admins and agents may list configurations; plain users may not.
    let r = t
        .client
        .get(t.at("/api/v1/configurations"))
        .bearer_auth(&agent.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let list: Value = r.json().await.unwrap();
    assert_eq!(list["value"].as_array().unwrap().len(), 2);
    assert_odata(
        t.client
            .get(t.at("/api/v1/configurations"))
            .bearer_auth(&user)
            .send()
            .await
            .unwrap(),
        403,
    )
    .await;
    let one: Value = t
        .get_json(&agent.token, &format!("/api/v1/configurations/{config}"))
        .await;
    assert_eq!(one["spec"]["passwordWriteback"], true);
    assert_eq!(one["revision"], 3, "created (1), edited (2), restarted (3)");
    // A second configuration for the same domain conflicts.
    let r = t
        .client
        .post(t.at("/api/v1/configurations"))
        .bearer_auth(&admin)
        .json(&spec)
        .send()
        .await
        .unwrap();
    assert_odata(r, 409).await;
    // Restart needs at least one scope, and only known ones.
    let restart = t.at(&format!("/api/v1/configurations/{config}/restart"));
    assert_odata(
        t.client
            .post(&restart)
            .bearer_auth(&admin)
            .json(&json!({"scopes": []}))
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    assert_odata(
        t.client
            .post(&restart)
            .bearer_auth(&admin)
            .json(&json!({"scopes": ["Escrows2"]}))
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
}

#[tokio::test]
async fn heartbeat_and_logs_routes_check_identity_and_input() {
    let t = TenantFixture::start();
    let (admin, agent, config) = setup(&t, json!({"domain": "corp.example.com"})).await;
    let other = t.register_agent(&admin, "dc2", &["corp.example.com"]).await;
    let hb = t.at(&format!("/api/v1/agents/{}/heartbeat", agent.id));
    let body = json!({"version": "1.2.4"});
    assert_odata(t.client.post(&hb).json(&body).send().await.unwrap(), 401).await;
    assert_odata(
        t.client
            .post(&hb)
            .bearer_auth(&admin)
            .json(&body)
            .send()
            .await
            .unwrap(),
        403,
    )
    .await;
    // One agent cannot heartbeat for another.
    assert_odata(
        t.client
            .post(&hb)
            .bearer_auth(&other.token)
            .json(&body)
            .send()
            .await
            .unwrap(),
        403,
    )
    .await;
    assert_odata(
        t.client
            .post(&hb)
            .bearer_auth(&agent.token)
            .header("content-type", "application/json")
            .body("{\"version\":")
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    assert_odata(
        t.client
            .post(&hb)
            .bearer_auth(&agent.token)
            .header("content-type", "application/json")
            .body(oversized_json())
            .send()
            .await
            .unwrap(),
        413,
    )
    .await;
    let r = t
        .client
        .post(&hb)
        .bearer_auth(&agent.token)
        .json(&body)
        .send()
        .await
        .unwrap();
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
    let logs = t.at("/api/v1/provisioningLogs");
    assert_odata(t.client.get(&logs).send().await.unwrap(), 401).await;
    assert_odata(
        t.client
            .get(&logs)
            .bearer_auth(&agent.token)
            .send()
            .await
            .unwrap(),
        403,
    )
    .await;
    assert_odata(
        t.client
            .get(format!("{logs}?objectId=nope"))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    // Paging: newest first, `nextBefore` continues.
    let p1: Value = t
        .client
        .get(format!("{logs}?top=1"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(p1["value"][0]["sourceAnchor"], "l2");
    let before = p1["nextBefore"].as_u64().unwrap();
    let p2: Value = t
        .client
        .get(format!("{logs}?top=1&before={before}"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(p2["value"][0]["sourceAnchor"], "l1");
}
