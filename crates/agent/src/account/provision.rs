//! The agent's service account made in AD by the installer, as the domain administrator (the seed's
//! "Configure Service Account" screen). Enters: a connection bound as the domain administrator, the
//! domain's settings, the names the admin chose. Leaves: the account's DN and SID and, for the forms
//! whose password the agent keeps, that password (random, in a [`Secret`]: written only to a 0600 file
//! by the caller); or a [`ProvisionError`] naming what to fix.
//!
//! - [`ensure_host_account`]: this host's computer account (`CN=<HOST>,CN=Computers`, workstation trust,
//!   a random password), made as a domain join makes it; the principal allowed to read a gMSA's password.
//!   An existing account is kept when the password the agent holds still binds, else its password is
//!   reset (a re-install that lost its file).
//! - [`find_gmsa`], [`create_gmsa`], [`allow_principal`]: "Create gMSA" (`provAgentgMSA$` in
//!   `CN=Managed Service Accounts`, the host the only principal in `msDS-GroupMSAMembership`) and a second
//!   host joining (its SID added to that descriptor's DACL; nothing added twice).
//! - [`ensure_regular_account`]: the fallback for directories that cannot serve gMSA passwords: a user
//!   with a long random password that never expires.
//!
//! Everything is an LDAP add or modify over the domain's encrypted connection (AD accepts `unicodePwd`
//! only there); nothing is retried: the installer reports and the admin re-runs.

use std::collections::HashSet;

use ldap3::{Mod, Scope, SearchEntry};
use rand::Rng as _;
use rand::distr::Alphanumeric;

use super::binary_value;
use super::security_descriptor::{AccessAce, Acl, SdError, SecurityDescriptor, Sid};
use crate::secret::Secret;
use crate::source::ldap::conn::{DcConn, connect_with};
use crate::source::ldap::{BindCredential, DomainConfig, LdapSourceError};

/// The default gMSA name (the seed's `provAgentgMSA`; its sAMAccountName ends in `$`).
pub const DEFAULT_GMSA: &str = "provAgentgMSA";

/// `userAccountControl` of a domain-joined workstation: WORKSTATION_TRUST_ACCOUNT.
pub const UAC_WORKSTATION: u32 = 0x1000;
/// `userAccountControl` of the regular service account: NORMAL_ACCOUNT | DONT_EXPIRE_PASSWORD.
pub const UAC_SERVICE_USER: u32 = 0x200 | 0x1_0000;
/// The access mask Windows writes for each principal allowed to retrieve a gMSA's password
/// (`Set-ADServiceAccount -PrincipalsAllowedToRetrieveManagedPassword`: `0xf01ff`).
pub const RETRIEVE_MASK: u32 = 0x000f_01ff;
/// The owner of `msDS-GroupMSAMembership` as Windows writes it: BUILTIN\Administrators.
const BUILTIN_ADMINISTRATORS: &str = "S-1-5-32-544";
/// The gMSA's password interval in days (AD's default).
pub const DEFAULT_INTERVAL_DAYS: u32 = 30;
/// Length of the random passwords made here, before the class suffix.
const PASSWORD_LEN: usize = 64;

/// What happened to an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It did not exist and was created.
    Created,
    /// It existed and the password the agent holds still works: kept as is.
    Kept,
    /// It existed, and its password was reset (the agent held none that works).
    PasswordReset,
}

impl Outcome {
    /// A word for the installer's line.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Created => "created",
            Outcome::Kept => "kept",
            Outcome::PasswordReset => "existing, password reset",
        }
    }
}

/// An account whose password the agent keeps (the host's computer account, a regular account).
#[derive(Debug, Clone)]
pub struct KeptAccount {
    /// Its DN.
    pub dn: String,
    /// `sAMAccountName` (`HOST$`, `svc-cloudsync`).
    pub sam_account_name: String,
    /// Its SID.
    pub sid: Sid,
    /// Its password: written by the caller to a 0600 file only.
    pub password: Secret,
    /// What was done.
    pub outcome: Outcome,
}

/// A gMSA as found in the directory.
#[derive(Debug, Clone)]
pub struct GmsaAccount {
    /// Its DN.
    pub dn: String,
    /// `sAMAccountName` (`provAgentgMSA$`).
    pub sam_account_name: String,
    /// The allowed principals' descriptor as read (absent: nobody).
    pub membership: Option<SecurityDescriptor>,
}

