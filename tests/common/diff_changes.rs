//! The differential test's change generator: a small model of the objects it looks after (enough to
//! choose valid changes; the oracle never trusts it, it re-reads AD), and one function per kind of AD
//! change, each applying the change over LDAPS and returning a line for the failure report. Everything
//! is drawn from one seeded `StdRng`; where a choice depends on AD (current members, current
//! `proxyAddresses`) the values are sorted first, so a seed replays exactly.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use base64::Engine;
use rand::Rng;
use rand::rngs::StdRng;

use crate::common::lab::{self, LabDc};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    User,
    Contact,
    Group,
}

/// One object the generator looks after. The oracle never trusts this: it re-reads AD.
#[derive(Debug, Clone)]
pub struct Slot {
    pub kind: Kind,
    /// The sAMAccountName (users, groups), kept across renames and re-creates.
    pub sam: String,
    pub cn: String,
    pub parent: String,
    pub exists: bool,
    pub password: String,
    pub upn: String,
}

impl Slot {
    pub fn dn(&self) -> String {
        format!("CN={},{}", self.cn, self.parent)
    }
}

/// What the generator knows of AD: enough to choose valid changes.
pub struct World {
    pub slots: Vec<Slot>,
    pub ous: Vec<String>,
    pub outside: String,
    pub dns: String,
    /// A counter that makes every generated value unique.
    pub n: u32,
}

fn b64(v: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(v)
}

/// User attributes a default mapping reads, with a value generator; `userPrincipalName` is separate
/// (never cleared: a user without one is refused by design, not a sync fault).
const USER_ATTRS: &[&str] = &[
    "telephoneNumber",
    "l",
    "company",
    "co",
    "department",
    "displayName",
    "employeeID",
    "facsimileTelephoneNumber",
    "givenName",
    "title",
    "mail",
    "mobile",
    "physicalDeliveryOfficeName",
    "postalCode",
    "st",
    "streetAddress",
    "sn",
    "c",
];
const CONTACT_ATTRS: &[&str] = &[
    "company",
    "department",
    "displayName",
    "givenName",
    "title",
    "mail",
    "sn",
];
const GROUP_ATTRS: &[&str] = &["description", "displayName", "mail"];

impl World {
    /// A fresh number for a unique value.
    pub fn next(&mut self) -> u32 {
        self.n += 1;
        self.n
    }

    fn value(&mut self, attr: &str) -> String {
        let n = self.next();
        match attr {
            "c" => ["US", "DE", "FR", "GB"][n as usize % 4].to_string(),
            "co" => {
                ["United States", "Germany", "France", "Österreich"][n as usize % 4].to_string()
            }
            "mail" => format!("m{n}@diff.example"),
            "telephoneNumber" | "mobile" | "facsimileTelephoneNumber" => format!("+1 555 {n:04}"),
            "postalCode" => format!("{:05}", n * 7),
            "employeeID" => format!("E{n}"),
            _ => format!("{attr} {n} Müller"),
        }
    }

    fn live(&self, kind: Option<Kind>) -> Vec<usize> {
        (0..self.slots.len())
            .filter(|&i| self.slots[i].exists && kind.is_none_or(|k| self.slots[i].kind == k))
            .collect()
    }

    pub fn in_scope(&self, s: &Slot) -> bool {
        s.exists && self.ous.contains(&s.parent)
    }

    /// (userPrincipalName, current password) of every user in scope, for
    /// `diff_oracle::signin_failures`.
    pub fn users_in_scope(&self) -> Vec<(String, String)> {
        self.slots
            .iter()
            .filter(|s| s.kind == Kind::User && self.in_scope(s))
            .map(|s| (s.upn.clone(), s.password.clone()))
            .collect()
    }

    /// The LDIF that creates slot `s`.
    pub fn add_ldif(&self, s: &Slot) -> String {
        let dn = s.dn();
        match s.kind {
            Kind::User => format!(
                "dn: {dn}\nchangetype: add\nobjectClass: user\nsAMAccountName: {sam}\n\
                 userPrincipalName: {upn}\ngivenName: {sam}\nsn:: {sn}\ntitle: Initial title\n\
                 unicodePwd:: {pw}\nuserAccountControl: 512\n\n",
                sam = s.sam,
                upn = s.upn,
                sn = b64(&format!("Sürname {}", s.sam)),
                pw = lab::unicode_pwd_base64(&s.password),
            ),
            Kind::Contact => format!(
                "dn: {dn}\nchangetype: add\nobjectClass: contact\ngivenName: {cn}\nsn: Contact\n\
                 mail: {cn}@partner.example\n\n",
                cn = s.cn
            ),
            Kind::Group => format!(
                "dn: {dn}\nchangetype: add\nobjectClass: group\nsAMAccountName: {sam}\n\
                 groupType: -2147483646\ndescription: diff group {sam}\n\n",
                sam = s.sam
            ),
        }
    }
}

