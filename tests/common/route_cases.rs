//! For tests/tenant_route_auth.rs: the cases each row of `cloudsync_tenant::routes::ROUTES` gets
//! (by its access, isolation, query and body rules), and the runner that sends one and checks its
//! answer. The list of cases is in that test's module doc.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cloudsync_api::auth::Role;
use cloudsync_tenant::routes::{Access, BodyRule, Isolation, QueryRule, RouteSpec, Verb};
use serde_json::{Value, json};

use super::route_recipes::{Recipe, World};
use super::*;

/// One request and what it must get.
pub struct Check {
    row: String,
    name: String,
    req: Req,
    status: u16,
    needle: Option<String>,
    location: Option<&'static str>,
}

pub fn check(row: &str, name: &str, req: Req, status: u16) -> Check {
    Check {
        row: row.to_owned(),
        name: name.to_owned(),
        req,
        status,
        needle: None,
        location: None,
    }
}

impl Check {
    pub fn has(mut self, needle: &str) -> Check {
        self.needle = Some(needle.to_owned());
        self
    }

    pub fn to(mut self, location: &'static str) -> Check {
        self.location = Some(location);
        self
    }
}

/// Sends `c` (redirects not followed); the failure, if any.
pub async fn run(t: &TenantFixture, client: &reqwest::Client, c: &Check) -> Option<String> {
    let label = format!(
        "{} — {} ({} {})",
        c.row,
        c.name,
        c.req.method(),
        cut(c.req.path(), 120)
    );
    let response = match t.build(client, &c.req).send().await {
        Ok(r) => r,
        Err(e) => return Some(format!("{label}: transport error {e:?}")),
    };
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .map(str::to_owned);
    let text = response.text().await.unwrap_or_default();
    if status != c.status {
        return Some(format!(
            "{label}: status {status}, expected {}; body: {}",
            c.status,
            cut(&text, 300)
        ));
    }
    if let Some(needle) = &c.needle
        && !text.contains(needle.as_str())
    {
        return Some(format!(
            "{label}: body lacks {needle:?}: {}",
            cut(&text, 300)
        ));
    }
    if c.location.is_some() && location.as_deref() != c.location {
        return Some(format!(
            "{label}: location {location:?}, expected {:?}",
            c.location
        ));
    }
    if status >= 400 {
        // An OData error ({error: {code, message}}), an OAuth error ({error, error_description})
        // or the portal's HTML page.
        if let Ok(body) = serde_json::from_str::<Value>(&text) {
            let odata = body["error"]["code"]
                .as_str()
                .is_some_and(|s| !s.is_empty())
                && body["error"]["message"]
                    .as_str()
                    .is_some_and(|s| !s.is_empty());
            let oauth = body["error"].as_str().is_some()
                && body["error_description"]
                    .as_str()
                    .is_some_and(|s| !s.is_empty());
            if !odata && !oauth {
                return Some(format!("{label}: not an error body: {}", cut(&text, 300)));
            }
        } else if !text.starts_with("<!doctype html>") {
            return Some(format!(
                "{label}: neither JSON nor the portal's page: {}",
                cut(&text, 300)
            ));
        }
    }
    None
}

pub fn cut(s: &str, n: usize) -> String {
    if s.chars().count() > n {
        format!("{}…", s.chars().take(n).collect::<String>())
    } else {
        s.to_owned()
    }
}

pub fn row_name(r: &RouteSpec) -> String {
    format!("{} {}", r.verb.as_str(), r.path)
}

