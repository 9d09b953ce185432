//! `DELETE /api/v1/agents/{id}` (the uninstaller's call) against the real tenant binary: admins only
//! (an agent's own token and a plain user's are refused with the role named), the agent disappears
//! from the list, its client id can no longer get a token, and a second delete or an unknown id
//! answers 404, a malformed id 400.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/tenant.rs"]
mod tenant_fixture;

use serde_json::Value;
use tenant_fixture::*;

async fn delete(t: &TenantFixture, token: &str, id: &str) -> (u16, String) {
    let r = t
        .client
        .delete(t.at(&format!("/api/v1/agents/{id}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// POSTs JSON and returns the answer's JSON; any status but 2xx fails the test.
async fn post_json(t: &TenantFixture, token: &str, path: &str, body: &Value) -> Value {
    let r = t
        .client
        .post(t.at(path))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    assert!(status.is_success(), "{path}: {status} {text}");
    serde_json::from_str(&text).unwrap()
}

async fn agent_ids(t: &TenantFixture, admin: &str) -> Vec<String> {
    let list = t.get_json(admin, "/api/v1/agents").await;
    list["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn an_admin_deletes_an_agent_registration() {
    let t = TenantFixture::start();
    let admin = t.user_token(HIA).await;
    let agent = t.register_agent(&admin, "dc1", &["corp.example.com"]).await;
    let keep = t.register_agent(&admin, "dc2", &["corp.example.com"]).await;

    // Not an admin: the agent itself, a plain user.
    let (status, body) = delete(&t, &agent.token, &agent.id).await;
    assert_eq!(status, 403, "{body}");
    let user = t.user_token(USER).await;
    let (status, body) = delete(&t, &user, &agent.id).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("HybridIdentityAdministrator"), "{body}");
    assert!(agent_ids(&t, &admin).await.contains(&agent.id));

    let (status, body) = delete(&t, &admin, &agent.id).await;
    assert_eq!(status, 204, "{body}");
    let ids = agent_ids(&t, &admin).await;
    assert!(!ids.contains(&agent.id), "{ids:?}");
    assert!(ids.contains(&keep.id), "the other agent must stay: {ids:?}");
    // The removed agent's client can no longer sign in.
    let refused = t
        .client_token(&agent.client_id, &agent.client_secret)
        .await
        .unwrap_err();
    assert!(refused.0 == 400 || refused.0 == 401, "{refused:?}");
    // The kept one still can.
    t.client_token(&keep.client_id, &keep.client_secret)
        .await
        .unwrap();

    let (status, body) = delete(&t, &admin, &agent.id).await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = delete(&t, &admin, "not-a-guid").await;
    assert_eq!(status, 400, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert!(
        v["error"]["message"].as_str().unwrap().contains("GUID"),
        "{v}"
    );
}

/// `PUT /api/v1/agents/{id}/domains` (an install that adds a domain to an installed agent): admins only,
/// and the next heartbeat pairs the agent with the configurations of the new list — before, a domain
/// added after registration never reached the agent.
#[tokio::test]
async fn an_admin_replaces_an_agents_domains_and_heartbeats_follow() {
    let t = TenantFixture::start();
    let admin = t.user_token(HIA).await;
    let agent = t.register_agent(&admin, "dc1", &["corp.example.com"]).await;
    let mut ids = Vec::new();
    for domain in ["corp.example.com", "emea.example.com"] {
        let created = post_json(
            &t,
            &admin,
            "/api/v1/configurations",
            &serde_json::json!({ "domain": domain }),
        )
        .await;
        ids.push(created["id"].as_str().unwrap().to_string());
    }
    let paired = |hb: &Value| -> Vec<String> {
        hb["configurations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_string())
            .collect()
    };
    let beat =
        serde_json::json!({ "version": "1.0.0", "acknowledgedRestarts": [], "configurations": [] });
    let hb_path = format!("/api/v1/agents/{}/heartbeat", agent.id);
    let hb = post_json(&t, &agent.token, &hb_path, &beat).await;
    assert_eq!(paired(&hb), vec![ids[0].clone()]);

    let put = |token: String, body: Value| {
        let url = t.at(&format!("/api/v1/agents/{}/domains", agent.id));
        let client = t.client.clone();
        async move {
            let r = client
                .put(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let both = serde_json::json!({ "domains": ["corp.example.com", "EMEA.example.com"] });
    // The agent itself may not widen what it serves.
    let (status, body) = put(agent.token.clone(), both.clone()).await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = put(
        admin.clone(),
        serde_json::json!({ "domains": ["not a domain"] }),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = put(admin.clone(), both).await;
    assert_eq!(status, 200, "{body}");
    let hb = post_json(&t, &agent.token, &hb_path, &beat).await;
    let mut got = paired(&hb);
    got.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(got, want);
}
