//! The service account's rights in AD, per feature — the `Set-AADCloudSyncPermissions
//! -PermissionType …` equivalent. Enters: a bound connection (the domain admin's for [`set`], the
//! service account's own for [`check`]), the domain's naming context, the account's name and a
//! [`PermissionType`]. Leaves: the ACEs added or found ([`Grant`]s), and the `nTSecurityDescriptor`
//! of the domain root and of `CN=Deleted Objects` edited in place.
//!
//! The rights ([`grants`]; docs/permissions.md has them as SDDL):
//! - **basic-read**: Read Property (RP) on descendant user, inetOrgPerson, group and contact objects
//!   (`CIIO` object ACEs inherited by each class); "Replicating Directory Changes" on the root (the
//!   agent reads with DirSync, which AD and Samba refuse without it unless `object_security`); and
//!   Read Property + List Contents on `CN=Deleted Objects` (Samba returns tombstones in DirSync only
//!   to accounts that may read that container; the same ACE `scripts/lab.sh` grants).
//! - **password-hash-sync**: "Replicating Directory Changes" and "… All" on the root.
//! - **password-writeback**: Reset Password and read/write `lockoutTime` and `pwdLastSet` inherited
//!   by user objects, and Unexpire Password on the root.
//!
//! Editing: the descriptor is read and written with the SD_FLAGS control asking for the DACL only
//! (`1.2.840.113556.1.4.801`, flags 4), so the owner, group and SACL are neither needed nor touched;
//! `CN=Deleted Objects` also needs Show Deleted. An ACE is added only when no explicit ACE already
//! [covers](crate::account::security_descriptor::AccessAce::covers) it, after the explicit ACEs and
//! before the inherited ones; the DC recomputes the inherited copies below. A second run adds nothing.

use std::collections::HashSet;

use ldap3::controls::RawControl;
use ldap3::{Mod, Scope, SearchEntry};

use super::binary_value;
use super::security_descriptor::{
    AccessAce, CONTAINER_INHERIT, Guid, INHERIT_ONLY, SdError, SecurityDescriptor, Sid,
};
use crate::source::ldap::conn::DcConn;
use crate::source::ldap::control::show_deleted;

/// OID of LDAP_SERVER_SD_FLAGS (MS-ADTS 3.1.1.3.4.1.11).
pub const SD_FLAGS_OID: &str = "1.2.840.113556.1.4.801";
/// `OWNER_SECURITY_INFORMATION`.
const OWNER_SECURITY_INFORMATION: u8 = 1;
/// `DACL_SECURITY_INFORMATION`.
const DACL_SECURITY_INFORMATION: u8 = 4;
/// BUILTIN\Administrators, the owner `set` gives `CN=Deleted Objects` when the admin may not read it.
pub const BUILTIN_ADMINISTRATORS: &str = "S-1-5-32-544";

/// DS access mask bits.
const RP: u32 = 0x10;
const WP: u32 = 0x20;
const LC: u32 = 0x4;
const CR: u32 = 0x100;

const GET_CHANGES: &str = "1131f6aa-9c07-11d1-f79f-00c04fc2dcd2";
const GET_CHANGES_ALL: &str = "1131f6ad-9c07-11d1-f79f-00c04fc2dcd2";
const RESET_PASSWORD: &str = "00299570-246d-11d0-a768-00aa006e0529";
const UNEXPIRE_PASSWORD: &str = "ccc2dc7d-a6ad-4a7a-8846-c04e3cc53501";
const LOCKOUT_TIME: &str = "28630ebf-41d5-11d1-a9c1-0000f80367c1";
const PWD_LAST_SET: &str = "bf967a0a-0de6-11d0-a285-00aa003049e2";
const CLASS_USER: &str = "bf967aba-0de6-11d0-a285-00aa003049e2";
const CLASS_INET_ORG_PERSON: &str = "4828cc14-1437-45bc-9b07-ad6f015e5f28";
const CLASS_GROUP: &str = "bf967a9c-0de6-11d0-a285-00aa003049e2";
const CLASS_CONTACT: &str = "5cb41ed0-0e4c-11d0-a286-00aa003049e2";

