//! The seed's "Configure Service Account" step: which account the agent runs as in each domain, made
//! or checked with the domain administrator's credentials. Enters: the admin's [`AccountChoice`], one
//! checked domain, the domain administrator's credentials (memory only), this host's name and what an
//! earlier install kept. Leaves: a [`DomainAccount`] (the `[domains.*]` keys and the secret files to
//! write), or an [`InstallError`] naming what to fix.
//!
//! The forms, in the seed's order (docs/install.md § The service account):
//! - **Create gMSA** (the default): this host's computer account ([`provision::ensure_host_account`]),
//!   then the gMSA `provAgentgMSA$` (or the name given) with that computer the principal allowed to read
//!   its password — or, when the gMSA exists (a second agent host), the computer added to its allowed
//!   principals ([`provision::allow_principal`]).
//! - **Use custom gMSA**: an existing gMSA; the host's computer account is made and must already be
//!   allowed (else the error names the command that allows it).
//! - **Create a regular account**: for directories that cannot serve gMSA passwords; a user with a long
//!   random password, kept only in a 0600 file.
//! - **Existing account**: an account and password the admin gives (checked with a bind).
//!
//! For every form but the last, the account is then proven: the gMSA's password is read as the host
//! and a bind with its NT hash (NTLM) succeeds, or the regular account binds; and the rights the agent
//! needs (basic read and password hash sync) are granted ([`crate::account::permissions::set`]).

use std::path::PathBuf;

use zeroize::Zeroizing;

use super::InstallError;
use super::domain::{DomainError, DomainTarget, domain_config};
use super::layout::Layout;
use crate::account::gmsa::{self, Held};
use crate::account::permissions::{self, PermissionType};
use crate::account::provision::{self, KeptAccount, ProvisionError};
use crate::secret::Secret;
use crate::source::ldap::DomainConfig;
use crate::source::ldap::conn::{DcConn, connect, connect_with_hashes};

/// The admin's answer to "Configure Service Account".
#[derive(Debug, Clone)]
pub enum AccountChoice {
    /// Create (or join) the gMSA of this name (without `$`).
    CreateGmsa(String, KdsPolicy),
    /// Use this existing gMSA (without `$`).
    CustomGmsa(String),
    /// Create (or keep) a regular user of this name with a random password.
    CreateRegular(String),
    /// An existing account (UPN or DN) and its password.
    Existing {
        /// The bind name.
        account: String,
        /// Its password (written only to the 0600 password file).
        password: Zeroizing<String>,
    },
}

/// What "Create gMSA" does when no KDS root key serves gMSA passwords yet (a Windows forest that never
/// used one; Samba's provision makes one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KdsPolicy {
    /// Create one with the standard effective time (usable from the next 10-hour key interval, so the
    /// install stops and says when to run it again) — `Add-KdsRootKey`'s default.
    #[default]
    Standard,
    /// Create one usable at once (`--kds-root-key-immediately`; Microsoft recommends it for labs only).
    Immediately,
}

impl AccountChoice {
    /// The form's name, as `--service-account-type` takes it and the summary shows it.
    pub fn kind(&self) -> &'static str {
        match self {
            AccountChoice::CreateGmsa(..) => "create-gmsa",
            AccountChoice::CustomGmsa(_) => "custom-gmsa",
            AccountChoice::CreateRegular(_) => "create-regular",
            AccountChoice::Existing { .. } => "existing",
        }
    }

    /// One line for the summary: which form, and why.
    pub fn describe(&self) -> String {
        match self {
            AccountChoice::CreateGmsa(n, _) => format!(
                "group managed service account {n}$ (created or joined; the domain controller manages its password, this host reads it as its own computer account)"
            ),
            AccountChoice::CustomGmsa(n) => format!(
                "your group managed service account {n}$ (this host's computer account must be allowed to read its password)"
            ),
            AccountChoice::CreateRegular(n) => format!(
                "regular account {n} created with a random password kept in a 0600 file (for directories that cannot serve gMSA passwords)"
            ),
            AccountChoice::Existing { account, .. } => format!(
                "existing account {account} with the password you gave (kept in a 0600 file)"
            ),
        }
    }

    /// Whether the install makes or joins the account (and so needs the domain administrator).
    pub fn is_made(&self) -> bool {
        !matches!(self, AccountChoice::Existing { .. })
    }
}

