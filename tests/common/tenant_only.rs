//! An agent configuration for tests that need only the tenant (the domain is never contacted), and
//! the version the real binary prints. Use with `#[path = "common/tenant_only.rs"] mod tenant_only;`
//! next to `agent_run` and `tenant_fixture`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use crate::agent_run::{agent, text};
use crate::tenant_fixture::{TENANT_ID, TenantFixture};

/// A registered agent's configuration (its domain is never contacted by the updater).
pub fn tenant_only_config(t: &TenantFixture, dir: &Path) -> PathBuf {
    let path = dir.join("agent.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[agent]
journal_dir = "{journal}"
[domains.corp]
dns_name = "corp.example.test"
url = "ldap://127.0.0.1:1"
allow_plaintext = true
bind_dn = "svc@corp.example.test"
password = "unused"
[tenant]
url = "{turl}"
ca_file = "{tca}"
tenant_id = "{TENANT_ID}"
credentials_file = "{creds}"
"#,
            journal = dir.join("state/journal").display(),
            turl = t.url,
            tca = t.dir.path().join("ca.pem").display(),
            creds = dir.join("credentials.json").display(),
        ),
    )
    .unwrap();
    path
}

/// The first word of `cloudsync --version` after the program name.
pub fn binary_version() -> String {
    let o = agent(&["--version"], &[]);
    assert!(o.status.success(), "{}", text(&o));
    let line = String::from_utf8(o.stdout).unwrap();
    let mut words = line.split_whitespace();
    assert_eq!(words.next(), Some("cloudsync"), "{line}");
    words.next().unwrap().to_owned()
}
