//! `cloudsync agent install` on a terminal: the seed's wizard, screen by screen, over the library's
//! steps ([`cloudsync_agent::control::install`]). Enters: the admin's keystrokes (and the install
//! flags as defaults). Leaves: what `--unattended` leaves, and the same exit codes.
//!
//! Prompts are `dialoguer` (kept by the console-rs authors; its `console` crate is already in the
//! tree through `indicatif`): answers are validated before they are taken (`validate_with`),
//! passwords are read without echo, and a step the tenant or a DC refuses shows why and asks again.

use std::path::PathBuf;
use std::process::ExitCode;

use dialoguer::theme::ColorfulTheme;
use dialoguer::{Confirm, Input, Password, Select};
use zeroize::Zeroizing;

use cloudsync_agent::control::install::{
    self, AccountChoice, DomainAccount, DomainTarget, Extension, InstallError, InstallPlan, admin,
    domain,
};
use cloudsync_api::environment::ENVIRONMENTS;

use super::install::{
    InstallArgs, domain_target, fail, install_settings, layout_of, print_applied, tenant_config,
    tenant_of,
};

const LICENSE: &str = "cloudsync is free software under the license in the LICENSE file of its source. \
It comes with NO WARRANTY. It reads your Active Directory and writes to your cloud directory.";

/// Runs the wizard.
pub fn run(runtime: &tokio::runtime::Runtime, args: InstallArgs) -> anyhow::Result<ExitCode> {
    if !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        eprintln!(
            "error: the install wizard needs a terminal; use `cloudsync agent install --unattended` with flags (docs/install.md)"
        );
        return Ok(ExitCode::from(2));
    }
    match steps(runtime, args) {
        Ok(code) => Ok(code),
        Err(e) => match e.downcast::<InstallError>() {
            Ok(e) => Ok(fail(&e)),
            Err(e) => Err(e),
        },
    }
}

fn no_empty(s: &str) -> Result<(), String> {
    if s.trim().is_empty() {
        Err("this cannot be empty".into())
    } else {
        Ok(())
    }
}

fn upn_like(s: &str) -> Result<(), String> {
    match s.trim().split_once('@') {
        Some((user, dom)) if !user.is_empty() && dom.contains('.') => Ok(()),
        _ => Err("expected an account name like admin@contoso.onmicrosoft.com".into()),
    }
}

fn password(theme: &ColorfulTheme, prompt: &str) -> anyhow::Result<Zeroizing<String>> {
    Ok(Zeroizing::new(
        Password::with_theme(theme)
            .with_prompt(prompt)
            .validate_with(|s: &String| no_empty(s))
            .interact()?,
    ))
}

fn steps(runtime: &tokio::runtime::Runtime, args: InstallArgs) -> anyhow::Result<ExitCode> {
    let theme = ColorfulTheme::default();
    let layout = layout_of(args.prefix.as_deref())?;
    let existing = layout.existing()?;
    println!("cloudsync provisioning agent: install");
    if existing.creds.is_some() {
        println!(
            "An agent is installed in {}: this run updates it in place (its registration is kept).",
            layout.prefix.display()
        );
    }

    // License.
    println!("\n{LICENSE}");
    if !Confirm::with_theme(&theme)
        .with_prompt("I agree to the license terms and conditions")
        .default(false)
        .interact()?
    {
        eprintln!("The license was not accepted; nothing was installed.");
        return Ok(ExitCode::from(1));
    }

    // Select extension.
    let choices = [Extension::CloudSync, Extension::OnPremisesAppProvisioning];
    let extension = loop {
        let i = Select::with_theme(&theme)
            .with_prompt("Select extension")
            .items(choices.iter().map(|e| e.title()))
            .default(0)
            .interact()?;
        match choices[i].require_available() {
            Ok(()) => break choices[i],
            Err(e) => println!("{e}"),
        }
    };

    // Environment.
    let default_env = super::install::environment_of(&args)?;
    let names: Vec<&str> = ENVIRONMENTS.iter().map(|(_, c)| c.name).collect();
    let at = ENVIRONMENTS
        .iter()
        .position(|(e, _)| *e == default_env)
        .unwrap_or(0);
    let i = Select::with_theme(&theme)
        .with_prompt("Environment (the cloud your tenant is in)")
        .items(&names)
        .default(at)
        .interact()?;
    let environment = ENVIRONMENTS[i].0;
    if let Some(url) = &args.tenant_url {
        println!(
            "Tenant URL {url} (given with --tenant-url) overrides the environment's endpoints."
        );
    }

    // Connect to the tenant: a Global Administrator or Hybrid Identity Administrator.
    println!("\nSign in with a Global Administrator or Hybrid Identity Administrator account.");
    let (session, tenant) = loop {
        let upn: String = Input::with_theme(&theme)
            .with_prompt("Tenant administrator account")
            .with_initial_text(args.admin_upn.clone().unwrap_or_default())
            .validate_with(|s: &String| upn_like(s))
            .interact_text()?;
        let upn = upn.trim().to_string();
        let pw = password(&theme, "Tenant administrator password")?;
        let tenant = tenant_of(&args, environment, &upn);
        let config = tenant_config(&tenant, environment, &layout)?;
        match runtime.block_on(admin::sign_in(&config, &upn, &pw)) {
            Ok(session) => {
                println!("Signed in as {upn}.");
                break (session, tenant);
            }
            Err(e @ (InstallError::SignIn { .. } | InstallError::Role { .. })) => {
                println!("{e}");
            }
            Err(e) => return Err(e.into()),
        }
    };

    // Service account.
    let account = service_account_step(&theme, &args)?;
    let host = args
        .host_account
        .clone()
        .unwrap_or_else(install::account::default_host_account);

    // Connect Active Directory.
    let (domains, accounts) =
        connect_ad(runtime, &theme, &args, &existing, &account, &host, &layout)?;

    // Summary.
    println!("\nConfiguration complete. Summary:");
    println!("  extension        {}", extension.title());
    println!("  environment      {environment} (tenant {})", tenant.url);
    println!("  administrator    {}", session.upn);
    println!("  service account  {}", account.describe());
    let mut names: Vec<String> = existing.domains().into_iter().map(|(_, n)| n).collect();
    names.extend(domains.iter().map(|d| d.dns_name.clone()));
    names.dedup();
    println!("  domains          {}", names.join(", "));
    println!("  files under      {}", layout.prefix.display());
    if !Confirm::with_theme(&theme)
        .with_prompt("Confirm (register the agent and install its services)")
        .default(true)
        .interact()?
    {
        eprintln!("Not confirmed; nothing was installed.");
        return Ok(ExitCode::from(1));
    }
    let binary = super::install::binary_of(&args.binary)?;
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
        binary,
    };
    let applied = runtime.block_on(install::apply(&plan, &session, &existing))?;
    Ok(print_applied(&applied))
}

