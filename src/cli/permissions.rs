//! `cloudsync agent permissions set|check --type basic-read|password-hash-sync|password-writeback|all
//! [--domain DNS] --config F`. Enters: the agent's configuration (its domains and service account),
//! for `set` the domain admin's name and password (from a file or stdin, never argv; used for this
//! run only, never written). Leaves: the ACEs added to the domain's `nTSecurityDescriptor`
//! ([`cloudsync_agent::account::permissions`]) with a line each, or for `check` a line per right —
//! read back from the descriptor and tried for real (a DirSync read, a one-object GetNCChanges) —
//! and exit code 1 naming the `permissions set` command that fixes each missing one.

use std::path::PathBuf;
use std::process::ExitCode;

use cloudsync_agent::account::permissions::{self, Grant, PermissionType};
use cloudsync_agent::account::security_descriptor::{Ace, ace_sddl};
use cloudsync_agent::config::Config;
use cloudsync_agent::control::doctor::{Check, Status, rights};
use cloudsync_agent::secret::Secret;
use cloudsync_agent::source::ldap::DomainConfig;
use cloudsync_agent::source::ldap::conn;

use super::config_args::ConfigArgs;
use super::install::Secrets;

/// What both subcommands take.
#[derive(Debug, Clone, clap::Args)]
pub struct Common {
    #[command(flatten)]
    config: ConfigArgs,
    /// Which feature's rights: basic-read, password-hash-sync, password-writeback or all.
    #[arg(long = "type", value_name = "TYPE", value_parser = parse_type)]
    kind: PermissionType,
    /// Only this domain (its DNS name or its label in the configuration); default: every domain.
    #[arg(long)]
    domain: Option<String>,
}

fn parse_type(s: &str) -> Result<PermissionType, String> {
    s.parse()
}

/// `agent permissions …`.
#[derive(Debug, clap::Subcommand)]
pub enum PermissionsCommand {
    /// Grant the service account the rights of `--type` (idempotent: a second run adds nothing).
    Set {
        #[command(flatten)]
        common: Common,
        /// A domain administrator (UPN or DN), used for this run only and never stored.
        #[arg(long)]
        domain_admin: String,
        /// Its password: a file's first line, or `-` for stdin.
        #[arg(long, value_name = "FILE|-")]
        domain_admin_password_file: PathBuf,
    },
    /// Check that the service account holds the rights of `--type` (as the account itself).
    Check {
        #[command(flatten)]
        common: Common,
    },
}

/// The domains `--domain` selects.
fn domains<'a>(
    config: &'a Config,
    only: Option<&str>,
) -> anyhow::Result<Vec<(&'a String, &'a DomainConfig)>> {
    let picked: Vec<_> = config
        .domains
        .iter()
        .filter(|(label, d)| {
            only.is_none_or(|o| o.eq_ignore_ascii_case(&d.dns_name) || o == label.as_str())
        })
        .collect();
    if picked.is_empty() {
        let known: Vec<&str> = config
            .domains
            .values()
            .map(|d| d.dns_name.as_str())
            .collect();
        anyhow::bail!(
            "no domain {} in the configuration (it has: {})",
            only.unwrap_or("at all"),
            known.join(", ")
        );
    }
    Ok(picked)
}

/// The command that grants `kind` in `dns` for the agent configured in `config`.
pub fn set_command(kind: PermissionType, dns: &str, config: &std::path::Path) -> String {
    format!(
        "cloudsync agent permissions set --type {} --domain {dns} --config {} --domain-admin <admin UPN> --domain-admin-password-file -",
        kind.name(),
        config.display()
    )
}

fn sddl(g: &Grant) -> String {
    ace_sddl(&Ace::Access(g.ace.clone()))
}

/// Runs `agent permissions …`.
pub async fn run(cmd: PermissionsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        PermissionsCommand::Set {
            common,
            domain_admin,
            domain_admin_password_file,
        } => set(common, &domain_admin, &domain_admin_password_file).await,
        PermissionsCommand::Check { common } => check(common).await,
    }
}

