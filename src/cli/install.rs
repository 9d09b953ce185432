//! `cloudsync agent install --unattended`: flags in, the library's steps
//! ([`cloudsync_agent::control::install`]) run, a line per step out. Secrets come from files or
//! stdin (`-`), never from argv. The wizard over the same steps is `wizard.rs`; `agent uninstall`
//! and the cmdlets are `install_cmdlets.rs`; exit codes are in docs/install.md.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use zeroize::Zeroizing;

use cloudsync_agent::control::install::{
    self, AccountChoice, DomainTarget, Extension, InstallError, InstallPlan, Layout, TenantTarget,
    VERIFIED, admin, domain, files,
};
use cloudsync_api::Environment;

/// The flags of `agent install` (the wizard takes them as its defaults).
#[derive(Debug, Clone, clap::Args)]
pub struct InstallArgs {
    /// Run without prompts: every answer from the flags below.
    #[arg(long)]
    pub unattended: bool,
    /// Install everything under DIR ({DIR}/etc/cloudsync, {DIR}/var/lib/cloudsync,
    /// {DIR}/etc/systemd/system) instead of the system paths.
    #[arg(long, value_name = "DIR")]
    pub prefix: Option<PathBuf>,
    /// Accept the license terms and conditions (the splash screen's "I agree").
    #[arg(long)]
    pub accept_license: bool,
    /// cloud-sync (directory sync to the cloud) or on-premises-app-provisioning (not available yet).
    #[arg(long, default_value = "cloud-sync")]
    pub extension: String,
    /// The cloud: AzureCloud, AzureUSGovernment or AzureChinaCloud (the installer's ENVIRONMENTNAME).
    #[arg(long, env = "ENVIRONMENTNAME")]
    pub environment: Option<String>,
    /// The tenant's base URL, overriding the environment's endpoints (the local tenant).
    #[arg(long)]
    pub tenant_url: Option<String>,
    /// Trust only this CA (PEM) for the tenant.
    #[arg(long)]
    pub tenant_ca_file: Option<PathBuf>,
    /// The tenant id or initial domain; default: the domain of --admin-upn.
    #[arg(long)]
    pub tenant_id: Option<String>,
    /// A Global Administrator or Hybrid Identity Administrator of the tenant.
    #[arg(long)]
    pub admin_upn: Option<String>,
    /// The admin's password: a file's first line, or `-` for stdin.
    #[arg(long, value_name = "FILE|-")]
    pub admin_password_file: Option<PathBuf>,
    /// The service account's form: create-gmsa (the default; creates or joins a group managed
    /// service account), custom-gmsa (an existing gMSA), create-regular (a user with a random
    /// password, for directories that cannot serve gMSA passwords) or existing (an account and its
    /// password; the default when --service-account-password-file is given).
    #[arg(long, value_name = "TYPE")]
    pub service_account_type: Option<String>,
    /// The account's name: the gMSA (default provAgentgMSA), the regular account to create (default
    /// svc-cloudsync), or the existing account's UPN or DN.
    #[arg(long)]
    pub service_account: Option<String>,
    /// An existing account's password: a file's first line, or `-` for stdin.
    #[arg(long, value_name = "FILE|-")]
    pub service_account_password_file: Option<PathBuf>,
    /// With create-gmsa in a forest without a KDS root key: create one usable at once instead of from
    /// the next 10-hour key interval (for labs only, as Microsoft advises).
    #[arg(long)]
    pub kds_root_key_immediately: bool,
    /// This host's computer account in each domain (the principal that reads the gMSA's password);
    /// default: the host name's first label, upper-case.
    #[arg(long, value_name = "NAME")]
    pub host_account: Option<String>,
    /// A domain to add, `DNS` or `DNS=ldaps://dc:636` (default URL: ldaps://DNS). Repeatable.
    #[arg(long = "domain", value_name = "DNS[=URL]")]
    pub domains: Vec<String>,
    /// The CA (PEM) that signs the DCs' certificates.
    #[arg(long)]
    pub dc_ca_file: Option<PathBuf>,
    /// The domain administrator the domains are checked with (used during install only, never stored).
    #[arg(long)]
    pub domain_admin: Option<String>,
    /// Its password: a file's first line, or `-` for stdin.
    #[arg(long, value_name = "FILE|-")]
    pub domain_admin_password_file: Option<PathBuf>,
    /// The account the services run as.
    #[arg(long, default_value = "cloudsync")]
    pub user: String,
    /// The cloudsync binary the units run; default: this one.
    #[arg(long)]
    pub binary: Option<PathBuf>,
    /// Another configuration key to write, e.g. `--set metrics.listen=127.0.0.1:9464` (repeatable).
    #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
    pub set: Vec<String>,
    /// The release signing public key the updater pins (`[updater] public_key`): its base64, or
    /// the `KEYFILE.pub` file `cloudsync release keygen` wrote. Without it the updater only checks
    /// and reports (docs/updater.md).
    #[arg(long, value_name = "BASE64|FILE")]
    pub release_public_key: Option<String>,
}

