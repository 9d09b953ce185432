//! PBKDF2-HMAC-SHA256 at the speed of the SHA-256 compression function.
//!
//! PBKDF2 with a 32-byte output spends all its time in `U_i = HMAC(P, U_{i-1})`: two dependent
//! single-block compressions per iteration. This kernel
//! - precomputes the HMAC inner and outer chaining states once per key ([`HmacKey`]),
//! - keeps both 64-byte message blocks pre-padded (`U | 0x80 | 0… | bitlen 768`) for the whole run, so an
//!   iteration only writes 32 bytes into each block,
//! - XORs the running sum as eight `u32` words straight from the compression state (no byte round trip),
//! - calls `sha2::block_api::compress256` directly (SHA-NI when the CPU has it), and
//! - optionally runs several independent derivations in lock step ([`derive_lanes`]): their compressions
//!   have no data dependency, so an out-of-order core overlaps them and the latency-bound chain of one
//!   derivation stops being the limit.
//!
//! The chaining states are derived from the key and are as secret as it: [`HmacKey`] zeroizes on drop.

use sha2::block_api::compress256;
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// SHA-256 initial hash value (FIPS 180-4 §5.3.3).
const IV: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// SHA-256 block size in bytes.
const BLOCK: usize = 64;

/// A 32-byte SHA-256 value as eight big-endian words (the compression state layout).
pub type Words = [u32; 8];

/// An HMAC-SHA256 key reduced to its two chaining states (after the ipad and opad blocks).
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct HmacKey {
    inner: Words,
    outer: Words,
}

impl std::fmt::Debug for HmacKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HmacKey(<redacted>)")
    }
}

impl HmacKey {
    /// Precomputes the inner and outer states for `key` (RFC 2104: keys longer than a block are hashed).
    pub fn new(key: &[u8]) -> HmacKey {
        let mut k = Zeroizing::new([0u8; BLOCK]);
        if key.len() > BLOCK {
            let mut digest = Sha256::digest(key);
            k[..32].copy_from_slice(&digest);
            digest.as_mut_slice().zeroize();
        } else {
            k[..key.len()].copy_from_slice(key);
        }
        let mut pad = Zeroizing::new([0u8; BLOCK]);
        let mut inner = IV;
        for (p, k) in pad.iter_mut().zip(k.iter()) {
            *p = k ^ 0x36;
        }
        compress256(&mut inner, std::slice::from_ref(&*pad));
        let mut outer = IV;
        for (p, k) in pad.iter_mut().zip(k.iter()) {
            *p = k ^ 0x5c;
        }
        compress256(&mut outer, std::slice::from_ref(&*pad));
        HmacKey { inner, outer }
    }

    /// HMAC-SHA256 of an arbitrary message, as words.
    pub fn mac(&self, message: &[u8]) -> Words {
        let mut inner = self.inner;
        finish(&mut inner, message, BLOCK);
        let mut inner_bytes = Zeroizing::new([0u8; 32]);
        store(&inner, &mut inner_bytes[..]);
        let mut outer = self.outer;
        finish(&mut outer, &inner_bytes[..], BLOCK);
        inner.zeroize();
        outer
    }
}

/// Hashes `message` into `state` and applies SHA-256 padding, `prefix` bytes having been hashed before.
fn finish(state: &mut Words, message: &[u8], prefix: usize) {
    let bits = ((prefix + message.len()) as u64).wrapping_mul(8);
    let mut chunks = message.chunks_exact(BLOCK);
    for chunk in chunks.by_ref() {
        let mut block = Zeroizing::new([0u8; BLOCK]);
        block.copy_from_slice(chunk);
        compress256(state, std::slice::from_ref(&*block));
    }
    let rest = chunks.remainder();
    let mut tail = Zeroizing::new([0u8; 2 * BLOCK]);
    tail[..rest.len()].copy_from_slice(rest);
    tail[rest.len()] = 0x80;
    let len = if rest.len() < BLOCK - 8 {
        BLOCK
    } else {
        2 * BLOCK
    };
    tail[len - 8..len].copy_from_slice(&bits.to_be_bytes());
    for block in tail[..len].chunks_exact(BLOCK) {
        let mut b = [0u8; BLOCK];
        b.copy_from_slice(block);
        compress256(state, std::slice::from_ref(&b));
        b.zeroize();
    }
}

/// Writes eight words big-endian into the first 32 bytes of `out`.
#[inline(always)]
fn store(words: &Words, out: &mut [u8]) {
    for (chunk, w) in out.chunks_exact_mut(4).zip(words) {
        chunk.copy_from_slice(&w.to_be_bytes());
    }
}

/// A 64-byte block holding a 32-byte value followed by the padding for a 96-byte message
/// (one key block + 32 bytes): `0x80`, zeros, and the bit length 768 in the last two bytes.
#[inline(always)]
fn padded_block() -> [u8; BLOCK] {
    let mut block = [0u8; BLOCK];
    block[32] = 0x80;
    block[62] = 0x03; // 768 = 0x0300
    block
}

