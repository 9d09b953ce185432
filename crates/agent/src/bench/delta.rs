//! The delta round: PCT % of the synced objects changed, as the feed reads the changes — a user's
//! new title and phone number (every fourth also a new password: `PasswordChanged` with its
//! `pwdLastSet`, and the new NT hash for the password hash sync stage), a contact's new title and
//! phone number, a group losing its first user member and gaining the next one of its progression.
//! Each page of entries is put in the feed's page order (`classify::page_order`).

use super::directory::Directory;
use super::names;
use super::spec::{DOMAIN, Rng, SizeClass, stream};
use crate::event::{Attribute, Event, ObjectClass};
use crate::source::ldap::classify::page_order;

/// Entries per DirSync page (the order `page_order` restores holds within a page).
pub const PAGE: usize = 1_000;

/// The changes of one delta round.
#[derive(Debug, Clone)]
pub struct DeltaRound {
    /// The feed's events, in page order.
    pub events: Vec<Event>,
    /// Objects changed.
    pub objects: u64,
    /// Users whose password changed (their new NT hash: [`Directory::nt_hash`] with `delta`).
    pub password_users: Vec<u64>,
    /// The first changed user: its UPN and new job title, to read back from the tenant.
    pub probe: Option<(String, String)>,
}

/// The changes for `percent` % of the synced objects (at least one when `percent` > 0), spread
/// evenly over users, then groups, then contacts.
pub fn delta_round(dir: &Directory, percent: f64) -> DeltaRound {
    let c = dir.counts;
    let synced = c.synced();
    let wanted = (synced as f64 * percent / 100.0).round() as u64;
    let objects = if percent > 0.0 {
        wanted.clamp(1, synced)
    } else {
        0
    };
    let mut round = DeltaRound {
        events: Vec::new(),
        objects,
        password_users: Vec::new(),
        probe: None,
    };
    let mut page = Vec::new();
    for k in 0..objects {
        let i = (u128::from(k) * u128::from(synced) / u128::from(objects)) as u64;
        let mut r = Rng::new(dir.spec.seed, stream::DELTA, i);
        let usn = 2_000_000_000 + k;
        if i < c.users {
            let password = k % 4 == 0;
            let title = names::DELTA_TITLES[r.below(4) as usize];
            if round.probe.is_none() {
                round.probe = Some((dir.upn(i), title.to_string()));
            }
            page.extend(changed(dir, &mut r, i, usn, title, password));
            if password {
                round.password_users.push(i);
            }
        } else if i < c.users + c.groups {
            page.extend(members_changed(dir, i - c.users, usn));
        } else {
            let contact = i - c.users - c.groups;
            let title = names::DELTA_TITLES[r.below(4) as usize];
            page.push(attributes_changed(
                ObjectClass::Contact,
                dir.contact_dn(contact),
                names::guid(dir.spec.seed, names::kind::CONTACT, contact),
                usn,
                vec![
                    Attribute::text("title", &[title]),
                    Attribute::text("telephoneNumber", &[names::phone(&mut r, "+49 89")]),
                    Attribute::text("whenChanged", &["20250301120000.0Z"]),
                ],
            ));
        }
        if (k + 1) % PAGE as u64 == 0 {
            round.events.extend(page_order(std::mem::take(&mut page)));
        }
    }
    round.events.extend(page_order(page));
    round
}

fn attributes_changed(
    class: ObjectClass,
    dn: String,
    guid: crate::event::Guid,
    usn: u64,
    attributes: Vec<Attribute>,
) -> Event {
    Event::ObjectUpserted {
        domain: DOMAIN.into(),
        guid,
        usn,
        dn,
        class,
        attributes,
        full_image: false,
    }
}

/// A user's changed attributes, and the password signal when its password changed too.
fn changed(
    dir: &Directory,
    r: &mut Rng,
    u: u64,
    usn: u64,
    title: &str,
    password: bool,
) -> Vec<Event> {
    let guid = names::guid(dir.spec.seed, names::kind::USER, u);
    let mut attributes = vec![
        Attribute::text("title", &[title]),
        Attribute::text("telephoneNumber", &[names::phone(r, "+49 89")]),
        Attribute::text("whenChanged", &["20250301120000.0Z"]),
    ];
    let pwd_last_set = names::filetime(r);
    if password {
        attributes.push(Attribute::text("pwdLastSet", &[pwd_last_set.as_str()]));
    }
    let mut events = vec![attributes_changed(
        ObjectClass::User,
        dir.user_dn(u),
        guid,
        usn,
        attributes,
    )];
    if password {
        events.push(Event::PasswordChanged {
            domain: DOMAIN.into(),
            guid,
            usn,
            pwd_last_set: pwd_last_set.parse().ok(),
        });
    }
    events
}

/// Group `g` loses its first user member and gains the next user of its progression (All Staff
/// only loses one).
fn members_changed(dir: &Directory, g: u64, usn: u64) -> Option<Event> {
    let plan = dir.spec.group(g);
    let users = dir.counts.users;
    if plan.users == 0 {
        return None;
    }
    let removed = vec![dir.user_dn(plan.user(0, users))];
    let added = if plan.class != SizeClass::AllStaff && plan.users < users {
        vec![dir.user_dn(plan.user(plan.users, users))]
    } else {
        Vec::new()
    };
    Some(Event::MembersChanged {
        domain: DOMAIN.into(),
        guid: names::guid(dir.spec.seed, names::kind::GROUP, g),
        usn,
        attribute: "member".into(),
        added,
        removed,
    })
}
