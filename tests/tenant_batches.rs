//! Batch semantics against the real tenant binary: idempotent replays, versions, references, UPN
//! clashes, password hashes and the sign-in check, deletes and the threshold, quarantine, restarts.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/tenant.rs"]
mod tenant_fixture;

use serde_json::{Value, json};
use tenant_fixture::*;

/// DSInternals' published OrgId hash of `Pa$$w0rd` (ConvertTo-OrgIdHash Pester test).
const PPH1_PASSWORD: &str = "Pa$$w0rd";
const PPH1: &str = "v1;PPH1_MD4,317ee9d1dec6508fa510,1000,7eaea8e1628dffee62cf319f4e1fc05254da30a1d42ff755ff352f5b13497531;";

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
    let ca_before = std::fs::read(t.dir.path().join("ca.pem")).unwrap();
    t.restart();
    let ca_after = std::fs::read(t.dir.path().join("ca.pem")).unwrap();
    assert_eq!(
        ca_before, ca_after,
        "the CA must survive a restart so clients keep trusting it"
    );
    let (status, after) = t.post_batch(&agent.token, &config, &b).await;
    assert_eq!(status, 200, "{after}\n{}", t.log());
    assert_eq!(after["replayed"], true);
    let users: Value = t
        .get_json(&admin, "/v1.0/users?$select=userPrincipalName")
        .await;
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
    let page: Value = t.get_json(admin, "/api/v1/provisioningLogs?top=1000").await;
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
        .get_json(&admin, &format!("/api/v1/configurations/{config}"))
        .await;
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
        .send(
            &Req::post(format!("/api/v1/configurations/{config}/restart"))
                .auth(&admin)
                .json(&json!({"scopes": ["ForceDeletes"]})),
        )
        .await;
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
                .send(
                    &Req::post(format!("/api/v1/agents/{}/heartbeat", agent.id))
                        .auth(&agent.token)
                        .json(&json!({"version": "1.2.4", "acknowledgedRestarts": acks})),
                )
                .await;
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

    let users: Value = t.get_json(&admin, "/v1.0/users").await;
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
        .send(
            &Req::post(format!("/api/v1/configurations/{config}/restart"))
                .auth(&admin)
                .json(&json!({"scopes": ["Quarantine"]})),
        )
        .await;
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

/// A write budget of 10 tokens refilled at 0.1/s: a batch of which only part fits is applied up to
/// the budget, in order; the rest gets per-item `Throttled` with `retryAfterSeconds` and is not
/// applied. A replay of that batch id returns the same results and applies nothing; a resend of the
/// throttled items under a new id, with the budget empty, is refused whole with 429.
#[tokio::test]
async fn a_partially_throttled_batch_applies_what_fits_and_throttles_the_rest_per_item() {
    let t =
        TenantFixture::start_with(&["--write-capacity", "10", "--write-refill-per-second", "0.1"]);
    let (admin, agent, config) = setup(&t, json!({"domain": "corp.example.com"})).await;
    let op = |i: usize| {
        user_upsert(
            &format!("anchor-{i}"),
            1,
            &format!("u{i}@contoso.onmicrosoft.com"),
            "U",
        )
    };
    let (status, body) = t
        .post_batch(&agent.token, &config, &batch((0..8).map(op).collect()))
        .await;
    assert_eq!(status, 200, "{body}");
    // 2 tokens left for 5 operations.
    let b = batch((8..13).map(op).collect());
    let (status, first) = t.post_batch(&agent.token, &config, &b).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(
        statuses(&first),
        [
            "success",
            "success",
            "error:Throttled",
            "error:Throttled",
            "error:Throttled"
        ]
    );
    let results = first["results"].as_array().unwrap();
    for r in &results[2..] {
        assert_eq!(r["error"]["retriable"], true, "{r}");
        // 3 tokens missing at 0.1 per second: 30 s (the few milliseconds of refill since the
        // bucket ran dry round up to the same whole second).
        assert_eq!(r["error"]["retryAfterSeconds"], 30, "{r}");
        assert!(r.get("objectId").is_none(), "not applied, no object: {r}");
    }
    for r in &results[..2] {
        assert!(r["error"].is_null(), "{r}");
    }

    let (status, replay) = t.post_batch(&agent.token, &config, &b).await;
    assert_eq!(status, 200, "{replay}");
    assert_eq!(replay["replayed"], true);
    assert_eq!(replay["results"], first["results"]);

    let (status, body) = t
        .post_batch(&agent.token, &config, &batch((10..13).map(op).collect()))
        .await;
    assert_eq!(status, 429, "nothing fits any more: {body}");

    let page: Value = t
        .get_json(&admin, "/api/v1/provisioningLogs?top=1000")
        .await;
    let entries = page["value"].as_array().unwrap();
    let anchors_with = |result: &str, code: Option<&str>| {
        let mut a: Vec<String> = entries
            .iter()
            .filter(|e| e["result"] == result && e["errorCode"].as_str() == code)
            .map(|e| e["sourceAnchor"].as_str().unwrap().to_owned())
            .collect();
        a.sort();
        a
    };
    let mut applied: Vec<String> = (0..10).map(|i| format!("anchor-{i}")).collect();
    applied.sort();
    assert_eq!(
        anchors_with("success", None),
        applied,
        "each fitting op once"
    );
    assert_eq!(
        anchors_with("error", Some("Throttled")),
        ["anchor-10", "anchor-11", "anchor-12"],
        "one log entry per throttled operation, none for the replay or the 429"
    );
}

