//! The synthetic directory as the AD feed reads it: one object's full image at a time, and the
//! initial read as a stream of exactly the events `source::ldap` appends for it — `ResyncStarted`
//! (`Initial`), one `ObjectUpserted` full image per OU, user, contact and group (a group's members in
//! its `member` attribute, as a full read returns them after ranged retrieval), `ResyncCompleted`.
//! Nothing is kept between objects: any object is rebuilt from (seed, kind, index).

use super::names::{self, kind};
use super::spec::{BASE_DN, Counts, DEPARTMENTS, DOMAIN, Rng, SizeClass, Spec, site_dn, stream};
use crate::event::{Attribute, Event, Guid, ObjectClass, ResyncReason, SourceKind};
use crate::nt_hash::NtHash;

/// Builds objects of one synthetic directory.
#[derive(Debug, Clone, Copy)]
pub struct Directory {
    /// The directory's (N, seed).
    pub spec: Spec,
    /// Its counts (derived once).
    pub counts: Counts,
}

/// The first draws of a user: enough for its DN, so a group can name it without the rest.
struct Person {
    given: &'static str,
    surname: &'static str,
    site: u64,
    dept: u64,
}

fn text(name: &str, value: impl Into<String>) -> Attribute {
    Attribute {
        name: name.to_string(),
        values: vec![value.into().into_bytes()],
    }
}

fn texts(name: &str, values: &[&str]) -> Attribute {
    Attribute::text(name, values)
}

fn binary(name: &str, value: Vec<u8>) -> Attribute {
    Attribute {
        name: name.to_string(),
        values: vec![value],
    }
}

/// The bookkeeping attributes every full image carries.
fn housekeeping(out: &mut Vec<Attribute>, r: &mut Rng, dn: &str, guid: Guid, usn: u64) {
    out.push(text("distinguishedName", dn));
    out.push(text("instanceType", "4"));
    out.push(text("whenCreated", names::generalized_time(r)));
    out.push(text("whenChanged", names::generalized_time(r)));
    out.push(text("uSNCreated", usn.to_string()));
    out.push(text("uSNChanged", usn.to_string()));
    out.push(binary("objectGUID", guid.0.to_vec()));
    out.push(text("dSCorePropagationData", "16010101000000.0Z"));
}

fn upsert(guid: Guid, usn: u64, dn: String, class: ObjectClass, attrs: Vec<Attribute>) -> Event {
    Event::ObjectUpserted {
        domain: DOMAIN.to_string(),
        guid,
        usn,
        dn,
        class,
        attributes: attrs,
        full_image: true,
    }
}

impl Directory {
    /// The directory of `spec`.
    pub fn new(spec: Spec) -> Directory {
        Directory {
            spec,
            counts: spec.counts(),
        }
    }

    fn person(&self, u: u64) -> (Rng, Person) {
        let mut r = Rng::new(self.spec.seed, stream::USER, u);
        let person = Person {
            given: names::GIVEN[r.below(32) as usize],
            surname: names::SURNAMES[r.below(32) as usize],
            site: r.below(self.counts.sites),
            dept: r.below(8),
        };
        (r, person)
    }

    /// User `u`'s `sAMAccountName` (also its RDN and the local part of its UPN).
    pub fn sam(&self, u: u64) -> String {
        let (_, p) = self.person(u);
        sam_of(&p, u)
    }

    /// User `u`'s `userPrincipalName`.
    pub fn upn(&self, u: u64) -> String {
        format!("{}@{DOMAIN}", self.sam(u))
    }

    /// User `u`'s DN.
    pub fn user_dn(&self, u: u64) -> String {
        let (_, p) = self.person(u);
        user_dn_of(&p, u)
    }

    /// Contact `c`'s DN.
    pub fn contact_dn(&self, c: u64) -> String {
        contact_of(&mut Rng::new(self.spec.seed, stream::CONTACT, c), c).0
    }