/// Picks an index into `0..n` (n > 0).
fn pick(rng: &mut StdRng, n: usize) -> usize {
    rng.random_range(0..n)
}

/// One random change: applies it to AD and returns what it was, for the failure report.
pub fn random_change(rng: &mut StdRng, dc: &LabDc, w: &mut World) -> String {
    loop {
        let roll = rng.random_range(0..100);
        let done = match roll {
            0..30 => change_attribute(rng, dc, w),
            30..40 => change_proxy_addresses(rng, dc, w),
            40..55 => change_membership(rng, dc, w),
            55..63 => rename(rng, dc, w),
            63..75 => move_object(rng, dc, w),
            75..82 => toggle_enabled(rng, dc, w),
            82..87 => reset_password(rng, dc, w),
            87..90 => change_upn(rng, dc, w),
            _ => delete_or_recreate(rng, dc, w),
        };
        if let Some(d) = done {
            return d;
        }
    }
}

fn change_attribute(rng: &mut StdRng, dc: &LabDc, w: &mut World) -> Option<String> {
    let live = w.live(None);
    let i = live[pick(rng, live.len())];
    let attrs = match w.slots[i].kind {
        Kind::User => USER_ATTRS,
        Kind::Contact => CONTACT_ATTRS,
        Kind::Group => GROUP_ATTRS,
    };
    let attr = attrs[pick(rng, attrs.len())];
    let dn = w.slots[i].dn();
    // A third of the changes clear the attribute (present or not: `replace` with no values).
    if rng.random_bool(0.35) {
        dc.ldif_admin(&format!(
            "dn: {dn}\nchangetype: modify\nreplace: {attr}\n-\n"
        ));
        return Some(format!("clear {attr} of {dn}"));
    }
    let v = w.value(attr);
    dc.ldif_admin(&format!(
        "dn: {dn}\nchangetype: modify\nreplace: {attr}\n{attr}:: {}\n-\n",
        b64(&v)
    ));
    Some(format!("set {attr} of {dn} to {v:?}"))
}

fn change_proxy_addresses(rng: &mut StdRng, dc: &LabDc, w: &mut World) -> Option<String> {
    let live = w.live(None);
    let i = live[pick(rng, live.len())];
    let dn = w.slots[i].dn();
    let mut current = dc.attr_values(&dn, "proxyAddresses");
    current.sort();
    match rng.random_range(0..4) {
        // Remove one value.
        0 | 1 if !current.is_empty() => {
            let v = current[pick(rng, current.len())].clone();
            dc.ldif_admin(&format!(
                "dn: {dn}\nchangetype: modify\ndelete: proxyAddresses\nproxyAddresses: {v}\n-\n"
            ));
            Some(format!("remove proxyAddresses value {v} of {dn}"))
        }
        // Replace the whole set, or clear it.
        2 => {
            let n = w.next();
            if rng.random_bool(0.5) {
                dc.ldif_admin(&format!(
                    "dn: {dn}\nchangetype: modify\nreplace: proxyAddresses\n-\n"
                ));
                Some(format!("clear proxyAddresses of {dn}"))
            } else {
                dc.ldif_admin(&format!(
                    "dn: {dn}\nchangetype: modify\nreplace: proxyAddresses\n\
                     proxyAddresses: SMTP:r{n}@diff.example\nproxyAddresses: smtp:s{n}@diff.example\n-\n"
                ));
                Some(format!("replace proxyAddresses of {dn} (2 values, {n})"))
            }
        }
        // Add one value.
        _ => {
            let n = w.next();
            let v = format!("smtp:a{n}@diff.example");
            dc.ldif_admin(&format!(
                "dn: {dn}\nchangetype: modify\nadd: proxyAddresses\nproxyAddresses: {v}\n-\n"
            ));
            Some(format!("add proxyAddresses value {v} to {dn}"))
        }
    }
}