/// Parses `--service-account-type` with its name (`--service-account`).
pub fn choice_of(
    kind: &str,
    name: Option<&str>,
    password: Option<Zeroizing<String>>,
) -> Result<AccountChoice, InstallError> {
    let bad = |m: &str| InstallError::Setting(m.to_string());
    Ok(match kind {
        "create-gmsa" => AccountChoice::CreateGmsa(
            name.unwrap_or(provision::DEFAULT_GMSA)
                .trim_end_matches('$')
                .to_string(),
            KdsPolicy::Standard,
        ),
        "custom-gmsa" => AccountChoice::CustomGmsa(
            name.ok_or_else(|| bad("--service-account-type custom-gmsa needs --service-account NAME (the existing gMSA)"))?
                .trim_end_matches('$')
                .to_string(),
        ),
        "create-regular" => AccountChoice::CreateRegular(
            name.unwrap_or("svc-cloudsync").to_string(),
        ),
        "existing" => AccountChoice::Existing {
            account: name
                .ok_or_else(|| bad("--service-account-type existing needs --service-account"))?
                .to_string(),
            password: password.ok_or_else(|| {
                bad("--service-account-type existing needs --service-account-password-file")
            })?,
        },
        other => {
            return Err(bad(&format!(
                "unknown --service-account-type {other:?}: expected create-gmsa, custom-gmsa, create-regular or existing"
            )));
        }
    })
}

/// This host's computer account name: `--host-account`, else the host name's first label, upper-case,
/// cut to 15 characters (NetBIOS), as a domain join names it.
pub fn default_host_account() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "CLOUDSYNC".into());
    let first: String = host
        .split('.')
        .next()
        .unwrap_or("CLOUDSYNC")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(15)
        .collect();
    if first.is_empty() {
        "CLOUDSYNC".into()
    } else {
        first.to_ascii_uppercase()
    }
}

/// The account one domain binds as, and the secret files to write for it.
#[derive(Debug, Clone)]
pub struct DomainAccount {
    /// The domain's DNS name.
    pub dns_name: String,
    /// The `[domains.*]` keys of the account (`account`, `bind_dn`, `gmsa_dn`, `host_dn`,
    /// `host_password_file` or `password_file`).
    pub keys: toml::Table,
    /// Secret files to write (0600): path and content.
    pub files: Vec<(PathBuf, Secret)>,
    /// What was done, one line each, for the installer's output.
    pub lines: Vec<String>,
}

/// The host computer account's password file for `dns_name` (one per domain: a host joins each).
pub fn host_password_file(layout: &Layout, dns_name: &str) -> PathBuf {
    layout
        .state_dir()
        .join(format!("host-account.{}.pw", dns_name.to_ascii_lowercase()))
}

/// A created regular account's password file for `dns_name`.
pub fn regular_password_file(layout: &Layout, dns_name: &str) -> PathBuf {
    layout.state_dir().join(format!(
        "service-account.{}.pw",
        dns_name.to_ascii_lowercase()
    ))
}

/// The password an earlier install kept in `path`, if any.
fn known(path: &std::path::Path) -> Option<Secret> {
    crate::source::ldap::first_line(path)
        .ok()
        .filter(|s| !s.expose().is_empty())
}

fn prov(domain: &str) -> impl FnOnce(ProvisionError) -> InstallError + '_ {
    move |e| InstallError::Account(format!("{domain}: {e}"))
}

/// Makes or checks the account for one domain (module doc). `admin` is the domain administrator.
pub async fn provision_domain(
    choice: &AccountChoice,
    target: &DomainTarget,
    admin: (&str, &str),
    host_name: &str,
    layout: &Layout,
) -> Result<DomainAccount, InstallError> {
    let dns = target.dns_name.clone();
    let admin_cfg = domain_config(target, admin.0, admin.1)?;
    let mut dc = connect(&admin_cfg)
        .await
        .map_err(|source| DomainError::Ldap {
            domain: dns.clone(),
            source,
        })?;
    let out = provision_with(&mut dc, &admin_cfg, choice, host_name, layout).await;
    // Rights are granted only to an account the install made or joined; an existing account keeps
    // the rights it has (`agent permissions set` grants them).
    if let (Ok(account), true) = (&out, choice.is_made()) {
        let bind_dn = account
            .keys
            .get("bind_dn")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string();
        for kind in [PermissionType::BasicRead, PermissionType::PasswordHashSync] {
            permissions::set(&mut dc, &admin_cfg.base(), &bind_dn, kind)
                .await
                .map_err(|e| {
                    InstallError::Account(format!("{dns}: granting {}: {e}", kind.name()))
                })?;
        }
    }
    dc.close().await;
    let mut account = out?;
    if choice.is_made() {
        account.lines.push(format!(
            "{dns}: granted basic-read and password-hash-sync rights (as `cloudsync agent permissions set` does)"
        ));
    }
    Ok(account)
}

