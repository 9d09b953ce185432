//! `cloudsync agent uninstall` and the cmdlet equivalents of the installer's PowerShell module:
//! `agent connect`, `agent domain add`, `agent service-account set`, `agent permissions set|check`
//! (in [`super::permissions`]) and `agent phs enable|disable`. Enters: `--prefix` (the install to act on),
//! the admin's UPN and secrets from files or stdin. Leaves: the library's steps run
//! ([`cloudsync_agent::control::install`]), a line each, the exit codes of docs/install.md.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use zeroize::Zeroizing;

use cloudsync_agent::control::install::{
    self, AccountChoice, AdminSession, DomainAccount, DomainTarget, InstallError, Layout,
    TenantTarget, admin, domain, files,
};
use cloudsync_api::Environment;
use uuid::Uuid;

use super::install::{Secrets, binary_of, domain_target, fail, layout_of};

/// Where an installed agent is (the cmdlets and `uninstall`).
#[derive(Debug, Clone, clap::Args)]
pub struct InstalledArgs {
    /// The install's prefix (as given to `agent install`); default: the system paths.
    #[arg(long, value_name = "DIR")]
    pub prefix: Option<PathBuf>,
    /// A Global Administrator or Hybrid Identity Administrator of the tenant.
    #[arg(long)]
    pub admin_upn: String,
    /// The admin's password: a file's first line, or `-` for stdin.
    #[arg(long, value_name = "FILE|-")]
    pub admin_password_file: PathBuf,
}

/// `agent domain …`.
#[derive(Debug, clap::Subcommand)]
pub enum DomainCommand {
    /// Add a domain to the installed agent (checked with a bind as the domain administrator).
    Add {
        #[command(flatten)]
        installed: InstalledArgs,
        /// `DNS` or `DNS=ldaps://dc:636`.
        #[arg(long = "domain", value_name = "DNS[=URL]")]
        domain: String,
        /// The CA (PEM) that signs the DC's certificate.
        #[arg(long)]
        dc_ca_file: Option<PathBuf>,
        /// The domain administrator (used for the check only, never stored).
        #[arg(long)]
        domain_admin: String,
        /// Its password: a file's first line, or `-` for stdin.
        #[arg(long, value_name = "FILE|-")]
        domain_admin_password_file: PathBuf,
    },
}

/// `agent service-account …`.
#[derive(Debug, clap::Subcommand)]
pub enum ServiceAccountCommand {
    /// Set the account every domain binds as (checked with a bind to every domain first).
    Set {
        /// The install's prefix; default: the system paths.
        #[arg(long, value_name = "DIR")]
        prefix: Option<PathBuf>,
        /// The account (UPN or DN).
        #[arg(long)]
        account: String,
        /// Its password: a file's first line, or `-` for stdin.
        #[arg(long, value_name = "FILE|-")]
        password_file: PathBuf,
    },
}

/// `agent permissions …` (its own file).
pub use super::permissions::PermissionsCommand;

/// `agent phs …`.
#[derive(Debug, clap::Subcommand)]
pub enum PhsCommand {
    /// Turn password hash sync on in every configuration of the installed agent (in the tenant).
    Enable(InstalledArgs),
    /// Turn it off.
    Disable(InstalledArgs),
}

/// `agent writeback …`.
#[derive(Debug, clap::Subcommand)]
pub enum WritebackCommand {
    /// Turn password writeback on in every configuration of the installed agent (in the tenant).
    Enable {
        #[command(flatten)]
        installed: InstalledArgs,
        /// Also let users unlock their account without resetting the password.
        #[arg(long)]
        allow_unlock: bool,
    },
    /// Turn it off (and unlock without reset with it).
    Disable(InstalledArgs),
}

