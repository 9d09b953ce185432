//! The speed limits stages are compared with, measured in the same run on the same machine:
//! raw sled inserts of the bytes the journal stores, and the SHA-256 compression function that
//! bounds the password hash kernel. Shared with `benches/journal.rs` and `benches/phs.rs`.

use std::path::Path;
use std::time::{Duration, Instant};

use sha2::block_api::compress256;

/// SHA-256 compressions per OrgId hash: PBKDF2-HMAC-SHA256 with 1,000 iterations costs two
/// single-block compressions per iteration (the four for the key and first block are left out, as
/// `benches/phs.rs` does).
pub const COMPRESSIONS_PER_HASH: u64 = 2 * cloudsync_api::orgid::ITERATIONS as u64;

/// What a raw sled run did.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RawInserts {
    /// Entries inserted.
    pub entries: u64,
    /// Bytes of the values inserted.
    pub value_bytes: u64,
    /// Time in `insert` and `flush` only (producing the pages is not counted).
    pub elapsed: Duration,
}

impl RawInserts {
    /// Inserts per second.
    pub fn rate(&self) -> f64 {
        self.entries as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Inserts every page's (key, value) pairs into one tree of a fresh sled database in `dir` (page
/// cache `cache_bytes`, as the journal opens it), flushing after each page as an append does.
pub fn raw_sled_inserts<P: AsRef<[(Vec<u8>, Vec<u8>)]>>(
    dir: &Path,
    cache_bytes: u64,
    pages: impl IntoIterator<Item = P>,
) -> Result<RawInserts, sled::Error> {
    let db = sled::Config::new()
        .path(dir)
        .cache_capacity(cache_bytes)
        .open()?;
    let tree = db.open_tree("journal")?;
    let mut done = RawInserts::default();
    for page in pages {
        let page = page.as_ref();
        let start = Instant::now();
        for (k, v) in page {
            tree.insert(k.as_slice(), v.as_slice())?;
        }
        db.flush()?;
        done.elapsed += start.elapsed();
        done.entries += page.len() as u64;
        done.value_bytes += page.iter().map(|(_, v)| v.len() as u64).sum::<u64>();
    }
    Ok(done)
}

/// `n` single-block SHA-256 compressions, each depending on the previous state: one stream's
/// speed limit, the work of `n / COMPRESSIONS_PER_HASH` password hashes.
pub fn compress_chain(n: u64) -> [u32; 8] {
    let mut state = [0x6a09e667u32, 1, 2, 3, 4, 5, 6, 7];
    let mut block = [0u8; 64];
    for _ in 0..n {
        compress256(&mut state, std::slice::from_ref(&block));
        block[..4].copy_from_slice(&state[0].to_be_bytes());
    }
    state
}

/// The single-stream limit in OrgId hashes per second: the best of `rounds` runs of 100 hashes'
/// worth of compressions (the best, so a load spike from elsewhere on a shared machine does not
/// lower the limit).
pub fn hash_limit_per_second(rounds: u32) -> f64 {
    let mut best = 0.0f64;
    for _ in 0..rounds.max(1) {
        let start = Instant::now();
        std::hint::black_box(compress_chain(std::hint::black_box(
            100 * COMPRESSIONS_PER_HASH,
        )));
        best = best.max(100.0 / start.elapsed().as_secs_f64().max(1e-9));
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_inserts_count_entries_and_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let pages = vec![
            vec![
                (b"a".to_vec(), vec![0u8; 10]),
                (b"b".to_vec(), vec![0u8; 5]),
            ],
            vec![(b"c".to_vec(), vec![0u8; 1])],
        ];
        let done = raw_sled_inserts(dir.path(), 1 << 20, &pages).unwrap();
        assert_eq!((done.entries, done.value_bytes), (3, 16));
        assert!(done.rate() > 0.0);
    }

    #[test]
    fn the_chain_depends_on_its_length() {
        assert_ne!(compress_chain(1), compress_chain(2));
        assert!(hash_limit_per_second(1) > 0.0);
    }
}