fn change_membership(rng: &mut StdRng, dc: &LabDc, w: &mut World) -> Option<String> {
    let groups = w.live(Some(Kind::Group));
    if groups.is_empty() {
        return None;
    }
    let gi = groups[pick(rng, groups.len())];
    // Nesting only from lower to higher slot numbers, so there is never a cycle.
    let candidates: Vec<usize> = w
        .live(None)
        .into_iter()
        .filter(|&m| m != gi && (w.slots[m].kind != Kind::Group || m < gi))
        .collect();
    if candidates.is_empty() {
        return None;
    }
    let m = candidates[pick(rng, candidates.len())];
    let (gdn, mdn) = (w.slots[gi].dn(), w.slots[m].dn());
    let is_member = dc
        .attr_values(&gdn, "member")
        .iter()
        .any(|v| v.eq_ignore_ascii_case(&mdn));
    let op = if is_member { "delete" } else { "add" };
    dc.ldif_admin(&format!(
        "dn: {gdn}\nchangetype: modify\n{op}: member\nmember: {mdn}\n-\n"
    ));
    Some(format!("{op} member {mdn} of {gdn}"))
}

fn rename(rng: &mut StdRng, dc: &LabDc, w: &mut World) -> Option<String> {
    let live = w.live(None);
    let i = live[pick(rng, live.len())];
    let n = w.next();
    let old = w.slots[i].dn();
    let base = w.slots[i].sam.clone();
    let cn = format!("{base} r{n}");
    dc.ldif_admin(&format!(
        "dn: {old}\nchangetype: modrdn\nnewrdn: CN={cn}\ndeleteoldrdn: 1\n"
    ));
    w.slots[i].cn = cn;
    Some(format!("rename {old} to {}", w.slots[i].dn()))
}

fn move_object(rng: &mut StdRng, dc: &LabDc, w: &mut World) -> Option<String> {
    let live = w.live(None);
    let i = live[pick(rng, live.len())];
    let mut places = w.ous.clone();
    places.push(w.outside.clone());
    places.retain(|p| *p != w.slots[i].parent);
    let to = places[pick(rng, places.len())].clone();
    let old = w.slots[i].dn();
    dc.ldif_admin(&format!(
        "dn: {old}\nchangetype: modrdn\nnewrdn: CN={}\ndeleteoldrdn: 1\nnewsuperior: {to}\n",
        w.slots[i].cn
    ));
    w.slots[i].parent = to;
    Some(format!("move {old} to {}", w.slots[i].dn()))
}

fn toggle_enabled(rng: &mut StdRng, dc: &LabDc, w: &mut World) -> Option<String> {
    let users = w.live(Some(Kind::User));
    let i = users[pick(rng, users.len())];
    let dn = w.slots[i].dn();
    let uac = if rng.random_bool(0.5) { 514 } else { 512 };
    dc.ldif_admin(&format!(
        "dn: {dn}\nchangetype: modify\nreplace: userAccountControl\nuserAccountControl: {uac}\n-\n"
    ));
    Some(format!("userAccountControl {uac} on {dn}"))
}

fn reset_password(rng: &mut StdRng, dc: &LabDc, w: &mut World) -> Option<String> {
    let users = w.live(Some(Kind::User));
    let i = users[pick(rng, users.len())];
    let n = w.next();
    let password = format!("Diff!Pass{n}x");
    let dn = w.slots[i].dn();
    dc.ldif_admin(&format!(
        "dn: {dn}\nchangetype: modify\nreplace: unicodePwd\nunicodePwd:: {}\n-\n",
        lab::unicode_pwd_base64(&password)
    ));
    w.slots[i].password = password;
    Some(format!("reset the password of {dn}"))
}

fn change_upn(rng: &mut StdRng, dc: &LabDc, w: &mut World) -> Option<String> {
    let users = w.live(Some(Kind::User));
    let i = users[pick(rng, users.len())];
    let n = w.next();
    let upn = format!("{}.v{n}@{}", w.slots[i].sam, w.dns);
    let dn = w.slots[i].dn();
    dc.ldif_admin(&format!(
        "dn: {dn}\nchangetype: modify\nreplace: userPrincipalName\nuserPrincipalName: {upn}\n-\n"
    ));
    w.slots[i].upn = upn.clone();
    Some(format!("UPN of {dn} to {upn}"))
}