async fn provision_with(
    dc: &mut DcConn,
    admin_cfg: &DomainConfig,
    choice: &AccountChoice,
    host_name: &str,
    layout: &Layout,
) -> Result<DomainAccount, InstallError> {
    let dns = admin_cfg.dns_name.clone();
    let mut lines = Vec::new();
    let mut keys = toml::Table::new();
    let mut files = Vec::new();
    match choice {
        AccountChoice::CreateGmsa(name, _) | AccountChoice::CustomGmsa(name) => {
            let host_file = host_password_file(layout, &dns);
            let host = provision::ensure_host_account(
                dc,
                admin_cfg,
                host_name,
                known(&host_file).as_ref(),
            )
            .await
            .map_err(prov(&dns))?;
            lines.push(format!(
                "{dns}: this host's computer account {} ({})",
                host.dn,
                host.outcome.as_str()
            ));
            let found = provision::find_gmsa(dc, admin_cfg, name)
                .await
                .map_err(prov(&dns))?;
            let gmsa = match (choice, found) {
                (AccountChoice::CreateGmsa(_, kds_policy), None) => {
                    if let Some(line) = ensure_root_key(dc, &dns, *kds_policy).await? {
                        lines.push(line);
                    }
                    let g = provision::create_gmsa(dc, admin_cfg, name, &host.sid)
                        .await
                        .map_err(prov(&dns))?;
                    lines.push(format!(
                        "{dns}: created the gMSA {} with {} allowed to read its password",
                        g.dn, host.sam_account_name
                    ));
                    g
                }
                (AccountChoice::CreateGmsa(..), Some(g)) => {
                    let added = provision::allow_principal(dc, &g, &host.sid)
                        .await
                        .map_err(prov(&dns))?;
                    lines.push(if added {
                        format!(
                            "{dns}: the gMSA {} exists: added {} to its allowed principals",
                            g.dn, host.sam_account_name
                        )
                    } else {
                        format!(
                            "{dns}: the gMSA {} exists and {} is already allowed",
                            g.dn, host.sam_account_name
                        )
                    });
                    g
                }
                (_, None) => {
                    return Err(prov(&dns)(ProvisionError::NoSuchGmsa {
                        name: name.clone(),
                        domain: dns.clone(),
                    }));
                }
                (_, Some(g)) => {
                    lines.push(format!("{dns}: using the gMSA {}", g.dn));
                    g
                }
            };
            let bind_dn = gmsa.ntlm_name(&dns);
            prove_gmsa(admin_cfg, &host, &gmsa.dn, &bind_dn).await?;
            lines.push(format!(
                "{dns}: read the gMSA's password as {} and signed in as {bind_dn} with NTLM",
                host.sam_account_name
            ));
            keys.insert("account".into(), "gmsa".into());
            keys.insert("bind_dn".into(), bind_dn.into());
            keys.insert("gmsa_dn".into(), gmsa.dn.into());
            keys.insert("host_dn".into(), host.dn.clone().into());
            keys.insert(
                "host_password_file".into(),
                host_file.display().to_string().into(),
            );
            files.push((host_file, host.password));
        }
        AccountChoice::CreateRegular(name) => {
            let file = regular_password_file(layout, &dns);
            let account =
                provision::ensure_regular_account(dc, admin_cfg, name, known(&file).as_ref())
                    .await
                    .map_err(prov(&dns))?;
            let upn = format!("{name}@{dns}");
            prove_password(admin_cfg, &upn, &account).await?;
            lines.push(format!(
                "{dns}: regular account {} ({}); its password is random and kept only in {}",
                account.dn,
                account.outcome.as_str(),
                file.display()
            ));
            keys.insert("bind_dn".into(), upn.into());
            keys.insert("password_file".into(), file.display().to_string().into());
            files.push((file, account.password));
        }
        AccountChoice::Existing { account, .. } => {
            keys.insert("bind_dn".into(), account.clone().into());
            keys.insert(
                "password_file".into(),
                layout.service_password_file().display().to_string().into(),
            );
        }
    }
    Ok(DomainAccount {
        dns_name: dns,
        keys,
        files,
        lines,
    })
}

