//! The forest's Group Key Distribution Service (KDS) root keys — what a DC derives every gMSA password
//! from — listed and created over LDAP, as `Get-KdsRootKey`/`Add-KdsRootKey` (Windows) and `samba-tool
//! domain kds root-key list|create` (Samba 4.21+) do. Enters: a connection bound as a domain/enterprise
//! admin (for reading too: a root key's default security descriptor grants only Enterprise Admins,
//! Domain Admins and SYSTEM). Leaves: the keys ([`RootKey`]: id, use start, creation time), or a new
//! `msKds-ProvRootKey` object and its [`RootKey`].
//!
//! Where (MS-GKDI 1.9): `CN=<GUID>,CN=Master Root Keys,CN=Group Key Distribution Service,CN=Services,
//! <configurationNamingContext>`. What a new key holds (MS-GKDI 3.1.4.1.1; the same attribute set
//! Samba's `gkdi_create_root_key` in `source4/dsdb/gmsa/gkdi.c` writes): 64 random bytes from the OS
//! CSPRNG (`msKds-RootKeyData`: never logged; our copy is wiped, the one in ldap3's encoded request is
//! freed unwiped), `msKds-CreateTime` and
//! `msKds-UseStartTime` (NT time: 100 ns ticks since 1601), `msKds-DomainID` (the DN of the creating
//! DC's computer object: the `serverReference` of the server object above rootDSE `dsServiceName`), and
//! the algorithm parameters from the forest's Server Configuration object
//! (`CN=Group Key Distribution Service Server Configuration,CN=Server Configuration,…`), each falling
//! back to the default of MS-GKDI 3.1.4.1.2 when the object leaves it out (a fresh forest's object holds
//! only `msKds-Version`): KDF `SP800_108_CTR_HMAC` with [`KDF_PARAM_SHA512`], secret agreement `DH`
//! with [`FFC_DH_PARAMETERS`], public key length 2048, private key length 512. Samba falls back to 256
//! for the private key length; neither Samba nor the gMSA derivation reads the public-key fields.
//!
//! When a key serves (measured on Samba 4.22, `tests/kds_lab.rs`): the DC picks, for a gMSA password,
//! the most recently created key whose use start is at or before the start of the current 10-hour key
//! interval ([`RootKey::serves_gmsa_at`]); with none, creating a gMSA fails (`noSuchObject`, "failed to
//! find a suitable root key"). [`EffectiveTime::Standard`] therefore means waiting up to 10 hours. A
//! key added over LDAP takes effect without restarting the DC (Samba reads the container each time).
//! Never delete a key a gMSA's `msDS-ManagedPasswordId` names: reading that gMSA then fails outright
//! (`operationsError`, "No such Base DN: CN=<key>,…"), and a new key does not mend it.

use std::collections::HashSet;
use std::time::{SystemTime, UNIX_EPOCH};

use ldap3::{LdapError, Scope, SearchEntry};
use rand::TryRngCore as _;
use zeroize::Zeroizing;

use super::kds_params::{
    FFC_DH_PARAMETERS, KDF_ALGORITHM, KDF_PARAM_SHA512, KEY_CYCLE, MAX_CLOCK_SKEW,
    PRIVATE_KEY_LENGTH, PUBLIC_KEY_LENGTH, ROOT_KEY_LEN, SECRET_AGREEMENT_ALGORITHM, TICKS_PER_SEC,
    from_nt_time, nt_time,
};
use super::{binary_value, text_value};
use crate::source::ldap::conn::DcConn;

/// Below the configuration NC.
pub const ROOT_KEYS_CONTAINER: &str =
    "CN=Master Root Keys,CN=Group Key Distribution Service,CN=Services";
/// Below the configuration NC.
pub const SERVER_CONFIGURATION: &str = "CN=Group Key Distribution Service Server Configuration,\
     CN=Server Configuration,CN=Group Key Distribution Service,CN=Services";