impl GmsaAccount {
    /// Whether `sid` is allowed to retrieve the password (an allow ACE for it in the DACL).
    pub fn allows(&self, sid: &Sid) -> bool {
        self.membership
            .as_ref()
            .and_then(|sd| sd.dacl.as_ref())
            .is_some_and(|acl| acl.grants(&retrieve_ace(sid.clone())))
    }

    /// The name the agent binds as with NTLM: `provAgentgMSA$@corp.example.test`.
    pub fn ntlm_name(&self, dns_name: &str) -> String {
        format!("{}@{dns_name}", self.sam_account_name)
    }
}

/// Why an account could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// An LDAP operation failed on the connection.
    #[error("{what}: {source}")]
    Ldap {
        /// What was being done.
        what: String,
        /// What failed.
        #[source]
        source: LdapSourceError,
    },
    /// The DC refused an add or modify.
    #[error("{what}: the DC answered {rc} ({text}){}", refused_hint(*rc))]
    Refused {
        /// What was being done.
        what: String,
        /// The LDAP result code.
        rc: u32,
        /// The DC's diagnostic.
        text: String,
    },
    /// A name the admin gave cannot be an account name.
    #[error(
        "{0:?} cannot be an account name: use 1–15 letters, digits and hyphens (a computer or gMSA name), or up to 20 for a user"
    )]
    BadName(String),
    /// The gMSA named for "Use custom gMSA" does not exist.
    #[error(
        "there is no gMSA {name}$ in {domain}: create it first (New-ADServiceAccount, or samba-tool service-account create), or choose \"Create gMSA\""
    )]
    NoSuchGmsa {
        /// The name given.
        name: String,
        /// The domain.
        domain: String,
    },
    /// A name is taken by an object of another kind.
    #[error(
        "{name} already exists in {domain} as {dn}, which is not a {wanted}: choose another name"
    )]
    NameTaken {
        /// The sAMAccountName.
        name: String,
        /// The domain.
        domain: String,
        /// The object holding it.
        dn: String,
        /// What was wanted.
        wanted: &'static str,
    },
    /// A security descriptor or SID does not parse.
    #[error("{0}: {1}")]
    Descriptor(String, SdError),
}

fn refused_hint(rc: u32) -> &'static str {
    match rc {
        50 => {
            ": bind as a domain administrator (Domain Admins may create accounts and set their passwords)"
        }
        19 | 53 => {
            ": the DC refused the password or the value (check the domain's password policy)"
        }
        68 => ": an object with that name exists already",
        _ => "",
    }
}

/// A random password: 64 letters and digits plus one of each class AD's complexity rule asks for.
pub fn random_password() -> Secret {
    let mut text: String = rand::rng()
        .sample_iter(&Alphanumeric)
        .take(PASSWORD_LEN)
        .map(char::from)
        .collect();
    text.push_str("-Aa1");
    Secret::new(text)
}

/// `unicodePwd`'s value: the password in double quotes, UTF-16LE (MS-ADTS 3.1.1.3.1.5.1).
fn unicode_pwd(password: &Secret) -> Vec<u8> {
    format!("\"{}\"", password.expose())
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect()
}

fn valid_name(name: &str, max: usize) -> bool {
    !name.is_empty()
        && name.len() <= max
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !name.starts_with('-')
}

fn ldap_err(what: &str) -> impl FnOnce(ldap3::LdapError) -> ProvisionError + '_ {
    move |e| ProvisionError::Ldap {
        what: what.to_string(),
        source: e.into(),
    }
}

fn check(what: String, r: ldap3::LdapResult) -> Result<(), ProvisionError> {
    if r.rc == 0 {
        Ok(())
    } else {
        Err(ProvisionError::Refused {
            what,
            rc: r.rc,
            text: r.text.trim().to_string(),
        })
    }
}

/// One object by `sAMAccountName` under `base`: its entry, or `None`.
async fn by_sam(
    admin: &mut DcConn,
    base: &str,
    sam: &str,
    attrs: Vec<&str>,
) -> Result<Option<SearchEntry>, ProvisionError> {
    let what = format!("looking up {sam}");
    let (entries, _) = admin
        .op()
        .search(
            base,
            Scope::Subtree,
            &format!("(sAMAccountName={})", ldap3::ldap_escape(sam)),
            attrs,
        )
        .await
        .map_err(ldap_err(&what))?
        .success()
        .map_err(ldap_err(&what))?;
    Ok(entries.into_iter().next().map(SearchEntry::construct))
}

fn sid_of(entry: &SearchEntry) -> Result<Sid, ProvisionError> {
    let raw = binary_value(entry, "objectSid").unwrap_or_default();
    Sid::from_bytes(&raw).map_err(|e| ProvisionError::Descriptor(entry.dn.clone(), e))
}

