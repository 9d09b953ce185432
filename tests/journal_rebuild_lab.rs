//! Private state and a damaged journal, with the real binary against the lab DC and the real
//! tenant: every file the agent creates is 0600 and every directory 0700; state opened up is
//! refused by `sync-once` and `check-config` naming the path and the `chmod`; a damaged journal
//! (a flipped byte in sled's log, a damaged `conf`) is reported once, with where and what to do,
//! exit code 3; `journal rebuild` moves it aside and the next `sync-once` re-reads AD, leaves the
//! tenant exactly as it was, and a later AD change still reaches the tenant.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/agent_run.rs"]
mod agent_run;
#[allow(unused_imports)]
mod common;
mod ldap_support;
#[path = "common/tenant.rs"]
mod tenant_fixture;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use agent_run::{agent, graph_all, text};
use common::lab::LabDc;
use serde_json::Value;
use tenant_fixture::{GA, HIA, TENANT_ID, TenantFixture};

/// The binary, with the admin password for `register` and no backtraces in its output.
fn cli(args: &[&str]) -> Output {
    agent(
        args,
        &[("CLOUDSYNC_ADMIN_PASSWORD", HIA.1), ("RUST_BACKTRACE", "0")],
    )
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777
}

fn chmod(p: &Path, m: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
}

/// Every file and directory under `root` (and `root`) with its mode.
fn modes(root: &Path) -> Vec<(PathBuf, u32)> {
    let mut out = vec![(root.to_path_buf(), mode(root))];
    if root.is_dir() {
        for e in std::fs::read_dir(root).unwrap() {
            out.extend(modes(&e.unwrap().path()));
        }
    }
    out
}

/// The tenant's Graph view: users and groups by id, without sync timestamps.
async fn graph(t: &TenantFixture, token: &str) -> BTreeMap<String, Value> {
    let mut all = BTreeMap::new();
    for first in ["/v1.0/users", "/v1.0/groups"] {
        for mut o in graph_all(t, token, first).await {
            if let Some(map) = o.as_object_mut() {
                map.retain(|k, _| !k.to_ascii_lowercase().contains("lastsync"));
            }
            all.insert(o["id"].as_str().unwrap().to_owned(), o);
        }
    }
    all
}

