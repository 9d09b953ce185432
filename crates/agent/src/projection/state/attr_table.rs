//! The attribute table: the names of the attributes projection keeps, interned to small `u16` ids, each
//! with its schema shape.
//!
//! Enters: the configuration's "needed" attribute names (mappings, scoping filters, fixed identity fields),
//! once, when it compiles. Leaves: the id of a name (any case), the name and [`Shape`] of an id. Ids are
//! the sorted order of the lower-cased names, so they do not depend on the order events arrive in; they
//! are what [`super::blob::ObjData`] stores values under.

use hashbrown::HashTable;

use super::schema::{Shape, shape_of};

/// A case-insensitive hash of an attribute name, eight bytes at a time: every byte is or-ed with 0x20,
/// which maps ASCII capitals to small letters (it merges a few other pairs too, such as `@` and `` ` ``;
/// the table compares names exactly afterwards, so that only costs a rare extra comparison).
fn fnv_lower(name: &str) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ name.len() as u64;
    let mut chunks = name.as_bytes().chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        h = (h ^ (w | 0x2020_2020_2020_2020))
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .rotate_left(29);
    }
    let mut tail = [0x20u8; 8];
    tail[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
    let w = u64::from_le_bytes(tail) | 0x2020_2020_2020_2020;
    let h = (h ^ w).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    h ^ (h >> 32)
}

/// Attribute names interned to small ids; names are compared ASCII-case-insensitively.
#[derive(Clone, Default)]
pub struct AttrTable {
    names: Vec<String>,
    shapes: Vec<Shape>,
    index: HashTable<u16>,
}

impl std::fmt::Debug for AttrTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AttrTable")
            .field("names", &self.names)
            .finish()
    }
}

impl PartialEq for AttrTable {
    fn eq(&self, other: &Self) -> bool {
        self.names == other.names
    }
}

impl Eq for AttrTable {}

impl AttrTable {
    /// A table holding exactly `names` (lower-cased, deduplicated, sorted), so ids do not depend on
    /// the order events arrive in.
    pub fn new<I: IntoIterator<Item = S>, S: AsRef<str>>(names: I) -> AttrTable {
        let mut sorted: Vec<String> = names
            .into_iter()
            .map(|n| n.as_ref().to_ascii_lowercase())
            .collect();
        sorted.sort();
        sorted.dedup();
        sorted.truncate(usize::from(u16::MAX));
        let mut index = HashTable::with_capacity(sorted.len());
        for (i, n) in sorted.iter().enumerate() {
            index.insert_unique(fnv_lower(n), i as u16, |&j| {
                fnv_lower(&sorted[usize::from(j)])
            });
        }
        AttrTable {
            shapes: sorted.iter().map(|n| shape_of(n)).collect(),
            names: sorted,
            index,
        }
    }

    /// The id of `name` (any case), if the table keeps it. One hash of the name, no allocation.
    pub fn id(&self, name: &str) -> Option<u16> {
        self.index
            .find(fnv_lower(name), |&i| {
                self.names[usize::from(i)].eq_ignore_ascii_case(name)
            })
            .copied()
    }

    /// The name of `id` (lower-case).
    pub fn name(&self, id: u16) -> Option<&str> {
        self.names.get(usize::from(id)).map(String::as_str)
    }

    /// The schema shape of `id`'s values.
    pub fn shape(&self, id: u16) -> Shape {
        self.shapes
            .get(usize::from(id))
            .copied()
            .unwrap_or(Shape::Single)
    }

    /// The names, in id order (lower-case, sorted).
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// How many names the table holds.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}
