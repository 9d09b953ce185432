//! `cloudsync agent install` as a library: every step of the seed's wizard, testable without a
//! terminal. Enters: the admin's answers (the wizard's prompts or the unattended flags) and the
//! tenant and DCs they name. Leaves: the agent registered, its configuration (0640) and private
//! files (0600) under the [`Layout`], its units installed (or the commands printed), and the
//! verification's result; or an [`InstallError`] naming the step and what to fix.
//!
//! The steps, in the seed's order, each a function the wizard (`src/cli/wizard.rs`) and the
//! unattended form (`src/cli/install.rs`) both call:
//! 1. license and extension: [`Extension::require_available`] (on-premises application
//!    provisioning is recorded and refused: not available yet);
//! 2. environment: [`cloudsync_api::Environment`] from the one table, or a tenant URL;
//! 3. admin sign-in and role: [`admin::sign_in`];
//! 4. service account: [`account::AccountChoice`] — create or join a gMSA, a custom gMSA, a created
//!    regular account, or an existing one — made and proven per domain by
//!    [`account::provision_domain`] with the domain administrator's credentials;
//! 5. "Connect Active Directory": [`domain::check_domain`] per domain, as the domain
//!    administrator, whose credentials are used only there and never written;
//! 6. confirm, then [`apply`]: files ([`files`]), registration ([`crate::control::register::register_as`],
//!    keeping an installed agent's id on an update in place), services ([`services`]), and
//!    [`verify`].
//!
//! [`uninstall`] removes the services, the registration and the private files.

pub mod account;
pub mod admin;
pub mod domain;
pub mod files;
pub mod layout;
pub mod services;
pub mod verify;

use std::path::PathBuf;

use zeroize::Zeroizing;

use crate::config::{Config, ConfigError};
use crate::control::credentials::{AgentCredentials, CredentialsError};
use crate::control::register::{RegisterError, Registered, register_as};
use crate::control::service_unit::UnitError;
use crate::control::tenant_client::TenantError;
pub use account::{AccountChoice, DomainAccount};
pub use admin::AdminSession;
use cloudsync_api::Environment;
pub use domain::{CheckedDomain, DomainError, DomainTarget};
pub use files::TenantTarget;
pub use layout::{Existing, Layout};
pub use services::ServicesOutcome;
pub use verify::{VERIFIED, Verified};

/// The seed's "Select Extension" choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extension {
    /// Directory sync to the cloud (the seed's "HR-driven provisioning / cloud sync").
    CloudSync,
    /// On-premises application provisioning (cloud to an application): not available yet.
    OnPremisesAppProvisioning,
}

impl Extension {
    /// The name recorded in `install.json` and taken by `--extension`.
    pub fn as_str(self) -> &'static str {
        match self {
            Extension::CloudSync => "cloud-sync",
            Extension::OnPremisesAppProvisioning => "on-premises-app-provisioning",
        }
    }

    /// What the wizard shows.
    pub fn title(self) -> &'static str {
        match self {
            Extension::CloudSync => {
                "Directory sync to the cloud (Active Directory to the cloud directory)"
            }
            Extension::OnPremisesAppProvisioning => {
                "On-premises application provisioning (the cloud directory to an application)"
            }
        }
    }

    /// Refuses what this build cannot do, with the choice named.
    pub fn require_available(self) -> Result<(), InstallError> {
        match self {
            Extension::CloudSync => Ok(()),
            Extension::OnPremisesAppProvisioning => Err(InstallError::NotAvailable(
                "on-premises application provisioning is not available yet: choose directory sync to the cloud (--extension cloud-sync)".into(),
            )),
        }
    }
}

impl std::str::FromStr for Extension {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        [Extension::CloudSync, Extension::OnPremisesAppProvisioning]
            .into_iter()
            .find(|e| e.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown extension {s:?}: expected cloud-sync or on-premises-app-provisioning"
                )
            })
    }
}

