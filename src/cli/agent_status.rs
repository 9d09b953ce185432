//! `cloudsync agent status`: prints the agent's local state and, for a registered agent, what the
//! tenant says about it (see [`cloudsync_agent::runtime::status`] for what is read, the status file
//! and the exit codes).

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;

use cloudsync_agent::config::Config;
use cloudsync_agent::control::credentials::AgentCredentials;
use cloudsync_agent::journal::Journal;
use cloudsync_agent::projection::store::ProjectionStore;
use cloudsync_agent::push::Outbox;
use cloudsync_agent::runtime::status::collect::{RegistrationState, Sources, collect};
use cloudsync_agent::runtime::status::{
    AgentStatusReport, Attention, AttentionKind, ReportSource, file, tenant_view,
};

/// Runs the command: exit code 1 when the state cannot be read, else the report's attention bits.
pub fn run(config: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let config =
        Config::load(config).with_context(|| format!("while loading {}", config.display()))?;
    let mut report = gather(&config)?;
    add_tenant_view(&config, &mut report)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(&report));
    }
    Ok(ExitCode::from(report.exit_code()))
}

/// Asks the tenant how it sees this agent (registered agents only) and adds what needs attention.
fn add_tenant_view(config: &Config, report: &mut AgentStatusReport) -> anyhow::Result<()> {
    let Some(tenant) = &config.tenant else {
        return Ok(());
    };
    if report.registration.is_none() {
        return Ok(());
    }
    let Ok(creds) = AgentCredentials::load(&tenant.credentials_file) else {
        return Ok(());
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("while starting the runtime")?;
    let view = runtime.block_on(tenant_view::fetch(tenant, &creds));
    report
        .attention
        .extend(tenant_view::attention(&view, report.source));
    report.tenant = Some(view);
    Ok(())
}

fn has_db(dir: &Path) -> bool {
    dir.join("db").is_file()
}

/// The report: from the databases, or from the daemon's status file while it holds them.
pub fn gather(config: &Config) -> anyhow::Result<AgentStatusReport> {
    let dirs = [
        config.agent.journal_dir.clone(),
        config.agent.projection_dir(),
        config.agent.outbox_dir(),
    ];
    if let Some(held) = dirs.iter().find(|d| file::held_by_another_process(d)) {
        let path = file::path(config);
        let mut report = file::read(&path).with_context(|| {
            format!(
                "another process (a running `cloudsync agent run`?) holds {} and its status file cannot be read",
                held.display()
            )
        })?;
        let age = age_secs(&report.generated_at);
        if age > file::STALE_AFTER.as_secs() {
            report.attention.push(Attention {
                kind: AttentionKind::Other,
                message: format!(
                    "The running agent last wrote its status {age} s ago (it rewrites it every {} s); it may be stuck: check its log.",
                    file::WRITE_EVERY.as_secs()
                ),
            });
        }
        return Ok(report);
    }
    let journal = match has_db(&config.agent.journal_dir) {
        true => Some(
            Journal::open_existing(&config.agent.journal_dir)
                .context("while opening the journal")?,
        ),
        false => None,
    };
    let projection = match has_db(&config.agent.projection_dir()) {
        true => Some(
            ProjectionStore::open(&config.agent.projection_dir())
                .context("while opening projection's store")?,
        ),
        false => None,
    };
    let outbox = match has_db(&config.agent.outbox_dir()) {
        true => Some(Outbox::open(&config.agent.outbox_dir()).context("while opening the outbox")?),
        false => None,
    };
    let creds = config
        .tenant
        .as_ref()
        .map(|t| AgentCredentials::load(&t.credentials_file));
    let registration = match &creds {
        None => RegistrationState::NoTenant,
        Some(Ok(c)) => RegistrationState::Registered(c),
        Some(Err(e)) => RegistrationState::Unusable(e),
    };
    Ok(collect(&Sources {
        config,
        registration,
        journal: journal.as_ref(),
        projection: projection.as_ref(),
        outbox: outbox.as_ref(),
        live_quarantine: None,
        source: ReportSource::Databases,
    })?)
}

/// Seconds since an RFC 3339 time (0 when unparsable or in the future).
fn age_secs(at: &str) -> u64 {
    time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
        .map(|t| (time::OffsetDateTime::now_utc() - t).whole_seconds())
        .ok()
        .and_then(|s| u64::try_from(s).ok())
        .unwrap_or(0)
}

fn opt(v: Option<u64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

/// The report as text for an admin.
pub fn render(r: &AgentStatusReport) -> String {
    let mut o = String::new();
    let _ = match r.source {
        ReportSource::Databases => writeln!(
            o,
            "Agent status (read from the databases; the agent is not running)"
        ),
        ReportSource::Daemon => writeln!(
            o,
            "Agent status (from the running agent's status file, written {} s ago)",
            age_secs(&r.generated_at)
        ),
    };
    match &r.registration {
        Some(g) => {
            let _ = writeln!(
                o,
                "Registration: agent {} of tenant {} at {} ({})",
                g.agent_id, g.tenant_id, g.tenant_url, g.environment
            );
        }
        None => o.push_str("Registration: none\n"),
    }
    let j = &r.journal;
    if j.exists {
        let cursors: Vec<String> = j.cursors.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = writeln!(
            o,
            "Journal: seq {}..{}; cursors: {}",
            opt(j.first_seq),
            opt(j.last_seq),
            if cursors.is_empty() {
                "none".into()
            } else {
                cursors.join(", ")
            }
        );
        for c in &j.checkpoints {
            let _ = writeln!(
                o,
                "  checkpoint {} {}: {} bytes{}",
                c.domain,
                c.source,
                c.bytes,
                if c.full_read_in_progress == Some(true) {
                    ", full read in progress"
                } else {
                    ""
                }
            );
        }
    } else {
        o.push_str("Journal: none yet (the agent has not run)\n");
    }
    let p = &r.projection;
    let _ = writeln!(
        o,
        "Projection: cursor {} ({} events behind); snapshot at {} ({} events after it{})",
        opt(p.cursor),
        p.behind,
        opt(p.snapshot_seq),
        p.events_after_snapshot,
        p.snapshot_covers_until
            .as_ref()
            .map(|t| format!(", covers events appended until {t}"))
            .unwrap_or_default()
    );
    for d in &r.domains {
        let _ = writeln!(
            o,
            "Domain {}: configuration {}; {} staged deletes{}",
            d.domain,
            d.configuration_id
                .map_or_else(|| "-".to_owned(), |c| c.to_string()),
            d.staged_deletes,
            if d.delete_threshold_exceeded {
                " — Delete threshold exceeded"
            } else {
                ""
            }
        );
        if let Some(c) = &d.cloud {
            let on = |b: bool| if b { "on" } else { "off" };
            let _ = writeln!(
                o,
                "  settings from the tenant: revision {}; scope from {}; {} tenant mappings; delete threshold {}; password hash sync {}; password writeback {}",
                c.revision,
                if c.scope_from_tenant {
                    "the tenant"
                } else {
                    "the local configuration"
                },
                c.tenant_mappings,
                c.delete_threshold,
                on(c.password_hash_sync),
                on(c.password_writeback),
            );
            if let Some(r) = &c.refused {
                let _ = writeln!(
                    o,
                    "  revision {} refused (revision {} stays in force): {}",
                    r.revision,
                    c.revision,
                    r.errors.join("; ")
                );
            }
        }
    }
    if let Some(push) = &r.push {
        let _ = writeln!(
            o,
            "Push: {} operations pending (enqueued up to {}, checkpoint {}); {} objects quarantined",
            push.pending, push.last_enqueued, push.checkpoint, push.quarantined_objects
        );
        if let Some(q) = &push.configuration_quarantine {
            let _ = writeln!(o, "  configuration quarantine: {q}");
        }
        for q in &push.quarantined {
            let _ = writeln!(
                o,
                "  quarantined {} ({}): {}: {}",
                q.source_anchor, q.action, q.code, q.message
            );
        }
    }
    if let Some(t) = &r.tenant {
        render_tenant(&mut o, t);
    }
    if r.attention.is_empty() {
        o.push_str("Nothing needs attention.\n");
    } else {
        o.push_str("Needs attention:\n");
        for a in &r.attention {
            let _ = writeln!(o, "  - {}", a.message);
        }
    }
    o
}

/// The tenant's view as text.
fn render_tenant(o: &mut String, t: &tenant_view::TenantView) {
    match (&t.agent, &t.error) {
        (Some(a), _) => {
            let _ = writeln!(
                o,
                "Tenant says: agent {:?} on host {}, version {}, environment {}, last heartbeat {}",
                a.status, a.host_name, a.version, a.environment, a.last_seen
            );
        }
        (None, Some(e)) if !t.reachable => {
            let _ = writeln!(o, "Tenant says: nothing — it cannot be reached ({e})");
        }
        (None, Some(e)) => {
            let _ = writeln!(o, "Tenant says: nothing — it refused ({e})");
        }
        (None, None) => o.push_str("Tenant says: nothing\n"),
    }
    let me = t.agent.as_ref().map(|a| a.id);
    for c in &t.configurations {
        let lease = match &c.lease {
            None => "no lease yet".to_owned(),
            Some(l) => format!(
                "lease held by {} (epoch {}) since {}{}",
                if Some(l.holder_agent_id) == me {
                    "this agent".to_owned()
                } else {
                    format!("agent {}", l.holder_agent_id)
                },
                l.epoch,
                l.since,
                if l.live { "" } else { ", expired" }
            ),
        };
        let _ = writeln!(
            o,
            "  configuration {} ({}): {}; last sync {}; {lease}",
            c.id,
            c.domain,
            c.health,
            c.last_sync.as_deref().unwrap_or("never")
        );
    }
}