/// The object class of a root key (MS-ADSC 2.159).
pub const ROOT_KEY_CLASS: &str = "msKds-ProvRootKey";

/// Why the root keys could not be listed or a key created.
#[derive(Debug, thiserror::Error)]
pub enum KdsError {
    /// The LDAP operation failed (connection, timeout, protocol).
    #[error("{what}: {source}")]
    Ldap {
        /// What was being done.
        what: String,
        /// The error (boxed: ldap3's error is large and this one travels in every `Result`).
        #[source]
        source: Box<LdapError>,
    },
    /// The DC refused: the bound account may not create (or read) root keys.
    #[error(
        "{what}: the DC refused (insufficientAccessRights: {text}); creating a KDS root key needs Enterprise Admins (Domain Admins of the forest root)"
    )]
    InsufficientRights {
        /// What was being done.
        what: String,
        /// The DC's diagnostic.
        text: String,
    },
    /// The DC answered with another error code.
    #[error("{what}: the DC answered {rc} ({text})")]
    Refused {
        /// What was being done.
        what: String,
        /// The LDAP result code.
        rc: u32,
        /// The DC's diagnostic.
        text: String,
    },
    /// A value the DC returned is missing or not what the schema says.
    #[error("{dn}: {attribute} {problem}")]
    Malformed {
        /// The entry.
        dn: String,
        /// The attribute.
        attribute: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// The forest's Server Configuration names a version this code does not write.
    #[error(
        "{dn}: msKds-Version is {version}; only version 1 root keys can be created (Set-KdsConfiguration -RevertToDefault resets it)"
    )]
    UnsupportedVersion {
        /// The Server Configuration object.
        dn: String,
        /// Its version.
        version: String,
    },
    /// The system clock is before 1601 or past 30828.
    #[error("the system clock is outside the range NT time can hold; fix the clock")]
    Clock,
    /// The OS random number generator failed.
    #[error("the OS random number generator failed: {0}")]
    Random(String),
}

impl KdsError {
    /// Whether trying again later may help (a connection problem, not a refusal).
    pub fn is_retriable(&self) -> bool {
        matches!(self, KdsError::Ldap { .. })
    }
}

/// When a new key may first be used to derive passwords.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EffectiveTime {
    /// Use start back-dated by [`KEY_CYCLE`] + [`MAX_CLOCK_SKEW`], so DCs use the key at once — what
    /// Samba's provision does and `Add-KdsRootKey -EffectiveTime ((Get-Date).AddHours(-10))` does.
    /// Microsoft recommends this only for test labs: a DC that has not yet replicated the key cannot
    /// answer for gMSAs that already use it.
    Immediately,
    /// Use start now, the documented default (`Add-KdsRootKey -EffectiveImmediately`, despite its name):
    /// DCs serve gMSA passwords from it once its first 10-hour interval has begun, up to 10 hours later,
    /// which leaves time for replication to every DC.
    Standard,
}

impl EffectiveTime {
    /// The use start for a key created at `now`.
    pub fn use_start(self, now: SystemTime) -> SystemTime {
        match self {
            EffectiveTime::Immediately => now
                .checked_sub(KEY_CYCLE + MAX_CLOCK_SKEW)
                .unwrap_or(UNIX_EPOCH),
            EffectiveTime::Standard => now,
        }
    }
}

/// A KDS root key as listed (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootKey {
    /// The key's GUID (its `cn`), lower case, as in `msDS-ManagedPasswordId`.
    pub id: String,
    /// The object's DN.
    pub dn: String,
    /// `msKds-UseStartTime`.
    pub use_start: SystemTime,
    /// `msKds-CreateTime`.
    pub created: SystemTime,
}

impl RootKey {
    /// Whether the key's use start has passed at `now`.
    pub fn usable_at(&self, now: SystemTime) -> bool {
        self.use_start <= now
    }

