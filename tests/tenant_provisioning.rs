//! The provisioning API against the real tenant binary: registration, heartbeats, configurations,
//! restarts, batches (idempotency, versions, references, thresholds, quarantine), logs, sign-in.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/tenant.rs"]
mod tenant_fixture;

use serde_json::{Value, json};
use tenant_fixture::*;

/// DSInternals' published OrgId hash of `Pa$$w0rd` (ConvertTo-OrgIdHash Pester test).
const PPH1_PASSWORD: &str = "Pa$$w0rd";
const PPH1: &str = "v1;PPH1_MD4,317ee9d1dec6508fa510,1000,7eaea8e1628dffee62cf319f4e1fc05254da30a1d42ff755ff352f5b13497531;";

async fn setup(t: &TenantFixture, spec: Value) -> (String, Agent, String) {
    let admin = t.user_token(HIA).await;
    let agent = t
        .register_agent(&admin, "dc1.corp.example.com", &["corp.example.com"])
        .await;
    let config = t.create_config(&admin, spec).await;
    (admin, agent, config)
}

fn statuses(body: &Value) -> Vec<String> {
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

#[tokio::test]
async fn batches_apply_in_order_and_replays_apply_nothing_twice() {
    let t = TenantFixture::start();
    let (admin, agent, config) = setup(
        &t,
        json!({"domain": "corp.example.com", "passwordHashSync": true}),
    )
    .await;

    let b = batch(vec![
        user_upsert("anchor-ann", 10, "ann@contoso.onmicrosoft.com", "Ann Lee"),
        user_upsert("anchor-bo", 11, "bo@contoso.onmicrosoft.com", "Bo Chen"),
        group_upsert("anchor-staff", 12, "Staff"),
        json!({"op": "addMember", "groupAnchor": "anchor-staff", "memberAnchor": "anchor-ann"}),
        json!({"op": "addMember", "groupAnchor": "anchor-staff", "memberAnchor": "anchor-missing"}),
        // Same UPN as Ann, other anchor: permanent error.
        user_upsert(
            "anchor-imposter",
            13,
            "ANN@contoso.onmicrosoft.com",
            "Imposter",
        ),
        // Older version of Ann: skipped.
        user_upsert("anchor-ann", 9, "old@contoso.onmicrosoft.com", "Old Ann"),
        json!({"op": "setPasswordHash", "sourceAnchor": "anchor-ann", "version": 14, "credential": PPH1}),
        json!({"op": "setPasswordHash", "sourceAnchor": "anchor-bo", "version": 15, "credential": "v1;PPH1_MD4,nothex,1000,00;"}),
    ]);
    let (status, first) = t.post_batch(&agent.token, &config, &b).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["replayed"], false);
    assert_eq!(
        statuses(&first),
        [
            "success",
            "success",
            "success",
            "success",
            "error:ReferenceNotFound",
            "error:DuplicateUserPrincipalName",
            "skipped",
            "success",
            "error:InvalidPasswordHash",
        ]
    );
    let results = first["results"].as_array().unwrap();
    assert_eq!(results[4]["error"]["retriable"], true);
    assert_eq!(results[5]["error"]["retriable"], false);
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r["index"], i);
    }

    // The same batch id again: stored results, nothing applied twice (no new log entries).
    let logs_before = log_count(&t, &admin).await;
    let (status, again) = t.post_batch(&agent.token, &config, &b).await;
    assert_eq!(status, 200);
    assert_eq!(again["replayed"], true);
    assert_eq!(again["results"], first["results"]);
    assert_eq!(log_count(&t, &admin).await, logs_before);

    // The member that did not exist: send it, then the retry succeeds.
    let (_, fixed) = t
        .post_batch(&agent.token, &config, &batch(vec![
            user_upsert("anchor-missing", 16, "cy@contoso.onmicrosoft.com", "Cy Diaz"),
            json!({"op": "addMember", "groupAnchor": "anchor-staff", "memberAnchor": "anchor-missing"}),
            json!({"op": "addMember", "groupAnchor": "anchor-staff", "memberAnchor": "anchor-missing"}),
        ]))
        .await;
    assert_eq!(statuses(&fixed), ["success", "success", "skipped"]);

    // Sign-in proves the synced hash end to end; wrong password, unknown user → 401.
    let signin = |upn: &'static str, pw: &'static str| {
        let t = &t;
        async move {
            t.client
                .post(t.at(&format!("/{DOMAIN}/signin")))
                .json(&json!({"userPrincipalName": upn, "password": pw}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(
        signin("ann@contoso.onmicrosoft.com", PPH1_PASSWORD).await,
        200
    );
    assert_eq!(
        signin("Ann@Contoso.onmicrosoft.com", PPH1_PASSWORD).await,
        200
    );
    assert_eq!(signin("ann@contoso.onmicrosoft.com", "Pa$$w0rD").await, 401);
    assert_eq!(
        signin("bo@contoso.onmicrosoft.com", PPH1_PASSWORD).await,
        401
    );
    assert_eq!(
        signin("nobody@contoso.onmicrosoft.com", PPH1_PASSWORD).await,
        401
    );
    // A synced user can also use the password grant (role User).
    let tok = t
        .user_token(("ann@contoso.onmicrosoft.com", PPH1_PASSWORD))
        .await;
    assert!(!tok.is_empty());

    // Disable Ann: the cloud refuses the sign-in although the hash matches.
    let mut disabled = user_upsert("anchor-ann", 20, "ann@contoso.onmicrosoft.com", "Ann Lee");
    disabled["attributes"]["accountEnabled"] = json!(false);
    let (_, r) = t
        .post_batch(&agent.token, &config, &batch(vec![disabled]))
        .await;
    assert_eq!(statuses(&r), ["success"]);
    assert_eq!(
        signin("ann@contoso.onmicrosoft.com", PPH1_PASSWORD).await,
        401
    );

    // State survives a restart: same objects, batch ids still known, tokens still valid.
    let mut t = t;
    t.restart();
    let (status, after) = t.post_batch(&agent.token, &config, &b).await;
    assert_eq!(status, 200, "{after}\n{}", t.log());
    assert_eq!(after["replayed"], true);
    let users: Value = t
        .client
        .get(t.at("/v1.0/users?$select=userPrincipalName"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut upns: Vec<&str> = users["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["userPrincipalName"].as_str().unwrap())
        .collect();
    upns.sort_unstable();
    assert_eq!(
        upns,
        [
            "ann@contoso.onmicrosoft.com",
            "bo@contoso.onmicrosoft.com",
            "cy@contoso.onmicrosoft.com"
        ]
    );
}

async fn log_count(t: &TenantFixture, admin: &str) -> usize {
    let page: Value = t
        .client
        .get(t.at("/api/v1/provisioningLogs?top=1000"))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    page["value"].as_array().unwrap().len()
}

#[tokio::test]
async fn deletes_tombstone_objects_and_the_threshold_stages_them_until_force_deletes() {
    let t = TenantFixture::start();
    let (admin, agent, config) = setup(
        &t,
        json!({"domain": "corp.example.com", "deleteThreshold": 3}),
    )
    .await;
    let ups: Vec<Value> = (0..5)
        .map(|i| {
            user_upsert(
                &format!("a{i}"),
                1,
                &format!("u{i}@contoso.onmicrosoft.com"),
                &format!("User {i}"),
            )
        })
        .collect();
    t.post_batch(&agent.token, &config, &batch(ups)).await;
    let del = |anchor: &str, v: u64| json!({"op": "delete", "kind": "user", "sourceAnchor": anchor, "version": v});
    // Threshold 3 means at most 2 deletes per window.
    let (_, r) = t
        .post_batch(
            &agent.token,
            &config,
            &batch(vec![
                del("a0", 2),
                del("a1", 2),
                del("a2", 2),
                del("a0", 3),
                del("nope", 1),
            ]),
        )
        .await;
    assert_eq!(
        statuses(&r),
        [
            "success",
            "success",
            "error:DeleteThresholdExceeded",
            "skipped",
            "skipped"
        ]
    );
    let cfg: Value = t
        .client
        .get(t.at(&format!("/api/v1/configurations/{config}")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(cfg["health"]["state"], "deleteThresholdExceeded");

    // A stale upsert of a deleted object is ignored; the UPN of a deleted user is free again.
    let (_, r) = t
        .post_batch(
            &agent.token,
            &config,
            &batch(vec![
                user_upsert("a0", 2, "u0@contoso.onmicrosoft.com", "User 0"),
                user_upsert("fresh", 1, "u0@contoso.onmicrosoft.com", "Fresh"),
            ]),
        )
        .await;
    assert_eq!(statuses(&r), ["skipped", "success"]);

    // The heartbeat shows no restart yet; an admin restarts with ForceDeletes.
    let restart = t
        .client
        .post(t.at(&format!("/api/v1/configurations/{config}/restart")))
        .bearer_auth(&admin)
        .json(&json!({"scopes": ["ForceDeletes"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(restart.status(), 202);
    let restart: Value = restart.json().await.unwrap();
    assert_eq!(restart["configuration"]["health"]["state"], "healthy");
    let (_, r) = t
        .post_batch(
            &agent.token,
            &config,
            &batch(vec![del("a2", 2), del("a3", 2), del("a4", 2)]),
        )
        .await;
    assert_eq!(statuses(&r), ["success", "success", "success"]);

    // The agent learns about the restart from its heartbeat and acknowledges it.
    let hb = |acks: Vec<Value>| {
        let t = &t;
        let agent = &agent;
        async move {
            let r = t
                .client
                .post(t.at(&format!("/api/v1/agents/{}/heartbeat", agent.id)))
                .bearer_auth(&agent.token)
                .json(&json!({"version": "1.2.4", "acknowledgedRestarts": acks}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.unwrap()
        }
    };
    let first = hb(vec![]).await;
    assert_eq!(first["pendingRestarts"][0]["id"], restart["restartId"]);
    assert_eq!(
        first["pendingRestarts"][0]["scopes"],
        json!(["ForceDeletes"])
    );
    assert_eq!(first["configurations"][0]["id"], json!(config));
    let second = hb(vec![restart["restartId"].clone()]).await;
    assert_eq!(second["pendingRestarts"], json!([]));

    let users: Value = t
        .client
        .get(t.at("/v1.0/users"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        users["value"].as_array().unwrap().len(),
        1,
        "only 'fresh' is left: {users}"
    );
}

#[tokio::test]
async fn consecutive_failed_batches_quarantine_until_restart() {
    let t = TenantFixture::start();
    let (admin, agent, config) = setup(&t, json!({"domain": "corp.example.com"})).await;
    let bad = || {
        batch(vec![
            json!({"op": "upsert", "kind": "user", "sourceAnchor": "x", "version": 1, "attributes": {"displayName": "No UPN"}}),
        ])
    };
    for _ in 0..3 {
        let (_, r) = t.post_batch(&agent.token, &config, &bad()).await;
        assert_eq!(statuses(&r), ["error:InvalidAttribute"]);
    }
    let good = batch(vec![user_upsert(
        "ok",
        1,
        "ok@contoso.onmicrosoft.com",
        "Ok",
    )]);
    let (_, r) = t.post_batch(&agent.token, &config, &good).await;
    assert_eq!(statuses(&r), ["error:Quarantined"]);
    let r = t
        .client
        .post(t.at(&format!("/api/v1/configurations/{config}/restart")))
        .bearer_auth(&admin)
        .json(&json!({"scopes": ["Quarantine"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let (_, r) = t
        .post_batch(
            &agent.token,
            &config,
            &batch(vec![user_upsert(
                "ok",
                1,
                "ok@contoso.onmicrosoft.com",
                "Ok",
            )]),
        )
        .await;
    assert_eq!(statuses(&r), ["success"]);
}

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
        .client
        .get(t.at(&format!("/api/v1/configurations/{config}")))
        .bearer_auth(&agent.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
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
    let agents: Value = t
        .client
        .get(t.at("/api/v1/agents"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
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
        .client
        .get(t.at(&format!("/api/v1/provisioningLogs?objectId={id}")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
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
