//! For tests/tenant_route_auth.rs: a tenant with two agents of two domains, their configurations
//! and objects ([`World`]), and for every row of `cloudsync_tenant::routes::ROUTES` a request that
//! an allowed caller could send and that would change something ([`recipe`]). A row without a recipe
//! here is a route the security test does not know how to call: it fails naming it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use cloudsync_tenant::routes::{RouteSpec, Verb};

use super::*;

/// Agent A's domain; agent B serves [`DOMAIN_B`].
pub const DOMAIN_A: &str = "corp.example.com";
/// Agent B's domain.
pub const DOMAIN_B: &str = "other.example.com";
/// A synced user of configuration A.
pub const UPN_A: &str = "ann@corp.example.com";

/// Portal sessions, signed in after the tenant's last restart (sessions live in memory).
#[derive(Default)]
pub struct Portal {
    /// `name=value` of a live GA session.
    pub cookie: String,
    /// Its CSRF token.
    pub csrf: String,
    /// The CSRF token of another live session (HIA's).
    pub other_csrf: String,
    /// `name=value` of a session that was signed out.
    pub ended_cookie: String,
}

/// Everything the recipes and cases refer to.
pub struct World {
    /// Tokens of the Global Administrator, the Hybrid Identity Administrator and a plain user.
    pub ga: String,
    /// HIA's token.
    pub hia: String,
    /// A plain user's token.
    pub user: String,
    /// The agent serving [`DOMAIN_A`].
    pub a: Agent,
    /// The agent serving [`DOMAIN_B`].
    pub b: Agent,
    /// Configuration of [`DOMAIN_A`].
    pub config_a: String,
    /// Configuration of [`DOMAIN_B`].
    pub config_b: String,
    /// Graph id of [`UPN_A`].
    pub user_a: String,
    /// Graph id of configuration A's group.
    pub group_a: String,
    /// Portal sessions.
    pub portal: Portal,
}