/// Reads secrets from files or stdin; stdin (`-`) can be used once.
#[derive(Default)]
pub struct Secrets {
    stdin_used: bool,
}

impl Secrets {
    /// The first line of `path`, or of stdin for `-`, naming `what` in errors.
    pub fn read(&mut self, path: &Path, what: &str) -> anyhow::Result<Zeroizing<String>> {
        let mut line = Zeroizing::new(String::new());
        if path == Path::new("-") {
            anyhow::ensure!(
                !self.stdin_used,
                "only one secret can come from stdin (-); give {what} in a file"
            );
            self.stdin_used = true;
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .with_context(|| format!("while reading {what} from stdin"))?;
        } else {
            let text = Zeroizing::new(
                std::fs::read_to_string(path)
                    .with_context(|| format!("while reading {what} from {}", path.display()))?,
            );
            line.push_str(text.lines().next().unwrap_or_default());
        }
        let value = Zeroizing::new(line.trim_end_matches(['\r', '\n']).to_string());
        anyhow::ensure!(!value.is_empty(), "{what} is empty ({})", path.display());
        Ok(value)
    }
}

/// `--prefix` or the system layout.
pub fn layout_of(prefix: Option<&Path>) -> Result<Layout, InstallError> {
    match prefix {
        Some(p) => Layout::under(p),
        None => Ok(Layout::system()),
    }
}

/// `DNS` or `DNS=URL` with the CA.
pub fn domain_target(spec: &str, ca: Option<&Path>) -> DomainTarget {
    let (name, url) = match spec.split_once('=') {
        Some((n, u)) => (n.trim().to_string(), u.trim().to_string()),
        None => (spec.trim().to_string(), format!("ldaps://{}", spec.trim())),
    };
    DomainTarget {
        dns_name: name,
        url,
        ca_file: ca.map(absolute),
    }
}

/// `path` made absolute (the configuration is read by a service with another working directory).
pub fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// The environment: the flag (or ENVIRONMENTNAME), else an installed agent's, else AzureCloud.
pub fn environment_of(args: &InstallArgs) -> Result<Environment, InstallError> {
    match &args.environment {
        Some(name) => name
            .parse()
            .map_err(|e: String| InstallError::Setting(format!("--environment: {e}"))),
        None => Ok(Environment::AzureCloud),
    }
}

/// The tenant: `--tenant-url` or the environment's endpoints.
pub fn tenant_of(args: &InstallArgs, environment: Environment, admin_upn: &str) -> TenantTarget {
    let tenant_id = args.tenant_id.clone().unwrap_or_else(|| {
        admin_upn
            .rsplit_once('@')
            .map(|(_, d)| d.to_string())
            .unwrap_or_default()
    });
    match &args.tenant_url {
        Some(url) => TenantTarget {
            url: url.clone(),
            ca_file: args.tenant_ca_file.as_deref().map(absolute),
            tenant_id,
        },
        None => TenantTarget {
            ca_file: args.tenant_ca_file.as_deref().map(absolute),
            ..TenantTarget::for_environment(environment, &tenant_id)
        },
    }
}

/// The `[tenant]` settings the sign-in uses, before any file is written.
pub fn tenant_config(
    target: &TenantTarget,
    environment: Environment,
    layout: &Layout,
) -> anyhow::Result<cloudsync_agent::control::tenant_client::TenantConfig> {
    Ok(toml::Value::Table(target.table(environment, layout)).try_into()?)
}

/// The parsed `--set` keys.
pub fn settings_of(set: &[String]) -> Result<Vec<(Vec<String>, toml::Value)>, InstallError> {
    set.iter()
        .map(|s| files::parse_setting(s).map_err(InstallError::Setting))
        .collect()
}