    /// Group `g`'s common name ("All Staff" for group 0).
    pub fn group_cn(g: u64) -> String {
        match g {
            0 => "All Staff".to_string(),
            _ => format!("GRP-{}-{g:06}", DEPARTMENTS[(g % 8) as usize]),
        }
    }

    /// Group `g`'s DN.
    pub fn group_dn(g: u64) -> String {
        let region = super::spec::REGIONS[(g % 3) as usize];
        format!("CN={},OU=Groups,OU={region},{BASE_DN}", Self::group_cn(g))
    }

    /// User `u`'s full image.
    pub fn user(&self, u: u64, usn: u64) -> Event {
        let (mut r, p) = self.person(u);
        let sam = sam_of(&p, u);
        let dn = user_dn_of(&p, u);
        let guid = names::guid(self.spec.seed, kind::USER, u);
        let region = (p.site % 3) as usize;
        let place = names::PLACES[region][r.below(2) as usize];
        let (city, prefix) = (place.city, place.phone);
        let mut a = vec![texts(
            "objectClass",
            &["top", "person", "organizationalPerson", "user"],
        )];
        a.push(text("cn", sam.as_str()));
        a.push(text("sn", p.surname));
        a.push(text("givenName", p.given));
        a.push(text("displayName", format!("{} {}", p.given, p.surname)));
        a.push(text("name", sam.as_str()));
        housekeeping(&mut a, &mut r, &dn, guid, usn);
        a.push(text("title", names::TITLES[r.below(12) as usize]));
        a.push(text("department", DEPARTMENTS[p.dept as usize]));
        a.push(text("company", "Contoso Ltd."));
        a.push(text(
            "physicalDeliveryOfficeName",
            format!("{city} S{:03}", p.site),
        ));
        a.push(text("telephoneNumber", names::phone(&mut r, prefix)));
        if r.chance(500) {
            a.push(text("mobile", names::phone(&mut r, prefix)));
        }
        a.push(text(
            "streetAddress",
            format!("{} Main Street", 1 + r.below(400)),
        ));
        a.push(text("l", city));
        a.push(text("st", place.state));
        a.push(text("postalCode", format!("{:05}", r.below(100_000))));
        a.push(text("co", place.country));
        a.push(text("c", place.iso));
        a.push(text("countryCode", place.code));
        a.push(text("employeeID", format!("E{u:07}")));
        let disabled = r.chance(80);
        a.push(text(
            "userAccountControl",
            if disabled { "514" } else { "512" },
        ));
        for (name, value) in [
            ("badPwdCount", "0".to_string()),
            ("codePage", "0".to_string()),
            ("badPasswordTime", names::filetime(&mut r)),
            ("lastLogoff", "0".to_string()),
            ("lastLogon", names::filetime(&mut r)),
            ("pwdLastSet", names::filetime(&mut r)),
            ("primaryGroupID", "513".to_string()),
            ("accountExpires", "9223372036854775807".to_string()),
            ("logonCount", r.below(5000).to_string()),
            ("sAMAccountName", sam.clone()),
            ("sAMAccountType", "805306368".to_string()),
            ("userPrincipalName", format!("{sam}@{DOMAIN}")),
            ("objectCategory", names::CATEGORY_PERSON.to_string()),
            ("lastLogonTimestamp", names::filetime(&mut r)),
        ] {
            a.push(text(name, value));
        }
        a.push(binary("objectSid", names::sid(self.spec.seed, 1100 + u)));
        if r.chance(900) {
            a.push(text("mail", format!("{sam}@{DOMAIN}")));
            a.push(text("mailNickname", sam.as_str()));
            a.push(names::proxy_addresses(&mut r, &sam, p.given, p.surname));
        }
        if r.chance(600) {
            let manager = r.below(self.counts.users);
            a.push(text("manager", self.user_dn(manager)));
        }
        if r.chance(200) {
            a.push(text(
                "description",
                format!("Contractor, cost centre {:04}", r.below(10_000)),
            ));
        }
        upsert(guid, usn, dn, ObjectClass::User, a)
    }