    /// Whether a DC may derive a gMSA password from this key at `now`: its use start is at or before
    /// the start of the 10-hour key interval `now` falls in (Samba: `gkdi_most_recently_created_root_key`
    /// with the interval's start as `not_after`).
    pub fn serves_gmsa_at(&self, now: SystemTime) -> bool {
        let (Some(start), Some(now)) = (nt_time(self.use_start), nt_time(now)) else {
            return false;
        };
        let cycle = KEY_CYCLE.as_secs() * TICKS_PER_SEC;
        start <= now - now % cycle
    }
}

/// The first instant `key` serves gMSA passwords: the start of the first 10-hour key interval that
/// begins at or after its use start ([`RootKey::serves_gmsa_at`]).
pub fn serves_from(key: &RootKey) -> SystemTime {
    let Some(start) = nt_time(key.use_start) else {
        return key.use_start;
    };
    let cycle = KEY_CYCLE.as_secs() * TICKS_PER_SEC;
    let first = start.div_ceil(cycle).saturating_mul(cycle);
    from_nt_time(first).unwrap_or(key.use_start)
}

/// Every root key of the forest, oldest use start first. An account without rights gets an empty list,
/// not an error (the DC hides the objects; measured on Samba 4.22): bind as an admin.
pub async fn root_keys(dc: &mut DcConn) -> Result<Vec<RootKey>, KdsError> {
    let config = root_dse_value(dc, "configurationNamingContext").await?;
    let container = format!("{ROOT_KEYS_CONTAINER},{config}");
    let what = format!("listing the KDS root keys under {container}");
    let attrs = vec!["cn", "msKds-UseStartTime", "msKds-CreateTime"];
    let filter = format!("(objectClass={ROOT_KEY_CLASS})");
    let found = dc
        .op()
        .search(&container, Scope::OneLevel, &filter, attrs)
        .await
        .map_err(ldap_err(&what))?;
    let entries = match found.success() {
        Ok((entries, _)) => entries,
        Err(e) => return Err(refusal(&what, e)),
    };
    let mut keys = entries
        .into_iter()
        .map(|e| root_key(&SearchEntry::construct(e)))
        .collect::<Result<Vec<_>, _>>()?;
    keys.sort_by(|a, b| (a.use_start, &a.id).cmp(&(b.use_start, &b.id)));
    Ok(keys)
}

/// Adds a new root key made as MS-GKDI 3.1.4.1.1 says (see the module doc) and returns it as listed.
pub async fn create_root_key(
    dc: &mut DcConn,
    effective: EffectiveTime,
) -> Result<RootKey, KdsError> {
    let config = root_dse_value(dc, "configurationNamingContext").await?;
    let params = server_configuration(dc, &config).await?;
    let domain_id = dc_computer_dn(dc).await?;
    let now = SystemTime::now();
    let use_start = effective.use_start(now);
    let (Some(created_nt), Some(use_start_nt)) = (nt_time(now), nt_time(use_start)) else {
        return Err(KdsError::Clock);
    };
    let mut secret = Zeroizing::new([0u8; ROOT_KEY_LEN]);
    rand::rngs::OsRng
        .try_fill_bytes(secret.as_mut())
        .map_err(|e| KdsError::Random(e.to_string()))?;
    let id = uuid::Uuid::new_v4().hyphenated().to_string();
    let dn = format!("CN={id},{ROOT_KEYS_CONTAINER},{config}");
    let text = |s: &str| s.as_bytes().to_vec();
    let one = |v: Vec<u8>| HashSet::from([v]);
    let attributes: Vec<(Vec<u8>, HashSet<Vec<u8>>)> = vec![
        (text("objectClass"), one(text(ROOT_KEY_CLASS))),
        (text("cn"), one(text(&id))),
        (text("msKds-Version"), one(text("1"))),
        (
            text("msKds-KDFAlgorithmID"),
            one(text(&params.kdf_algorithm)),
        ),
        (text("msKds-KDFParam"), one(params.kdf_param)),
        (
            text("msKds-SecretAgreementAlgorithmID"),
            one(text(&params.secret_agreement_algorithm)),
        ),
        (
            text("msKds-SecretAgreementParam"),
            one(params.secret_agreement_param),
        ),
        (
            text("msKds-PublicKeyLength"),
            one(text(&params.public_key_length)),
        ),
        (
            text("msKds-PrivateKeyLength"),
            one(text(&params.private_key_length)),
        ),
        (text("msKds-RootKeyData"), one(secret.to_vec())),
        (text("msKds-CreateTime"), one(text(&created_nt.to_string()))),
        (
            text("msKds-UseStartTime"),
            one(text(&use_start_nt.to_string())),
        ),
        (text("msKds-DomainID"), one(text(&domain_id))),
    ];
    let what = format!("creating the KDS root key {dn}");
    let added = dc
        .op()
        .add(&dn, attributes)
        .await
        .map_err(ldap_err(&what))?;
    added.success().map_err(|e| refusal(&what, e))?;
    tracing::info!(root_key = %id, ?effective, domain_id = %domain_id, "KDS root key created.");
    Ok(RootKey {
        id,
        dn,
        // As the DC stores them (100 ns ticks), so the key equals its listing.
        use_start: from_nt_time(use_start_nt).unwrap_or(use_start),
        created: from_nt_time(created_nt).unwrap_or(now),
    })
}