/// The `--set` keys plus `[updater] public_key` from `--release-public-key` (checked here).
pub fn install_settings(args: &InstallArgs) -> anyhow::Result<Vec<(Vec<String>, toml::Value)>> {
    let mut settings = settings_of(&args.set)?;
    if let Some(given) = &args.release_public_key {
        let path = Path::new(given);
        let text = if path.is_file() {
            std::fs::read_to_string(path).with_context(|| {
                format!("while reading the release public key {}", path.display())
            })?
        } else {
            given.clone()
        };
        let key = text.trim().to_owned();
        cloudsync_agent::control::updater::settings::parse_public_key(&key)
            .map_err(|e| anyhow::anyhow!("--release-public-key {e}"))?;
        settings.push((
            vec!["updater".into(), "public_key".into()],
            toml::Value::String(key),
        ));
    }
    Ok(settings)
}

/// `--binary`, else this executable.
pub fn binary_of(binary: &Option<PathBuf>) -> anyhow::Result<PathBuf> {
    match binary {
        Some(b) => Ok(std::path::absolute(b)?),
        None => std::env::current_exe().context("while finding this binary's path"),
    }
}

/// Prints an install error and returns its exit code.
pub fn fail(e: &InstallError) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(e.exit_code())
}

/// A flag `--unattended` needs.
pub fn missing(flag: &str) -> InstallError {
    InstallError::Setting(format!("--unattended needs {flag}"))
}

/// `agent install --unattended`.
pub async fn unattended(args: InstallArgs) -> anyhow::Result<ExitCode> {
    match unattended_steps(args).await {
        Ok(code) => Ok(code),
        Err(e) => match e.downcast::<InstallError>() {
            Ok(e) => Ok(fail(&e)),
            Err(e) => Err(e),
        },
    }
}

async fn unattended_steps(args: InstallArgs) -> anyhow::Result<ExitCode> {
    if !args.accept_license {
        return Err(InstallError::Setting(
            "accept the license terms and conditions with --accept-license (see LICENSE)".into(),
        )
        .into());
    }
    let extension: Extension = args.extension.parse().map_err(InstallError::Setting)?;
    println!("Extension: {}", extension.title());
    extension.require_available()?;
    let environment = environment_of(&args)?;
    let layout = layout_of(args.prefix.as_deref())?;
    let existing = layout.existing()?;
    let admin_upn = args
        .admin_upn
        .clone()
        .ok_or_else(|| missing("--admin-upn"))?;
    let mut secrets = Secrets::default();
    let admin_password = secrets.read(
        args.admin_password_file
            .as_deref()
            .ok_or_else(|| missing("--admin-password-file"))?,
        "the admin password",
    )?;
    let service_password = match &args.service_account_password_file {
        Some(path) => Some(secrets.read(path, "the service account's password")?),
        None => None,
    };
    let account = account_choice_of(&args, service_password)?;
    println!("Service account: {}", account.describe());
    let tenant = tenant_of(&args, environment, &admin_upn);
    println!("Environment: {environment} (tenant {})", tenant.url);
    let session = admin::sign_in(
        &tenant_config(&tenant, environment, &layout)?,
        &admin_upn,
        &admin_password,
    )
    .await?;
    println!("Signed in as {admin_upn}.");
    // The domains to check: those given now, and — when the install makes the account — every domain
    // an earlier install configured, so each gets its account.
    let mut targets: Vec<DomainTarget> = args
        .domains
        .iter()
        .map(|spec| domain_target(spec, args.dc_ca_file.as_deref()))
        .collect();
    if account.is_made() {
        for t in existing_targets(&existing) {
            if !targets
                .iter()
                .any(|n| n.dns_name.eq_ignore_ascii_case(&t.dns_name))
            {
                targets.push(t);
            }
        }
    }
    let mut domains = Vec::new();
    let mut accounts = Vec::new();
    if !targets.is_empty() {
        let domain_admin = args
            .domain_admin
            .clone()
            .ok_or_else(|| missing("--domain-admin"))?;
        let domain_password = secrets.read(
            args.domain_admin_password_file
                .as_deref()
                .ok_or_else(|| missing("--domain-admin-password-file"))?,
            "the domain administrator's password",
        )?;
        let host = args
            .host_account
            .clone()
            .unwrap_or_else(install::account::default_host_account);
        for target in &targets {
            let existing_account = match &account {
                AccountChoice::Existing { account, password } => {
                    Some((account.as_str(), password.as_str()))
                }
                _ => None,
            };
            let checked =
                domain::check_domain(target, (&domain_admin, &domain_password), existing_account)
                    .await
                    .map_err(InstallError::from)?;
            println!(
                "Domain {} checked ({}).",
                checked.target.dns_name, checked.naming_context
            );
            if account.is_made() {
                let made = install::account::provision_domain(
                    &account,
                    &checked.target,
                    (&domain_admin, &domain_password),
                    &host,
                    &layout,
                )
                .await?;
                for line in &made.lines {
                    println!("{line}");
                }
                accounts.push(made);
            }
            domains.push(checked.target);
        }
    }
    let mut configured: Vec<String> = existing.domains().into_iter().map(|(_, n)| n).collect();
    for d in &domains {
        if !configured
            .iter()
            .any(|n| n.eq_ignore_ascii_case(&d.dns_name))
        {
            configured.push(d.dns_name.clone());
        }
    }
    if configured.is_empty() {
        return Err(missing("at least one --domain").into());
    }
    println!("Configured domains: {}", configured.join(", "));
    let plan = InstallPlan {
        layout,
        extension,
        environment,
        tenant,
        account,
        accounts,
        domains,
        settings: install_settings(&args)?,
        unit_user: args.user.clone(),
        binary: binary_of(&args.binary)?,
    };
    let applied = install::apply(&plan, &session, &existing).await?;
    Ok(print_applied(&applied))
}