/// A feature's set of rights (`--type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PermissionType {
    /// Reading the objects the agent syncs.
    BasicRead,
    /// Password hash sync (replication of secrets).
    PasswordHashSync,
    /// Password writeback (reset, unlock, must-change).
    PasswordWriteback,
    /// All of the above.
    All,
}

impl PermissionType {
    /// The `--type` spelling.
    pub fn name(self) -> &'static str {
        match self {
            PermissionType::BasicRead => "basic-read",
            PermissionType::PasswordHashSync => "password-hash-sync",
            PermissionType::PasswordWriteback => "password-writeback",
            PermissionType::All => "all",
        }
    }

    /// The single types this one stands for.
    pub fn expand(self) -> Vec<PermissionType> {
        match self {
            PermissionType::All => vec![
                PermissionType::BasicRead,
                PermissionType::PasswordHashSync,
                PermissionType::PasswordWriteback,
            ],
            t => vec![t],
        }
    }
}

impl std::str::FromStr for PermissionType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        [
            PermissionType::BasicRead,
            PermissionType::PasswordHashSync,
            PermissionType::PasswordWriteback,
            PermissionType::All,
        ]
        .into_iter()
        .find(|t| t.name().eq_ignore_ascii_case(s))
        .ok_or_else(|| {
            format!(
                "{s:?} is not a permission type: use basic-read, password-hash-sync, password-writeback or all"
            )
        })
    }
}

/// Which object an ACE goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    /// The domain's naming-context head.
    DomainRoot,
    /// `CN=Deleted Objects` under it.
    DeletedObjects,
}

impl Target {
    /// The object's DN under `base`.
    pub fn dn(self, base: &str) -> String {
        match self {
            Target::DomainRoot => base.to_string(),
            Target::DeletedObjects => format!("CN=Deleted Objects,{base}"),
        }
    }
}

/// One ACE a feature needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The feature.
    pub kind: PermissionType,
    /// Where.
    pub target: Target,
    /// In words ("Replicating Directory Changes All on the domain root").
    pub right: &'static str,
    /// The ACE.
    pub ace: AccessAce,
}

fn guid(s: &str) -> Result<Guid, SdError> {
    s.parse()
}

/// Every ACE `kind` needs for `sid`, in a stable order (a right two types share appears once).
pub fn grants(kind: PermissionType, sid: &Sid) -> Result<Vec<Grant>, SdError> {
    let ciio = CONTAINER_INHERIT | INHERIT_ONLY;
    let mut out: Vec<Grant> = Vec::new();
    let mut push = |kind, target, right, ace: AccessAce| {
        if !out
            .iter()
            .any(|g: &Grant| g.target == target && g.ace == ace)
        {
            out.push(Grant {
                kind,
                target,
                right,
                ace,
            });
        }
    };
    for k in kind.expand() {
        let s = sid.clone();
        match k {
            PermissionType::BasicRead => {
                for (right, class) in [
                    ("Read all properties on descendant users", CLASS_USER),
                    (
                        "Read all properties on descendant inetOrgPersons",
                        CLASS_INET_ORG_PERSON,
                    ),
                    ("Read all properties on descendant groups", CLASS_GROUP),
                    ("Read all properties on descendant contacts", CLASS_CONTACT),
                ] {
                    let ace = AccessAce::new(true, ciio, RP, None, Some(guid(class)?), s.clone());
                    push(k, Target::DomainRoot, right, ace);
                }
                push(
                    k,
                    Target::DomainRoot,
                    "Replicating Directory Changes on the domain root",
                    AccessAce::new(true, 0, CR, Some(guid(GET_CHANGES)?), None, s.clone()),
                );
                push(
                    k,
                    Target::DeletedObjects,
                    "Read and list CN=Deleted Objects",
                    AccessAce::new(true, 0, RP | LC, None, None, s),
                );
            }
            PermissionType::PasswordHashSync => {
                push(
                    k,
                    Target::DomainRoot,
                    "Replicating Directory Changes on the domain root",
                    AccessAce::new(true, 0, CR, Some(guid(GET_CHANGES)?), None, s.clone()),
                );
                push(
                    k,
                    Target::DomainRoot,
                    "Replicating Directory Changes All on the domain root",
                    AccessAce::new(true, 0, CR, Some(guid(GET_CHANGES_ALL)?), None, s),
                );
            }
            PermissionType::PasswordWriteback => {
                let user = Some(guid(CLASS_USER)?);
                push(
                    k,
                    Target::DomainRoot,
                    "Reset Password on descendant users",
                    AccessAce::new(true, ciio, CR, Some(guid(RESET_PASSWORD)?), user, s.clone()),
                );
                push(
                    k,
                    Target::DomainRoot,
                    "Read/write lockoutTime on descendant users",
                    AccessAce::new(
                        true,
                        ciio,
                        RP | WP,
                        Some(guid(LOCKOUT_TIME)?),
                        user,
                        s.clone(),
                    ),
                );
                push(
                    k,
                    Target::DomainRoot,
                    "Read/write pwdLastSet on descendant users",
                    AccessAce::new(
                        true,
                        ciio,
                        RP | WP,
                        Some(guid(PWD_LAST_SET)?),
                        user,
                        s.clone(),
                    ),
                );
                push(
                    k,
                    Target::DomainRoot,
                    "Unexpire Password on the domain root",
                    AccessAce::new(true, 0, CR, Some(guid(UNEXPIRE_PASSWORD)?), None, s),
                );
            }
            PermissionType::All => {}
        }
    }
    Ok(out)
}