fn is_class(entry: &SearchEntry, class: &str) -> bool {
    entry
        .attrs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("objectClass"))
        .is_some_and(|(_, v)| v.iter().any(|c| c.eq_ignore_ascii_case(class)))
}

/// Whether `password` binds as `dn` (simple bind over the domain's connection).
async fn binds(domain: &DomainConfig, dn: &str, password: &Secret) -> bool {
    let cfg = domain.as_account(dn, password.clone());
    match connect_with(&cfg, &BindCredential::Password(password.clone())).await {
        Ok(c) => {
            c.close().await;
            true
        }
        Err(_) => false,
    }
}

/// Keeps, resets or creates an account whose password the agent holds (module doc).
async fn ensure_kept(
    admin: &mut DcConn,
    domain: &DomainConfig,
    sam: &str,
    class: &'static str,
    known: Option<&Secret>,
    add: impl FnOnce(&Secret) -> (String, Vec<(Vec<u8>, HashSet<Vec<u8>>)>),
) -> Result<KeptAccount, ProvisionError> {
    let base = domain.base();
    let attrs = vec!["objectSid", "objectClass"];
    if let Some(entry) = by_sam(admin, &base, sam, attrs.clone()).await? {
        if !is_class(&entry, class) || is_class(&entry, "msDS-GroupManagedServiceAccount") {
            return Err(ProvisionError::NameTaken {
                name: sam.to_string(),
                domain: domain.dns_name.clone(),
                dn: entry.dn,
                wanted: class,
            });
        }
        let sid = sid_of(&entry)?;
        if let Some(known) = known
            && binds(domain, &entry.dn, known).await
        {
            return Ok(KeptAccount {
                dn: entry.dn,
                sam_account_name: sam.to_string(),
                sid,
                password: known.clone(),
                outcome: Outcome::Kept,
            });
        }
        let password = random_password();
        let what = format!("resetting the password of {}", entry.dn);
        let r = admin
            .op()
            .modify(
                &entry.dn,
                vec![Mod::Replace(
                    b"unicodePwd".to_vec(),
                    HashSet::from([unicode_pwd(&password)]),
                )],
            )
            .await
            .map_err(ldap_err(&what))?;
        check(what, r)?;
        return Ok(KeptAccount {
            dn: entry.dn,
            sam_account_name: sam.to_string(),
            sid,
            password,
            outcome: Outcome::PasswordReset,
        });
    }
    let password = random_password();
    let (dn, attributes) = add(&password);
    let what = format!("creating {dn}");
    let r = admin
        .op()
        .add(&dn, attributes)
        .await
        .map_err(ldap_err(&what))?;
    check(what, r)?;
    let entry = by_sam(admin, &base, sam, attrs)
        .await?
        .ok_or_else(|| ProvisionError::Refused {
            what: format!("reading {dn} back"),
            rc: 32,
            text: "not found after the add".into(),
        })?;
    Ok(KeptAccount {
        sid: sid_of(&entry)?,
        dn: entry.dn,
        sam_account_name: sam.to_string(),
        password,
        outcome: Outcome::Created,
    })
}

fn attr(name: &str, values: &[&[u8]]) -> (Vec<u8>, HashSet<Vec<u8>>) {
    (
        name.as_bytes().to_vec(),
        values.iter().map(|v| v.to_vec()).collect(),
    )
}

/// This host's computer account `name$` (module doc). `known`: the password the agent holds from an
/// earlier install, kept when it still binds.
pub async fn ensure_host_account(
    admin: &mut DcConn,
    domain: &DomainConfig,
    name: &str,
    known: Option<&Secret>,
) -> Result<KeptAccount, ProvisionError> {
    let name = name.to_ascii_uppercase();
    if !valid_name(&name, 15) {
        return Err(ProvisionError::BadName(name));
    }
    let sam = format!("{name}$");
    let dns_host = format!("{}.{}", name.to_ascii_lowercase(), domain.dns_name);
    let dn = format!("CN={name},CN=Computers,{}", domain.base());
    ensure_kept(admin, domain, &sam, "computer", known, |password| {
        let uac = UAC_WORKSTATION.to_string();
        (
            dn,
            vec![
                attr("objectClass", &[b"computer"]),
                attr("sAMAccountName", &[sam.as_bytes()]),
                attr("userAccountControl", &[uac.as_bytes()]),
                attr("dNSHostName", &[dns_host.as_bytes()]),
                attr("unicodePwd", &[&unicode_pwd(password)]),
            ],
        )
    })
    .await
}

