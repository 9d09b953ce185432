//! The synthetic directory's shape as pure functions of (N, seed): how many objects of each kind,
//! the OU tree, every group's size and members. Nothing here holds a list of objects, so the
//! generator can stream a directory of any size, and a test can recompute any part of it.
//!
//! The rules (docs/bench.md § The synthetic directory states them for readers of the JSON):
//! - Of N objects, `N / 20` are groups, `N / 20` contacts and the rest users.
//! - OUs: three regions (`EMEA`, `AMER`, `APAC`), each with `OU=Groups` and `OU=Contacts`; sites
//!   `S000…` under the regions in turn (`clamp(users / 5000, 2, 200)` of them), each with eight
//!   department OUs where the users live. `9 + 9 × sites` OUs in all.
//! - Group 0 is "All Staff" with `min(250,000, users)` members, spread evenly over the users.
//! - Every other group draws its size class: 0.1 % large (1,000–10,000 users), 10 % medium (31–500),
//!   the rest small (2–30), log-uniform within the class and capped at the user count; its users are
//!   an arithmetic progression modulo the user count with a stride coprime to it (distinct, spread
//!   over all OUs, no list kept). A small or medium group also holds one contact with 10 %
//!   probability and one earlier group (nesting) with 5 %.

/// Members of the one very large group: Connect Sync's documented ceiling, five times Cloud Sync's.
pub const BIG_GROUP_MEMBERS: u64 = 250_000;
/// The smallest directory the harness generates (one of each kind, a few of most).
pub const MIN_OBJECTS: u64 = 100;
/// The regions: top-level OUs.
pub const REGIONS: [&str; 3] = ["EMEA", "AMER", "APAC"];
/// Department OUs under every site (short names keep DNs in the size AD admins use).
pub const DEPARTMENTS: [&str; 8] = [
    "Sales", "IT", "HR", "Finance", "Legal", "Ops", "Support", "Market",
];
/// The AD domain of the synthetic directory.
pub const DOMAIN: &str = "contoso.com";
/// Its naming context.
pub const BASE_DN: &str = "DC=contoso,DC=com";

/// A small, fast, stable PRNG (SplitMix64): the same seed gives the same directory on every build,
/// which `rand`'s generators do not promise across versions.
#[derive(Debug, Clone)]
pub struct Rng(u64);

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Rng {
    /// The generator of item `index` of `stream` (a kind of object or value) under `seed`.
    pub fn new(seed: u64, stream: u64, index: u64) -> Rng {
        Rng(mix(seed
            ^ mix(
                stream.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ mix(index)
            )))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.0)
    }

    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n.max(1))) >> 64) as u64
    }

    /// True with probability `per_mille` / 1000.
    pub fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }

    /// Log-uniform in `lo..=hi` at octave granularity, in integers so it is the same on every
    /// platform: an octave `[lo·2^k, lo·2^(k+1))` (clipped to `hi`) is chosen with a weight
    /// proportional to the share of a full octave it covers, then a value uniformly within it.
    pub fn log_uniform(&mut self, lo: u64, hi: u64) -> u64 {
        let lo = lo.max(1);
        let hi = hi.max(lo);
        let mut octaves = [(0u64, 0u64, 0u64); 64];
        let (mut from, mut len) = (lo, 0);
        while from <= hi && len < octaves.len() {
            let full = from.saturating_mul(2);
            let to = full.min(hi + 1);
            octaves[len] = (from, to, (to - from) * 1024 / (full - from).max(1));
            len += 1;
            from = full;
        }
        let octaves = &octaves[..len];
        let mut r = self.below(octaves.iter().map(|o| o.2).sum());
        for &(from, to, weight) in octaves {
            if r < weight {
                return from + self.below(to - from);
            }
            r -= weight;
        }
        hi
    }
}

/// Streams of the generator: one per kind of random choice, so adding one never shifts another.
pub mod stream {
    /// A user's attributes.
    pub const USER: u64 = 1;
    /// A contact's attributes.
    pub const CONTACT: u64 = 2;
    /// A group's size and members.
    pub const GROUP: u64 = 3;
    /// A user's NT hash (the password hash sync stage's input).
    pub const NT_HASH: u64 = 4;
    /// The delta round's changes.
    pub const DELTA: u64 = 5;
    /// A user's NT hash after the delta round's password change.
    pub const NT_HASH_DELTA: u64 = 6;
    /// Object GUIDs.
    pub const GUID: u64 = 7;
}

/// How many objects of each kind N makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    /// Users (all with a password, so with a password hash when PHS runs).
    pub users: u64,
    /// Groups, the very large one included.
    pub groups: u64,
    /// Mail contacts.
    pub contacts: u64,
    /// Sites (second-level OUs).
    pub sites: u64,
    /// Organizational units (read by the feed, never sent to the cloud).
    pub organizational_units: u64,
    /// Members of group 0, "All Staff".
    pub largest_group_members: u64,
}