/// The parameters a new key copies (MS-GKDI 3.1.4.1.1 step 4), each defaulted per 3.1.4.1.2.
struct KeyParameters {
    kdf_algorithm: String,
    kdf_param: Vec<u8>,
    secret_agreement_algorithm: String,
    secret_agreement_param: Vec<u8>,
    public_key_length: String,
    private_key_length: String,
}

async fn server_configuration(dc: &mut DcConn, config: &str) -> Result<KeyParameters, KdsError> {
    let dn = format!("{SERVER_CONFIGURATION},{config}");
    let what = format!("reading the KDS server configuration {dn}");
    let attrs = vec![
        "msKds-Version",
        "msKds-KDFAlgorithmID",
        "msKds-KDFParam",
        "msKds-SecretAgreementAlgorithmID",
        "msKds-SecretAgreementParam",
        "msKds-PublicKeyLength",
        "msKds-PrivateKeyLength",
    ];
    let found = dc
        .op()
        .search(&dn, Scope::Base, "(objectClass=*)", attrs)
        .await
        .map_err(ldap_err(&what))?;
    let entry = match found.success() {
        Ok((entries, _)) => entries.into_iter().next().map(SearchEntry::construct),
        // No Server Configuration object: every value takes its default.
        Err(LdapError::LdapResult { result }) if result.rc == 32 => None,
        Err(e) => return Err(refusal(&what, e)),
    };
    let text = |name| entry.as_ref().and_then(|e| text_value(e, name));
    let binary = |name| entry.as_ref().and_then(|e| binary_value(e, name));
    if let Some(version) = text("msKds-Version").filter(|v| v != "1") {
        return Err(KdsError::UnsupportedVersion { dn, version });
    }
    Ok(KeyParameters {
        kdf_algorithm: text("msKds-KDFAlgorithmID").unwrap_or_else(|| KDF_ALGORITHM.into()),
        kdf_param: binary("msKds-KDFParam").unwrap_or_else(|| KDF_PARAM_SHA512.to_vec()),
        secret_agreement_algorithm: text("msKds-SecretAgreementAlgorithmID")
            .unwrap_or_else(|| SECRET_AGREEMENT_ALGORITHM.into()),
        secret_agreement_param: binary("msKds-SecretAgreementParam")
            .unwrap_or_else(|| FFC_DH_PARAMETERS.to_vec()),
        public_key_length: text("msKds-PublicKeyLength")
            .unwrap_or_else(|| PUBLIC_KEY_LENGTH.to_string()),
        private_key_length: text("msKds-PrivateKeyLength")
            .unwrap_or_else(|| PRIVATE_KEY_LENGTH.to_string()),
    })
}