    /// Contact `c`'s full image.
    pub fn contact(&self, c: u64, usn: u64) -> Event {
        let mut r = Rng::new(self.spec.seed, stream::CONTACT, c);
        let (dn, given, surname) = contact_of(&mut r, c);
        let guid = names::guid(self.spec.seed, kind::CONTACT, c);
        let partner = r.below(500);
        let mail = format!("{}.{}{c}@partner{partner:03}.example", given, surname).to_lowercase();
        let cn = format!("{given} {surname} {c:06}");
        let mut a = vec![texts(
            "objectClass",
            &["top", "person", "organizationalPerson", "contact"],
        )];
        a.push(text("cn", cn.as_str()));
        a.push(text("sn", surname));
        a.push(text("givenName", given));
        a.push(text(
            "displayName",
            format!("{given} {surname} (Partner {partner:03})"),
        ));
        a.push(text("name", cn.as_str()));
        housekeeping(&mut a, &mut r, &dn, guid, usn);
        a.push(text("company", format!("Partner {partner:03} GmbH")));
        a.push(text("mail", mail.as_str()));
        a.push(text("targetAddress", format!("SMTP:{mail}")));
        a.push(text("mailNickname", format!("contact{c:06}")));
        a.push(text("proxyAddresses", format!("SMTP:{mail}")));
        a.push(text("objectCategory", names::CATEGORY_PERSON));
        upsert(guid, usn, dn, ObjectClass::Contact, a)
    }

    /// Group `g`'s full image, its members in `member`.
    pub fn group(&self, g: u64, usn: u64) -> Event {
        let plan = self.spec.group(g);
        let mut r = Rng::new(self.spec.seed, stream::GROUP, u64::MAX - g);
        let dn = Self::group_dn(g);
        let cn = Self::group_cn(g);
        let guid = names::guid(self.spec.seed, kind::GROUP, g);
        // 10 % universal distribution groups (mail-enabled), the rest global security groups.
        let distribution = g != 0 && r.chance(100);
        let mut a = vec![texts("objectClass", &["top", "group"])];
        a.push(text("cn", cn.as_str()));
        a.push(text("name", cn.as_str()));
        housekeeping(&mut a, &mut r, &dn, guid, usn);
        let size = match plan.class {
            SizeClass::AllStaff => "every employee",
            SizeClass::Large => "a division",
            SizeClass::Medium => "a department",
            SizeClass::Small => "a team",
        };
        a.push(text(
            "description",
            format!("Access group for {size} ({cn})"),
        ));
        let sam = cn.replace(' ', "");
        a.push(text("sAMAccountName", sam.as_str()));
        let (group_type, account_type) = if distribution {
            ("8", "268435457")
        } else {
            ("-2147483646", "268435456")
        };
        a.push(text("groupType", group_type));
        a.push(text("sAMAccountType", account_type));
        a.push(text("objectCategory", names::CATEGORY_GROUP));
        a.push(binary(
            "objectSid",
            names::sid(self.spec.seed, 1100 + self.counts.users + g),
        ));
        if distribution {
            let mail = format!("{}@{DOMAIN}", sam.to_lowercase());
            a.push(text("mail", mail.as_str()));
            a.push(text("mailNickname", sam.to_lowercase()));
            a.push(text("proxyAddresses", format!("SMTP:{mail}")));
        }
        let mut members: Vec<Vec<u8>> = Vec::with_capacity(plan.members() as usize);
        for k in 0..plan.users {
            members.push(self.user_dn(plan.user(k, self.counts.users)).into_bytes());
        }
        if let Some(c) = plan.contact {
            members.push(self.contact_dn(c).into_bytes());
        }
        if let Some(n) = plan.nested {
            members.push(Self::group_dn(n).into_bytes());
        }
        a.push(Attribute {
            name: "member".into(),
            values: members,
        });
        upsert(guid, usn, dn, ObjectClass::Group, a)
    }