impl Counts {
    /// Objects the cloud receives: users, groups and contacts.
    pub fn synced(&self) -> u64 {
        self.users + self.groups + self.contacts
    }
}

/// A group's size class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeClass {
    /// Group 0.
    AllStaff,
    /// 1,000–10,000 users.
    Large,
    /// 31–500 users.
    Medium,
    /// 2–30 users.
    Small,
}

/// Who is in one group (users as a progression, plus the optional contact and nested group).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupPlan {
    /// The size class drawn.
    pub class: SizeClass,
    /// Number of user members.
    pub users: u64,
    /// The first user member (progressions only).
    pub start: u64,
    /// The progression's stride, coprime to the user count (progressions only).
    pub stride: u64,
    /// A contact member.
    pub contact: Option<u64>,
    /// A nested group member (always an earlier group).
    pub nested: Option<u64>,
}

impl GroupPlan {
    /// The `k`-th user member of the group (`k < self.users`), given the directory's user count.
    pub fn user(&self, k: u64, user_count: u64) -> u64 {
        match self.class {
            SizeClass::AllStaff => {
                (u128::from(k) * u128::from(user_count) / u128::from(self.users.max(1))) as u64
            }
            _ => {
                ((u128::from(self.start) + u128::from(k) * u128::from(self.stride))
                    % u128::from(user_count.max(1))) as u64
            }
        }
    }

    /// All members: users, then the contact, then the nested group.
    pub fn members(&self) -> u64 {
        self.users + u64::from(self.contact.is_some()) + u64::from(self.nested.is_some())
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// One synthetic directory: N objects under a seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    /// Users + groups + contacts.
    pub objects: u64,
    /// The seed every random choice derives from.
    pub seed: u64,
}

impl Spec {
    /// How many of each kind.
    pub fn counts(&self) -> Counts {
        let n = self.objects.max(MIN_OBJECTS);
        let groups = n / 20;
        let contacts = n / 20;
        let users = n - groups - contacts;
        let sites = (users / 5000).clamp(2, 200);
        Counts {
            users,
            groups,
            contacts,
            sites,
            organizational_units: 9 + 9 * sites,
            largest_group_members: users.min(BIG_GROUP_MEMBERS),
        }
    }

    /// The plan of group `g`.
    pub fn group(&self, g: u64) -> GroupPlan {
        let c = self.counts();
        if g == 0 {
            return GroupPlan {
                class: SizeClass::AllStaff,
                users: c.largest_group_members,
                start: 0,
                stride: 1,
                contact: None,
                nested: None,
            };
        }
        let mut rng = Rng::new(self.seed, stream::GROUP, g);
        let roll = rng.below(1000);
        let (class, lo, hi) = match roll {
            0 => (SizeClass::Large, 1_000, 10_000),
            1..=100 => (SizeClass::Medium, 31, 500),
            _ => (SizeClass::Small, 2, 30),
        };
        let users = rng.log_uniform(lo, hi).min(c.users);
        let start = rng.below(c.users);
        let mut stride = 1 + rng.below(c.users.saturating_sub(1).max(1));
        while gcd(stride, c.users) != 1 {
            stride = stride % c.users.saturating_sub(1).max(1) + 1;
        }
        let extras = class != SizeClass::Large;
        let contact = (extras && c.contacts > 0 && rng.chance(100)).then(|| rng.below(c.contacts));
        let nested = (extras && g >= 2 && rng.chance(50)).then(|| 1 + rng.below(g - 1));
        GroupPlan {
            class,
            users,
            start,
            stride,
            contact,
            nested,
        }
    }

    /// The region of site `s`.
    pub fn region_of_site(s: u64) -> &'static str {
        REGIONS[(s % 3) as usize]
    }

    /// Every OU's DN, parents before children (the order of DirSync's ancestors-first flag).
    pub fn ou_dn(&self, k: u64) -> String {
        let sites = self.counts().sites;
        match k {
            0..=2 => format!("OU={},{BASE_DN}", REGIONS[k as usize]),
            3..=8 => {
                let (region, leaf) = (REGIONS[((k - 3) / 2) as usize], (k - 3) % 2);
                let leaf = if leaf == 0 { "Groups" } else { "Contacts" };
                format!("OU={leaf},OU={region},{BASE_DN}")
            }
            _ if k < 9 + sites => site_dn(k - 9),
            _ => {
                let rest = k - 9 - sites;
                let (site, dept) = (rest / 8, DEPARTMENTS[(rest % 8) as usize]);
                format!("OU={dept},{}", site_dn(site))
            }
        }
    }
}

/// The DN of site `s`'s OU.
pub fn site_dn(s: u64) -> String {
    format!("OU=S{s:03},OU={},{BASE_DN}", Spec::region_of_site(s))
}
