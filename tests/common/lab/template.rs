//! The template DC: provisioned and seeded once, stopped, then only ever copied.
//!
//! Build protocol (any number of threads and processes may race here):
//! 1. take the exclusive lock `<cache>/template.lock` (blocking; one lock for every realm);
//! 2. if `<cache>/template-<hash>[-<realm>]/.ready` exists and the directory database still has the fingerprint
//!    recorded there (sizes and modification times of `private/sam.ldb*`), the template is complete: done.
//!    A template someone started or changed in place (a test must only ever use clones) is rebuilt;
//! 3. otherwise remove whatever a crashed builder left, lease an address, `provision`, `start`,
//!    `seed`, `stop`, and write `.ready` last;
//! 4. remove templates of other hashes (older versions of the script or of Samba), every realm's;
//!    the other realms' templates of this hash stay.
//!
//! One template per realm: the default realm's is `template-<hash>` (as before realms existed), another
//! realm's `template-<hash>-<realm in lower case>` (e.g. `template-…-east.example.test`), provisioned
//! with `LAB_REALM` / `LAB_DOMAIN` and seeded alike (the seed derives its DNs and UPNs from the realm).
//!
//! The hash covers `scripts/lab.sh`, the seed size and `samba --version`: a template provisioned by one
//! Samba release is never cloned for another (4.17 and 4.22 domains differ: functional level, KDS root
//! key, `ldap server require strong auth` semantics).

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use sha2::{Digest, Sha256};

use super::lease::{self, IpLease};
use super::{LabRealm, TEMPLATE_USERS, tools};

const READY_MARK: &str = ".ready";

/// `$CLOUDSYNC_LAB_CACHE`, else `<repo>/target/lab`.
pub(super) fn cache_dir() -> PathBuf {
    std::env::var_os("CLOUDSYNC_LAB_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("target")
                .join("lab")
        })
}

/// Where the DC on `ip` lives while a test runs.
pub(super) fn run_dir(ip: std::net::Ipv4Addr) -> PathBuf {
    cache_dir().join("run").join(ip.to_string())
}

/// The directory of the complete template of `realm` (`None`: the default realm), building it
/// first if needed.
pub(super) fn ensure_template(realm: Option<&LabRealm>) -> PathBuf {
    // Per realm, once per process; the file lock below orders the processes.
    static TEMPLATES: Mutex<BTreeMap<Option<String>, PathBuf>> = Mutex::new(BTreeMap::new());
    let key = realm.map(LabRealm::dns_domain);
    let mut templates = TEMPLATES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    templates
        .entry(key)
        .or_insert_with(|| build_or_reuse(realm))
        .clone()
}

/// `template-<hash>` for the default realm, `template-<hash>-<dns domain>` for another.
fn template_name(hash: &str, realm: Option<&LabRealm>) -> String {
    match realm {
        None => format!("template-{hash}"),
        Some(r) => format!("template-{hash}-{}", r.dns_domain()),
    }
}

fn build_or_reuse(realm: Option<&LabRealm>) -> PathBuf {
    let cache = cache_dir();
    fs::create_dir_all(&cache)
        .unwrap_or_else(|e| panic!("lab: cannot create {}: {e}", cache.display()));
    let hash = template_hash();
    let name = template_name(&hash, realm);
    let dir = cache.join(&name);
    let lock_path = cache.join("template.lock");
    let lock = File::create(&lock_path)
        .unwrap_or_else(|e| panic!("lab: cannot open {}: {e}", lock_path.display()));
    lock.lock()
        .unwrap_or_else(|e| panic!("lab: cannot lock {}: {e}", lock_path.display()));
    if let Ok(mark) = fs::read_to_string(dir.join(READY_MARK)) {
        if mark
            .lines()
            .any(|l| l == format!("fingerprint {}", fingerprint(&dir)))
        {
            return dir;
        }
        eprintln!(
            "lab: the template {} changed after it was built (started or modified in place?); rebuilding it.",
            dir.display()
        );
    }
    discard(&dir);
    build(&dir, realm);
    // A cache shared through $CLOUDSYNC_LAB_CACHE may serve worktrees with other script versions.
    if std::env::var_os("CLOUDSYNC_LAB_CACHE").is_none() {
        remove_other_templates(&cache, &hash);
    }
    dir // `lock` is released here
}