/// The DN of the DC's computer object: rootDSE `dsServiceName` is `CN=NTDS Settings,<server object>`,
/// whose `serverReference` names it (Samba: `samdb_server_reference_dn`).
async fn dc_computer_dn(dc: &mut DcConn) -> Result<String, KdsError> {
    let service = root_dse_value(dc, "dsServiceName").await?;
    let server = parent_dn(&service).ok_or_else(|| KdsError::Malformed {
        dn: String::new(),
        attribute: "dsServiceName",
        problem: format!("{service:?} has no parent"),
    })?;
    let what = format!("reading serverReference of {server}");
    let found = dc
        .op()
        .search(
            server,
            Scope::Base,
            "(objectClass=*)",
            vec!["serverReference"],
        )
        .await
        .map_err(ldap_err(&what))?
        .success()
        .map_err(|e| refusal(&what, e))?;
    found
        .0
        .into_iter()
        .next()
        .map(SearchEntry::construct)
        .and_then(|e| text_value(&e, "serverReference"))
        .ok_or_else(|| KdsError::Malformed {
            dn: server.to_string(),
            attribute: "serverReference",
            problem: "is missing".into(),
        })
}

/// The DN without its first RDN (a `,` escaped with `\` does not end the RDN).
fn parent_dn(dn: &str) -> Option<&str> {
    let mut escaped = false;
    for (i, c) in dn.char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            ',' if !escaped => return Some(dn[i + 1..].trim_start()).filter(|p| !p.is_empty()),
            _ => escaped = false,
        }
    }
    None
}

async fn root_dse_value(dc: &mut DcConn, name: &'static str) -> Result<String, KdsError> {
    let what = format!("reading {name} from the rootDSE");
    let found = dc
        .op()
        .search("", Scope::Base, "(objectClass=*)", vec![name])
        .await
        .map_err(ldap_err(&what))?
        .success()
        .map_err(|e| refusal(&what, e))?;
    found
        .0
        .into_iter()
        .next()
        .map(SearchEntry::construct)
        .and_then(|e| text_value(&e, name))
        .ok_or_else(|| KdsError::Malformed {
            dn: "rootDSE".into(),
            attribute: name,
            problem: "is missing".into(),
        })
}

fn root_key(entry: &SearchEntry) -> Result<RootKey, KdsError> {
    let malformed = |attribute, problem: String| KdsError::Malformed {
        dn: entry.dn.clone(),
        attribute,
        problem,
    };
    let id = text_value(entry, "cn").ok_or_else(|| malformed("cn", "is missing".into()))?;
    let id = uuid::Uuid::parse_str(&id)
        .map_err(|e| malformed("cn", format!("{id:?} is not a GUID: {e}")))?
        .hyphenated()
        .to_string();
    let time = |attribute| -> Result<SystemTime, KdsError> {
        let v = text_value(entry, attribute).ok_or_else(|| {
            malformed(
                attribute,
                "is missing (may the bound account read it?)".into(),
            )
        })?;
        v.trim()
            .parse::<u64>()
            .ok()
            .and_then(from_nt_time)
            .ok_or_else(|| malformed(attribute, format!("{v:?} is not an NT time")))
    };
    Ok(RootKey {
        use_start: time("msKds-UseStartTime")?,
        created: time("msKds-CreateTime")?,
        dn: entry.dn.clone(),
        id,
    })
}

fn ldap_err(what: &str) -> impl FnOnce(LdapError) -> KdsError + '_ {
    move |source| KdsError::Ldap {
        what: what.to_string(),
        source: Box::new(source),
    }
}