/// `--service-account-type` (default: existing with a password file, else create-gmsa) and its name.
pub fn account_choice_of(
    args: &InstallArgs,
    password: Option<Zeroizing<String>>,
) -> Result<AccountChoice, InstallError> {
    let kind = args
        .service_account_type
        .as_deref()
        .unwrap_or(if password.is_some() {
            "existing"
        } else {
            "create-gmsa"
        });
    let choice = install::account::choice_of(kind, args.service_account.as_deref(), password)?;
    Ok(match choice {
        AccountChoice::CreateGmsa(name, _) if args.kds_root_key_immediately => {
            AccountChoice::CreateGmsa(name, install::account::KdsPolicy::Immediately)
        }
        other => other,
    })
}

/// The domains an earlier install configured, as targets to check again (URL and CA kept).
pub fn existing_targets(existing: &install::Existing) -> Vec<DomainTarget> {
    let Some(domains) = existing
        .table
        .as_ref()
        .and_then(|t| t.get("domains"))
        .and_then(|d| d.as_table())
    else {
        return Vec::new();
    };
    domains
        .values()
        .filter_map(|d| {
            Some(DomainTarget {
                dns_name: d.get("dns_name")?.as_str()?.to_string(),
                url: d.get("url")?.as_str()?.to_string(),
                ca_file: d.get("ca_file").and_then(|v| v.as_str()).map(PathBuf::from),
            })
        })
        .collect()
}

/// Prints what [`install::apply`] did; exit 0 when verified, 5 when a check failed.
pub fn print_applied(applied: &install::Applied) -> ExitCode {
    let creds = &applied.registered.creds;
    if applied.updated_in_place {
        println!(
            "Updated agent {} in place (its registration is kept).",
            creds.agent_id
        );
    } else {
        println!("Registered agent {}.", creds.agent_id);
    }
    for (domain, id, created) in &applied.registered.configurations {
        let how = if *created { "created" } else { "reused" };
        println!("  {domain}: configuration {id} ({how})");
    }
    println!(
        "Wrote {} (0640) and the credentials (0600).",
        applied.config_file.display()
    );
    for u in &applied.services.units {
        println!("Wrote unit {}.", u.display());
    }
    if !applied.services.ran.is_empty() {
        println!("Services installed and started.");
    }
    if !applied.services.to_run.is_empty() {
        println!(
            "systemd is not running here (or this is a --prefix install): run these as root to install and start the services:"
        );
        for c in &applied.services.to_run {
            println!("  {c}");
        }
    }
    for c in &applied.checks {
        match &c.result {
            Ok(detail) => println!("ok   {}: {detail}", c.what),
            Err(why) => println!("FAIL {}: {why}", c.what),
        }
    }
    if applied.verified() {
        println!("{VERIFIED}.");
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "The agent configuration could not be verified: fix the failed checks above, then run `cloudsync agent install` again (it updates in place)."
        );
        ExitCode::from(5)
    }
}