    /// OU `k`'s full image (see [`Spec::ou_dn`] for the order).
    pub fn ou(&self, k: u64, usn: u64) -> Event {
        let mut r = Rng::new(self.spec.seed, stream::GROUP, u64::MAX / 2 - k);
        let dn = self.spec.ou_dn(k);
        let guid = names::guid(self.spec.seed, kind::OU, k);
        let name = dn
            .split(',')
            .next()
            .and_then(|rdn| rdn.strip_prefix("OU="))
            .unwrap_or_default()
            .to_string();
        let mut a = vec![texts("objectClass", &["top", "organizationalUnit"])];
        a.push(text("ou", name.as_str()));
        a.push(text("name", name.as_str()));
        housekeeping(&mut a, &mut r, &dn, guid, usn);
        a.push(text("objectCategory", names::CATEGORY_OU));
        upsert(guid, usn, dn, ObjectClass::OrganizationalUnit, a)
    }

    /// User `u`'s NT hash (the password hash sync stage's input; never written anywhere).
    pub fn nt_hash(&self, u: u64, delta: bool) -> NtHash {
        let s = if delta {
            stream::NT_HASH_DELTA
        } else {
            stream::NT_HASH
        };
        let mut r = Rng::new(self.spec.seed, s, u);
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&r.next_u64().to_le_bytes());
        bytes[8..].copy_from_slice(&r.next_u64().to_le_bytes());
        NtHash::from_bytes(bytes)
    }

    /// Events of the initial read, in order (see [`InitialRead`]).
    pub fn initial_read(&self) -> InitialRead {
        InitialRead {
            dir: *self,
            next: 0,
        }
    }

    /// How many events [`Directory::initial_read`] yields.
    pub fn initial_events(&self) -> u64 {
        let c = &self.counts;
        2 + c.organizational_units + c.users + c.contacts + c.groups
    }
}

fn sam_of(p: &Person, u: u64) -> String {
    let initial = p.given.as_bytes()[0].to_ascii_lowercase() as char;
    format!("{initial}{}{u:07}", p.surname.to_ascii_lowercase())
}

fn user_dn_of(p: &Person, u: u64) -> String {
    format!(
        "CN={},OU={},{}",
        sam_of(p, u),
        DEPARTMENTS[p.dept as usize],
        site_dn(p.site)
    )
}

/// A contact's first draws: its DN, given name and surname.
fn contact_of(r: &mut Rng, c: u64) -> (String, &'static str, &'static str) {
    let given = names::GIVEN[r.below(32) as usize];
    let surname = names::SURNAMES[r.below(32) as usize];
    let region = super::spec::REGIONS[r.below(3) as usize];
    let dn = format!("CN={given} {surname} {c:06},OU=Contacts,OU={region},{BASE_DN}");
    (dn, given, surname)
}

/// The initial read as a stream: `ResyncStarted`, the OUs (parents first), users, contacts,
/// groups (after the objects they name), `ResyncCompleted`. USNs count up from 10,000.
#[derive(Debug, Clone)]
pub struct InitialRead {
    dir: Directory,
    next: u64,
}

impl Iterator for InitialRead {
    type Item = Event;

    fn next(&mut self) -> Option<Event> {
        let c = self.dir.counts;
        let i = self.next;
        self.next += 1;
        let usn = 10_000 + i;
        let ous = 1 + c.organizational_units;
        let users = ous + c.users;
        let contacts = users + c.contacts;
        let groups = contacts + c.groups;
        Some(match i {
            0 => Event::ResyncStarted {
                domain: DOMAIN.into(),
                source: SourceKind::LdapDirSync,
                reason: ResyncReason::Initial,
            },
            _ if i < ous => self.dir.ou(i - 1, usn),
            _ if i < users => self.dir.user(i - ous, usn),
            _ if i < contacts => self.dir.contact(i - users, usn),
            _ if i < groups => self.dir.group(i - contacts, usn),
            _ if i == groups => Event::ResyncCompleted {
                domain: DOMAIN.into(),
                source: SourceKind::LdapDirSync,
            },
            _ => return None,
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.dir.initial_events().saturating_sub(self.next) as usize;
        (left, Some(left))
    }
}