fn delete_or_recreate(rng: &mut StdRng, dc: &LabDc, w: &mut World) -> Option<String> {
    let candidates: Vec<usize> = (0..w.slots.len())
        .filter(|&i| w.slots[i].kind != Kind::Contact)
        .collect();
    let i = candidates[pick(rng, candidates.len())];
    let dn = w.slots[i].dn();
    if w.slots[i].exists {
        dc.ldif_admin(&format!("dn: {dn}\nchangetype: delete\n"));
        w.slots[i].exists = false;
        // Half the time the same name comes back in the same round.
        if rng.random_bool(0.5) {
            return Some(format!("delete {dn}"));
        }
    }
    let n = w.next();
    w.slots[i].password = format!("Diff!New{n}x");
    w.slots[i].exists = true;
    dc.ldif_admin(&w.add_ldif(&w.slots[i]));
    Some(format!("(re-)create {dn} with the same name"))
}

/// Clears `title` of slot `i` (`ldapmodify … delete: title`).
pub fn clear_title(dc: &LabDc, w: &World, i: usize) -> String {
    let dn = w.slots[i].dn();
    dc.ldif_admin(&format!("dn: {dn}\nchangetype: modify\ndelete: title\n-\n"));
    format!("delete title of {dn}")
}

/// Moves slot `i` out of scope (to `CN=Users`) or back into the first scoped OU.
pub fn move_to(dc: &LabDc, w: &mut World, i: usize, out: bool) -> String {
    let old = w.slots[i].dn();
    let to = if out {
        w.outside.clone()
    } else {
        w.ous[0].clone()
    };
    if !w.slots[i].exists || w.slots[i].parent == to {
        return format!("(no move: {old} is deleted or already there)");
    }
    dc.ldif_admin(&format!(
        "dn: {old}\nchangetype: modrdn\nnewrdn: CN={}\ndeleteoldrdn: 1\nnewsuperior: {to}\n",
        w.slots[i].cn
    ));
    w.slots[i].parent = to;
    format!("move {old} to {}", w.slots[i].dn())
}

/// The initial objects: users (one out of scope), contacts, groups with nested groups and contacts.
pub fn seed_world(dc: &LabDc) -> World {
    let base = &dc.base_dn;
    let ous = vec![format!("OU=DiffA,{base}"), format!("OU=DiffB,{base}")];
    let mut w = World {
        slots: Vec::new(),
        outside: format!("CN=Users,{base}"),
        dns: dc.dns_domain.clone(),
        ous,
        n: 0,
    };
    let mut ldif = String::new();
    for ou in &w.ous {
        ldif.push_str(&format!(
            "dn: {ou}\nchangetype: add\nobjectClass: organizationalUnit\n\n"
        ));
    }
    for k in 1..=6 {
        let sam = format!("diffu{k}");
        let parent = match k {
            6 => w.outside.clone(),
            _ => w.ous[k % 2].clone(),
        };
        w.slots.push(Slot {
            kind: Kind::User,
            upn: format!("{sam}@{}", w.dns),
            cn: sam.clone(),
            sam,
            parent,
            exists: true,
            password: format!("Diff!Init{k}x"),
        });
    }
    for k in 1..=3 {
        let cn = format!("diffc{k}");
        w.slots.push(Slot {
            kind: Kind::Contact,
            sam: cn.clone(),
            cn,
            parent: w.ous[k % 2].clone(),
            exists: true,
            password: String::new(),
            upn: String::new(),
        });
    }
    for k in 1..=4 {
        let sam = format!("diffg{k}");
        w.slots.push(Slot {
            kind: Kind::Group,
            cn: sam.clone(),
            sam,
            parent: w.ous[k % 2].clone(),
            exists: true,
            password: String::new(),
            upn: String::new(),
        });
    }
    for s in &w.slots {
        ldif.push_str(&w.add_ldif(s));
    }
    // Memberships: users and a contact in diffg1, diffg1 (nested) + a contact + the out-of-scope user
    // in diffg3.
    let dn = |name: &str| {
        w.slots
            .iter()
            .find(|s| s.sam == name)
            .map(Slot::dn)
            .unwrap()
    };
    ldif.push_str(&format!(
        "dn: {}\nchangetype: modify\nadd: member\nmember: {}\nmember: {}\nmember: {}\n-\n\n",
        dn("diffg1"),
        dn("diffu1"),
        dn("diffu2"),
        dn("diffc1")
    ));
    ldif.push_str(&format!(
        "dn: {}\nchangetype: modify\nadd: member\nmember: {}\nmember: {}\nmember: {}\n-\n\n",
        dn("diffg3"),
        dn("diffg1"),
        dn("diffc2"),
        dn("diffu6")
    ));
    dc.ldif_admin(&ldif);
    w
}
