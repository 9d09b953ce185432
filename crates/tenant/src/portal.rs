//! The admin portal at `/`: a server-rendered page an admin reads like the admin center.
//!
//! It shows agents (host, version, environment, Active/Inactive, last seen, the leases each holds,
//! its id), configurations (health, password hash sync, the password-writeback switch, delete
//! threshold, last sync, the lease: holder's host and id, epoch, since when), object counts,
//! and the recent provisioning log with a search box by object id (`/?objectId=…`). Everything
//! here needs a portal session of a Global or Hybrid Identity Administrator
//! ([`super::portal_auth`]): without one, `GET /` redirects to the sign-in page and shows no data.
//! Flipping the writeback switch (`/portal/writeback`) or the "Allow users to unlock accounts
//! without resetting their password" switch (`/portal/unlock`) posts a form carrying the session's
//! CSRF token; each configuration row also shows the agents that can carry writeback out (Active,
//! with a registered writeback key). No JavaScript: the page renders completely on the server.

use std::collections::HashMap;
use std::fmt::Write;

use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Redirect, Response};
use uuid::Uuid;

use cloudsync_api::logs::LogQuery;
use cloudsync_api::ops::ObjectKind;

use super::agents::{agent_infos, all_configs};
use super::auth::ADMINS;
use super::error::{ApiError, ApiQuery};
use super::logs::search;
use super::portal_auth::{check_csrf, require_session, session};
use super::state::SharedState;
use super::store::{StoredObject, decode};
use cloudsync_api::writeback::WritebackSwitches;

/// A configuration's health as the portal cell shows it: the label, plus the count that explains it.
fn health_text(health: &cloudsync_api::config::Health) -> String {
    use cloudsync_api::config::Health;
    match health {
        Health::Healthy => health.label().to_owned(),
        Health::Quarantine { reason } => format!("{} ({})", health.label(), esc(reason)),
        Health::DeleteThresholdExceeded { deletes } => {
            format!("{} ({deletes} deletes)", health.label())
        }
    }
}

/// Escapes text for HTML element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn counts(state: &SharedState) -> Result<HashMap<ObjectKind, usize>, ApiError> {
    let mut counts = HashMap::new();
    for entry in state.store.objects.iter() {
        let (_, v) = entry.map_err(super::store::StoreError::from)?;
        let o: StoredObject = decode("objects", &v)?;
        if !o.deleted {
            *counts.entry(o.kind).or_insert(0) += 1;
        }
    }
    Ok(counts)
}