/// PBKDF2-HMAC-SHA256 (RFC 8018 §5.2) of one password, filling `out` (any length).
pub fn pbkdf2(key: &HmacKey, salt: &[u8], iterations: u32, out: &mut [u8]) {
    let mut message = Zeroizing::new(Vec::with_capacity(salt.len() + 4));
    for (index, chunk) in out.chunks_mut(32).enumerate() {
        message.clear();
        message.extend_from_slice(salt);
        message.extend_from_slice(&(index as u32).wrapping_add(1).to_be_bytes());
        let [t] = derive_lanes([key], [key.mac(&message)], iterations);
        let mut bytes = Zeroizing::new([0u8; 32]);
        store(&t, &mut bytes[..]);
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
}

/// Runs `N` independent PBKDF2 block computations in lock step from their first values `U_1`
/// (`first`, from [`HmacKey::mac`] of `salt || INT(i)`), returning `T = U_1 ^ … ^ U_iterations` per lane.
///
/// `N = 1` is the plain kernel; `N = 2` lets the CPU overlap two users' compressions.
#[inline(always)]
pub fn derive_lanes<const N: usize>(
    keys: [&HmacKey; N],
    first: [Words; N],
    iterations: u32,
) -> [Words; N] {
    let mut inner_blocks = [padded_block(); N];
    let mut outer_blocks = [padded_block(); N];
    let mut sums = first;
    for lane in 0..N {
        store(&first[lane], &mut inner_blocks[lane]);
    }
    for _ in 1..iterations {
        let mut states: [Words; N] = std::array::from_fn(|lane| keys[lane].inner);
        for lane in 0..N {
            compress256(&mut states[lane], std::slice::from_ref(&inner_blocks[lane]));
        }
        for lane in 0..N {
            store(&states[lane], &mut outer_blocks[lane]);
            states[lane] = keys[lane].outer;
        }
        for lane in 0..N {
            compress256(&mut states[lane], std::slice::from_ref(&outer_blocks[lane]));
        }
        for lane in 0..N {
            store(&states[lane], &mut inner_blocks[lane]);
            for (t, u) in sums[lane].iter_mut().zip(states[lane]) {
                *t ^= u;
            }
        }
        states.zeroize();
    }
    inner_blocks.zeroize();
    outer_blocks.zeroize();
    sums
}

/// Converts words to the 32 output bytes.
pub fn to_bytes(words: &Words) -> [u8; 32] {
    let mut out = [0u8; 32];
    store(words, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pbkdf2_hex(p: &[u8], s: &[u8], c: u32, len: usize) -> String {
        let mut out = vec![0u8; len];
        pbkdf2(&HmacKey::new(p), s, c, &mut out);
        hex::encode(out)
    }

    #[test]
    fn matches_rfc7914_vectors() {
        // RFC 7914 §11: PBKDF2-HMAC-SHA256 test vectors (64-byte outputs: two PBKDF2 blocks).
        assert_eq!(
            pbkdf2_hex(b"passwd", b"salt", 1, 64),
            "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc\
             49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783"
        );
        assert_eq!(
            pbkdf2_hex(b"Password", b"NaCl", 80000, 64),
            "4ddcd8f60b98be21830cee5ef22701f9641a4418d04c0414aeff08876b34ab56\
             a1d425a1225833549adb841b51c9b3176a272bdebba1d078478f62b397f33c8d"
        );
    }

    #[test]
    fn matches_published_vectors_including_long_keys_and_salts() {
        // Widely published PBKDF2-HMAC-SHA256 vectors (e.g. the Stack Overflow / Go test set).
        assert_eq!(
            pbkdf2_hex(b"password", b"salt", 4096, 32),
            "c5e478d59288c841aa530db6845c4c8d962893a001ce4e11a4963873aa98134a"
        );
        assert_eq!(
            pbkdf2_hex(
                b"passwordPASSWORDpassword",
                b"saltSALTsaltSALTsaltSALTsaltSALTsalt",
                4096,
                40
            ),
            "348c89dbcbd32b2f32d814b8116e84cf2b17347ebc1800181c4e2a1fb8dd53e1c635518c7dac47e9"
        );
        assert_eq!(
            pbkdf2_hex(b"pass\0word", b"sa\0lt", 4096, 16),
            "89b69d0516f829893c696226650a8687"
        );
    }

    #[test]
    fn agrees_with_the_hmac_crate_on_keys_around_the_block_size() {
        use hmac::{KeyInit, Mac};
        for len in [0usize, 1, 55, 63, 64, 65, 200] {
            let key: Vec<u8> = (0..len).map(|i| i as u8 ^ 0xa5).collect();
            for msg_len in [0usize, 14, 55, 56, 63, 64, 100] {
                let msg: Vec<u8> = (0..msg_len).map(|i| (i * 7) as u8).collect();
                let mut reference = hmac::Hmac::<Sha256>::new_from_slice(&key).unwrap();
                reference.update(&msg);
                let expected: [u8; 32] = reference.finalize().into_bytes().into();
                assert_eq!(
                    to_bytes(&HmacKey::new(&key).mac(&msg)),
                    expected,
                    "{len}/{msg_len}"
                );
            }
        }
    }

    #[test]
    fn two_lanes_equal_two_single_runs() {
        let a = HmacKey::new(b"first user");
        let b = HmacKey::new(b"second user");
        let ua = a.mac(b"salt-a\0\0\0\x01");
        let ub = b.mac(b"salt-b\0\0\0\x01");
        let [ta, tb] = derive_lanes([&a, &b], [ua, ub], 1000);
        assert_eq!(derive_lanes([&a], [ua], 1000), [ta]);
        assert_eq!(derive_lanes([&b], [ub], 1000), [tb]);
        assert_ne!(ta, tb);
    }
}