/// Why the rights could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum PermissionsError {
    /// The LDAP operation failed.
    #[error("{what}: {source}")]
    Ldap {
        /// What was being done.
        what: String,
        /// The error.
        #[source]
        source: ldap3::LdapError,
    },
    /// The DC answered with an error code.
    #[error("{what}: the DC answered {rc} ({text}){hint}")]
    Refused {
        /// What was being done.
        what: String,
        /// The LDAP result code.
        rc: u32,
        /// The DC's diagnostic.
        text: String,
        /// What to do about it.
        hint: &'static str,
    },
    /// The account is not in the directory.
    #[error("no account {0} in {1} (give its UPN, DOMAIN\\name or DN)")]
    NoAccount(String, String),
    /// The object or its descriptor was not returned.
    #[error("{0}: no nTSecurityDescriptor returned (the account may not read it)")]
    NoDescriptor(String),
    /// The descriptor did not parse.
    #[error("{0}: {1}")]
    Descriptor(String, SdError),
}

fn ldap_err(what: &str) -> impl FnOnce(ldap3::LdapError) -> PermissionsError + '_ {
    move |source| PermissionsError::Ldap {
        what: what.to_string(),
        source,
    }
}

/// The SD_FLAGS control asking for the DACL only (critical).
pub fn sd_flags_dacl() -> RawControl {
    sd_flags(DACL_SECURITY_INFORMATION)
}

/// The SD_FLAGS control for `flags` (`SEQUENCE { INTEGER flags }`, critical).
fn sd_flags(flags: u8) -> RawControl {
    RawControl {
        ctype: SD_FLAGS_OID.to_string(),
        crit: true,
        val: Some(vec![0x30, 0x03, 0x02, 0x01, flags]),
    }
}

fn controls(target: Target) -> Vec<RawControl> {
    controls_for(target, DACL_SECURITY_INFORMATION)
}

fn controls_for(target: Target, flags: u8) -> Vec<RawControl> {
    let mut c = vec![sd_flags(flags)];
    if target == Target::DeletedObjects {
        c.push(show_deleted());
    }
    c
}

/// The `objectSid` of `account` (a UPN, `DOMAIN\name` or a DN) under `base`. A UPN in the domain's
/// own DNS name that no `userPrincipalName` holds is the implicit UPN `sAMAccountName@dns` (Samba's
/// Administrator has no `userPrincipalName`, yet binds as `Administrator@corp.example.test`).
pub async fn account_sid(
    dc: &mut DcConn,
    base: &str,
    account: &str,
) -> Result<Sid, PermissionsError> {
    Ok(find_account(dc, base, account).await?.1)
}

