//! A real Active Directory for integration tests: a Samba AD DC (`scripts/lab.sh`) on a loopback
//! address of its own, cloned from a template that is provisioned and seeded once and then cached.
//!
//! ```ignore
//! mod common;
//! let dc = common::lab::LabDc::start();          // ~1 s once the template exists
//! dc.ldif_admin("dn: CN=user00001,OU=SyncUsers,DC=corp,DC=example,DC=test\n\
//!                changetype: modify\nreplace: title\ntitle: Boss\n");
//! assert_eq!(dc.search_count("(title=Boss)"), 1);
//! ```
//!
//! What enters: `scripts/lab.sh` and the Samba packages (`scripts/lab.sh install`). What leaves: a
//! running DC whose address, URLs, DNs, credentials and CA file are fields of [`LabDc`]; it is stopped
//! and its directory removed on drop (also when the test panics).
//!
//! Another domain: `LabDc::start_realm(LabRealm::new("EAST.EXAMPLE.TEST", "EAST"))` (or
//! [`LabOptions::realm`]) is a DC of the domain `east.example.test`, NetBIOS `EAST`, with the same
//! seed under `DC=east,DC=example,DC=test`; tests with several domains start one DC per realm.
//!
//! Places on disk:
//! - `<cache>/template-<hash>/` — the template DC, stopped; `<hash>` covers `scripts/lab.sh`, the
//!   seed size and `samba --version`, so editing the script builds a new one. `<cache>` is
//!   `$CLOUDSYNC_LAB_CACHE`, else `<repo>/target/lab`. Built under the lock file
//!   `<cache>/template.lock` by exactly one process. Another realm's template is
//!   `<cache>/template-<hash>-<dns domain>/`, built the same way the first time a test asks for it.
//! - `<cache>/run/127.0.0.N/` — the clone a test runs on.
//! - `<locks>/127.0.0.N.lock` — one exclusive lock per address (`$CLOUDSYNC_LAB_LOCKS`, else
//!   `/tmp/cloudsync-lab-locks`, machine-wide so that worktrees and `cargo nextest` processes share
//!   it), held for the DC's lifetime; its content names the DC directory that uses the address, so a
//!   DC left over by a killed run is stopped by the next holder.
//!
//! The seed layout and password pattern are documented in `scripts/lab.sh` (and [`seeded_password`]).

mod gmsa;
mod ldap_tools;
mod lease;
mod template;
mod tools;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[allow(unused_imports)]
pub use gmsa::LabComputer;
#[allow(unused_imports)]
pub use tools::{check_prerequisites, seeded_password, unicode_pwd_base64};

/// Users `user00001..` that the template holds in `OU=SyncUsers`.
pub const TEMPLATE_USERS: usize = 1000;
/// Users `staff001..staff010` in `OU=Staff`.
pub const STAFF_USERS: usize = 10;
/// Contacts `contact01..contact05` in `OU=SyncUsers`.
pub const CONTACTS: usize = 5;
/// inetOrgPersons `inet01..inet02` in `OU=SyncUsers`.
pub const INET_ORG_PERSONS: usize = 2;

/// An AD domain other than the default `CORP.EXAMPLE.TEST` (NetBIOS `CORP`); each realm has a template
/// of its own (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabRealm {
    /// Kerberos realm, upper case, e.g. `EAST.EXAMPLE.TEST`; its lower case is the DNS domain and
    /// gives the base DN (`DC=east,DC=example,DC=test`).
    pub realm: String,
    /// NetBIOS domain name, e.g. `EAST` (1 to 15 letters, digits or `-`).
    pub netbios: String,
}

impl LabRealm {
    /// A realm and its NetBIOS name; panics on a name `lab.sh provision` would not take.
    pub fn new(realm: &str, netbios: &str) -> LabRealm {
        let labels_ok = realm
            .split('.')
            .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
        assert!(
            labels_ok && realm.contains('.'),
            "lab: {realm:?} is not a realm (dot-separated labels of letters, digits, '-')"
        );
        assert!(
            (1..=15).contains(&netbios.len())
                && netbios
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-'),
            "lab: {netbios:?} is not a NetBIOS domain name (1 to 15 letters, digits, '-')"
        );
        LabRealm {
            realm: realm.to_ascii_uppercase(),
            netbios: netbios.to_ascii_uppercase(),
        }
    }

    /// The DNS domain, e.g. `east.example.test`.
    pub fn dns_domain(&self) -> String {
        self.realm.to_ascii_lowercase()
    }
}

