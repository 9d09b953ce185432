//! Validation of a parsed [`Config`]: every problem is collected, each naming its key.

use std::fmt;

use super::{Config, ConfigError};
use crate::source::ldap::{AccountForm, DomainConfig, SyncMode};

/// One configuration problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The dotted key to fix, e.g. `domains.corp.ca_file`.
    pub key: String,
    /// What is wrong with it.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

impl Config {
    /// Checks everything that can be checked without a network; lists every problem.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        let mut push = |key: String, message: &str| {
            problems.push(Problem {
                key,
                message: message.to_string(),
            })
        };
        if self.domains.is_empty() {
            push(
                "domains".into(),
                "at least one [domains.<label>] table is required",
            );
        }
        if self.agent.memory_budget_kib == 0 {
            push("agent.memory_budget_kib".into(), "must be at least 1");
        }
        for (label, d) in &self.domains {
            check_domain(label, d, &mut push);
        }
        if let Some(t) = &self.tenant {
            check_tenant(t, &mut push);
        }
        check_push(&self.push, &mut push);
        if let Some(problem) = self.metrics.problem() {
            push("metrics.listen".into(), &problem);
        }
        for (key, problem) in self.updater.problems() {
            push(key, &problem);
        }
        if let Err(errors) = self.projection.compile() {
            for e in errors {
                push(e.key, &e.message);
            }
        }
        let mut seen = std::collections::BTreeMap::new();
        for (label, d) in &self.domains {
            if let Some(other) = seen.insert(d.dns_name.to_ascii_lowercase(), label) {
                push(
                    format!("domains.{label}.dns_name"),
                    &format!("same domain as domains.{other}"),
                );
            }
        }
        // Password hash sync (issue 7): `[phs]` problems name their key first.
        if self.phs.enabled {
            for p in self.phs.problems() {
                let (key, message) = p.split_once(' ').unwrap_or((&p, ""));
                push(key.to_owned(), message);
            }
            if self.phs.source == crate::source::phs::PhsSourceKind::Drsr {
                for (label, d) in &self.domains {
                    if !d.bind_dn.contains(['@', '\\']) {
                        push(
                            format!("domains.{label}.bind_dn"),
                            "password hash sync over MS-DRSR needs a UPN (svc@corp.example.test) or DOMAIN\\user",
                        );
                    }
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }
}

fn check_tenant(
    t: &crate::control::tenant_client::TenantConfig,
    push: &mut impl FnMut(String, &str),
) {
    let lower = t.url.to_ascii_lowercase();
    if lower.starts_with("http://") {
        if !t.allow_plaintext {
            push(
                "tenant.url".into(),
                "http:// sends the client secret in clear: use https://, or set allow_plaintext = true for a lab",
            );
        }
    } else if !lower.starts_with("https://") {
        push("tenant.url".into(), "must start with https://");
    }
    if let Some(ca) = t.ca_file.as_ref().filter(|ca| !ca.is_file()) {
        push(
            "tenant.ca_file".into(),
            &format!("{} is not a readable file", ca.display()),
        );
    }
    if t.tenant_id.trim().is_empty() || t.tenant_id.contains(['/', ' ', '?', '#']) {
        push(
            "tenant.tenant_id".into(),
            "must be the tenant GUID or its domain (contoso.onmicrosoft.com)",
        );
    }
    if t.credentials_file.as_os_str().is_empty() {
        push(
            "tenant.credentials_file".into(),
            "a path is required (agent register writes it)",
        );
    }
    if t.request_timeout_secs == 0 {
        push(
            "tenant.request_timeout_secs".into(),
            "must be at least 1 second",
        );
    }
}

fn check_push(p: &crate::push::PushConfig, push: &mut impl FnMut(String, &str)) {
    if p.max_batch_ops == 0 || p.max_batch_ops > cloudsync_api::MAX_BATCH_OPERATIONS {
        push("push.max_batch_ops".into(), "must be between 1 and 500");
    }
    if p.max_in_flight == 0 {
        push("push.max_in_flight".into(), "must be at least 1");
    }
    if p.write_rate_limit
        .is_some_and(|r| !(r.is_finite() && r > 0.0))
    {
        push(
            "push.write_rate_limit".into(),
            "must be a positive number of operations per second",
        );
    }
    if p.heartbeat_interval_secs == 0 {
        push("push.heartbeat_interval_secs".into(), "must be at least 1");
    }
    if p.projection_tick_ms == 0 {
        push("push.projection_tick_ms".into(), "must be at least 1");
    }
}

fn check_domain(label: &str, d: &DomainConfig, push: &mut impl FnMut(String, &str)) {
    let key = |k: &str| format!("domains.{label}.{k}");
    if d.dns_name.trim().is_empty() || d.dns_name.contains(char::is_whitespace) {
        push(
            key("dns_name"),
            "must be a DNS name such as corp.example.test",
        );
    }
    let lower = d.url.to_ascii_lowercase();
    let ldaps = lower.starts_with("ldaps://");
    let ldap = lower.starts_with("ldap://");
    if !ldaps && !ldap {
        push(key("url"), "must start with ldaps:// or ldap://");
    }
    if ldaps && d.starttls {
        push(key("starttls"), "StartTLS cannot be used with ldaps://");
    }
    if ldap && !d.starttls && !d.allow_plaintext {
        push(
            key("url"),
            "ldap:// sends the password in clear: set starttls = true, use ldaps://, or set allow_plaintext = true for a lab",
        );
    }
    let tls = ldaps || d.starttls;
    if ldap && !tls && d.bind_method == crate::source::ldap::BindMethod::Ntlm {
        push(
            key("bind_method"),
            "ntlm needs TLS (an NTLM session cannot be sealed on plain LDAP): use ldaps:// or starttls = true",
        );
    }
    if tls && !d.insecure_skip_verify && d.ca_file.is_none() {
        push(
            key("ca_file"),
            "a CA file is required to verify the DC's certificate (or insecure_skip_verify = true for a lab)",
        );
    }
    if let Some(ca) = d.ca_file.as_ref().filter(|ca| !ca.is_file()) {
        push(
            key("ca_file"),
            &format!("{} is not a readable file", ca.display()),
        );
    }
    if d.bind_dn.trim().is_empty() {
        push(
            key("bind_dn"),
            "the service account's UPN or DN is required",
        );
    } else if !d.bind_dn.contains('@') && !d.bind_dn.contains('=') && !d.bind_dn.contains('\\') {
        push(
            key("bind_dn"),
            "use a UPN (svc@corp.example.test) or a DN; a bare account name is refused by AD",
        );
    }
    if d.account == AccountForm::Gmsa {
        check_gmsa(d, &key, tls, push);
        return check_timing(d, &key, push);
    }
    for (name, set) in [
        ("gmsa_dn", d.gmsa_dn.is_some()),
        ("host_dn", d.host_dn.is_some()),
        ("host_password_file", d.host_password_file.is_some()),
    ] {
        if set {
            push(key(name), "is used only with account = \"gmsa\"");
        }
    }
    match (&d.password, &d.password_file) {
        (Some(_), Some(_)) => push(
            key("password"),
            "set either password or password_file, not both",
        ),
        (None, None) => push(key("password"), "password or password_file is required"),
        (Some(p), None) if p.is_empty() => push(key("password"), "is empty"),
        (None, Some(f)) if !f.is_file() => push(
            key("password_file"),
            &format!("{} is not a readable file", f.display()),
        ),
        _ => {}
    }
    check_timing(d, &key, push);
}

/// The gMSA form: the gMSA and the host account are named, the host's password file exists, no
/// password is configured, and the connection is encrypted (the DC serves the password only so).
fn check_gmsa(
    d: &DomainConfig,
    key: &impl Fn(&str) -> String,
    tls: bool,
    push: &mut impl FnMut(String, &str),
) {
    if !tls {
        push(
            key("account"),
            "a gMSA needs TLS (the DC serves its password only on an encrypted connection): use ldaps:// or starttls = true",
        );
    }
    if !d.bind_dn.contains(['@', '\\']) {
        push(
            key("bind_dn"),
            "a gMSA binds with NTLM: give its name as provAgentgMSA$@corp.example.test or CORP\\provAgentgMSA$",
        );
    }
    for (name, value) in [("gmsa_dn", &d.gmsa_dn), ("host_dn", &d.host_dn)] {
        if !value.as_deref().is_some_and(|v| v.contains('=')) {
            push(key(name), "a DN is required with account = \"gmsa\"");
        }
    }
    match &d.host_password_file {
        None => push(
            key("host_password_file"),
            "is required with account = \"gmsa\" (the host computer account's password, 0600)",
        ),
        Some(f) if !f.is_file() => push(
            key("host_password_file"),
            &format!("{} is not a readable file", f.display()),
        ),
        Some(_) => {}
    }
    if d.password.is_some() || d.password_file.is_some() {
        push(
            key("password"),
            "a gMSA has no password to configure: the DC serves it (remove password and password_file)",
        );
    }
}

fn check_timing(
    d: &DomainConfig,
    key: &impl Fn(&str) -> String,
    push: &mut impl FnMut(String, &str),
) {
    for (name, value) in [
        ("connect_timeout_secs", d.connect_timeout_secs),
        ("operation_timeout_secs", d.operation_timeout_secs),
        ("poll_interval_secs", d.poll_interval_secs),
    ] {
        if value == 0 {
            push(key(name), "must be at least 1 second");
        }
    }
    if d.mode == SyncMode::UsnPoll && d.page_size == 0 {
        push(key("page_size"), "must be at least 1");
    }
}

#[cfg(test)]
mod tests {
    use super::super::*;

    #[test]
    fn every_problem_is_reported_with_its_key() {
        let toml = r#"
            [agent]
            memory_budget_kib = 0
            [domains.corp]
            dns_name = "corp.example.test"
            url = "ldap://127.0.0.1"
            bind_dn = "svc-sync"
            poll_interval_secs = 0
            [domains.lab]
            dns_name = "CORP.example.test"
            url = "ldaps://127.0.0.1"
            bind_dn = "CN=svc,DC=corp"
            password = "x"
        "#;
        let Err(ConfigError::Invalid(problems)) = Config::from_toml_str(toml) else {
            panic!("expected validation errors");
        };
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        for want in [
            "agent.memory_budget_kib",
            "domains.corp.url",
            "domains.corp.bind_dn",
            "domains.corp.password",
            "domains.corp.poll_interval_secs",
            "domains.lab.ca_file",
            "domains.lab.dns_name",
        ] {
            assert!(keys.contains(&want), "missing {want} in {keys:?}");
        }
        assert_eq!(problems.len(), 7, "{problems:?}");
    }

    #[test]
    fn a_lab_config_is_accepted_and_defaults_apply() {
        let toml = r#"
            [domains.corp]
            dns_name = "corp.example.test"
            url = "ldap://127.0.0.1"
            allow_plaintext = true
            bind_dn = "svc-sync@corp.example.test"
            password = "Passw0rd!"
        "#;
        let c = Config::from_toml_str(toml).unwrap();
        let d = &c.domains["corp"];
        assert_eq!(d.base(), "DC=corp,DC=example,DC=test");
        assert_eq!(d.poll_interval_secs, 120);
        assert_eq!(d.operation_timeout_secs, 30);
        assert!(d.notifications);
        assert!(!format!("{c:?}").contains("Passw0rd!"));
    }

    #[test]
    fn the_committed_example_is_valid_apart_from_the_lab_files() {
        match Config::from_toml_str(include_str!("../../../../examples/agent.toml")) {
            Ok(c) => {
                assert_eq!(c.domains["corp"].dns_name, "corp.example.test");
                assert!(c.tenant.is_some());
                assert_eq!(c.projection.scope.ous.len(), 2);
            }
            // Only the CA files may be missing (no lab provisioned in this checkout).
            Err(ConfigError::Invalid(problems)) => {
                assert!(
                    problems
                        .iter()
                        .all(|p| p.key == "domains.corp.ca_file" || p.key == "tenant.ca_file"),
                    "{problems:?}"
                )
            }
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn cloud_sections_report_every_problem() {
        let toml = r#"
            [domains.corp]
            dns_name = "corp.example.test"
            url = "ldap://127.0.0.1"
            allow_plaintext = true
            bind_dn = "svc@corp.example.test"
            password = "x"
            [tenant]
            url = "http://127.0.0.1:1"
            tenant_id = ""
            credentials_file = "creds.json"
            [push]
            max_batch_ops = 501
            max_in_flight = 0
            [projection]
            [projection.scope]
            ous = ["not a dn"]
            [[projection.mappings]]
            object = "user"
            target = "jobTitle"
            expression = "Left([title],"
        "#;
        let Err(ConfigError::Invalid(problems)) = Config::from_toml_str(toml) else {
            panic!("expected validation errors");
        };
        let mut keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "projection.mappings[0].expression",
                "projection.scope.ous[0]",
                "push.max_batch_ops",
                "push.max_in_flight",
                "tenant.tenant_id",
                "tenant.url",
            ],
            "{problems:?}"
        );
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let toml = "[domains.corp]\ndns_name = \"a\"\nurl = \"ldaps://x\"\nbind_dn = \"a@b\"\npasword = \"typo\"\n";
        assert!(matches!(
            Config::from_toml_str(toml),
            Err(ConfigError::Load(_))
        ));
    }
}