/// `GET /`: the page for a signed-in admin, else a redirect (303) to the sign-in page.
pub async fn page(
    State(state): State<SharedState>,
    headers: HeaderMap,
    query: Result<ApiQuery<HashMap<String, String>>, ApiError>,
) -> Result<Response, ApiError> {
    let Some(session) = session(&state, &headers) else {
        return Ok((StatusCode::SEE_OTHER, Redirect::to("/portal/signin")).into_response());
    };
    let ApiQuery(params) = query?;
    let search_id = params
        .get("objectId")
        .map(|s| s.trim())
        .filter(|s| !s.is_empty());
    let object_id = match search_id {
        Some(s) => Some(
            Uuid::parse_str(s)
                .map_err(|_| ApiError::BadRequest(format!("'{s}' is not an object id.")))?,
        ),
        None => None,
    };
    let id = &state.identity;
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>cloudsync local tenant — {domain}</title><link rel=\"stylesheet\" href=\"/portal/portal.css\"></head><body>\
         <header><h1>Cloud sync admin center <small>(cloudsync local tenant, an emulator)</small></h1>\
         <p>Tenant <b id=\"tenant-domain\">{domain}</b> · ID <code id=\"tenant-id\">{tid}</code> · Environment <b id=\"environment\">{env}</b></p>\
         <form method=\"post\" action=\"/portal/signout\" class=\"signout\">Signed in as <b id=\"signed-in\">{upn}</b> \
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><button type=\"submit\">Sign out</button></form></header>",
        upn = esc(&session.upn),
        csrf = esc(&session.csrf),
        domain = esc(&id.domain),
        tid = id.tenant_id,
        env = id.environment,
    );

    let c = counts(&state)?;
    let _ = write!(
        h,
        "<section id=\"counts\"><h2>Objects</h2><ul class=\"counts\"><li>Users: <b id=\"count-users\">{}</b></li><li>Groups: <b id=\"count-groups\">{}</b></li><li>Contacts: <b id=\"count-contacts\">{}</b></li></ul></section>",
        c.get(&ObjectKind::User).unwrap_or(&0),
        c.get(&ObjectKind::Group).unwrap_or(&0),
        c.get(&ObjectKind::Contact).unwrap_or(&0),
    );

    h.push_str("<section id=\"agents\"><h2>Agents</h2><table><thead><tr><th>Host</th><th>Version</th><th>Environment</th><th>Status</th><th>Last seen</th><th>Leases held</th><th>Agent id</th></tr></thead><tbody>");
    let agents = agent_infos(&state)?;
    if agents.is_empty() {
        h.push_str("<tr><td colspan=\"7\">No agents registered.</td></tr>");
    }
    for a in agents {
        let status = format!("{:?}", a.status);
        // Which configurations it pushes: several agents may run on one host, so the id tells
        // them apart (the configurations' lease cells name it too).
        let held = if a.leases.is_empty() {
            "None".to_owned()
        } else {
            a.leases
                .iter()
                .map(|l| {
                    format!(
                        "{} (epoch {}) since {}{}",
                        esc(&l.domain),
                        l.lease.epoch,
                        esc(&l.lease.since),
                        if l.lease.live { "" } else { ", expired" }
                    )
                })
                .collect::<Vec<_>>()
                .join("; ")
        };
        let _ = write!(
            h,
            "<tr class=\"agent\"><td>{}</td><td>{}</td><td>{}</td><td class=\"status-{}\">{}</td><td>{}</td><td class=\"leases\">{held}</td><td class=\"agent-id\"><code>{}</code></td></tr>",
            esc(&a.host_name),
            esc(&a.version),
            a.environment,
            status.to_lowercase(),
            status,
            esc(&a.last_seen),
            a.id
        );
    }
    h.push_str("</tbody></table></section>");

    h.push_str("<section id=\"configurations\"><h2>Configurations</h2><table><thead><tr><th>Domain</th><th>Health</th><th>Password hash sync</th><th>Password writeback</th><th>Allow users to unlock accounts without resetting their password</th><th>Writeback agent</th><th>Delete threshold</th><th>Last sync</th><th>Lease</th></tr></thead><tbody>");
    let configs = all_configs(&state)?;
    if configs.is_empty() {
        h.push_str("<tr><td colspan=\"9\">No configurations.</td></tr>");
    }
    let hosts: HashMap<Uuid, String> = agent_infos(&state)?
        .into_iter()
        .map(|a| (a.id, a.host_name))
        .collect();
    for r in configs {
        let cfg = &super::agent_health::effective(&r);
        let on_off = |b: bool| if b { "On" } else { "Off" };
        let switch = |action: &str, class: &str, on: bool| {
            format!(
                "<form method=\"post\" action=\"{action}\" class=\"{class}\">\
                 <input type=\"hidden\" name=\"configurationId\" value=\"{cid}\">\
                 <input type=\"hidden\" name=\"enabled\" value=\"{next}\">\
                 <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
                 <span class=\"switch\">{state}</span> \
                 <button type=\"submit\">Turn {verb}</button></form>",
                cid = cfg.id,
                next = !on,
                csrf = esc(&session.csrf),
                state = on_off(on),
                verb = if on { "off" } else { "on" },
            )
        };
        let ready: Vec<String> = super::writeback_submit::ready_agents(&state, &cfg.spec.domain)?
            .into_iter()
            .map(|(id, _)| esc(hosts.get(&id).map_or("?", String::as_str)))
            .collect();
        let agent_cell = if ready.is_empty() {
            "<span class=\"status-inactive\">None active</span>".to_owned()
        } else {
            format!(
                "<span class=\"status-active\">Active</span>: {}",
                ready.join(", ")
            )
        };
        let _ = write!(
            h,
            "<tr class=\"configuration\"><td>{domain}</td><td class=\"health\">{health}</td><td>{phs}</td><td>{wb}</td><td>{unlock}</td><td class=\"writeback-agent\">{agent_cell}</td><td>{thr}</td><td>{last}</td><td class=\"lease\">{lease}</td></tr>",
            domain = esc(&cfg.spec.domain),
            health = health_text(&cfg.health),
            phs = on_off(cfg.spec.password_hash_sync),
            wb = switch(
                "/portal/writeback",
                "writeback",
                cfg.spec.password_writeback
            ),
            unlock = switch("/portal/unlock", "unlock", cfg.spec.allow_unlock),
            thr = cfg.spec.delete_threshold,
            last = esc(cfg.last_sync.as_deref().unwrap_or("never")),
            lease = cfg.lease.as_ref().map_or_else(
                || "None yet".to_owned(),
                |l| format!(
                    "{} <code class=\"holder\">{}</code> (epoch {}) since {}{}",
                    esc(hosts.get(&l.holder_agent_id).map_or("?", String::as_str)),
                    l.holder_agent_id,
                    l.epoch,
                    esc(&l.since),
                    if l.live { "" } else { ", expired" }
                )
            ),
        );
    }
    h.push_str("</tbody></table></section>");

    let _ = write!(
        h,
        "<section id=\"logs\"><h2>Provisioning logs</h2><form method=\"get\" action=\"/\"><label>Object id <input name=\"objectId\" value=\"{}\" size=\"40\"></label> <button type=\"submit\">Search</button></form>\
         <table><thead><tr><th>Time</th><th>Action</th><th>Result</th><th>Object id</th><th>Source anchor</th><th>Agent</th><th>Batch</th><th>Message</th></tr></thead><tbody>",
        esc(search_id.unwrap_or(""))
    );
    let logs = search(
        &state,
        &LogQuery {
            object_id,
            top: Some(50),
            ..LogQuery::default()
        },
    )?;
    if logs.value.is_empty() {
        h.push_str("<tr><td colspan=\"8\">No provisioning events.</td></tr>");
    }
    for e in logs.value {
        let _ = write!(
            h,
            "<tr class=\"log\"><td>{}</td><td>{}</td><td class=\"result-{:?}\">{:?}{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&e.time),
            esc(&e.action),
            e.result,
            e.result,
            e.error_code
                .map(|c| format!(" ({c:?})"))
                .unwrap_or_default(),
            e.object_id.map(|i| i.to_string()).unwrap_or_default(),
            esc(&e.source_anchor),
            e.agent_id,
            e.batch_id,
            match &e.reason {
                // Why the agent sent it (a configuration change, a released delete), before the result.
                Some(r) => format!(
                    "<span class=\"reason\">{}</span> · {}",
                    esc(r),
                    esc(&e.message)
                ),
                None => esc(&e.message),
            }
        );
    }
    h.push_str("</tbody></table></section></body></html>");
    Ok(Html(h).into_response())
}