/// Knobs for [`LabDc::start_with`].
#[derive(Debug, Clone, Default)]
pub struct LabOptions {
    /// Run Samba with `-M single` (3 processes instead of ~45). Default: prefork, as in production.
    pub single_process: bool,
    /// Run Samba under libfaketime, its clock offset read from this file (`+0`, `+86400`, …; re-read
    /// every second): `lab.sh start` with `LAB_FAKETIME_FILE`. For gMSA password rotations.
    pub faketime_file: Option<PathBuf>,
    /// A DC of this domain instead of the default `CORP.EXAMPLE.TEST`, cloned from that realm's
    /// template (built on first use, ~30 s).
    pub realm: Option<LabRealm>,
}

/// A running lab DC; see the module docs. All fields are plain data for building client configs.
#[derive(Debug)]
pub struct LabDc {
    /// The DC's directory (a clone of the template).
    pub dir: PathBuf,
    /// The loopback address it is bound to (127.0.0.2..=64).
    pub ip: Ipv4Addr,
    /// `ldap://IP:389` (simple binds are allowed without TLS in the lab).
    pub ldap_url: String,
    /// `ldaps://IP:636`, certificate issued by [`LabDc::ca_file`] with IP SANs 127.0.0.1-64.
    pub ldaps_url: String,
    /// The domain NC, e.g. `DC=corp,DC=example,DC=test`.
    pub base_dn: String,
    /// Kerberos realm, upper case, e.g. `CORP.EXAMPLE.TEST`.
    pub realm: String,
    /// DNS domain, lower case, e.g. `corp.example.test`.
    pub dns_domain: String,
    /// NetBIOS domain name, e.g. `CORP`.
    pub netbios_domain: String,
    /// `Administrator@<dns_domain>`.
    pub admin_upn: String,
    /// The Administrator's password.
    pub admin_password: String,
    /// The sync service account's UPN (`svc-sync@<dns_domain>`): replication + writeback rights.
    pub svc_upn: String,
    /// The sync service account's password.
    pub svc_password: String,
    /// PEM file of the lab CA, the only root the clients should trust.
    pub ca_file: PathBuf,
    /// The DC's `smb.conf` (for `samba-tool -s`).
    pub smb_conf: PathBuf,
    /// `private/ldap_priv/ldapi`: root-only socket with a system session (secrets readable).
    pub priv_ldapi: PathBuf,
    options: LabOptions,
    running: bool,
    lease: lease::IpLease,
}

impl LabDc {
    /// A running DC with the seeded template data, on an address of its own. Panics with a clear
    /// message when Samba is not installed or no address is free.
    pub fn start() -> LabDc {
        LabDc::start_with(LabOptions::default())
    }

    /// A DC of another domain ([`LabOptions::realm`]), otherwise as [`LabDc::start`].
    pub fn start_realm(realm: LabRealm) -> LabDc {
        LabDc::start_with(LabOptions {
            realm: Some(realm),
            ..LabOptions::default()
        })
    }

    /// [`LabDc::start`] with options.
    pub fn start_with(options: LabOptions) -> LabDc {
        tools::require_lab_prerequisites();
        let template = template::ensure_template(options.realm.as_ref());
        let lease = lease::IpLease::acquire();
        let t0 = Instant::now();
        let dir = template::run_dir(lease.ip);
        lease::remove_stale_dc(&dir);
        lease.record_user(&dir);
        if let Some(parent) = dir.parent() {
            std::fs::create_dir_all(parent)
                .unwrap_or_else(|e| panic!("lab: cannot create {}: {e}", parent.display()));
        }
        let ip = lease.ip.to_string();
        tools::lab_sh(
            &["clone", path_str(&template), path_str(&dir)],
            &[("LAB_IP", ip.as_str())],
        );
        let mut dc = LabDc::describe(dir, lease, options);
        if let Some(r) = &dc.options.realm {
            assert_eq!(dc.realm, r.realm, "the clone is not of the realm asked for");
        }
        dc.start_again();
        eprintln!(
            "lab: DC {} on {} cloned and started in {:.2}s.",
            dc.dir.display(),
            dc.ip,
            t0.elapsed().as_secs_f64()
        );
        dc
    }