/// [`account_sid`] with the account's DN.
async fn find_account(
    dc: &mut DcConn,
    base: &str,
    account: &str,
) -> Result<(String, Sid), PermissionsError> {
    let mut tries: Vec<(String, Scope, String)> = Vec::new();
    if let Some((_, name)) = account.split_once('\\') {
        tries.push((
            base.to_string(),
            Scope::Subtree,
            format!("(sAMAccountName={})", ldap3::ldap_escape(name)),
        ));
    } else if let Some((name, suffix)) = account.split_once('@').filter(|_| !account.contains('='))
    {
        tries.push((
            base.to_string(),
            Scope::Subtree,
            format!("(userPrincipalName={})", ldap3::ldap_escape(account)),
        ));
        if crate::control::install::domain::naming_context_of(suffix).eq_ignore_ascii_case(base) {
            tries.push((
                base.to_string(),
                Scope::Subtree,
                format!("(sAMAccountName={})", ldap3::ldap_escape(name)),
            ));
        }
    } else {
        tries.push((account.to_string(), Scope::Base, "(objectClass=*)".into()));
    }
    let what = format!("looking up {account}");
    for (search_base, scope, filter) in tries {
        let r = dc
            .op()
            .search(&search_base, scope, &filter, vec!["objectSid"])
            .await
            .map_err(ldap_err(&what))?;
        let found =
            r.0.into_iter()
                .next()
                .map(SearchEntry::construct)
                .and_then(|e| Some((binary_value(&e, "objectSid")?, e.dn)));
        if let Some((raw, dn)) = found {
            let sid = Sid::from_bytes(&raw).map_err(|e| PermissionsError::Descriptor(what, e))?;
            return Ok((dn, sid));
        }
    }
    Err(PermissionsError::NoAccount(
        account.to_string(),
        base.to_string(),
    ))
}

/// The DACL-only descriptor of `target` and its bytes as served.
pub async fn read_dacl(
    dc: &mut DcConn,
    base: &str,
    target: Target,
) -> Result<(SecurityDescriptor, Vec<u8>), PermissionsError> {
    let dn = target.dn(base);
    let what = format!("reading the security descriptor of {dn}");
    let r = dc
        .op()
        .with_controls(controls(target))
        .search(
            &dn,
            Scope::Base,
            "(objectClass=*)",
            vec!["nTSecurityDescriptor"],
        )
        .await
        .map_err(ldap_err(&what))?;
    if r.1.rc != 0 {
        return Err(PermissionsError::Refused {
            what,
            rc: r.1.rc,
            text: r.1.text.trim().to_string(),
            hint: "",
        });
    }
    let raw =
        r.0.into_iter()
            .next()
            .map(SearchEntry::construct)
            .and_then(|e| binary_value(&e, "nTSecurityDescriptor"))
            .ok_or_else(|| PermissionsError::NoDescriptor(dn.clone()))?;
    let sd = SecurityDescriptor::parse(&raw).map_err(|e| PermissionsError::Descriptor(dn, e))?;
    Ok((sd, raw))
}

/// Writes `sd`'s DACL to `target` (SD_FLAGS: DACL only).
pub async fn write_dacl(
    dc: &mut DcConn,
    base: &str,
    target: Target,
    sd: &SecurityDescriptor,
) -> Result<(), PermissionsError> {
    write_sd(dc, base, target, sd, DACL_SECURITY_INFORMATION).await
}

/// Makes BUILTIN\Administrators the owner of `target` (SD_FLAGS: owner only), as `dsacls
/// /takeownership` does: a domain admin holds the take-ownership privilege, and the owner may then
/// read and write the DACL. Needed for `CN=Deleted Objects`, whose default descriptor lets only
/// SYSTEM read or change it.
pub async fn take_ownership(
    dc: &mut DcConn,
    base: &str,
    target: Target,
) -> Result<(), PermissionsError> {
    let owner: Sid = BUILTIN_ADMINISTRATORS
        .parse()
        .map_err(|e| PermissionsError::Descriptor(target.dn(base), e))?;
    let sd = SecurityDescriptor::new(Some(owner), None, None);
    write_sd(dc, base, target, &sd, OWNER_SECURITY_INFORMATION).await
}

