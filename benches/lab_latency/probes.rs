//! The three observers of `benches/lab_latency.rs` and the change they time: an LDAP modify as the
//! domain administrator (its return starts the clock), Samba's change notification on a connection
//! of its own, the user's `jobTitle` over Graph, and the tenant's password sign-in check.
//!
//! Every wait polls with a deadline: a change that does not become visible in time is reported as a
//! failure, never waited for without end.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::time::{Duration, Instant};

use cloudsync_agent::source::ldap::conn::{self, DcConn};
use cloudsync_agent::source::ldap::entry::parse_entry;
use cloudsync_agent::source::ldap::{DomainConfig, control};
use ldap3::{Mod, Scope};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::tenant_fixture::{DOMAIN, TenantFixture};

/// How often a condition is polled while a change is timed.
pub const POLL: Duration = Duration::from_millis(20);

/// A notification Samba pushed: the changed entry's DN (lower case) and when it arrived.
pub type Notified = (String, Instant);

/// Keeps a change-notification search (LDAP_SERVER_NOTIFICATION_OID, 1.2.840.113556.1.4.528) open on
/// a connection of its own, as `source::ldap::notify` does, and sends each entry's DN with its arrival
/// time. Ends when the receiver is dropped or the search fails (the bench then sees no notifications
/// and reports them missing).
pub async fn watch_notifications(cfg: DomainConfig, tx: mpsc::UnboundedSender<Notified>) {
    let mut dc = match conn::connect(&cfg).await {
        Ok(dc) => dc,
        Err(e) => {
            eprintln!("lab_latency: the notification watcher cannot connect: {e}");
            return;
        }
    };
    let stream = dc
        .ldap
        .with_controls(vec![control::notification()])
        .streaming_search(
            &cfg.base(),
            Scope::Subtree,
            "(objectClass=*)",
            vec!["objectGUID"],
        )
        .await;
    let mut stream = match stream {
        Ok(s) => s,
        Err(e) => {
            eprintln!("lab_latency: the notification search failed: {e}");
            return;
        }
    };
    loop {
        match stream.next().await {
            Ok(Some(re)) => {
                let at = Instant::now();
                if re.is_ref() || re.is_intermediate() {
                    continue;
                }
                if let Ok(entry) = parse_entry(re.0)
                    && tx.send((entry.dn.to_ascii_lowercase(), at)).is_err()
                {
                    return;
                }
            }
            Ok(None) => {
                eprintln!("lab_latency: the notification search ended.");
                return;
            }
            Err(e) => {
                eprintln!("lab_latency: the notification search failed: {e}");
                return;
            }
        }
    }
}

/// The first notification for `dn` (lower case) that arrived after `after`, waiting up to `wait`.
/// Notifications for other entries are dropped.
pub async fn notification_for(
    rx: &mut mpsc::UnboundedReceiver<Notified>,
    dn: &str,
    after: Instant,
    wait: Duration,
) -> Option<Instant> {
    let deadline = Instant::now() + wait;
    loop {
        while let Ok((got, at)) = rx.try_recv() {
            if got == dn && at >= after {
                return Some(at);
            }
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// An administrator's LDAPS connection for the timed modifies.
pub struct AdminLdap(DcConn);

impl AdminLdap {
    /// Connects and binds as `cfg`'s account (the domain administrator).
    pub async fn connect(cfg: &DomainConfig) -> AdminLdap {
        AdminLdap(conn::connect(cfg).await.expect("admin LDAPS bind"))
    }

    /// Replaces `attr` of `dn` with one value; returns the instants the modify was sent and returned
    /// success.
    pub async fn replace(&mut self, dn: &str, attr: &str, value: Vec<u8>) -> (Instant, Instant) {
        let mods = vec![Mod::Replace(
            attr.as_bytes().to_vec(),
            HashSet::from([value]),
        )];
        let sent = Instant::now();
        let res = self.0.op().modify(dn, mods).await.expect("LDAP modify");
        let at = Instant::now();
        // The result's text never holds the value (a password is not echoed).
        assert_eq!(res.rc, 0, "modify {attr} of {dn}: {}", res.text);
        (sent, at)
    }

    /// Sets `dn`'s password (unicodePwd: the quoted password in UTF-16LE).
    pub async fn set_password(&mut self, dn: &str, password: &str) -> (Instant, Instant) {
        let quoted: Vec<u8> = format!("\"{password}\"")
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        self.replace(dn, "unicodePwd", quoted).await
    }
}

/// The tenant's view, as an administrator reading Graph and as a user signing in.
pub struct TenantView<'a> {
    /// The tenant process.
    pub tenant: &'a TenantFixture,
    /// A Global Administrator's token.
    pub token: String,
}

impl TenantView<'_> {
    /// The user's `jobTitle` over Graph (`None` while the user is not there).
    pub async fn job_title(&self, upn: &str) -> Option<String> {
        let r = self
            .tenant
            .client
            .get(
                self.tenant
                    .at(&format!("/v1.0/users/{upn}?$select=jobTitle")),
            )
            .bearer_auth(&self.token)
            .send()
            .await
            .ok()?;
        if r.status() != 200 {
            return None;
        }
        let body: Value = r.json().await.ok()?;
        body["jobTitle"].as_str().map(str::to_owned)
    }

    /// Whether the tenant's sign-in check accepts `password` for `upn` (status 200).
    pub async fn signs_in(&self, upn: &str, password: &str) -> bool {
        let r = self
            .tenant
            .client
            .post(self.tenant.at(&format!("/{DOMAIN}/signin")))
            .json(&serde_json::json!({"userPrincipalName": upn, "password": password}))
            .send()
            .await;
        matches!(r, Ok(r) if r.status() == 200)
    }

    /// Users the tenant's Graph API lists (every page of `/v1.0/users`).
    pub async fn user_count(&self) -> usize {
        let mut n = 0;
        let mut next = Some(self.tenant.at("/v1.0/users?$select=id&$top=999"));
        while let Some(url) = next {
            let Ok(r) = self
                .tenant
                .client
                .get(&url)
                .bearer_auth(&self.token)
                .send()
                .await
            else {
                return 0;
            };
            let Ok(page) = r.json::<Value>().await else {
                return 0;
            };
            n += page["value"].as_array().map_or(0, Vec::len);
            next = page["@odata.nextLink"].as_str().map(str::to_owned);
        }
        n
    }
}

/// Polls `check` every [`POLL`] until it holds or `timeout` has passed since `t0`; returns when it
/// first held.
pub async fn visible_at<F, Fut>(t0: Instant, timeout: Duration, mut check: F) -> Option<Instant>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    loop {
        if check().await {
            return Some(Instant::now());
        }
        if t0.elapsed() >= timeout {
            return None;
        }
        tokio::time::sleep(POLL).await;
    }
}