/// Why an install step failed. [`InstallError::exit_code`] is the CLI's exit code (docs/install.md).
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// A file or directory could not be written or read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The earlier install's configuration cannot be parsed.
    #[error("the installed configuration {} cannot be read ({message}); fix or remove it", path.display())]
    Existing {
        /// The file.
        path: PathBuf,
        /// The parse error.
        message: String,
    },
    /// No agent is installed under the layout.
    #[error("no agent is installed: {} does not exist (run `cloudsync agent install` first, with the same --prefix)", .0.display())]
    NotInstalled(PathBuf),
    /// A `--set` key or a value could not be written.
    #[error("--set: {0}")]
    Setting(String),
    /// The configuration the answers make does not validate.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The admin's sign-in was refused.
    #[error("sign-in as {upn} refused: {detail}; check the account name and password")]
    SignIn {
        /// The account.
        upn: String,
        /// The tenant's description (AADSTS code first).
        detail: String,
    },
    /// The account has no role that may install an agent.
    #[error(
        "{upn} may not install an agent: sign in as a Global Administrator or Hybrid Identity Administrator (the tenant says: {detail})"
    )]
    Role {
        /// The account.
        upn: String,
        /// The tenant's 403 message: the roles needed and the roles the account has.
        detail: String,
    },
    /// The tenant is in another cloud than the environment chosen.
    #[error(
        "the tenant is in the cloud {tenant_cloud:?}, not {chosen}: choose its environment (--environment or ENVIRONMENTNAME)"
    )]
    WrongEnvironment {
        /// The environment chosen.
        chosen: Environment,
        /// The tenant's `cloud_instance_name`.
        tenant_cloud: String,
    },
    /// A domain failed its checks.
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// The service account could not be made, joined or proven in a domain.
    #[error("service account: {0}")]
    Account(String),
    /// A choice this build cannot carry out (on-premises application provisioning, permissions).
    #[error("{0}")]
    NotAvailable(String),
    /// A call to the tenant failed.
    #[error(transparent)]
    Tenant(#[from] TenantError),
    /// Registration failed.
    #[error(transparent)]
    Register(#[from] RegisterError),
    /// The credentials file could not be read.
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    /// A unit could not be written.
    #[error(transparent)]
    Unit(#[from] UnitError),
    /// A service command failed.
    #[error("`{command}` failed (exit {status:?})")]
    Command {
        /// The command.
        command: String,
        /// Its exit code.
        status: Option<i32>,
    },
}

impl InstallError {
    /// 2 bad input, 3 sign-in or role refused, 4 a domain check failed, 6 not available yet, 1 else
    /// (5 is a failed verification, which is a result, not an error).
    pub fn exit_code(&self) -> u8 {
        match self {
            InstallError::Setting(_)
            | InstallError::Existing { .. }
            | InstallError::NotInstalled(_)
            | InstallError::WrongEnvironment { .. }
            | InstallError::Config(_) => 2,
            InstallError::SignIn { .. } | InstallError::Role { .. } => 3,
            InstallError::Domain(_) | InstallError::Account(_) => 4,
            InstallError::NotAvailable(_) => 6,
            _ => 1,
        }
    }
}

/// Everything the steps gathered, before the summary is confirmed.
#[derive(Debug)]
pub struct InstallPlan {
    /// Where to install.
    pub layout: Layout,
    /// The extension chosen (only [`Extension::CloudSync`] gets here).
    pub extension: Extension,
    /// The cloud.
    pub environment: Environment,
    /// The tenant.
    pub tenant: TenantTarget,
    /// The service account's form (for an existing account: its name and password, the password
    /// written only to the 0600 password file).
    pub account: AccountChoice,
    /// Per domain, the account made or checked by [`account::provision_domain`]: every configured
    /// domain when the install makes the account; empty for an existing account.
    pub accounts: Vec<DomainAccount>,
    /// The domains added now (checked), besides those an earlier install configured.
    pub domains: Vec<DomainTarget>,
    /// `--set section.key=value` keys, written last.
    pub settings: Vec<(Vec<String>, toml::Value)>,
    /// The account the services run as.
    pub unit_user: String,
    /// The `cloudsync` binary the units run.
    pub binary: PathBuf,
}

/// What [`apply`] did.
#[derive(Debug)]
pub struct Applied {
    /// The configuration file written.
    pub config_file: PathBuf,
    /// The registration (kept or new).
    pub registered: Registered,
    /// Whether an installed agent's registration was kept (an update in place).
    pub updated_in_place: bool,
    /// The services step.
    pub services: ServicesOutcome,
    /// The verification, one line per check.
    pub checks: Vec<Verified>,
}

impl Applied {
    /// Whether every verification check passed.
    pub fn verified(&self) -> bool {
        verify::all_ok(&self.checks)
    }
}

/// The steps after the summary: files, registration, services, verification (module doc).
pub async fn apply(
    plan: &InstallPlan,
    session: &AdminSession,
    existing: &Existing,
) -> Result<Applied, InstallError> {
    let layout = &plan.layout;
    files::ensure_dir(&layout.config_dir(), 0o750)?;
    files::ensure_dir(&layout.state_dir(), 0o700)?;
    let existing_account = match &plan.account {
        AccountChoice::Existing { account, password } => {
            let mut pw = Zeroizing::new(password.as_bytes().to_vec());
            pw.push(b'\n');
            files::write_file(&layout.service_password_file(), &pw, 0o600)?;
            Some(account.as_str())
        }
        _ => None,
    };
    for a in &plan.accounts {
        for (path, secret) in &a.files {
            let mut pw = Zeroizing::new(secret.expose().as_bytes().to_vec());
            pw.push(b'\n');
            files::write_file(path, &pw, 0o600)?;
        }
    }
    let text = files::render_config(&files::ConfigInput {
        layout,
        environment: plan.environment,
        tenant: &plan.tenant,
        service_account: existing_account,
        accounts: &plan.accounts,
        domains: &plan.domains,
        settings: &plan.settings,
        existing: existing.table.as_ref(),
    })?;
    files::write_file(&layout.config_file(), text.as_bytes(), 0o640)?;
    let config = read_config(layout)?;
    let registered = register_as(
        &config,
        &session.client,
        session.token.as_str(),
        existing.creds.as_ref(),
    )
    .await?;
    let record = serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "extension": plan.extension.as_str(),
        "environment": plan.environment.as_str(),
        "serviceAccount": match &plan.account {
            AccountChoice::Existing { account, .. } => account.clone(),
            AccountChoice::CreateGmsa(n, _) | AccountChoice::CustomGmsa(n) => format!("{n}$"),
            AccountChoice::CreateRegular(n) => n.clone(),
        },
        "serviceAccountType": plan.account.kind(),
        "agentId": registered.creds.agent_id,
        "installedBy": session.upn,
    });
    files::write_file(&layout.record_file(), record.to_string().as_bytes(), 0o600)?;
    let services = services::install_services(&config, layout, &plan.unit_user, &plan.binary)?;
    let checks = verify::verify(&config).await;
    Ok(Applied {
        config_file: layout.config_file(),
        registered,
        updated_in_place: existing.creds.is_some(),
        services,
        checks,
    })
}