    /// Fills the fields from `lab.sh env DIR`, the script being the one source of these values.
    fn describe(dir: PathBuf, lease: lease::IpLease, options: LabOptions) -> LabDc {
        let out = tools::lab_sh(&["env", path_str(&dir)], &[]);
        let env = tools::parse_env_output(&out);
        let get = |key: &str| -> String {
            env.get(key)
                .cloned()
                .unwrap_or_else(|| panic!("lab.sh env printed no {key}:\n{out}"))
        };
        let ip: Ipv4Addr = get("AD_IP")
            .parse()
            .expect("lab.sh env printed a bad AD_IP");
        assert_eq!(
            ip, lease.ip,
            "the clone was not re-homed onto its leased address"
        );
        LabDc {
            ldap_url: get("AD_LDAP_URL"),
            ldaps_url: get("AD_LDAPS_URL"),
            base_dn: get("AD_BASE_DN"),
            realm: get("AD_REALM"),
            dns_domain: get("AD_DNS_DOMAIN"),
            netbios_domain: get("AD_DOMAIN"),
            admin_upn: get("AD_BIND_DN"),
            admin_password: get("AD_BIND_PASSWORD"),
            svc_upn: get("AD_SVC_BIND_DN"),
            svc_password: get("AD_SVC_PASSWORD"),
            ca_file: get("AD_CA_FILE").into(),
            smb_conf: get("AD_SMB_CONF").into(),
            priv_ldapi: get("AD_PRIV_LDAPI").into(),
            dir,
            ip,
            options,
            running: false,
            lease,
        }
    }

    /// Stops Samba (SIGTERM, then SIGKILL of its process group); the data stays for [`LabDc::start_again`].
    pub fn stop(&mut self) {
        tools::lab_sh(&["stop", path_str(&self.dir)], &[]);
        self.running = false;
    }

    /// Starts Samba again on the same directory and address; returns once LDAP, LDAPS, KDC, RPC
    /// and SMB answer.
    pub fn start_again(&mut self) {
        let model = if self.options.single_process {
            "single"
        } else {
            "prefork"
        };
        let mut env = vec![("LAB_MODEL", model)];
        if let Some(f) = &self.options.faketime_file {
            env.push(("LAB_FAKETIME_FILE", path_str(f)));
        }
        tools::lab_sh(&["start", path_str(&self.dir)], &env);
        self.running = true;
    }

    /// [`LabDc::stop`] then [`LabDc::start_again`].
    pub fn restart(&mut self) {
        self.stop();
        self.start_again();
    }

    /// Whether Samba was started by this fixture and not stopped since.
    pub fn is_running(&self) -> bool {
        self.running
    }

    /// The service account's sAMAccountName (`svc-sync`), for NTLM (`NETBIOS\\name`) logons.
    pub fn svc_sam_account_name(&self) -> &str {
        self.svc_upn.split('@').next().unwrap_or(&self.svc_upn)
    }

    /// `ldapi://` URL of [`LabDc::priv_ldapi`] (percent-encoded path), for root-only secret reads.
    pub fn priv_ldapi_url(&self) -> String {
        format!("ldapi://{}", path_str(&self.priv_ldapi).replace('/', "%2F"))
    }

    /// `OU=<name>,<base_dn>`.
    pub fn ou_dn(&self, name: &str) -> String {
        format!("OU={name},{}", self.base_dn)
    }

    /// DN of the seeded user `user<i:05>` in `OU=SyncUsers`.
    pub fn user_dn(&self, i: usize) -> String {
        format!("CN=user{i:05},OU=SyncUsers,{}", self.base_dn)
    }

    /// DN of a seeded group in `OU=SyncGroups,OU=SyncUsers` (`group0`..`group9`, `group-all`, …).
    pub fn group_dn(&self, name: &str) -> String {
        format!("CN={name},OU=SyncGroups,OU=SyncUsers,{}", self.base_dn)
    }

    /// The `AD_*` variables of `lab.sh env`, for agent processes a test spawns.
    pub fn env_vars(&self) -> Vec<(String, String)> {
        let out = tools::lab_sh(&["env", path_str(&self.dir)], &[]);
        tools::parse_env_output(&out).into_iter().collect()
    }
}

impl Drop for LabDc {
    fn drop(&mut self) {
        // Never panic here: a panic while the test is already unwinding would abort the process.
        // The clone is thrown away, so no graceful shutdown (saves ~2 s per test): SIGKILL at once.
        if let Err(e) =
            tools::try_lab_sh(&["stop", path_str(&self.dir)], &[("LAB_STOP_TIMEOUT", "0")])
        {
            eprintln!("lab: could not stop the DC in {}: {e}", self.dir.display());
            return; // keep the dir and the lease record so the next holder stops it
        }
        if std::env::var_os("CLOUDSYNC_LAB_KEEP").is_some() {
            eprintln!(
                "lab: keeping {} (CLOUDSYNC_LAB_KEEP is set).",
                self.dir.display()
            );
        } else if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            eprintln!("lab: could not remove {}: {e}", self.dir.display());
        }
        self.lease.clear_record();
    }
}

/// Paths here come from our own config and are UTF-8; a non-UTF-8 one is a broken setup.
fn path_str(path: &Path) -> &str {
    path.to_str()
        .unwrap_or_else(|| panic!("lab path is not UTF-8: {}", path.display()))
}
