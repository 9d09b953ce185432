//! The generator's determinism, counts and distributions, and the stage list's rules.

use std::collections::{BTreeMap, HashSet};

use super::delta::delta_round;
use super::directory::Directory;
use super::options::Stages;
use super::spec::{BIG_GROUP_MEMBERS, Rng, SizeClass, Spec};
use crate::event::{Event, ObjectClass, ResyncReason};
use crate::journal::{MAX_PAYLOAD, codec};

fn dir(objects: u64, seed: u64) -> Directory {
    Directory::new(Spec { objects, seed })
}

fn encoded(event: &Event) -> Vec<u8> {
    codec::encode_event(1, 0, event).unwrap().1
}

fn digest(d: &Directory) -> Vec<u8> {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for e in d.initial_read() {
        h.update(encoded(&e));
    }
    h.finalize().to_vec()
}

#[test]
fn the_same_seed_gives_the_same_directory_and_another_seed_another() {
    let a = digest(&dir(600, 7));
    assert_eq!(a, digest(&dir(600, 7)), "the same (N, seed), byte for byte");
    assert_ne!(a, digest(&dir(600, 8)));
    let nt = |d: &Directory| d.nt_hash(3, false).expose().to_vec();
    assert_eq!(nt(&dir(600, 7)), nt(&dir(600, 7)));
    assert_ne!(
        nt(&dir(600, 7)),
        dir(600, 7).nt_hash(3, true).expose().to_vec()
    );
}

#[test]
fn the_initial_read_is_what_the_feed_appends_in_the_counts_of_the_spec() {
    let d = dir(2000, 1);
    let c = d.counts;
    // Oracle: the rule of docs/bench.md, computed here, not read from the code under test.
    assert_eq!((c.users, c.groups, c.contacts), (1800, 100, 100));
    assert_eq!(c.organizational_units, 9 + 9 * 2);
    assert_eq!(c.largest_group_members, 1800);
    let events: Vec<Event> = d.initial_read().collect();
    assert_eq!(events.len() as u64, d.initial_events());
    assert!(matches!(
        events.first(),
        Some(Event::ResyncStarted {
            reason: ResyncReason::Initial,
            ..
        })
    ));
    assert!(matches!(events.last(), Some(Event::ResyncCompleted { .. })));
    let mut by_class: BTreeMap<&str, u64> = BTreeMap::new();
    let mut dns = HashSet::new();
    let mut guids = HashSet::new();
    for e in &events[1..events.len() - 1] {
        let Event::ObjectUpserted {
            dn,
            class,
            full_image,
            guid,
            domain,
            ..
        } = e
        else {
            panic!("an initial read holds full images only: {e:?}");
        };
        assert!(*full_image);
        assert_eq!(domain, "contoso.com");
        if let Some((_, parent)) = dn.split_once(',')
            && parent.starts_with("OU=")
        {
            assert!(dns.contains(parent), "{dn} comes after its parent OU");
        }
        assert!(dns.insert(dn.clone()), "DN {dn} is unique");
        assert!(guids.insert(*guid), "objectGUID of {dn} is unique");
        *by_class.entry(class.as_str()).or_default() += 1;
    }
    assert_eq!(by_class["user"], 1800);
    assert_eq!(by_class["group"], 100);
    assert_eq!(by_class["contact"], 100);
    assert_eq!(by_class["organizationalUnit"], 27);
    // Every member names an object of the directory, once per group.
    for e in &events {
        if let Event::ObjectUpserted {
            class: ObjectClass::Group,
            attributes,
            dn,
            ..
        } = e
        {
            let member = attributes.iter().find(|a| a.name == "member").unwrap();
            let distinct: HashSet<&Vec<u8>> = member.values.iter().collect();
            assert_eq!(distinct.len(), member.values.len(), "{dn}: no member twice");
            for m in &member.values {
                assert!(
                    dns.contains(std::str::from_utf8(m).unwrap()),
                    "{dn} names {m:?}"
                );
            }
        }
    }
}

#[test]
fn user_images_have_the_sizes_of_real_accounts() {
    let d = dir(20_000, 3);
    let (mut bytes, mut proxies, mut most, mut with_mail) = (0usize, 0usize, 0usize, 0u64);
    let n = 2_000u64;
    for u in 0..n {
        let e = d.user(u, 1);
        bytes += encoded(&e).len();
        let Event::ObjectUpserted { attributes, .. } = &e else {
            unreachable!()
        };
        assert!(
            attributes.len() >= 35,
            "a full image carries what AD returns"
        );
        if let Some(p) = attributes.iter().find(|a| a.name == "proxyAddresses") {
            proxies += p.values.len();
            most = most.max(p.values.len());
            with_mail += 1;
        }
    }
    let mean = bytes as f64 / n as f64;
    assert!(
        (1_200.0..2_500.0).contains(&mean),
        "mean encoded user {mean} bytes"
    );
    let mean_proxies = proxies as f64 / with_mail as f64;
    assert!(
        (1.5..3.5).contains(&mean_proxies),
        "mean proxyAddresses {mean_proxies}"
    );
    assert!(
        (6..=12).contains(&most),
        "a few mailboxes carry many aliases: {most}"
    );
    assert!(
        (1_700..1_900).contains(&with_mail),
        "~90 % have a mailbox: {with_mail}"
    );
}