/// Makes sure a KDS root key serves gMSA passwords now (MS-GKDI; [`crate::account::kds`]): nothing to do
/// when one does; else one is created under `policy` — usable at once, or (the default) from the next
/// 10-hour key interval, when the install stops with the time to run it again. Returns a line to print.
async fn ensure_root_key(
    dc: &mut DcConn,
    dns: &str,
    policy: KdsPolicy,
) -> Result<Option<String>, InstallError> {
    use crate::account::kds::{self, EffectiveTime};
    let kds_err = |e: kds::KdsError| InstallError::Account(format!("{dns}: {e}"));
    let now = std::time::SystemTime::now();
    let keys = kds::root_keys(dc).await.map_err(kds_err)?;
    if keys.iter().any(|k| k.serves_gmsa_at(now)) {
        return Ok(None);
    }
    let pending = keys.iter().max_by_key(|k| k.use_start).cloned();
    let key = match (pending, policy) {
        (Some(k), KdsPolicy::Standard) => k,
        (_, KdsPolicy::Immediately) => kds::create_root_key(dc, EffectiveTime::Immediately)
            .await
            .map_err(kds_err)?,
        (None, KdsPolicy::Standard) => kds::create_root_key(dc, EffectiveTime::Standard)
            .await
            .map_err(kds_err)?,
    };
    if key.serves_gmsa_at(std::time::SystemTime::now()) {
        return Ok(Some(format!(
            "{dns}: created the KDS root key {} (usable at once: --kds-root-key-immediately)",
            key.id
        )));
    }
    let from = kds::serves_from(&key);
    Err(InstallError::Account(format!(
        "{dns}: the forest had no KDS root key that serves gMSA passwords yet; the key {} serves them from {} UTC (the domain controllers get up to 10 hours to replicate it). Run the install again then, or choose --service-account-type create-regular now (--kds-root-key-immediately makes it usable at once: for labs only, as Microsoft advises)",
        key.id,
        time::OffsetDateTime::from(from)
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    )))
}

/// Reads the gMSA's password as the host and binds as the gMSA with it (NTLM), the agent's own path.
async fn prove_gmsa(
    admin_cfg: &DomainConfig,
    host: &KeptAccount,
    gmsa_dn: &str,
    bind_dn: &str,
) -> Result<(), InstallError> {
    let dns = &admin_cfg.dns_name;
    let read = gmsa::read(admin_cfg, &host.dn, &host.password, gmsa_dn)
        .await
        .map_err(|e| InstallError::Account(format!("{dns}: {e}")))?;
    let now = std::time::Instant::now();
    let held = Held::new(read, now);
    let mut as_gmsa = admin_cfg.clone();
    as_gmsa.bind_dn = bind_dn.to_string();
    match connect_with_hashes(&as_gmsa, held.hashes(now).into_iter().cloned()).await {
        Ok(c) => {
            c.close().await;
            Ok(())
        }
        Err(e) => Err(InstallError::Account(format!(
            "{dns}: the gMSA {bind_dn} could not sign in with the password the DC served: {e}"
        ))),
    }
}

async fn prove_password(
    admin_cfg: &DomainConfig,
    bind_dn: &str,
    account: &KeptAccount,
) -> Result<(), InstallError> {
    let cfg = admin_cfg.as_account(bind_dn, account.password.clone());
    match connect(&cfg).await {
        Ok(c) => {
            c.close().await;
            Ok(())
        }
        Err(e) => Err(InstallError::Account(format!(
            "{}: the new account {bind_dn} cannot sign in: {e}",
            admin_cfg.dns_name
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_parse_with_their_defaults_and_refuse_what_is_missing() {
        assert!(matches!(
            choice_of("create-gmsa", None, None).unwrap(),
            AccountChoice::CreateGmsa(n, KdsPolicy::Standard) if n == "provAgentgMSA"
        ));
        assert!(matches!(
            choice_of("custom-gmsa", Some("mygmsa$"), None).unwrap(),
            AccountChoice::CustomGmsa(n) if n == "mygmsa"
        ));
        assert!(choice_of("custom-gmsa", None, None).is_err());
        assert!(choice_of("existing", Some("a@b.c"), None).is_err());
        assert!(choice_of("gmsa", None, None).is_err());
        assert!(
            choice_of("create-regular", None, None)
                .unwrap()
                .describe()
                .contains("random password")
        );
    }

    #[test]
    fn host_names_are_netbios_names() {
        let name = default_host_account();
        assert!(!name.is_empty() && name.len() <= 15, "{name}");
        assert_eq!(name, name.to_ascii_uppercase());
        let layout = Layout::under(std::path::Path::new("/tmp/x")).unwrap();
        assert!(
            host_password_file(&layout, "Corp.Example.TEST")
                .ends_with("var/lib/cloudsync/host-account.corp.example.test.pw")
        );
    }
}