/// The regular service account `name` (a user in `CN=Users` whose password never expires; module
/// doc). Its bind name is the UPN `name@<dns>`.
pub async fn ensure_regular_account(
    admin: &mut DcConn,
    domain: &DomainConfig,
    name: &str,
    known: Option<&Secret>,
) -> Result<KeptAccount, ProvisionError> {
    if !valid_name(name, 20) {
        return Err(ProvisionError::BadName(name.to_string()));
    }
    let upn = format!("{name}@{}", domain.dns_name);
    let dn = format!("CN={name},CN=Users,{}", domain.base());
    ensure_kept(admin, domain, name, "user", known, |password| {
        let uac = UAC_SERVICE_USER.to_string();
        (
            dn,
            vec![
                attr("objectClass", &[b"user"]),
                attr("sAMAccountName", &[name.as_bytes()]),
                attr("userPrincipalName", &[upn.as_bytes()]),
                attr("userAccountControl", &[uac.as_bytes()]),
                attr("unicodePwd", &[&unicode_pwd(password)]),
                attr(
                    "description",
                    &[b"cloudsync provisioning agent service account (made by cloudsync agent install)"],
                ),
            ],
        )
    })
    .await
}

/// The ACE allowing `sid` to retrieve a gMSA's password.
fn retrieve_ace(sid: Sid) -> AccessAce {
    AccessAce::new(true, 0, RETRIEVE_MASK, None, None, sid)
}

/// The gMSA `name` (`name$`) in the domain, with its allowed principals; `None` when absent.
pub async fn find_gmsa(
    admin: &mut DcConn,
    domain: &DomainConfig,
    name: &str,
) -> Result<Option<GmsaAccount>, ProvisionError> {
    let sam = format!("{}$", name.trim_end_matches('$'));
    let Some(entry) = by_sam(
        admin,
        &domain.base(),
        &sam,
        vec!["objectClass", "msDS-GroupMSAMembership"],
    )
    .await?
    else {
        return Ok(None);
    };
    if !is_class(&entry, "msDS-GroupManagedServiceAccount") {
        return Err(ProvisionError::NameTaken {
            name: sam,
            domain: domain.dns_name.clone(),
            dn: entry.dn,
            wanted: "group managed service account",
        });
    }
    let membership = match binary_value(&entry, "msDS-GroupMSAMembership") {
        Some(raw) => Some(
            SecurityDescriptor::parse(&raw)
                .map_err(|e| ProvisionError::Descriptor(entry.dn.clone(), e))?,
        ),
        None => None,
    };
    Ok(Some(GmsaAccount {
        dn: entry.dn,
        sam_account_name: sam,
        membership,
    }))
}

fn membership_with(sid: &Sid) -> Result<SecurityDescriptor, SdError> {
    let owner: Sid = BUILTIN_ADMINISTRATORS.parse()?;
    let mut acl = Acl {
        revision: 2,
        aces: Vec::new(),
        slack: Vec::new(),
    };
    acl.add(retrieve_ace(sid.clone()));
    Ok(SecurityDescriptor::new(Some(owner), None, Some(acl)))
}

/// Creates the gMSA `name` in `CN=Managed Service Accounts` with `principal` the only one allowed to
/// retrieve its password (as `New-ADServiceAccount -PrincipalsAllowedToRetrieveManagedPassword`).
pub async fn create_gmsa(
    admin: &mut DcConn,
    domain: &DomainConfig,
    name: &str,
    principal: &Sid,
) -> Result<GmsaAccount, ProvisionError> {
    let name = name.trim_end_matches('$');
    if !valid_name(name, 15) {
        return Err(ProvisionError::BadName(name.to_string()));
    }
    let sam = format!("{name}$");
    let dn = format!("CN={name},CN=Managed Service Accounts,{}", domain.base());
    let dns_host = format!("{}.{}", name.to_ascii_lowercase(), domain.dns_name);
    let membership = membership_with(principal)
        .and_then(|sd| sd.to_bytes())
        .map_err(|e| ProvisionError::Descriptor(dn.clone(), e))?;
    let interval = DEFAULT_INTERVAL_DAYS.to_string();
    let uac = UAC_WORKSTATION.to_string();
    let what = format!("creating the gMSA {dn}");
    let r = admin
        .op()
        .add(
            &dn,
            vec![
                attr("objectClass", &[b"msDS-GroupManagedServiceAccount"]),
                attr("sAMAccountName", &[sam.as_bytes()]),
                attr("dNSHostName", &[dns_host.as_bytes()]),
                attr("msDS-ManagedPasswordInterval", &[interval.as_bytes()]),
                attr("msDS-GroupMSAMembership", &[&membership]),
                // AES128 | AES256 | RC4: NTLM needs the NT hash the blob carries either way.
                attr("msDS-SupportedEncryptionTypes", &[b"28"]),
            ],
        )
        .await
        .map_err(ldap_err(&what))?;
    check(what, r)?;
    // Samba creates it disabled (4130); Windows' New-ADServiceAccount leaves 4096.
    let what = format!("enabling the gMSA {dn}");
    let r = admin
        .op()
        .modify(
            &dn,
            vec![Mod::Replace(
                b"userAccountControl".to_vec(),
                HashSet::from([uac.into_bytes()]),
            )],
        )
        .await
        .map_err(ldap_err(&what))?;
    check(what, r)?;
    find_gmsa(admin, domain, name)
        .await?
        .ok_or_else(|| ProvisionError::Refused {
            what: format!("reading {dn} back"),
            rc: 32,
            text: "not found after the add".into(),
        })
}