/// A batch's `reasons` reach the provisioning log entry of the operation they name, and only that
/// one; a reason naming no operation of the batch or longer than the limit refuses the whole batch
/// (400) before anything is applied.
#[tokio::test]
async fn reasons_reach_the_provisioning_log_and_bad_ones_refuse_the_batch() {
    let t = TenantFixture::start();
    let (admin, agent, config) = setup(&t, json!({"domain": "corp.example.com"})).await;
    let before = log_count(&t, &admin).await;

    let mut b = batch(vec![
        user_upsert("anchor-ann", 10, "ann@contoso.onmicrosoft.com", "Ann Lee"),
        user_upsert("anchor-bo", 11, "bo@contoso.onmicrosoft.com", "Bo Chen"),
    ]);
    b["reasons"] = json!({"2": "ConfigurationChanged: scope, revision 3"});
    let (status, body) = t.post_batch(&agent.token, &config, &b).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("reasons[2]"), "{body}");
    b["reasons"] = json!({"1": "x".repeat(257)});
    let (status, body) = t.post_batch(&agent.token, &config, &b).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(log_count(&t, &admin).await, before, "nothing was applied");

    b["reasons"] = json!({"1": "ConfigurationChanged: scope, revision 3"});
    let (status, body) = t.post_batch(&agent.token, &config, &b).await;
    assert_eq!(status, 200, "{body}");
    let page: Value = t.get_json(&admin, "/api/v1/provisioningLogs?top=10").await;
    let reason_of = |anchor: &str| {
        page["value"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["sourceAnchor"] == anchor)
            .map(|e| e["reason"].clone())
            .unwrap()
    };
    assert_eq!(reason_of("anchor-ann"), Value::Null);
    assert_eq!(
        reason_of("anchor-bo"),
        json!("ConfigurationChanged: scope, revision 3")
    );
    // The portal's log shows it, escaped like every other field.
    let mut b = batch(vec![user_upsert(
        "anchor-cy",
        12,
        "cy@contoso.onmicrosoft.com",
        "Cy",
    )]);
    b["reasons"] = json!({"0": "<b>ConfigurationChanged</b>"});
    let (status, body) = t.post_batch(&agent.token, &config, &b).await;
    assert_eq!(status, 200, "{body}");
    let page = t.portal_page(HIA, "/").await;
    assert!(
        page.contains("<span class=\"reason\">ConfigurationChanged: scope, revision 3</span>"),
        "{page}"
    );
    assert!(
        page.contains("&lt;b&gt;ConfigurationChanged&lt;/b&gt;")
            && !page.contains("<b>ConfigurationChanged"),
        "{page}"
    );
}