async fn set(
    common: Common,
    admin: &str,
    password_file: &std::path::Path,
) -> anyhow::Result<ExitCode> {
    let config = common.config.load()?;
    let password = Secrets::default().read(password_file, "the domain administrator's password")?;
    for (label, cfg) in domains(&config, common.domain.as_deref())? {
        let as_admin = cfg.as_account(admin, Secret::new(password.to_string()));
        let mut dc = conn::connect(&as_admin)
            .await
            .map_err(|e| anyhow::anyhow!("{label}: binding as {admin}: {e}"))?;
        let base = cfg.base();
        let outcome = permissions::set(&mut dc, &base, &cfg.bind_dn, common.kind).await;
        dc.close().await;
        let outcome = outcome.map_err(|e| anyhow::anyhow!("{label}: {e}"))?;
        for dn in &outcome.owned {
            println!(
                "{label}: {dn}: only SYSTEM could read or change its permissions; its owner is now BUILTIN\\Administrators (as dsacls /takeownership does)"
            );
        }
        for g in &outcome.present {
            println!(
                "{label}: already granted: {} {} on {}",
                g.right,
                sddl(g),
                g.target.dn(&base)
            );
        }
        for g in &outcome.added {
            println!(
                "{label}: added: {} {} on {}",
                g.right,
                sddl(g),
                g.target.dn(&base)
            );
        }
        if outcome.added.is_empty() {
            println!(
                "{label}: nothing to add: {} already holds every {} right ({} ACEs present)",
                cfg.bind_dn,
                common.kind.name(),
                outcome.present.len()
            );
        } else {
            println!(
                "{label}: {} ACE(s) added for {} ({} already present)",
                outcome.added.len(),
                cfg.bind_dn,
                outcome.present.len()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn check(common: Common) -> anyhow::Result<ExitCode> {
    let config = common.config.load()?;
    let path = &common.config.config;
    let mut lines: Vec<Check> = Vec::new();
    let kinds = common.kind.expand();
    for (label, cfg) in domains(&config, common.domain.as_deref())? {
        let base = cfg.base();
        let fix = |k: PermissionType| set_command(k, &cfg.dns_name, path);
        let mut dc = match conn::connect(cfg).await {
            Ok(dc) => dc,
            Err(e) => {
                lines.push(Check::fail(
                    format!("{label}: bind as {}", cfg.bind_dn),
                    e.to_string(),
                    format!("run `cloudsync agent doctor --config {}`", path.display()),
                ));
                continue;
            }
        };
        match permissions::check(&mut dc, &base, &cfg.bind_dn, common.kind).await {
            Ok(found) => {
                for (g, ok) in found {
                    let what = format!("{label}: {} ({})", g.right, g.kind.name());
                    let where_ = g.target.dn(&base);
                    lines.push(if ok {
                        Check::ok(what, format!("{} on {where_}", sddl(&g)))
                    } else {
                        Check::fail(
                            what,
                            format!("no ACE {} on {where_}", sddl(&g)),
                            fix(g.kind),
                        )
                    });
                }
            }
            Err(e) => lines.push(Check::fail(
                format!("{label}: the security descriptors"),
                e.to_string(),
                fix(common.kind),
            )),
        }
        if kinds.contains(&PermissionType::BasicRead) {
            let mut c = rights::dirsync(label, cfg, &mut dc).await;
            if c.status == Status::Fail {
                c.fix = Some(fix(PermissionType::BasicRead));
            }
            lines.push(c);
        }
        dc.close().await;
        if kinds.contains(&PermissionType::PasswordHashSync) {
            let mut c = rights::replication_all(label, cfg, &config.phs).await;
            if c.status == Status::Fail && c.detail.contains("refused to replicate") {
                c.fix = Some(fix(PermissionType::PasswordHashSync));
            }
            lines.push(c);
        }
    }
    let failed = lines.iter().filter(|c| c.status == Status::Fail).count();
    for c in &lines {
        println!("{c}");
    }
    if failed == 0 {
        println!("every {} right is granted", common.kind.name());
        Ok(ExitCode::SUCCESS)
    } else {
        println!("{failed} right(s) missing");
        Ok(ExitCode::from(1))
    }
}