/// Adds `principal` to the gMSA's allowed principals unless it is there already (a second host
/// joining, the seed's "second agent with Create gMSA"). Returns whether the descriptor changed.
pub async fn allow_principal(
    admin: &mut DcConn,
    gmsa: &GmsaAccount,
    principal: &Sid,
) -> Result<bool, ProvisionError> {
    if gmsa.allows(principal) {
        return Ok(false);
    }
    let mut sd = match &gmsa.membership {
        Some(sd) => sd.clone(),
        None => membership_with(principal)
            .map_err(|e| ProvisionError::Descriptor(gmsa.dn.clone(), e))?,
    };
    let acl = sd.dacl.get_or_insert_with(|| Acl {
        revision: 2,
        aces: Vec::new(),
        slack: Vec::new(),
    });
    acl.add(retrieve_ace(principal.clone()));
    sd.control |= super::security_descriptor::SE_DACL_PRESENT;
    let bytes = sd
        .to_bytes()
        .map_err(|e| ProvisionError::Descriptor(gmsa.dn.clone(), e))?;
    let what = format!(
        "adding {principal} to the allowed principals of {}",
        gmsa.dn
    );
    let r = admin
        .op()
        .modify(
            &gmsa.dn,
            vec![Mod::Replace(
                b"msDS-GroupMSAMembership".to_vec(),
                HashSet::from([bytes]),
            )],
        )
        .await
        .map_err(ldap_err(&what))?;
    check(what, r)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_long_random_and_complex() {
        let a = random_password();
        let b = random_password();
        assert_ne!(a.expose(), b.expose());
        assert_eq!(a.expose().len(), PASSWORD_LEN + 4);
        for class in [
            char::is_ascii_uppercase as fn(&char) -> bool,
            char::is_ascii_lowercase,
            char::is_ascii_digit,
        ] {
            assert!(a.expose().chars().any(|c| class(&c)));
        }
        assert_eq!(
            unicode_pwd(&Secret::new("ab".into())),
            b"\"\0a\0b\0\"\0".to_vec()
        );
    }

    #[test]
    fn names_are_checked() {
        assert!(valid_name("provAgentgMSA", 15));
        assert!(!valid_name("provAgentgMSA-too-long", 15));
        assert!(!valid_name("a b", 15));
        assert!(!valid_name("-x", 15));
    }

    #[test]
    fn the_membership_descriptor_allows_each_principal_once() {
        let host: Sid = "S-1-5-21-1-2-3-1105".parse().unwrap();
        let other: Sid = "S-1-5-21-1-2-3-1106".parse().unwrap();
        let sd = membership_with(&host).unwrap();
        // Windows' form O:BAD:(A;;0xf01ff;;;<sid>) — BUILTIN\Administrators the owner, one allow ACE
        // with every standard and object right (0xf01ff) — checked on the SDDL rendering.
        let sddl = sd.sddl();
        assert!(sddl.starts_with("O:S-1-5-32-544D:"), "{sddl}");
        assert!(sddl.contains("S-1-5-21-1-2-3-1105"), "{sddl}");
        let gmsa = GmsaAccount {
            dn: "CN=g".into(),
            sam_account_name: "g$".into(),
            membership: Some(SecurityDescriptor::parse(&sd.to_bytes().unwrap()).unwrap()),
        };
        assert!(gmsa.allows(&host));
        assert!(!gmsa.allows(&other));
        assert_eq!(gmsa.ntlm_name("corp.test"), "g$@corp.test");
    }
}