#[test]
fn group_sizes_are_mostly_small_with_a_few_large_and_one_of_250_000() {
    let spec = Spec {
        objects: 1_000_000,
        seed: 11,
    };
    let c = spec.counts();
    assert_eq!(c.largest_group_members, BIG_GROUP_MEMBERS);
    let all = spec.group(0);
    assert_eq!(
        (all.class, all.users),
        (SizeClass::AllStaff, BIG_GROUP_MEMBERS)
    );
    let everyone: HashSet<u64> = (0..all.users).map(|k| all.user(k, c.users)).collect();
    assert_eq!(
        everyone.len() as u64,
        BIG_GROUP_MEMBERS,
        "All Staff: distinct users"
    );
    let spread = everyone.iter().max().copied().unwrap_or(0);
    assert!(
        spread >= c.users - c.users / BIG_GROUP_MEMBERS - 1,
        "spread over all users"
    );
    let mut sizes: Vec<u64> = Vec::new();
    let mut classes: BTreeMap<&str, u64> = BTreeMap::new();
    for g in 1..c.groups {
        let plan = spec.group(g);
        sizes.push(plan.users);
        let name = match plan.class {
            SizeClass::Small => "small",
            SizeClass::Medium => "medium",
            SizeClass::Large => "large",
            SizeClass::AllStaff => "all",
        };
        *classes.entry(name).or_default() += 1;
        if let Some(n) = plan.nested {
            assert!((1..g).contains(&n), "a group nests an earlier one");
        }
        if g % 997 == 0 {
            let members: HashSet<u64> = (0..plan.users).map(|k| plan.user(k, c.users)).collect();
            assert_eq!(
                members.len() as u64,
                plan.users,
                "group {g}: distinct users"
            );
        }
    }
    sizes.sort_unstable();
    let groups = (c.groups - 1) as f64;
    assert!(sizes[sizes.len() / 2] <= 30, "the median group is small");
    assert!(classes["small"] as f64 / groups > 0.85);
    assert!((0.08..0.12).contains(&(classes["medium"] as f64 / groups)));
    assert!(
        (20..=80).contains(&classes["large"]),
        "about 0.1 % large: {classes:?}"
    );
    assert!(sizes.iter().all(|s| (2..=10_000).contains(s)));
    let memberships: u64 = sizes.iter().sum::<u64>() + BIG_GROUP_MEMBERS;
    let per_user = memberships as f64 / c.users as f64;
    assert!(
        (1.0..3.0).contains(&per_user),
        "{per_user} memberships per user"
    );
}

#[test]
fn a_small_directory_caps_the_largest_group_at_its_users() {
    let spec = Spec {
        objects: 100,
        seed: 1,
    };
    assert_eq!(spec.counts().users, 90);
    assert_eq!(spec.counts().largest_group_members, 90);
    for g in 1..spec.counts().groups {
        assert!(spec.group(g).users <= 90);
    }
}

#[test]
fn the_all_staff_image_of_250_000_members_fits_one_journal_event() {
    let d = dir(300_000, 5);
    let event = d.group(0, 1);
    let envelope = encoded(&event);
    let bytes = envelope.len();
    assert!(bytes < MAX_PAYLOAD, "{bytes} bytes");
    assert_eq!(
        codec::decode_event(1, &envelope).unwrap().event,
        event,
        "it reads back"
    );
    assert!(
        bytes > 10 << 20,
        "250,000 DNs of realistic length: {bytes} bytes"
    );
}

#[test]
fn the_delta_round_changes_the_given_share_and_only_real_changes() {
    let d = dir(2000, 4);
    let round = delta_round(&d, 1.0);
    assert_eq!(round.objects, 20);
    assert!(!round.password_users.is_empty());
    let (upn, title) = round.probe.clone().unwrap();
    assert!(upn.ends_with("@contoso.com"));
    assert!(!super::names::TITLES.contains(&title.as_str()));
    let mut groups = 0;
    for e in &round.events {
        match e {
            Event::ObjectUpserted { full_image, .. } => assert!(!full_image),
            Event::MembersChanged {
                added,
                removed,
                guid,
                ..
            } => {
                groups += 1;
                let g = (0..d.counts.groups)
                    .find(|g| super::names::guid(4, super::names::kind::GROUP, *g) == *guid)
                    .unwrap();
                let Event::ObjectUpserted { attributes, .. } = d.group(g, 1) else {
                    unreachable!()
                };
                let member = &attributes
                    .iter()
                    .find(|a| a.name == "member")
                    .unwrap()
                    .values;
                for r in removed {
                    assert!(member.contains(&r.clone().into_bytes()), "removes a member");
                }
                for a in added {
                    assert!(
                        !member.contains(&a.clone().into_bytes()),
                        "adds a non-member"
                    );
                }
            }
            Event::PasswordChanged { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(groups > 0);
    assert_eq!(delta_round(&d, 0.0).objects, 0);
    assert_eq!(delta_round(&d, 100.0).objects, d.counts.synced());
}

#[test]
fn log_uniform_stays_in_bounds_and_covers_them() {
    let mut r = Rng::new(1, 2, 3);
    let draws: Vec<u64> = (0..20_000).map(|_| r.log_uniform(31, 500)).collect();
    assert!(draws.iter().all(|d| (31..=500).contains(d)));
    assert!(draws.contains(&31) && draws.iter().any(|d| *d >= 490));
    let below_100 = draws.iter().filter(|d| **d < 100).count() as f64 / 20_000.0;
    // log-uniform: P(x < 100) = ln(100/31) / ln(501/31) ≈ 0.42.
    assert!((0.36..0.48).contains(&below_100), "{below_100}");
}

#[test]
fn stages_need_what_they_read() {
    assert_eq!(
        Stages::parse("journal,phs,projection,push,tenant").unwrap(),
        Stages::all()
    );
    assert_eq!(
        Stages::parse("journal, phs").unwrap().names(),
        ["journal", "phs"]
    );
    for bad in [
        "phs",
        "journal,push",
        "journal,projection,tenant",
        "journal,nope",
        "",
    ] {
        assert!(Stages::parse(bad).is_err(), "{bad}");
    }
}