/// The token of a caller the row allows: agent A where the row is about agents' own things (or
/// only agents may call it), else the first admin it allows.
pub fn allowed<'a>(w: &'a World, roles: &[Role], isolation: Isolation) -> &'a str {
    let agent = roles.contains(&Role::Agent);
    if agent && (isolation != Isolation::None || !roles.contains(&Role::GlobalAdministrator)) {
        &w.a.token
    } else if roles.contains(&Role::GlobalAdministrator) {
        &w.ga
    } else {
        &w.hia
    }
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The token cases of a row with roles (module doc).
pub fn role_cases(w: &World, key: &[u8], r: &RouteSpec, rc: &Recipe, out: &mut Vec<Check>) {
    let Access::Roles(roles) = r.access else {
        return;
    };
    let row = row_name(r);
    let token = allowed(w, roles, r.isolation);
    let base = claims_of(token);
    let with = |changes: &[(&str, Value)]| {
        let mut c = base.clone();
        for (k, v) in changes {
            c[*k] = v.clone();
        }
        c
    };
    let other_tid = uuid::Uuid::new_v4();
    let n = now();
    let unsigned = {
        use base64::Engine;
        let enc = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        format!(
            "{}.{}.",
            enc(br#"{"alg":"none","typ":"JWT"}"#),
            enc(&serde_json::to_vec(&base).unwrap())
        )
    };
    let req = || rc.req.clone();
    let unauthenticated: Vec<(&str, Req, &str)> = vec![
        ("no token", req(), "Access token is empty"),
        (
            "Basic credentials",
            req().header("authorization", "Basic Z2E6R2EtUGFzc3cwcmQh"),
            "Bearer",
        ),
        ("garbage token", req().auth("abc.def"), "malformed"),
        (
            "unsigned token (alg none)",
            req().auth(&unsigned),
            "signature",
        ),
        (
            "another tenant's token",
            req().auth(&mint(
                key,
                &with(&[
                    ("tid", json!(other_tid)),
                    (
                        "iss",
                        json!(format!(
                            "https://login.microsoftonline.com/{other_tid}/v2.0"
                        )),
                    ),
                ]),
            )),
            "another tenant",
        ),
        (
            "forged with another key",
            req().auth(&mint(&[0x42; 32], &base)),
            "signature",
        ),
        (
            "another issuer",
            req().auth(&mint(
                key,
                &with(&[(
                    "iss",
                    json!(format!("https://login.microsoftonline.us/{TENANT_ID}/v2.0")),
                )]),
            )),
            "issuer",
        ),
        (
            "another audience",
            req().auth(&mint(key, &with(&[("aud", json!("https://evil.example"))]))),
            "audience",
        ),
        (
            "expired",
            req().auth(&mint(
                key,
                &with(&[
                    ("iat", json!(n - 7200)),
                    ("nbf", json!(n - 7200)),
                    ("exp", json!(n - 60)),
                ]),
            )),
            "expired",
        ),
        (
            "not yet valid",
            req().auth(&mint(
                key,
                &with(&[
                    ("iat", json!(n + 3600)),
                    ("nbf", json!(n + 3600)),
                    ("exp", json!(n + 7200)),
                ]),
            )),
            "expired",
        ),
    ];
    for (name, req, needle) in unauthenticated {
        out.push(check(&row, name, req, 401).has(needle));
    }
    let principals = [
        ("GlobalAdministrator", Role::GlobalAdministrator, &w.ga),
        (
            "HybridIdentityAdministrator",
            Role::HybridIdentityAdministrator,
            &w.hia,
        ),
        ("a plain user", Role::User, &w.user),
        ("an agent", Role::Agent, &w.a.token),
    ];
    for (who, role, token) in principals {
        if !roles.contains(&role) {
            out.push(
                check(&row, &format!("wrong role: {who}"), req().auth(token), 403)
                    .has("Insufficient privileges"),
            );
        }
    }
    let other = match r.isolation {
        Isolation::OwnAgentForbidden => Some(("another agent", 403)),
        Isolation::OwnAgentHidden => Some(("another agent", 404)),
        Isolation::AgentDomainsHidden => Some(("another configuration's agent", 404)),
        Isolation::None | Isolation::AgentDomainsFiltered => None,
    };
    if let Some((name, status)) = other {
        out.push(check(&row, name, req().auth(&w.b.token), status));
    }
}

/// The session cases of a portal row (module doc).
pub fn portal_cases(
    w: &World,
    r: &RouteSpec,
    rc: &Recipe,
    cookie_name: &str,
    out: &mut Vec<Check>,
) {
    let row = row_name(r);
    let refused = |c: Check| match r.verb {
        Verb::Get => c.to("/portal/signin"),
        _ => c,
    };
    let status = if r.verb == Verb::Get { 303 } else { 401 };
    let req = || rc.req.clone();
    for (name, req) in [
        ("no session", req()),
        ("a bearer token instead of a session", req().auth(&w.ga)),
        (
            "a forged session cookie",
            req().header(
                "cookie",
                &format!("{cookie_name}=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
            ),
        ),
        (
            "a signed-out session",
            req().header("cookie", &w.portal.ended_cookie),
        ),
    ] {
        out.push(refused(check(&row, name, req, status)));
    }
    if let (Verb::Post, Some(body)) = (r.verb, portal_forms(w, r)) {
        let live = |form: String| {
            rc.at(&rc.path)
                .header("cookie", &w.portal.cookie)
                .form(form)
        };
        out.push(check(
            &row,
            "no session, oversized form (refused before the body)",
            rc.req.clone().form(big_form()),
            401,
        ));
        out.push(check(&row, "no CSRF token", live(body.without_csrf.clone()), 403).has("CSRF"));
        out.push(
            check(
                &row,
                "another session's CSRF token",
                live(body.other_csrf.clone()),
                403,
            )
            .has("CSRF"),
        );
        out.push(
            check(
                &row,
                "cross-origin (Origin)",
                live(body.own.clone()).header("origin", "https://evil.example"),
                403,
            )
            .has("Cross-origin"),
        );
        out.push(
            check(
                &row,
                "cross-site (Sec-Fetch-Site)",
                live(body.own.clone()).header("sec-fetch-site", "cross-site"),
                403,
            )
            .has("Cross-origin"),
        );
    }
}

/// A portal POST's form with the live session's CSRF token, without one, and with another
/// session's.
struct PortalForms {
    own: String,
    without_csrf: String,
    other_csrf: String,
}

fn portal_forms(w: &World, r: &RouteSpec) -> Option<PortalForms> {
    let fields: Vec<(&str, &str)> = match r.path {
        "/portal/signout" => vec![],
        "/portal/writeback" => vec![("configurationId", &w.config_a), ("enabled", "false")],
        "/portal/unlock" => vec![("configurationId", &w.config_a), ("enabled", "true")],
        _ => return None,
    };
    let with = |csrf: Option<&str>| {
        let mut f = fields.clone();
        if let Some(c) = csrf {
            f.push(("csrf", c));
        }
        form(&f)
    };
    Some(PortalForms {
        own: with(Some(&w.portal.csrf)),
        without_csrf: with(None),
        other_csrf: with(Some(&w.portal.other_csrf)),
    })
}

/// A form body just over the 8 MiB limit.
pub fn big_form() -> String {
    format!("pad={}", "x".repeat(cloudsync_api::MAX_BODY_BYTES + 16))
}

/// The limit cases every row gets, sent by a caller the row allows (module doc).
pub fn limit_cases(w: &World, r: &RouteSpec, rc: &Recipe, out: &mut Vec<Check>) {
    let row = row_name(r);
    let as_allowed = |req: Req| match r.access {
        Access::Roles(roles) => req.auth(allowed(w, roles, r.isolation)),
        Access::PortalSession => req.header("cookie", &w.portal.cookie),
        Access::Anonymous | Access::PortalPublic => req,
    };
    let at = |query: &str| as_allowed(rc.at(&format!("{}?{query}", rc.path)));
    out.push(
        check(
            &row,
            "query over 8 KiB",
            at(&format!("pad={}", "x".repeat(9000))),
            414,
        )
        .has("query string"),
    );
    out.push(check(&row, "malformed % escape", at("%zz=1"), 400).has("hex"));
    out.push(check(&row, "query not UTF-8", at("a=%ff%fe"), 400).has("UTF-8"));
    out.push(check(&row, "control character", at("a=%00"), 400).has("control"));
    let (unknown, twice) = match r.query {
        QueryRule::None => ("bogus=1".to_owned(), None),
        QueryRule::Params(names) => ("bogus=1".to_owned(), Some(format!("{0}=1&{0}=2", names[0]))),
        QueryRule::OData => ("$bogus=1".to_owned(), Some("$top=1&$top=2".to_owned())),
    };
    out.push(check(&row, "unknown query parameter", at(&unknown), 400).has("bogus"));
    if let Some(twice) = twice {
        out.push(check(&row, "parameter given twice", at(&twice), 400).has("more than once"));
    }
    let base = || as_allowed(rc.req.clone());
    let (name, req) = match r.body {
        BodyRule::None => ("a body to a route that takes none", base().raw_json("{}")),
        BodyRule::Json => ("JSON body over 8 MiB", base().raw_json(oversized_json())),
        BodyRule::Form => ("form over 8 MiB", base().form(big_form())),
        BodyRule::Binary => (
            "binary over --release-max-mib",
            base().raw("application/octet-stream", "x".repeat(1024 * 1024 + 1)),
        ),
    };
    out.push(check(&row, name, req, 413));
}

/// Anonymous rows: the request under another tenant's id.
pub fn anonymous_cases(r: &RouteSpec, rc: &Recipe, out: &mut Vec<Check>) {
    let row = row_name(r);
    if let Some(status) = rc.other_tenant {
        let other = rc
            .path
            .replace(TENANT_ID, &uuid::Uuid::new_v4().to_string());
        out.push(check(
            &row,
            "another tenant in the path",
            rc.at(&other),
            status,
        ));
    }
    if r.verb == Verb::Post && r.path == "/portal/signin" {
        out.push(
            check(
                &row,
                "a plain user",
                rc.at(&rc.path)
                    .form(form(&[("username", USER.0), ("password", USER.1)])),
                403,
            )
            .has("needs the Global Administrator"),
        );
        out.push(
            check(
                &row,
                "a wrong password",
                rc.at(&rc.path)
                    .form(form(&[("username", GA.0), ("password", "wrong")])),
                401,
            )
            .has("AADSTS50126"),
        );
    }
}