fn flip(file: &Path, offset: usize) {
    let mut bytes = std::fs::read(file).unwrap();
    bytes[offset] ^= 0x5a;
    std::fs::write(file, bytes).unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn state_is_private_and_a_damaged_journal_is_rebuilt_from_ad() {
    let dc = LabDc::start();
    let t = TenantFixture::start();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let journal = state.join("journal");
    let creds = dir.path().join("credentials.json");
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "{}notifications = false\n[tenant]\nurl = {:?}\nca_file = {:?}\ntenant_id = {TENANT_ID:?}\ncredentials_file = {:?}\n",
            ldap_support::config_toml(&dc, &journal, ""),
            t.url,
            t.dir.path().join("ca.pem").display().to_string(),
            creds.display().to_string(),
        ),
    )
    .unwrap();
    let cfg = config.to_str().unwrap();
    let o = cli(&["agent", "register", "--config", cfg, "--admin-upn", HIA.0]);
    assert!(o.status.success(), "{}", text(&o));
    let o = cli(&["agent", "sync-once", "--config", cfg]);
    assert!(o.status.success(), "{}", text(&o));

    // Item 4: every directory 0700, every file 0600 (journal, projection, outbox, credentials).
    let mut seen = modes(&state);
    seen.push((creds.clone(), mode(&creds)));
    for (path, m) in &seen {
        let want = if path.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(*m, want, "{} has mode {m:o}", path.display());
    }
    // sled's `db` file for the journal and projection; the outbox is a segmented log (issue 17).
    for (name, file) in [
        ("journal", "db"),
        ("projection", "db"),
        ("outbox", "log/state.log"),
    ] {
        assert!(state.join(name).join(file).is_file(), "{name} created");
    }
    // Opened up: refused by sync-once and check-config, naming the path and the fix.
    let outbox = state.join("outbox");
    chmod(&outbox, 0o755);
    for args in [
        ["agent", "sync-once", "--config", cfg],
        ["agent", "check-config", "--config", cfg],
    ] {
        let o = cli(&args);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", text(&o));
        let out = text(&o);
        assert!(
            out.contains(&format!("{} has mode 755", outbox.display()))
                && out.contains(&format!("chmod -R go= {}", outbox.display())),
            "{args:?}: {out}"
        );
    }
    chmod(&outbox, 0o700);
    chmod(&creds, 0o640);
    let o = cli(&["agent", "check-config", "--config", cfg]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains(&creds.display().to_string()),
        "{}",
        text(&o)
    );
    chmod(&creds, 0o600);
    let o = cli(&["agent", "check-config", "--config", cfg]);
    assert!(o.status.success(), "{}", text(&o));

    let token = t.user_token(GA).await;
    let before = graph(&t, &token).await;
    assert!(before.len() > 10, "the lab synced: {}", before.len());

    // Item 8, a flipped byte in sled's log: try offsets across `db` on copies. sled does not read
    // every byte (dead data is never checked), but whatever it finds must be reported as damage:
    // exit 3, said once, with the path and the rebuild command — never a panic or sled's raw text.
    let db = journal.join("db");
    let size = std::fs::metadata(&db).unwrap().len() as usize;
    let mut detected = 0;
    for k in 1..48 {
        let offset = size * k / 48;
        let copy = dir.path().join(format!("flip{k}"));
        copy_dir(&journal, &copy);
        flip(&copy.join("db"), offset);
        let o = cli(&["journal", "verify", copy.to_str().unwrap()]);
        let out = text(&o);
        assert!(
            matches!(o.status.code(), Some(0) | Some(2) | Some(3)),
            "offset {offset}: {out}"
        );
        assert!(
            !out.contains("thread 'main'") && !out.contains("backtrace ()"),
            "offset {offset}: {out}"
        );
        if o.status.code() == Some(3) {
            detected += 1;
            assert_eq!(out.matches("the journal at").count(), 1, "said once: {out}");
            assert!(
                out.contains(&format!("the journal at {} is damaged", copy.display()))
                    && out.contains("cloudsync journal rebuild --config"),
                "{out}"
            );
        }
        std::fs::remove_dir_all(&copy).unwrap();
    }
    eprintln!("flipped bytes: {detected} of 47 offsets reported as damage");

    // This process reads the journal from here on: with the binary's umask (see `private_fs`). Not
    // earlier: children inherit it, and the modes above must come from the binary's own umask.
    cloudsync_private_fs::restrict_umask();
    let old_last = cloudsync_agent::journal::Journal::open_existing(&journal)
        .unwrap()
        .last_seq()
        .unwrap();
    // A damaged `conf` in the live journal: verify and sync-once say what, where and what to do.
    flip(&journal.join("conf"), 3);
    // A change in AD while the journal is damaged: only the rebuild's full read can bring it.
    dc.ldif_admin(&format!(
        "dn: {}\nchangetype: modify\nreplace: title\ntitle: Changed While Damaged\n\n",
        dc.user_dn(5)
    ));
    for args in [
        vec!["journal", "verify", journal.to_str().unwrap()],
        vec!["agent", "sync-once", "--config", cfg],
    ] {
        let o = cli(&args);
        let out = text(&o);
        assert_eq!(o.status.code(), Some(3), "{args:?}: {out}");
        assert_eq!(out.matches("the journal at").count(), 1, "said once: {out}");
        assert!(
            out.contains(&format!("the journal at {} is damaged", journal.display()))
                && out.contains("`conf`")
                && out.contains("cloudsync journal rebuild --config"),
            "{args:?}: {out}"
        );
    }

    // Rebuild: moved aside (kept, 0700), a fresh journal that continues above the old sequence.
    let o = cli(&["journal", "rebuild", "--config", cfg]);
    assert!(o.status.success(), "{}", text(&o));
    // sync-once left a projection snapshot, so the re-read can sweep: no warning about it.
    assert!(!text(&o).contains("no usable snapshot"), "{}", text(&o));
    let aside: Vec<PathBuf> = std::fs::read_dir(&state)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("journal.damaged-")
        })
        .collect();
    assert_eq!(aside.len(), 1, "{}", text(&o));
    assert_eq!(mode(&aside[0]), 0o700);
    let o = cli(&["agent", "sync-once", "--config", cfg]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("full read"),
        "a full re-read: {}",
        text(&o)
    );
    let first_new = cloudsync_agent::journal::Journal::open_existing(&journal)
        .unwrap()
        .first_seq()
        .unwrap()
        .unwrap();
    assert!(
        first_new > old_last,
        "the new journal continues above the old one: {first_new} after {old_last}"
    );
    let mut after = graph(&t, &token).await;
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>(),
        "the same objects, no duplicates, nothing deleted"
    );
    // Exactly one object differs: the one changed in AD while the journal was damaged.
    let changed: Vec<String> = after
        .iter()
        .filter(|(id, a)| before[*id] != **a)
        .map(|(id, _)| id.clone())
        .collect();
    assert_eq!(changed.len(), 1, "{changed:?}");
    assert_eq!(after[&changed[0]]["jobTitle"], "Changed While Damaged");
    after.remove(&changed[0]);
    for (id, a) in &after {
        assert_eq!(a, &before[id], "object {id} changed by the rebuild");
    }

    // A change in AD still flows: the new versions are above the old ones.
    let user = dc.user_dn(3);
    dc.ldif_admin(&format!(
        "dn: {user}\nchangetype: modify\nreplace: title\ntitle: Rebuilt Journal Engineer\n\n"
    ));
    let o = cli(&["agent", "sync-once", "--config", cfg]);
    assert!(o.status.success(), "{}", text(&o));
    let now = graph(&t, &token).await;
    let titled: Vec<&Value> = now
        .values()
        .filter(|o| o["jobTitle"] == "Rebuilt Journal Engineer")
        .collect();
    assert_eq!(titled.len(), 1, "the AD change reached the tenant");
}