async fn write_sd(
    dc: &mut DcConn,
    base: &str,
    target: Target,
    sd: &SecurityDescriptor,
    flags: u8,
) -> Result<(), PermissionsError> {
    let dn = target.dn(base);
    let what = format!("writing the security descriptor of {dn}");
    let bytes = sd
        .to_bytes()
        .map_err(|e| PermissionsError::Descriptor(dn.clone(), e))?;
    let r = dc
        .op()
        .with_controls(controls_for(target, flags))
        .modify(
            &dn,
            vec![Mod::Replace(
                b"nTSecurityDescriptor".to_vec(),
                HashSet::from([bytes]),
            )],
        )
        .await
        .map_err(ldap_err(&what))?;
    if r.rc != 0 {
        return Err(PermissionsError::Refused {
            what,
            rc: r.rc,
            text: r.text.trim().to_string(),
            hint: if r.rc == 50 {
                ": bind as a domain administrator (Domain Admins may write a domain's DACL)"
            } else {
                ""
            },
        });
    }
    Ok(())
}

/// What [`set`] did.
#[derive(Debug, Clone, Default)]
pub struct SetOutcome {
    /// ACEs written.
    pub added: Vec<Grant>,
    /// ACEs that were already there.
    pub present: Vec<Grant>,
    /// Objects whose owner became BUILTIN\Administrators so their DACL could be read and written.
    pub owned: Vec<String>,
}

/// Adds the ACEs `kind` needs for `account` (as the domain admin bound on `dc`).
pub async fn set(
    dc: &mut DcConn,
    base: &str,
    account: &str,
    kind: PermissionType,
) -> Result<SetOutcome, PermissionsError> {
    let sid = account_sid(dc, base, account).await?;
    let wanted = grants(kind, &sid).map_err(|e| PermissionsError::Descriptor(account.into(), e))?;
    let mut outcome = SetOutcome::default();
    for target in [Target::DomainRoot, Target::DeletedObjects] {
        let here: Vec<&Grant> = wanted.iter().filter(|g| g.target == target).collect();
        if here.is_empty() {
            continue;
        }
        let (mut sd, _) = match read_dacl(dc, base, target).await {
            Err(PermissionsError::NoDescriptor(dn)) if target == Target::DeletedObjects => {
                take_ownership(dc, base, target).await?;
                outcome.owned.push(dn);
                read_dacl(dc, base, target).await?
            }
            r => r?,
        };
        let dacl = sd
            .dacl
            .get_or_insert_with(|| super::security_descriptor::Acl {
                revision: 2,
                aces: Vec::new(),
                slack: Vec::new(),
            });
        let mut changed = false;
        for g in here {
            if dacl.add(g.ace.clone()) {
                changed = true;
                outcome.added.push(g.clone());
            } else {
                outcome.present.push(g.clone());
            }
        }
        if changed {
            write_dacl(dc, base, target, &sd).await?;
        }
    }
    Ok(outcome)
}

/// The SIDs an ACE may name to reach `dn`'s account: its `tokenGroups` (its groups, transitively,
/// as the DC computes them), Authenticated Users and Everyone.
async fn token_sids(dc: &mut DcConn, dn: &str) -> Result<Vec<Sid>, PermissionsError> {
    let what = format!("reading the tokenGroups of {dn}");
    let r = dc
        .op()
        .search(dn, Scope::Base, "(objectClass=*)", vec!["tokenGroups"])
        .await
        .map_err(ldap_err(&what))?;
    let mut sids: Vec<Sid> =
        r.0.into_iter()
            .map(SearchEntry::construct)
            .flat_map(|e| {
                e.bin_attrs
                    .into_iter()
                    .filter(|(k, _)| k.eq_ignore_ascii_case("tokenGroups"))
                    .flat_map(|(_, v)| v)
            })
            .filter_map(|raw| Sid::from_bytes(&raw).ok())
            .collect();
    for well_known in ["S-1-5-11", "S-1-1-0"] {
        if let Ok(s) = well_known.parse() {
            sids.push(s);
        }
    }
    Ok(sids)
}