/// Two agents, two configurations, a user and a group in A, a user in B; A's writeback key.
pub async fn world(t: &TenantFixture) -> World {
    let ga = t.user_token(GA).await;
    let hia = t.user_token(HIA).await;
    let user = t.user_token(USER).await;
    let a = t
        .register_agent(&ga, "dc1.corp.example.com", &[DOMAIN_A])
        .await;
    let b = t
        .register_agent(&ga, "dc1.other.example.com", &[DOMAIN_B])
        .await;
    let config_a = t
        .create_config(
            &ga,
            json!({"domain": DOMAIN_A, "passwordHashSync": true, "passwordWriteback": true}),
        )
        .await;
    let config_b = t.create_config(&ga, json!({"domain": DOMAIN_B})).await;
    let key = t
        .send(
            &Req::put(format!("/api/v1/agents/{}/writebackKey", a.id))
                .auth(&a.token)
                .json(&json!({"publicKey": STANDARD.encode([7u8; 32])})),
        )
        .await;
    assert_eq!(key.status(), 204);
    let (status, body) = t
        .post_batch(
            &a.token,
            &config_a,
            &batch(vec![
                user_upsert("anchor-ann", 1, UPN_A, "Ann"),
                group_upsert("anchor-staff", 1, "Staff"),
                json!({"op": "addMember", "groupAnchor": "anchor-staff", "memberAnchor": "anchor-ann"}),
            ]),
        )
        .await;
    assert_eq!(
        (status, statuses(&body)),
        (200, vec!["success".to_owned(); 3]),
        "{body}"
    );
    let (status, body) = t
        .post_batch(
            &b.token,
            &config_b,
            &batch(vec![user_upsert(
                "anchor-bo",
                1,
                "bo@other.example.com",
                "Bo",
            )]),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let user_a = t.get_json(&ga, format!("/v1.0/users/{UPN_A}")).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let groups = t.get_json(&ga, "/v1.0/groups").await;
    let group_a = groups["value"][0]["id"].as_str().unwrap().to_owned();
    World {
        ga,
        hia,
        user,
        a,
        b,
        config_a,
        config_b,
        user_a,
        group_a,
        portal: Portal::default(),
    }
}

/// A request an allowed caller could send to a row, and what the row answers for another tenant
/// in its `{tenant}` segment.
pub struct Recipe {
    /// The request without token or query.
    pub req: Req,
    /// The path without query (the limit cases add their own).
    pub path: String,
    /// The query an allowed caller would send, if any.
    pub query: Option<String>,
    /// The status for the same request under another tenant's `{tenant}` (anonymous rows).
    pub other_tenant: Option<u16>,
}

impl Recipe {
    fn new(verb: Verb, path: String) -> Recipe {
        let method = reqwest::Method::from_bytes(verb.as_str().as_bytes()).unwrap();
        Recipe {
            req: Req::new(method, path.clone()),
            path,
            query: None,
            other_tenant: None,
        }
    }

    fn json(mut self, body: Value) -> Recipe {
        self.req = self.req.json(&body);
        self
    }

    fn form(mut self, pairs: &[(&str, &str)]) -> Recipe {
        self.req = self.req.form(form(pairs));
        self
    }

    fn query(mut self, query: &str) -> Recipe {
        self.query = Some(query.to_owned());
        self.req = self.req.with_path(format!("{}?{query}", self.path));
        self
    }

    fn other_tenant(mut self, status: u16) -> Recipe {
        self.other_tenant = Some(status);
        self
    }

    /// This recipe's request (token, headers and body as built) to `path` instead.
    pub fn at(&self, path: &str) -> Req {
        self.req.clone().with_path(path)
    }
}

/// The recipe of a row, or `None` for a row this test does not know (a new route).
pub fn recipe(w: &World, r: &RouteSpec) -> Option<Recipe> {
    use Verb::{Delete, Get, Patch, Post, Put};
    let a = &w.a.id;
    let ca = &w.config_a;
    let ua = &w.user_a;
    let request = "7d0a3f5e-1c2b-4a5d-8e9f-0a1b2c3d4e5f";
    let p = |path: String| Recipe::new(r.verb, path);
    let csrf = w.portal.csrf.as_str();
    Some(match (r.verb, r.path) {
        (Post, "/{tenant}/oauth2/v2.0/token") => p(format!("/{TENANT_ID}/oauth2/v2.0/token"))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", &w.a.client_id),
                ("client_secret", &w.a.client_secret),
                ("scope", "api://cloudsync/.default"),
            ])
            .other_tenant(400),
        (Get, "/{tenant}/v2.0/.well-known/openid-configuration") => {
            p(format!("/{TENANT_ID}/v2.0/.well-known/openid-configuration")).other_tenant(404)
        }
        (Get, "/{tenant}/discovery/v2.0/keys") => {
            p(format!("/{TENANT_ID}/discovery/v2.0/keys")).other_tenant(404)
        }
        (Post, "/{tenant}/signin") => p(format!("/{TENANT_ID}/signin"))
            .json(json!({"userPrincipalName": UPN_A, "password": "Not-the-Passw0rd"}))
            .other_tenant(404),
        (Post, "/{tenant}/sspr/verificationCode") => p(format!("/{TENANT_ID}/sspr/verificationCode"))
            .json(json!({"userPrincipalName": UPN_A}))
            .other_tenant(404),
        (Post, "/{tenant}/sspr/resetPassword") => p(format!("/{TENANT_ID}/sspr/resetPassword"))
            .json(json!({"userPrincipalName": UPN_A, "code": "123456", "newPassword": "N3w-Passw0rd!"}))
            .other_tenant(404),
        (Post, "/{tenant}/sspr/unlock") => p(format!("/{TENANT_ID}/sspr/unlock"))
            .json(json!({"userPrincipalName": UPN_A, "code": "123456"}))
            .other_tenant(404),
        (Get, "/api/v1/sspr/channel") => {
            p("/api/v1/sspr/channel".into()).query(&format!("userPrincipalName={UPN_A}"))
        }
        (Post, "/api/v1/agents") => p("/api/v1/agents".into()).json(json!({
            "hostName": "dc9.corp.example.com", "version": "1.2.3",
            "environment": "AzureCloud", "domains": [DOMAIN_A]})),
        (Get, "/api/v1/agents") => p("/api/v1/agents".into()),
        (Get, "/api/v1/agents/{id}") | (Delete, "/api/v1/agents/{id}") => {
            p(format!("/api/v1/agents/{a}"))
        }
        (Post, "/api/v1/agents/{id}/heartbeat") => p(format!("/api/v1/agents/{a}/heartbeat"))
            .json(json!({"version": "9.9.9", "acknowledgedRestarts": []})),
        (Put, "/api/v1/agents/{id}/domains") => {
            p(format!("/api/v1/agents/{a}/domains"))
                .json(json!({"domains": [DOMAIN_A, "third.example.com"]}))
        }
        (Put, "/api/v1/agents/{id}/writebackKey") => p(format!("/api/v1/agents/{a}/writebackKey"))
            .json(json!({"publicKey": STANDARD.encode([9u8; 32])})),
        (Get, "/api/v1/agents/{id}/writeback/requests") => {
            p(format!("/api/v1/agents/{a}/writeback/requests")).query("waitSeconds=0")
        }
        (Post, "/api/v1/agents/{id}/writeback/requests/{request_id}/answer") => {
            p(format!("/api/v1/agents/{a}/writeback/requests/{request}/answer"))
                .json(json!({"code": 0, "message": ""}))
        }
        (Get, "/api/v1/releases/latest") => p("/api/v1/releases/latest".into()),
        (Put, "/api/v1/releases/latest") => {
            p("/api/v1/releases/latest".into()).json(json!({"version": "9.9.9"}))
        }
        (Put, "/api/v1/releases/{version}") => {
            let mut recipe = p("/api/v1/releases/9.9.9".into());
            recipe.req = recipe
                .req
                .header(
                    cloudsync_api::release::SIGNATURE_HEADER,
                    &STANDARD.encode([1u8; 64]),
                )
                .raw("application/octet-stream", "x".repeat(1024));
            recipe
        }
        (Get, "/api/v1/releases/{version}/binary") => p("/api/v1/releases/9.9.9/binary".into()),
        (Post | Delete, "/api/v1/releases/{version}/upgrade-slot") => {
            p("/api/v1/releases/9.9.9/upgrade-slot".into())
        }
        (Post, "/api/v1/configurations") => {
            p("/api/v1/configurations".into()).json(json!({"domain": "third.example.com"}))
        }
        (Get, "/api/v1/configurations") => p("/api/v1/configurations".into()),
        (Get, "/api/v1/configurations/{id}") => p(format!("/api/v1/configurations/{ca}")),
        (Put, "/api/v1/configurations/{id}") => p(format!("/api/v1/configurations/{ca}"))
            .json(json!({"domain": DOMAIN_A, "passwordHashSync": true,
                "passwordWriteback": true, "deleteThreshold": 7})),
        (Post, "/api/v1/configurations/{id}/restart") => {
            p(format!("/api/v1/configurations/{ca}/restart")).json(json!({"scopes": ["Full"]}))
        }
        (Post, "/api/v1/configurations/{id}/batches") => {
            p(format!("/api/v1/configurations/{ca}/batches")).json(batch(vec![user_upsert(
                "anchor-ann",
                2,
                UPN_A,
                "Ann Changed",
            )]))
        }
        (Get, "/api/v1/configurations/{id}/writeback") => {
            p(format!("/api/v1/configurations/{ca}/writeback"))
        }
        (Put, "/api/v1/configurations/{id}/writeback") => {
            p(format!("/api/v1/configurations/{ca}/writeback"))
                .json(json!({"enabled": true, "allowUnlock": true}))
        }
        (Get, "/api/v1/provisioningLogs") => {
            p("/api/v1/provisioningLogs".into()).query(&format!("objectId={ua}&top=5"))
        }
        (Get, "/admin/faults") => p("/admin/faults".into()),
        (Put, "/admin/faults") => p("/admin/faults".into()).json(json!({"latencyMs": 1})),
        (Post, "/v1.0/$batch") => p("/v1.0/$batch".into()).json(json!({"requests": [
            {"id": "1", "method": "GET", "url": format!("/users/{ua}")}]})),
        (Get, "/v1.0/users/{id}") => {
            p(format!("/v1.0/users/{ua}")).query("$select=id,displayName")
        }
        (Patch, "/v1.0/users/{id}") => p(format!("/v1.0/users/{ua}")).json(json!({
            "passwordProfile": {"password": "N3w-Passw0rd!", "forceChangePasswordNextSignIn": false}})),
        (Post, "/v1.0/users/{id}/authentication/methods/{method}/resetPassword") => p(format!(
            "/v1.0/users/{ua}/authentication/methods/28c10230-6103-485e-b985-444c60001490/resetPassword"
        ))
        .json(json!({"newPassword": "N3w-Passw0rd!"})),
        (Get, "/v1.0/users/{id}/authentication/operations/{operation}") => {
            p(format!("/v1.0/users/{ua}/authentication/operations/{request}"))
        }
        (Get, "/v1.0/{*path}") => {
            p(format!("/v1.0/groups/{}/members", w.group_a)).query("$top=5")
        }
        (Get, "/") => p("/".into()).query(&format!("objectId={ua}")),
        (Get, "/portal/signin") | (Get, "/portal/portal.css") => p(r.path.to_owned()),
        (Post, "/portal/signin") => {
            p("/portal/signin".into()).form(&[("username", GA.0), ("password", GA.1)])
        }
        (Post, "/portal/signout") => p("/portal/signout".into()).form(&[("csrf", csrf)]),
        (Post, "/portal/writeback") | (Post, "/portal/unlock") => p(r.path.to_owned()).form(&[
            ("configurationId", ca),
            ("enabled", if r.path == "/portal/writeback" { "false" } else { "true" }),
            ("csrf", csrf),
        ]),
        _ => return None,
    })
}