/// "Configure Service Account": the form (Create gMSA first, as the seed recommends) and its name.
fn service_account_step(
    theme: &ColorfulTheme,
    args: &InstallArgs,
) -> anyhow::Result<AccountChoice> {
    println!("\nConfigure the service account the agent runs as in AD.");
    let forms = [
        "Create gMSA (recommended: the domain controller manages its password)",
        "Use custom gMSA (an existing group managed service account)",
        "Create a regular account (for directories that cannot serve gMSA passwords)",
        "Use an existing account and its password",
    ];
    let kinds = ["create-gmsa", "custom-gmsa", "create-regular", "existing"];
    let at = args
        .service_account_type
        .as_deref()
        .and_then(|k| kinds.iter().position(|x| *x == k))
        .unwrap_or(0);
    let i = Select::with_theme(theme)
        .with_prompt("Service account")
        .items(forms)
        .default(at)
        .interact()?;
    let (prompt, default) = match kinds[i] {
        "create-gmsa" => (
            "gMSA name",
            install::account::choice_of("create-gmsa", None, None),
        ),
        "create-regular" => (
            "Account name",
            install::account::choice_of("create-regular", None, None),
        ),
        "custom-gmsa" => (
            "Your gMSA's name",
            Err(InstallError::Setting(String::new())),
        ),
        _ => (
            "Account (UPN or DN)",
            Err(InstallError::Setting(String::new())),
        ),
    };
    let initial = match default {
        Ok(AccountChoice::CreateGmsa(n, _) | AccountChoice::CreateRegular(n)) => n,
        _ => args.service_account.clone().unwrap_or_default(),
    };
    let name: String = Input::with_theme(theme)
        .with_prompt(prompt)
        .with_initial_text(initial)
        .validate_with(|s: &String| no_empty(s))
        .interact_text()?;
    let password = if kinds[i] == "existing" {
        Some(password(theme, "Service account password")?)
    } else {
        None
    };
    let choice = match install::account::choice_of(kinds[i], Some(name.trim()), password)? {
        AccountChoice::CreateGmsa(n, _) if args.kds_root_key_immediately => {
            AccountChoice::CreateGmsa(n, install::account::KdsPolicy::Immediately)
        }
        other => other,
    };
    println!("Using: {}.", choice.describe());
    Ok(choice)
}