/// Which switch a portal form flips.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Switch {
    /// Password writeback.
    Writeback,
    /// Unlock without reset.
    Unlock,
}

/// `POST /portal/writeback` (`configurationId`, `enabled`, `csrf`): flips password writeback for
/// a configuration. Needs a portal session (401) and its CSRF token (403), checked before the
/// other fields are read.
pub async fn set_writeback(
    State(state): State<SharedState>,
    headers: HeaderMap,
    uri: Uri,
    form: Result<Form<HashMap<String, String>>, axum::extract::rejection::FormRejection>,
) -> Result<Response, ApiError> {
    flip(state, headers, uri, form, Switch::Writeback).await
}

/// `POST /portal/unlock` (`configurationId`, `enabled`, `csrf`): flips "Allow users to unlock
/// accounts without resetting their password", with the checks of [`set_writeback`].
pub async fn set_unlock(
    State(state): State<SharedState>,
    headers: HeaderMap,
    uri: Uri,
    form: Result<Form<HashMap<String, String>>, axum::extract::rejection::FormRejection>,
) -> Result<Response, ApiError> {
    flip(state, headers, uri, form, Switch::Unlock).await
}

async fn flip(
    state: SharedState,
    headers: HeaderMap,
    uri: Uri,
    form: Result<Form<HashMap<String, String>>, axum::extract::rejection::FormRejection>,
    which: Switch,
) -> Result<Response, ApiError> {
    let session = require_session(&state, &headers, &uri)?;
    let form = match form {
        Ok(Form(form)) => Some(form),
        Err(r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return Err(ApiError::PayloadTooLarge("The form is too large.".into()));
        }
        Err(_) => None,
    };
    check_csrf(&session, form.as_ref().and_then(|f| f.get("csrf")))?;
    if !session.roles.iter().any(|r| ADMINS.contains(r)) {
        return Err(ApiError::Forbidden(
            "Changing password writeback needs the Global Administrator or Hybrid Identity Administrator role.".into(),
        ));
    }
    let field = |name: &str| form.as_ref().and_then(|f| f.get(name));
    let (Some(configuration_id), Some(enabled)) = (
        field("configurationId").and_then(|s| Uuid::parse_str(s).ok()),
        field("enabled").and_then(|s| s.parse::<bool>().ok()),
    ) else {
        return Err(ApiError::BadRequest(
            "The form needs configurationId (a GUID), enabled (true or false) and csrf.".into(),
        ));
    };
    let _guard = state.apply_lock.lock().await;
    let mut record: super::store::ConfigRecord =
        super::store::get_json(&state.store.configs, "configs", configuration_id.as_bytes())?
            .ok_or_else(|| {
                ApiError::NotFound(format!("Configuration {configuration_id} does not exist."))
            })?;
    let spec = &record.config.spec;
    let switches = match which {
        Switch::Writeback => WritebackSwitches {
            enabled,
            allow_unlock: spec.allow_unlock,
        },
        Switch::Unlock => WritebackSwitches {
            enabled: spec.password_writeback,
            allow_unlock: enabled,
        },
    };
    if super::writeback_switch::set(&state, &mut record, switches).await? {
        tracing::info!(configuration = %configuration_id, switch = ?which, enabled, by = %session.user_id, "Password writeback switched.");
    }
    Ok((StatusCode::SEE_OTHER, Redirect::to("/")).into_response())
}