fn build(dir: &std::path::Path, realm: Option<&LabRealm>) {
    eprintln!(
        "lab: building the template DC in {} (about 30 s, once per script version and realm).",
        dir.display()
    );
    let mut lease = IpLease::acquire();
    let ip = lease.ip.to_string();
    let path = dir.to_string_lossy();
    let users = TEMPLATE_USERS.to_string();
    let t0 = Instant::now();
    let mut knobs = vec![("LAB_IP", ip.as_str())];
    if let Some(r) = realm {
        knobs.push(("LAB_REALM", r.realm.as_str()));
        knobs.push(("LAB_DOMAIN", r.netbios.as_str()));
    }
    tools::lab_sh(&["provision", &path], &knobs);
    let provisioned = t0.elapsed();
    lease.record_user(dir);
    tools::lab_sh(&["start", &path], &[]);
    let t1 = Instant::now();
    let seeded = tools::try_lab_sh(&["seed", &path, &users], &[]);
    let seed_time = t1.elapsed();
    tools::lab_sh(&["stop", &path], &[]);
    lease.clear_record();
    if let Err(e) = seeded {
        panic!("lab: seeding the template failed: {e}");
    }
    let summary = format!(
        "{}\nprovision {:.2}s, seed {TEMPLATE_USERS} users {:.2}s, total {:.2}s\nfingerprint {}\n",
        samba_version(),
        provisioned.as_secs_f64(),
        seed_time.as_secs_f64(),
        t0.elapsed().as_secs_f64(),
        fingerprint(dir)
    );
    fs::write(dir.join(READY_MARK), &summary)
        .unwrap_or_else(|e| panic!("lab: cannot mark the template ready: {e}"));
    eprintln!("lab: template ready: {}", summary.trim_end());
}

/// Sizes and modification times of the directory database files (`private/sam.ldb`, `private/sam.ldb.d/*`),
/// hashed: it changes when anything writes to the template's directory after it was built.
fn fingerprint(dir: &std::path::Path) -> String {
    let private = dir.join("private");
    let mut files = vec![private.join("sam.ldb")];
    if let Ok(entries) = fs::read_dir(private.join("sam.ldb.d")) {
        files.extend(entries.flatten().map(|e| e.path()));
    }
    files.sort();
    let mut hasher = Sha256::new();
    for f in files {
        let (len, mtime) = fs::metadata(&f)
            .map(|m| {
                let mtime = m
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_nanos());
                (m.len(), mtime)
            })
            .unwrap_or((0, 0));
        hasher.update(format!("{} {len} {mtime}\n", f.display()).as_bytes());
    }
    hex::encode(hasher.finalize())[..16].to_owned()
}

/// Changes whenever the script, the seed size or the installed Samba changes, so a stale template is
/// never reused: a domain provisioned by Samba 4.17 lacks what 4.21+ creates at provision time (the KDS
/// root key gMSAs need, the 2016 functional level), and a shared `$CLOUDSYNC_LAB_CACHE` outlives
/// package upgrades.
fn template_hash() -> String {
    let script = tools::script_path();
    let bytes =
        fs::read(&script).unwrap_or_else(|e| panic!("lab: cannot read {}: {e}", script.display()));
    let mut hasher = Sha256::new();
    hasher.update(&bytes);
    hasher.update(TEMPLATE_USERS.to_le_bytes());
    hasher.update(samba_version().as_bytes());
    hex::encode(hasher.finalize())[..16].to_owned()
}

/// `samba --version` (e.g. `Version 4.22.6-Debian-4.22.6+dfsg-0+deb13u1~bpo12+1`), the key of the
/// template besides the script. Panics with the install hint when Samba is missing.
pub(super) fn samba_version() -> String {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION
        .get_or_init(|| {
            let samba = ["/usr/sbin/samba", "/sbin/samba"]
                .into_iter()
                .find(|p| std::path::Path::new(p).exists())
                .unwrap_or("samba");
            tools::run(
                std::process::Command::new(samba).arg("--version"),
                "samba --version",
            )
            .map(|out| out.trim().to_owned())
            .unwrap_or_else(|e| {
                panic!("lab: {e}\nInstall the lab packages with `scripts/lab.sh install` (root).")
            })
        })
        .clone()
}

/// Removes the templates whose hash is not `hash` (every realm's); the other realms' templates of
/// `hash` stay.
fn remove_other_templates(cache: &std::path::Path, hash: &str) {
    let Ok(entries) = fs::read_dir(cache) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if is_outdated(&name, hash) && entry.path().is_dir() {
            discard(&entry.path());
            eprintln!("lab: removed the outdated {name}.");
        }
    }
}

/// Whether the cache entry `name` is a template of another hash than `hash` (any realm).
fn is_outdated(name: &str, hash: &str) -> bool {
    let Some(rest) = name.strip_prefix("template-") else {
        return false;
    };
    let of_hash = rest
        .strip_prefix(hash)
        .is_some_and(|realm| realm.is_empty() || realm.starts_with('-'));
    !of_hash
}

/// Stops (if it runs) and removes a template directory.
fn discard(dir: &std::path::Path) {
    lease::stop_dc(dir);
    if dir.exists() {
        fs::remove_dir_all(dir)
            .unwrap_or_else(|e| panic!("lab: cannot remove {}: {e}", dir.display()));
    }
}