/// "Connect Active Directory": configured domains listed, each new one checked as the domain
/// administrator (asked per domain, used for the check and to make the service account only). When
/// the install makes the account, every configured domain must be added again so each gets it.
fn connect_ad(
    runtime: &tokio::runtime::Runtime,
    theme: &ColorfulTheme,
    args: &InstallArgs,
    existing: &install::Existing,
    account: &AccountChoice,
    host: &str,
    layout: &install::Layout,
) -> anyhow::Result<(Vec<DomainTarget>, Vec<DomainAccount>)> {
    println!("\nConnect Active Directory.");
    let mut configured: Vec<String> = existing.domains().into_iter().map(|(_, n)| n).collect();
    let mut added = Vec::new();
    let mut accounts: Vec<DomainAccount> = Vec::new();
    let mut needs: Vec<String> = if account.is_made() {
        configured.clone()
    } else {
        Vec::new()
    };
    let given: Vec<String> = args
        .domains
        .iter()
        .cloned()
        .chain(needs.iter().cloned())
        .collect();
    let mut suggested = given.iter();
    let service = match account {
        AccountChoice::Existing { account, password } => {
            Some((account.as_str(), password.as_str()))
        }
        _ => None,
    };
    loop {
        if !needs.is_empty() {
            println!(
                "The service account is made per domain: add again {}",
                needs.join(", ")
            );
        }
        if configured.is_empty() {
            println!("Configured domains: none yet.");
        } else {
            println!("Configured domains: {}", configured.join(", "));
        }
        let hint = if configured.is_empty() {
            "Domain name (e.g. corp.example.com)"
        } else {
            "Domain name to add (empty: done)"
        };
        let can_finish = !configured.is_empty() && needs.is_empty();
        let initial = suggested
            .next()
            .map(|s| s.split('=').next().unwrap_or_default().to_string())
            .unwrap_or_default();
        let name: String = Input::with_theme(theme)
            .with_prompt(hint)
            .with_initial_text(initial)
            .allow_empty(can_finish)
            .validate_with(move |s: &String| {
                let s = s.trim();
                if (s.is_empty() && can_finish) || domain::valid_dns_name(s) {
                    Ok(())
                } else {
                    Err("expected a DNS domain name such as corp.example.com")
                }
            })
            .interact_text()?;
        let name = name.trim().to_ascii_lowercase();
        if name.is_empty() {
            return Ok((added, accounts));
        }
        // The URL given with `--domain NAME=URL` for this name, else empty (= ldaps://NAME).
        let given_url = args
            .domains
            .iter()
            .find_map(|s| {
                let (n, u) = s.split_once('=')?;
                n.trim()
                    .eq_ignore_ascii_case(&name)
                    .then(|| u.trim().to_string())
            })
            .unwrap_or_default();
        let url: String = Input::with_theme(theme)
            .with_prompt(format!("Domain controller (empty: ldaps://{name})"))
            .with_initial_text(given_url)
            .allow_empty(true)
            .validate_with(|s: &String| {
                let l = s.trim().to_ascii_lowercase();
                if l.is_empty() || l.starts_with("ldaps://") || l.starts_with("ldap://") {
                    Ok(())
                } else {
                    Err("expected ldaps://host[:port]")
                }
            })
            .interact_text()?;
        let url = match url.trim() {
            "" => format!("ldaps://{name}"),
            u => u.to_string(),
        };
        let ca: String = Input::with_theme(theme)
            .with_prompt("CA file of the DC's certificate (empty: the system's)")
            .with_initial_text(
                args.dc_ca_file
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
            )
            .allow_empty(true)
            .validate_with(|s: &String| {
                if s.trim().is_empty() || std::path::Path::new(s.trim()).is_file() {
                    Ok(())
                } else {
                    Err("no such file")
                }
            })
            .interact_text()?;
        println!("Sign in with a domain administrator of {name} (used now only; never stored).");
        let admin_upn: String = Input::with_theme(theme)
            .with_prompt("Domain administrator account")
            .with_initial_text(
                args.domain_admin
                    .clone()
                    .unwrap_or_else(|| format!("Administrator@{name}")),
            )
            .validate_with(|s: &String| no_empty(s))
            .interact_text()?;
        let admin_pw = password(theme, "Domain administrator password")?;
        let mut target = domain_target(&format!("{name}={url}"), None);
        target.ca_file =
            (!ca.trim().is_empty()).then(|| super::install::absolute(&PathBuf::from(ca.trim())));
        match runtime.block_on(domain::check_domain(
            &target,
            (admin_upn.trim(), &admin_pw),
            service,
        )) {
            Ok(checked) => {
                if account.is_made() {
                    let made = runtime.block_on(install::account::provision_domain(
                        account,
                        &checked.target,
                        (admin_upn.trim(), &admin_pw),
                        host,
                        layout,
                    ));
                    match made {
                        Ok(made) => {
                            for line in &made.lines {
                                println!("{line}");
                            }
                            accounts.push(made);
                        }
                        Err(e) => {
                            println!("{e}");
                            continue;
                        }
                    }
                }
                needs.retain(|n| !n.eq_ignore_ascii_case(&checked.target.dns_name));
                println!(
                    "Added {} ({}).",
                    checked.target.dns_name, checked.naming_context
                );
                if !configured.contains(&checked.target.dns_name) {
                    configured.push(checked.target.dns_name.clone());
                }
                added.push(checked.target);
            }
            Err(e) => println!("{e}"),
        }
    }
}