/// `agent writeback enable|disable`: the tenant's switches per configuration, then who can carry
/// writeback out; the AD rights are `agent permissions set --type password-writeback`.
pub async fn writeback(cmd: WritebackCommand) -> anyhow::Result<ExitCode> {
    let (a, enabled, allow_unlock) = match cmd {
        WritebackCommand::Enable {
            installed,
            allow_unlock,
        } => (installed, true, allow_unlock),
        WritebackCommand::Disable(a) => (a, false, false),
    };
    finish(
        async {
            let layout = layout_of(a.prefix.as_deref())?;
            let creds = cloudsync_agent::control::credentials::AgentCredentials::load(
                &layout.credentials_file(),
            )?;
            let session = installed_session(&layout, &a, &mut Secrets::default()).await?;
            let onoff = |b: bool| if b { "on" } else { "off" };
            for (domain, id) in &creds.configurations {
                let s = session
                    .set_writeback(
                        *id,
                        cloudsync_api::writeback::WritebackSwitches {
                            enabled,
                            allow_unlock,
                        },
                    )
                    .await?;
                println!(
                    "{domain}: password writeback {}, unlock without reset {} (configuration {id}, revision {}); agents ready: {}",
                    onoff(s.enabled),
                    onoff(s.allow_unlock),
                    s.revision,
                    if s.ready_agents.is_empty() {
                        "none yet (the agent registers its writeback key when it runs)".to_string()
                    } else {
                        s.ready_agents
                            .iter()
                            .map(Uuid::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                );
            }
            if enabled {
                println!(
                    "The service account needs the writeback rights: cloudsync agent permissions set --type password-writeback --config {} --domain-admin <admin> --domain-admin-password-file -",
                    layout.config_file().display()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        .await,
    )
}

/// Signs in as the installed agent's tenant admin.
async fn installed_session(
    layout: &Layout,
    a: &InstalledArgs,
    secrets: &mut Secrets,
) -> anyhow::Result<AdminSession> {
    let config = install::read_config(layout)?;
    let tenant = config.tenant.ok_or_else(|| {
        InstallError::Setting("the installed configuration has no [tenant]".into())
    })?;
    let password = secrets.read(&a.admin_password_file, "the admin password")?;
    Ok(admin::sign_in(&tenant, &a.admin_upn, &password).await?)
}

fn finish(r: anyhow::Result<ExitCode>) -> anyhow::Result<ExitCode> {
    match r {
        Ok(c) => Ok(c),
        Err(e) => match e.downcast::<InstallError>() {
            Ok(e) => Ok(fail(&e)),
            Err(e) => Err(e),
        },
    }
}

/// `agent uninstall`.
pub async fn uninstall(a: InstalledArgs) -> anyhow::Result<ExitCode> {
    finish(
        async {
            let layout = layout_of(a.prefix.as_deref())?;
            let session = installed_session(&layout, &a, &mut Secrets::default()).await?;
            let done = install::uninstall(&layout, &session, &binary_of(&None)?).await?;
            match (done.agent_id, done.registration_removed) {
                (Some(id), true) => println!("Removed the registration of agent {id}."),
                (Some(id), false) => println!("Agent {id} was no longer registered in the tenant."),
                (None, _) => println!("No registration found (no credentials file)."),
            }
            for u in &done.services.units {
                println!("Removed unit {}.", u.display());
            }
            if !done.services.to_run.is_empty() {
                println!("systemd is not running here (or this is a --prefix install): run these as root:");
                for c in &done.services.to_run {
                    println!("  {c}");
                }
            }
            for p in &done.removed {
                println!("Removed {}.", p.display());
            }
            println!(
                "Kept {} and {} (the journal): remove them to start afresh.",
                layout.config_file().display(),
                layout.state_dir().display()
            );
            Ok(ExitCode::SUCCESS)
        }
        .await,
    )
}

/// `agent connect`: the admin sign-in and role check, alone.
pub async fn connect(a: InstalledArgs) -> anyhow::Result<ExitCode> {
    finish(
        async {
            let layout = layout_of(a.prefix.as_deref())?;
            let session = installed_session(&layout, &a, &mut Secrets::default()).await?;
            println!(
                "Signed in as {}: the account may install and manage agents.",
                session.upn
            );
            Ok(ExitCode::SUCCESS)
        }
        .await,
    )
}

/// `agent phs enable|disable`.
pub async fn phs(cmd: PhsCommand) -> anyhow::Result<ExitCode> {
    let (a, enabled) = match cmd {
        PhsCommand::Enable(a) => (a, true),
        PhsCommand::Disable(a) => (a, false),
    };
    finish(
        async {
            let layout = layout_of(a.prefix.as_deref())?;
            let creds = cloudsync_agent::control::credentials::AgentCredentials::load(
                &layout.credentials_file(),
            )?;
            let session = installed_session(&layout, &a, &mut Secrets::default()).await?;
            for (domain, id) in &creds.configurations {
                let c = session.set_password_hash_sync(*id, enabled).await?;
                println!(
                    "{domain}: password hash sync {} (configuration {id}, revision {})",
                    if c.spec.password_hash_sync {
                        "on"
                    } else {
                        "off"
                    },
                    c.revision
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        .await,
    )
}

/// `agent domain add`.
pub async fn domain_add(cmd: DomainCommand) -> anyhow::Result<ExitCode> {
    let DomainCommand::Add {
        installed: a,
        domain: spec,
        dc_ca_file,
        domain_admin,
        domain_admin_password_file,
    } = cmd;
    finish(
        async {
            let layout = layout_of(a.prefix.as_deref())?;
            let existing = layout.existing()?;
            let config = install::read_config(&layout)?;
            let choice = installed_choice(&config, &layout)?;
            let mut secrets = Secrets::default();
            let session = installed_session(&layout, &a, &mut secrets).await?;
            let admin_password =
                secrets.read(&domain_admin_password_file, "the domain administrator's password")?;
            let target = domain_target(&spec, dc_ca_file.as_deref());
            let existing_account = match &choice {
                AccountChoice::Existing { account, password } => {
                    Some((account.as_str(), password.as_str()))
                }
                _ => None,
            };
            let checked = domain::check_domain(
                &target,
                (&domain_admin, &admin_password),
                existing_account,
            )
            .await
            .map_err(InstallError::from)?;
            println!(
                "Domain {} checked ({}).",
                checked.target.dns_name, checked.naming_context
            );
            let mut accounts = Vec::new();
            if choice.is_made() {
                let made = install::account::provision_domain(
                    &choice,
                    &checked.target,
                    (&domain_admin, &admin_password),
                    &installed_host_account(&config),
                    &layout,
                )
                .await?;
                for line in &made.lines {
                    println!("{line}");
                }
                accounts.push(made);
            }
            write_account_files(&accounts)?;
            let tenant = config.tenant.as_ref().ok_or_else(|| {
                InstallError::Setting("the installed configuration has no [tenant]".into())
            })?;
            rewrite(
                &layout,
                &existing,
                existing_account.map(|(a, _)| a),
                &accounts,
                &[checked.target],
                tenant.environment,
            )?;
            let config = install::read_config(&layout)?;
            let registered = cloudsync_agent::control::register::register_as(
                &config,
                &session.client,
                session.token.as_str(),
                existing.creds.as_ref(),
            )
            .await
            .map_err(InstallError::from)?;
            for (domain, id, created) in &registered.configurations {
                let how = if *created { "created" } else { "reused" };
                println!("  {domain}: configuration {id} ({how})");
            }
            println!("Restart the agent to read the new domain: systemctl restart cloudsync-agent.service");
            Ok(ExitCode::SUCCESS)
        }
        .await,
    )
}

/// `agent service-account set`.
pub async fn service_account_set(cmd: ServiceAccountCommand) -> anyhow::Result<ExitCode> {
    let ServiceAccountCommand::Set {
        prefix,
        account,
        password_file,
    } = cmd;
    finish(
        async {
            let layout = layout_of(prefix.as_deref())?;
            let existing = layout.existing()?;
            let config = install::read_config(&layout)?;
            let password = Secrets::default().read(&password_file, "the service account's password")?;
            for d in config.domains.values() {
                let target = DomainTarget {
                    dns_name: d.dns_name.clone(),
                    url: d.url.clone(),
                    ca_file: d.ca_file.clone(),
                };
                let cfg = domain::domain_config(&target, &account, &password).map_err(InstallError::from)?;
                cloudsync_agent::source::ldap::conn::connect(&cfg)
                    .await
                    .map_err(|e| match e {
                        cloudsync_agent::source::ldap::LdapSourceError::Bind { failure, .. } => {
                            InstallError::Domain(install::DomainError::Bind {
                                domain: d.dns_name.clone(),
                                account: account.clone(),
                                message: domain::bind_message(failure, &account),
                                failure,
                            })
                        }
                        source => InstallError::Domain(install::DomainError::Ldap {
                            domain: d.dns_name.clone(),
                            source,
                        }),
                    })?
                    .close()
                    .await;
                println!("{}: {account} binds.", d.dns_name);
            }
            let mut pw = Zeroizing::new(password.as_bytes().to_vec());
            pw.push(b'\n');
            files::write_file(&layout.service_password_file(), &pw, 0o600)?;
            let environment = config
                .tenant
                .as_ref()
                .map_or(Environment::AzureCloud, |t| t.environment);
            rewrite(&layout, &existing, Some(&account), &[], &[], environment)?;
            println!("Service account set to {account}; restart the agent: systemctl restart cloudsync-agent.service");
            Ok(ExitCode::SUCCESS)
        }
        .await,
    )
}

/// The installed service account's form, as the install record says it (`serviceAccountType`): a gMSA
/// (created or joined, or a custom one), a regular account the install created, or an existing account
/// and its password. A record from before the forms existed means an existing account.
fn installed_choice(
    config: &cloudsync_agent::config::Config,
    layout: &Layout,
) -> anyhow::Result<AccountChoice> {
    let d =
        config.domains.values().next().ok_or_else(|| {
            InstallError::Setting("the installed configuration has no domain".into())
        })?;
    let name = match (d.bind_dn.split_once('\\'), d.bind_dn.split_once('@')) {
        (Some((_, user)), _) | (None, Some((user, _))) => user.to_string(),
        (None, None) => d.bind_dn.clone(),
    };
    let record: serde_json::Value = std::fs::read(layout.record_file())
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let kind = record["serviceAccountType"].as_str().unwrap_or("existing");
    if kind == "existing" {
        let password = d
            .resolve_password()
            .context("while reading the service account's password file")?;
        return Ok(AccountChoice::Existing {
            account: d.bind_dn.clone(),
            password: Zeroizing::new(password.expose().to_string()),
        });
    }
    // A new domain gets the same form under the same name: the gMSA created (or joined) there, the
    // custom gMSA found there, the regular account created there.
    Ok(install::account::choice_of(kind, Some(&name), None)?)
}

/// The host computer account an earlier install made (its CN), else the default.
fn installed_host_account(config: &cloudsync_agent::config::Config) -> String {
    config
        .domains
        .values()
        .find_map(|d| {
            let dn = d.host_dn.as_deref()?;
            let cn = dn.split(',').next()?.split_once('=')?.1;
            Some(cn.to_string())
        })
        .unwrap_or_else(install::account::default_host_account)
}

/// Writes the secret files the account step made (0600).
pub fn write_account_files(accounts: &[DomainAccount]) -> anyhow::Result<()> {
    for a in accounts {
        for (path, secret) in &a.files {
            let mut pw = Zeroizing::new(secret.expose().as_bytes().to_vec());
            pw.push(b'\n');
            files::write_file(path, &pw, 0o600)?;
        }
    }
    Ok(())
}

/// Rewrites the installed configuration with `domains` added and `account` everywhere, keeping its
/// `[tenant]` table as it is.
fn rewrite(
    layout: &Layout,
    existing: &install::Existing,
    account: Option<&str>,
    accounts: &[DomainAccount],
    domains: &[DomainTarget],
    environment: Environment,
) -> anyhow::Result<()> {
    let table = existing
        .table
        .as_ref()
        .ok_or_else(|| InstallError::NotInstalled(layout.config_file()))?;
    let tenant_table = table.get("tenant").cloned().ok_or_else(|| {
        InstallError::Setting("the installed configuration has no [tenant]".into())
    })?;
    let tenant = TenantTarget {
        url: tenant_table
            .get("url")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .into(),
        ca_file: tenant_table
            .get("ca_file")
            .and_then(|v| v.as_str())
            .map(PathBuf::from),
        tenant_id: tenant_table
            .get("tenant_id")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .into(),
    };
    let text = files::render_config(&files::ConfigInput {
        layout,
        environment,
        tenant: &tenant,
        service_account: account,
        accounts,
        domains,
        settings: &[],
        existing: Some(table),
    })?;
    files::write_file(&layout.config_file(), text.as_bytes(), 0o640)?;
    Ok(())
}
