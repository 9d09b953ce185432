//! Group managed service accounts in the lab DC (Samba 4.21+), with tools independent of the code under
//! test: `samba-tool service-account` for the gMSA and its allowed principals, `ldapmodify` for a
//! computer account made like a domain join, `ldapsearch` (simple bind over LDAPS as that computer) for
//! `msDS-ManagedPassword`, and Samba's `ldbsearch --pw-nt-hash` (NTLM) to prove an NT hash binds.
//!
//! Enters: a running [`LabDc`]. Leaves: DNs, a [`LabComputer`] (its random password lives only in
//! memory and, for the one tool call that needs it, in a 0600 file in the DC's directory, removed
//! after), the raw blob bytes. Secrets are never on a command line: `samba-tool` reads the
//! Administrator's password from `PASSWD`, `ldapsearch` the computer's from `-y FILE`, `ldbsearch` the
//! hash from `-A FILE`.

use std::io::Write as _;
use std::process::Command;

use base64::Engine as _;
use rand::Rng as _;
use rand::distr::Alphanumeric;

use super::LabDc;
use super::tools::run;

/// A computer account in `CN=Computers` (like a domain-joined agent host) with a random password.
#[derive(Debug, Clone)]
pub struct LabComputer {
    /// The name without `$` (the RDN value), e.g. `AGENTHOST1`.
    pub name: String,
    /// `AGENTHOST1$`.
    pub sam_account_name: String,
    /// `CN=AGENTHOST1,CN=Computers,<base>`.
    pub dn: String,
    /// 32 random alphanumerics plus a fixed suffix that satisfies the complexity rule.
    pub password: String,
}

impl LabDc {
    /// Runs `samba-tool ARGS -H ldap://<ip> -U Administrator` (the password from `PASSWD`, not argv);
    /// stdout, or both streams as the error.
    pub fn samba_tool(&self, args: &[&str]) -> Result<String, String> {
        let admin = self
            .admin_upn
            .split('@')
            .next()
            .unwrap_or("Administrator")
            .to_owned();
        let mut cmd = Command::new("samba-tool");
        cmd.args(args)
            .args(["-H", &self.ldap_url, "-U", &admin])
            .args(["--realm", &self.realm, "-W", &self.netbios_domain])
            .env("PASSWD", &self.admin_password);
        run(&mut cmd, &format!("samba-tool {}", args.join(" ")))
    }

    /// Creates the gMSA `name` (sAMAccountName `name$`) in `CN=Managed Service Accounts` with
    /// `samba-tool service-account create`, enables it, and returns its DN. No principal but
    /// Administrator may read its password yet (samba-tool's default `msDS-GroupMSAMembership` is
    /// `O:BAD:(A;;…;;;LA)`). samba-tool 4.22 creates the account **disabled** (`userAccountControl`
    /// 4130 = workstation trust + PASSWD_NOTREQD + ACCOUNTDISABLE, measured): an NTLM bind with the
    /// right hash then fails with `data 533`, so it is set to 4096 as Windows'
    /// `New-ADServiceAccount` leaves it.
    pub fn create_gmsa(&self, name: &str) -> String {
        let dns_host = format!("{name}.{}", self.dns_domain);
        self.samba_tool(&[
            "service-account",
            "create",
            "--name",
            name,
            "--dns-host-name",
            &dns_host,
        ])
        .unwrap_or_else(|e| panic!("lab: {e}"));
        let dn = self.gmsa_dn(name);
        self.ldif_admin(&format!(
            "dn: {dn}\nchangetype: modify\nreplace: userAccountControl\nuserAccountControl: 4096\n"
        ));
        dn
    }

    /// `CN=<name>,CN=Managed Service Accounts,<base>`.
    pub fn gmsa_dn(&self, name: &str) -> String {
        format!("CN={name},CN=Managed Service Accounts,{}", self.base_dn)
    }

    /// Adds `principal` (a sAMAccountName such as `AGENTHOST1$`, or a DN) to the gMSA's allowed
    /// principals (`msDS-GroupMSAMembership`) with `samba-tool service-account group-msa-membership add`.
    pub fn gmsa_allow(&self, gmsa: &str, principal: &str) {
        self.samba_tool(&[
            "service-account",
            "group-msa-membership",
            "add",
            "--name",
            gmsa,
            "--principal",
            principal,
        ])
        .unwrap_or_else(|e| panic!("lab: {e}"));
    }

    /// The allowed principals as `samba-tool … group-msa-membership show` prints them.
    pub fn gmsa_allowed(&self, gmsa: &str) -> String {
        self.samba_tool(&[
            "service-account",
            "group-msa-membership",
            "show",
            "--name",
            gmsa,
        ])
        .unwrap_or_else(|e| panic!("lab: {e}"))
    }

    /// A computer account `CN=<name>,CN=Computers` with `userAccountControl` 4096 (workstation trust)
    /// and a random password, added over LDAPS as Administrator, as a domain join makes it.
    pub fn create_computer(&self, name: &str) -> LabComputer {
        let random: String = rand::rng()
            .sample_iter(&Alphanumeric)
            .take(32)
            .map(char::from)
            .collect();
        let computer = LabComputer {
            name: name.to_owned(),
            sam_account_name: format!("{name}$"),
            dn: format!("CN={name},CN=Computers,{}", self.base_dn),
            password: format!("{random}-Aa1"),
        };
        self.ldif_admin(&format!(
            "dn: {dn}\nchangetype: add\nobjectClass: computer\nsAMAccountName: {sam}\n\
             userAccountControl: 4096\ndNSHostName: {lower}.{domain}\nunicodePwd:: {pwd}\n",
            dn = computer.dn,
            sam = computer.sam_account_name,
            lower = name.to_lowercase(),
            domain = self.dns_domain,
            pwd = super::unicode_pwd_base64(&computer.password),
        ));
        computer
    }