/// The installed configuration, read exactly as written (no environment layer).
pub fn read_config(layout: &Layout) -> Result<Config, InstallError> {
    let path = layout.config_file();
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(InstallError::NotInstalled(path));
        }
        Err(source) => return Err(InstallError::Io { path, source }),
    };
    Ok(Config::from_toml_str(&text)?)
}

/// What [`uninstall`] did.
#[derive(Debug)]
pub struct Uninstalled {
    /// The agent whose registration was removed.
    pub agent_id: Option<uuid::Uuid>,
    /// Whether the tenant still had it.
    pub registration_removed: bool,
    /// The services step.
    pub services: ServicesOutcome,
    /// The private files removed.
    pub removed: Vec<PathBuf>,
}

/// Removes the services, the registration and the private files (credentials, service password,
/// install record). The configuration and the journal stay (`rm -rf` them to start afresh).
pub async fn uninstall(
    layout: &Layout,
    session: &AdminSession,
    binary: &std::path::Path,
) -> Result<Uninstalled, InstallError> {
    let config = read_config(layout)?;
    let creds_path = layout.credentials_file();
    let creds = if creds_path.exists() {
        Some(AgentCredentials::load(&creds_path)?)
    } else {
        None
    };
    let mut registration_removed = false;
    if let Some(c) = &creds {
        registration_removed = session.delete_agent(c.agent_id).await?;
    }
    let services = services::remove_services(layout, &config, binary)?;
    let mut removed = Vec::new();
    for path in [
        creds_path,
        layout.service_password_file(),
        layout.record_file(),
    ] {
        if path.exists() {
            std::fs::remove_file(&path).map_err(|source| InstallError::Io {
                path: path.clone(),
                source,
            })?;
            removed.push(path);
        }
    }
    Ok(Uninstalled {
        agent_id: creds.map(|c| c.agent_id),
        registration_removed,
        services,
        removed,
    })
}
