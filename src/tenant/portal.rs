//! The admin portal at `/`: a server-rendered page an admin reads like the admin center.
//!
//! It shows agents (host, version, environment, Active/Inactive, last seen), configurations (health,
//! password hash sync, the password-writeback switch, delete threshold, last sync), object counts,
//! and the recent provisioning log with a search box by object id (`/?objectId=…`). The page is
//! read-only and needs no sign-in (it shows no secrets; bind the tenant to loopback). Flipping the
//! writeback switch posts a form that must carry a Global or Hybrid Identity Administrator's
//! credentials. No JavaScript: the page renders completely on the server.

use std::collections::HashMap;
use std::fmt::Write;

use axum::extract::{Form, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;
use uuid::Uuid;

use crate::api::logs::LogQuery;
use crate::api::ops::ObjectKind;

use super::agents::{agent_infos, all_configs};
use super::auth::ADMINS;
use super::error::{ApiError, ApiQuery};
use super::logs::search;
use super::state::SharedState;
use super::store::{StoredObject, decode, put_json};

const STYLE: &str = include_str!("portal.css");

/// A configuration's health as the portal cell shows it: the label, plus the count that explains it.
fn health_text(health: &crate::api::config::Health) -> String {
    use crate::api::config::Health;
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

/// `GET /`.
pub async fn page(
    State(state): State<SharedState>,
    ApiQuery(params): ApiQuery<HashMap<String, String>>,
) -> Result<Html<String>, ApiError> {
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
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>cloudsync local tenant — {domain}</title><style>{STYLE}</style></head><body>\
         <header><h1>Cloud sync admin center <small>(cloudsync local tenant, an emulator)</small></h1>\
         <p>Tenant <b id=\"tenant-domain\">{domain}</b> · ID <code id=\"tenant-id\">{tid}</code> · Environment <b id=\"environment\">{env}</b></p></header>",
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

    h.push_str("<section id=\"agents\"><h2>Agents</h2><table><thead><tr><th>Host</th><th>Version</th><th>Environment</th><th>Status</th><th>Last seen</th></tr></thead><tbody>");
    let agents = agent_infos(&state)?;
    if agents.is_empty() {
        h.push_str("<tr><td colspan=\"5\">No agents registered.</td></tr>");
    }
    for a in agents {
        let status = format!("{:?}", a.status);
        let _ = write!(
            h,
            "<tr class=\"agent\"><td>{}</td><td>{}</td><td>{}</td><td class=\"status-{}\">{}</td><td>{}</td></tr>",
            esc(&a.host_name),
            esc(&a.version),
            a.environment,
            status.to_lowercase(),
            status,
            esc(&a.last_seen)
        );
    }
    h.push_str("</tbody></table></section>");

    h.push_str("<section id=\"configurations\"><h2>Configurations</h2><table><thead><tr><th>Domain</th><th>Health</th><th>Password hash sync</th><th>Password writeback</th><th>Delete threshold</th><th>Last sync</th></tr></thead><tbody>");
    let configs = all_configs(&state)?;
    if configs.is_empty() {
        h.push_str("<tr><td colspan=\"6\">No configurations.</td></tr>");
    }
    for r in configs {
        let cfg = &super::agent_health::effective(&r);
        let on_off = |b: bool| if b { "On" } else { "Off" };
        let _ = write!(
            h,
            "<tr class=\"configuration\"><td>{domain}</td><td class=\"health\">{health}</td><td>{phs}</td><td>\
             <form method=\"post\" action=\"/portal/writeback\" class=\"writeback\">\
             <input type=\"hidden\" name=\"configurationId\" value=\"{cid}\">\
             <input type=\"hidden\" name=\"enabled\" value=\"{next}\">\
             <span class=\"switch\">{wb}</span> \
             <input name=\"username\" placeholder=\"admin UPN\" autocomplete=\"username\"> \
             <input name=\"password\" type=\"password\" placeholder=\"password\" autocomplete=\"current-password\"> \
             <button type=\"submit\">Turn {verb}</button></form></td><td>{thr}</td><td>{last}</td></tr>",
            domain = esc(&cfg.spec.domain),
            health = health_text(&cfg.health),
            phs = on_off(cfg.spec.password_hash_sync),
            cid = cfg.id,
            next = !cfg.spec.password_writeback,
            wb = on_off(cfg.spec.password_writeback),
            verb = if cfg.spec.password_writeback {
                "off"
            } else {
                "on"
            },
            thr = cfg.spec.delete_threshold,
            last = esc(cfg.last_sync.as_deref().unwrap_or("never")),
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
            esc(&e.message)
        );
    }
    h.push_str("</tbody></table></section></body></html>");
    Ok(Html(h))
}

/// The writeback switch form.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WritebackForm {
    /// The configuration.
    pub configuration_id: Uuid,
    /// The wanted state.
    pub enabled: bool,
    /// Admin UPN.
    pub username: String,
    /// Admin password.
    pub password: String,
}

/// `POST /portal/writeback`: flips password writeback for a configuration (admin credentials in the form).
pub async fn set_writeback(
    State(state): State<SharedState>,
    form: Result<Form<WritebackForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, ApiError> {
    let form = match form {
        Ok(Form(form)) => form,
        Err(r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return Err(ApiError::PayloadTooLarge("The form is too large.".into()));
        }
        Err(_) => {
            return Err(ApiError::BadRequest(
                "The form needs configurationId, enabled, username and password.".into(),
            ));
        }
    };
    let user = state
        .identity
        .user(&form.username)
        .filter(|u| u.check_password(&form.password))
        .ok_or_else(|| ApiError::Unauthorized("Invalid username or password.".into()))?;
    if !user.roles.iter().any(|r| ADMINS.contains(r)) {
        return Err(ApiError::Forbidden(
            "Changing password writeback needs the Global Administrator or Hybrid Identity Administrator role.".into(),
        ));
    }
    let _guard = state.apply_lock.lock().await;
    let mut record: super::store::ConfigRecord = super::store::get_json(
        &state.store.configs,
        "configs",
        form.configuration_id.as_bytes(),
    )?
    .ok_or_else(|| {
        ApiError::NotFound(format!(
            "Configuration {} does not exist.",
            form.configuration_id
        ))
    })?;
    if record.config.spec.password_writeback != form.enabled {
        record.config.spec.password_writeback = form.enabled;
        record.config.revision += 1;
        put_json(
            &state.store.configs,
            form.configuration_id.as_bytes(),
            &record,
        )?;
        state.store.flush().await?;
        tracing::info!(configuration = %form.configuration_id, enabled = form.enabled, by = %user.id, "Password writeback switched.");
    }
    Ok((StatusCode::SEE_OTHER, Redirect::to("/")).into_response())
}