/// A result code as the error the admin can act on (50: rights).
fn refusal(what: &str, e: LdapError) -> KdsError {
    match e {
        LdapError::LdapResult { result } if result.rc == 50 => KdsError::InsufficientRights {
            what: what.to_string(),
            text: result.text.trim().to_string(),
        },
        LdapError::LdapResult { result } => KdsError::Refused {
            what: what.to_string(),
            rc: result.rc,
            text: result.text.trim().to_string(),
        },
        source => KdsError::Ldap {
            what: what.to_string(),
            source: Box::new(source),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn key(use_start: SystemTime) -> RootKey {
        RootKey {
            id: "991b1d87-6800-793d-fd0a-a9a2b11c795d".into(),
            dn: String::new(),
            use_start,
            created: use_start,
        }
    }

    #[test]
    fn an_immediate_key_serves_gmsas_at_once_a_standard_one_from_the_next_interval() {
        // 2026-12-07 14:42:00 UTC is 6 h 42 min into a 10-hour interval (they count from 1601).
        let nt = |t| from_nt_time(t).unwrap();
        let now = nt(134_411_281_200_000_000);
        let interval_start = nt(134_411_040_000_000_000);
        assert_eq!(
            now.duration_since(interval_start).unwrap(),
            Duration::from_secs(6 * 3600 + 42 * 60)
        );
        let immediate = key(EffectiveTime::Immediately.use_start(now));
        assert_eq!(
            now.duration_since(immediate.use_start).unwrap(),
            Duration::from_secs(10 * 3600 + 300)
        );
        assert!(immediate.usable_at(now) && immediate.serves_gmsa_at(now));
        let standard = key(EffectiveTime::Standard.use_start(now));
        assert!(standard.usable_at(now));
        assert!(!standard.serves_gmsa_at(now));
        assert!(!standard.serves_gmsa_at(interval_start + KEY_CYCLE - Duration::from_secs(1)));
        assert!(standard.serves_gmsa_at(interval_start + KEY_CYCLE));
        assert!(key(interval_start).serves_gmsa_at(now));
        assert!(!key(interval_start + Duration::from_micros(1)).serves_gmsa_at(now));
    }

    #[test]
    fn the_parent_of_a_dn_skips_escaped_commas() {
        assert_eq!(
            parent_dn("CN=NTDS Settings,CN=DC1,CN=Servers,CN=Configuration,DC=x"),
            Some("CN=DC1,CN=Servers,CN=Configuration,DC=x")
        );
        assert_eq!(parent_dn(r"CN=a\,b,DC=x"), Some("DC=x"));
        assert_eq!(parent_dn("DC=x"), None);
    }

    #[test]
    fn a_listed_key_needs_a_guid_and_both_times() {
        let mut attrs = std::collections::HashMap::new();
        attrs.insert(
            "cn".to_string(),
            vec!["991B1D87-6800-793D-FD0A-A9A2B11C795D".to_string()],
        );
        attrs.insert(
            "msKds-UseStartTime".to_string(),
            vec!["134410918201197696".to_string()],
        );
        attrs.insert(
            "msKds-CreateTime".to_string(),
            vec!["134411281201197696".to_string()],
        );
        let entry = SearchEntry {
            dn: "CN=991b1d87-…".into(),
            attrs: attrs.clone(),
            bin_attrs: Default::default(),
        };
        let k = root_key(&entry).unwrap();
        assert_eq!(k.id, "991b1d87-6800-793d-fd0a-a9a2b11c795d");
        assert_eq!(nt_time(k.use_start), Some(134_410_918_201_197_696));
        attrs.insert("msKds-CreateTime".to_string(), vec!["soon".to_string()]);
        let bad = SearchEntry { attrs, ..entry };
        let err = root_key(&bad).unwrap_err();
        assert!(
            matches!(
                err,
                KdsError::Malformed {
                    attribute: "msKds-CreateTime",
                    ..
                }
            ),
            "{err}"
        );
    }
}