/// Whether each ACE `kind` needs for `account` is in the descriptors read back on `dc` (any
/// account that may read them; a descriptor it may not read counts as missing). An allow ACE for
/// one of the account's groups ([`token_sids`]) counts as well; deny ACEs are not evaluated (the
/// probes of `control::doctor::rights` meet them as the DC decides).
pub async fn check(
    dc: &mut DcConn,
    base: &str,
    account: &str,
    kind: PermissionType,
) -> Result<Vec<(Grant, bool)>, PermissionsError> {
    let (dn, sid) = find_account(dc, base, account).await?;
    let groups = token_sids(dc, &dn).await?;
    let wanted = grants(kind, &sid).map_err(|e| PermissionsError::Descriptor(account.into(), e))?;
    let mut out = Vec::new();
    for target in [Target::DomainRoot, Target::DeletedObjects] {
        let here: Vec<Grant> = wanted
            .iter()
            .filter(|g| g.target == target)
            .cloned()
            .collect();
        if here.is_empty() {
            continue;
        }
        let dacl = match read_dacl(dc, base, target).await {
            Ok((sd, _)) => sd.dacl,
            Err(PermissionsError::NoDescriptor(_) | PermissionsError::Refused { .. }) => None,
            Err(e) => return Err(e),
        };
        // The service account may not read CN=Deleted Objects' descriptor (only its owner and
        // SYSTEM may); what the ACE allows is tried instead: listing and reading the container.
        let readable = match (&dacl, target) {
            (None, Target::DeletedObjects) => deleted_objects_readable(dc, base).await?,
            _ => false,
        };
        for g in here {
            let ok = readable
                || dacl.as_ref().is_some_and(|d| {
                    d.grants(&g.ace)
                        || groups.iter().any(|s| {
                            let mut via = g.ace.clone();
                            via.sid = s.clone();
                            d.grants(&via)
                        })
                });
            out.push((g, ok));
        }
    }
    Ok(out)
}

/// Whether the bound account sees `CN=Deleted Objects` and reads its `isDeleted` (Show Deleted).
async fn deleted_objects_readable(dc: &mut DcConn, base: &str) -> Result<bool, PermissionsError> {
    let dn = Target::DeletedObjects.dn(base);
    let what = format!("reading {dn}");
    let r = dc
        .op()
        .with_controls(vec![show_deleted()])
        .search(&dn, Scope::Base, "(objectClass=*)", vec!["isDeleted"])
        .await
        .map_err(ldap_err(&what))?;
    Ok(r.1.rc == 0
        && r.0.into_iter().map(SearchEntry::construct).any(|e| {
            e.attrs
                .iter()
                .any(|(k, v)| k.eq_ignore_ascii_case("isDeleted") && !v.is_empty())
        }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_parse_and_all_is_the_union_without_duplicates() {
        assert_eq!(
            "password-hash-sync".parse::<PermissionType>().unwrap(),
            PermissionType::PasswordHashSync
        );
        assert!("phs".parse::<PermissionType>().is_err());
        let sid: Sid = "S-1-5-21-1-2-3-1104".parse().unwrap();
        let all = grants(PermissionType::All, &sid).unwrap();
        let parts: usize = PermissionType::All
            .expand()
            .into_iter()
            .map(|k| grants(k, &sid).unwrap().len())
            .sum();
        // basic-read 6, PHS 2, writeback 4; "Replicating Directory Changes" is shared once.
        assert_eq!(parts, 12);
        assert_eq!(all.len(), 11);
        let sddl: Vec<String> = grants(PermissionType::PasswordHashSync, &sid)
            .unwrap()
            .iter()
            .map(|g| {
                crate::account::security_descriptor::ace_sddl(
                    &crate::account::security_descriptor::Ace::Access(g.ace.clone()),
                )
            })
            .collect();
        assert_eq!(
            sddl,
            [
                "(OA;;CR;1131f6aa-9c07-11d1-f79f-00c04fc2dcd2;;S-1-5-21-1-2-3-1104)",
                "(OA;;CR;1131f6ad-9c07-11d1-f79f-00c04fc2dcd2;;S-1-5-21-1-2-3-1104)"
            ]
        );
    }
}