    /// `msDS-ManagedPassword` of the entry `gmsa_dn` as `bind_dn` sees it: a simple bind with
    /// `password` over LDAPS (the DC serves the attribute only on an encrypted connection). `Ok(None)`
    /// when the entry comes back without it — how Samba answers a principal that may not retrieve the
    /// password; `Err` when the bind or search fails.
    pub fn read_managed_password(
        &self,
        gmsa_dn: &str,
        bind_dn: &str,
        password: &str,
    ) -> Result<Option<Vec<u8>>, String> {
        let file = self.secret_file(password)?;
        let mut cmd = Command::new("ldapsearch");
        cmd.env("LDAPTLS_CACERT", &self.ca_file)
            .env("LDAPTLS_REQCERT", "demand")
            .env_remove("LDAPCONF")
            .env_remove("LDAPRC")
            .args(["-x", "-H", &self.ldaps_url, "-o", "nettimeout=10"])
            .args(["-LLL", "-o", "ldif-wrap=no", "-D", bind_dn, "-y"])
            .arg(file.path())
            .args(["-s", "base", "-b", gmsa_dn, "(objectClass=*)"])
            .args(["msDS-ManagedPassword", "sAMAccountName"]);
        let out = run(&mut cmd, &format!("ldapsearch as {bind_dn}"))?;
        if !out
            .lines()
            .any(|l| l.starts_with("dn:") || l.starts_with("dn::"))
        {
            return Err(format!("{gmsa_dn} is not visible to {bind_dn}:\n{out}"));
        }
        out.lines()
            .find_map(|l| l.strip_prefix("msDS-ManagedPassword:: "))
            .map(|b64| {
                base64::engine::general_purpose::STANDARD
                    .decode(b64.trim())
                    .map_err(|e| format!("msDS-ManagedPassword is not base64: {e}"))
            })
            .transpose()
    }

    /// Binds to the DC's LDAP as `DOMAIN\sam_account_name` with the NT hash `nt_hash` (Samba's
    /// `ldbsearch --pw-nt-hash --use-kerberos=disabled`: SASL GSS-SPNEGO with NTLMv2, sealed, over plain
    /// LDAP; the hash from a 0600 auth file) and returns the SIDs of the rootDSE's `tokenGroups` — the
    /// token the DC built for the bind, the account's own SID first. `Err` with the tool's output when
    /// the DC refuses (rc 49 `data 52e` for a wrong hash).
    ///
    /// Not SMB: `smbclient --pw-nt-hash` as a gMSA gets `NT_STATUS_INTERNAL_ERROR` from Samba 4.22's smbd
    /// even with the right hash (measured; a wrong one gets `NT_STATUS_LOGON_FAILURE`).
    pub fn ldap_bind_with_nt_hash(
        &self,
        sam_account_name: &str,
        nt_hash: &[u8; 16],
    ) -> Result<Vec<String>, String> {
        let file = self.secret_file(&format!(
            "username = {sam_account_name}\npassword = {}\ndomain = {}\n",
            hex::encode(nt_hash),
            self.netbios_domain
        ))?;
        let mut cmd = Command::new("ldbsearch");
        cmd.args(["-H", &self.ldap_url, "-A"])
            .arg(file.path())
            .args(["--pw-nt-hash", "--use-kerberos=disabled"])
            .args(["-s", "base", "-b", "", "(objectClass=*)", "tokenGroups"]);
        let out = run(&mut cmd, &format!("ldbsearch as {sam_account_name}"))?;
        Ok(out
            .lines()
            .filter_map(|l| l.strip_prefix("tokenGroups: "))
            .map(|sid| sid.trim().to_owned())
            .collect())
    }

    /// The `objectSid` of the gMSA `name` as `samba-tool service-account view` shows it (`S-1-5-21-…`).
    pub fn gmsa_sid(&self, name: &str) -> String {
        let view = self
            .samba_tool(&["service-account", "view", "--name", name])
            .unwrap_or_else(|e| panic!("lab: {e}"));
        view.lines()
            .find_map(|l| {
                let rest = l.trim().strip_prefix("\"objectSid\": \"")?;
                Some(rest.trim_end_matches(',').trim_end_matches('"').to_owned())
            })
            .unwrap_or_else(|| panic!("lab: no objectSid in service-account view:\n{view}"))
    }

    /// `text` in a new 0600 file in the DC's directory, removed when the handle drops.
    fn secret_file(&self, text: &str) -> Result<tempfile::NamedTempFile, String> {
        let mut file = tempfile::Builder::new()
            .prefix(".secret-")
            .tempfile_in(&self.dir)
            .map_err(|e| format!("cannot create a secret file in {}: {e}", self.dir.display()))?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.flush())
            .map_err(|e| format!("cannot write {}: {e}", file.path().display()))?;
        Ok(file)
    }
}
