//! Changing and reading the lab DC from tests with the OpenLDAP client tools (as Administrator,
//! over LDAPS verified against the lab CA), so tests need no hand-rolled LDAP code of their own,
//! plus a rustls config that trusts only the lab CA, for code under test.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::Arc;

use base64::Engine as _;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;

use super::LabDc;
use super::tools::run;

impl LabDc {
    /// sAMAccountName by objectGUID for every user, read over LDAPS as Administrator (independent of the
    /// code under test). ldap3 may file a 16-byte GUID under text attributes; both maps are read.
    pub async fn sam_by_guid(&self) -> std::collections::HashMap<[u8; 16], String> {
        let settings = ldap3::LdapConnSettings::new().set_config(self.rustls_config());
        let (conn, mut ldap) = ldap3::LdapConnAsync::with_settings(settings, &self.ldaps_url)
            .await
            .unwrap();
        ldap3::drive!(conn);
        ldap.simple_bind(&self.admin_upn, &self.admin_password)
            .await
            .unwrap()
            .success()
            .unwrap();
        let (entries, _) = ldap
            .search(
                &self.base_dn,
                ldap3::Scope::Subtree,
                "(&(objectCategory=person)(objectClass=user))",
                vec!["sAMAccountName", "objectGUID"],
            )
            .await
            .unwrap()
            .success()
            .unwrap();
        entries
            .into_iter()
            .map(ldap3::SearchEntry::construct)
            .filter_map(|e| {
                let guid = e
                    .bin_attrs
                    .get("objectGUID")
                    .and_then(|v| v.first().cloned())
                    .or_else(|| e.attrs.get("objectGUID").map(|v| v[0].as_bytes().to_vec()))?;
                Some((
                    guid.try_into().ok()?,
                    e.attrs.get("sAMAccountName")?[0].clone(),
                ))
            })
            .collect()
    }

    /// Applies an LDIF as Administrator with `ldapmodify` and panics with its output on failure.
    /// Every record needs a `changetype:` (`add`, `modify`, `modrdn`/`moddn`, `delete`); records
    /// are applied in order. For passwords use `unicodePwd:: {unicode_pwd_base64(..)}`.
    pub fn ldif_admin(&self, ldif: &str) {
        if let Err(e) = self.try_ldif_admin(ldif) {
            panic!("lab: {e}\n--- LDIF\n{ldif}");
        }
    }

    /// [`LabDc::ldif_admin`] returning the tool's stdout, or its output as the error.
    pub fn try_ldif_admin(&self, ldif: &str) -> Result<String, String> {
        let mut cmd = self.admin_tool("ldapmodify");
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot run ldapmodify: {e}"))?;
        // Feed stdin from its own thread: ldapmodify echoes every record, and writing a large LDIF before
        // reading that output deadlocks once both pipes are full (~64 KiB, about 950 adds).
        let writer = child.stdin.take().map(|mut stdin| {
            let ldif = ldif.to_owned();
            std::thread::spawn(move || stdin.write_all(ldif.as_bytes()))
        });
        let out = child
            .wait_with_output()
            .map_err(|e| format!("ldapmodify: {e}"))?;
        if let Some(writer) = writer {
            writer
                .join()
                .map_err(|_| "the ldapmodify stdin writer panicked".to_string())?
                .map_err(|e| format!("cannot write to ldapmodify: {e}"))?;
        }
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "ldapmodify failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// Number of entries matching `filter` in the whole domain NC (subtree, paged).
    pub fn search_count(&self, filter: &str) -> usize {
        self.search_count_in(&self.base_dn, filter)
    }

    /// Number of entries matching `filter` under `base` (subtree, paged).
    pub fn search_count_in(&self, base: &str, filter: &str) -> usize {
        let out = self.admin_search(&["-b", base, "-E", "pr=500/noprompt", filter, "1.1"]);
        out.lines().filter(|l| l.starts_with("dn:")).count()
    }

    /// Values of `attr` on the entry `dn` (base-64 values decoded to UTF-8, lossily); empty when
    /// the attribute is absent. Panics when the entry does not exist.
    pub fn attr_values(&self, dn: &str, attr: &str) -> Vec<String> {
        let out = self.admin_search(&["-b", dn, "-s", "base", "(objectClass=*)", attr]);
        out.lines()
            .filter_map(|line| {
                let (name, rest) = line.split_once(':')?;
                if !name.eq_ignore_ascii_case(attr) {
                    return None;
                }
                Some(match rest.strip_prefix(':') {
                    Some(b64) => {
                        let bytes = base64::engine::general_purpose::STANDARD
                            .decode(b64.trim())
                            .unwrap_or_default();
                        String::from_utf8_lossy(&bytes).into_owned()
                    }
                    None => rest.trim_start().to_owned(),
                })
            })
            .collect()
    }

    /// The rootDSE's `highestCommittedUSN` (read anonymously over `ldap://`).
    pub fn highest_usn(&self) -> u64 {
        let mut cmd = Command::new("ldapsearch");
        cmd.args([
            "-x",
            "-H",
            &self.ldap_url,
            "-o",
            "nettimeout=10",
            "-LLL",
            "-s",
            "base",
            "-b",
            "",
        ]);
        cmd.arg("highestCommittedUSN");
        let out = run(&mut cmd, "ldapsearch rootDSE").unwrap_or_else(|e| panic!("lab: {e}"));
        out.lines()
            .find_map(|l| l.strip_prefix("highestCommittedUSN: "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("lab: no highestCommittedUSN in the rootDSE:\n{out}"))
    }

    /// A rustls client config whose only trust anchor is the lab CA (verification stays on).
    pub fn rustls_config(&self) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        let certs = CertificateDer::pem_file_iter(&self.ca_file)
            .unwrap_or_else(|e| panic!("lab: cannot read {}: {e}", self.ca_file.display()));
        for cert in certs {
            roots
                .add(cert.expect("lab: bad PEM in the CA file"))
                .expect("lab: CA rejected by rustls");
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("lab: rustls protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        Arc::new(config)
    }

    /// `ldapsearch -LLL` as Administrator with `args`; stdout, or a panic with the tool's output.
    fn admin_search(&self, args: &[&str]) -> String {
        let mut cmd = self.admin_tool("ldapsearch");
        cmd.args(["-LLL", "-o", "ldif-wrap=no"]).args(args);
        run(&mut cmd, &format!("ldapsearch {}", args.join(" ")))
            .unwrap_or_else(|e| panic!("lab: {e}"))
    }

    /// An OpenLDAP client tool bound as Administrator over LDAPS, verifying the lab CA.
    fn admin_tool(&self, tool: &str) -> Command {
        let mut cmd = Command::new(tool);
        cmd.env("LDAPTLS_CACERT", &self.ca_file)
            .env("LDAPTLS_REQCERT", "demand")
            .env_remove("LDAPCONF")
            .env_remove("LDAPRC")
            .args(["-x", "-H", &self.ldaps_url, "-o", "nettimeout=10"])
            .args(["-D", &self.admin_upn, "-w", &self.admin_password]);
        cmd
    }
}
