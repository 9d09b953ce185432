//! NDR (DCE 1.1 transfer syntax, little-endian, 32-bit) primitives for the few calls we make.
//!
//! The writer aligns relative to the start of the stub, as NDR requires; the reader checks every
//! length against the remaining input and against caller-given limits, so hostile counts turn into
//! [`DrsrError::Malformed`] instead of huge allocations.

use super::error::DrsrError;

/// A GUID in its wire order (first three fields little-endian).
pub type Guid = [u8; 16];

/// Builds an NDR stub.
#[derive(Debug, Default)]
pub struct NdrWriter {
    buf: Vec<u8>,
    next_referent: u32,
}

impl NdrWriter {
    /// An empty stub.
    pub fn new() -> NdrWriter {
        NdrWriter {
            buf: Vec::new(),
            next_referent: 0x0002_0000,
        }
    }

    /// Pads with zeros to a multiple of `n`.
    pub fn align(&mut self, n: usize) {
        while !self.buf.len().is_multiple_of(n) {
            self.buf.push(0);
        }
    }

    /// Appends a `u16`.
    pub fn u16(&mut self, v: u16) {
        self.align(2);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// Appends a `u32`.
    pub fn u32(&mut self, v: u32) {
        self.align(4);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// Appends a `u64` (hyper, 8-aligned).
    pub fn u64(&mut self, v: u64) {
        self.align(8);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// Appends raw bytes with no alignment (GUIDs, byte arrays).
    pub fn bytes(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }

    /// Appends a GUID (4-aligned, as its first member is a `u32`).
    pub fn guid(&mut self, g: &Guid) {
        self.align(4);
        self.buf.extend_from_slice(g);
    }

    /// Appends a non-null unique/full pointer's referent id.
    pub fn pointer(&mut self) {
        let id = self.next_referent;
        self.next_referent = self.next_referent.wrapping_add(4);
        self.u32(id);
    }

    /// Appends a null pointer.
    pub fn null(&mut self) {
        self.u32(0);
    }

    /// The stub.
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

/// Reads an NDR stub.
#[derive(Debug)]
pub struct NdrReader<'a> {
    buf: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> NdrReader<'a> {
    /// A reader over `buf`; `what` names the structure in errors.
    pub fn new(buf: &'a [u8], what: &'static str) -> NdrReader<'a> {
        NdrReader { buf, pos: 0, what }
    }

    fn err(&self, detail: impl Into<String>) -> DrsrError {
        DrsrError::malformed(
            self.what,
            format!("{} at offset {}", detail.into(), self.pos),
        )
    }

    /// Skips to a multiple of `n` from the start of the stub.
    pub fn align(&mut self, n: usize) -> Result<(), DrsrError> {
        let pad = (n - self.pos % n) % n;
        self.take(pad).map(|_| ())
    }

    /// Takes `n` raw bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DrsrError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| self.err(format!("{n} bytes needed, input ends")))?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DrsrError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    /// Reads a `u16`.
    pub fn u16(&mut self) -> Result<u16, DrsrError> {
        self.align(2)?;
        Ok(u16::from_le_bytes(self.array()?))
    }

    /// Reads a `u32`.
    pub fn u32(&mut self) -> Result<u32, DrsrError> {
        self.align(4)?;
        Ok(u32::from_le_bytes(self.array()?))
    }

    /// Reads a `u64` (hyper, 8-aligned).
    pub fn u64(&mut self) -> Result<u64, DrsrError> {
        self.align(8)?;
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// Reads a GUID (4-aligned).
    pub fn guid(&mut self) -> Result<Guid, DrsrError> {
        self.align(4)?;
        self.array()
    }

    /// Reads a pointer's referent id; `true` when not null.
    pub fn pointer(&mut self) -> Result<bool, DrsrError> {
        Ok(self.u32()? != 0)
    }

    /// Reads a conformance count (`max_count`) and checks it against `limit`.
    pub fn count(&mut self, limit: u32) -> Result<usize, DrsrError> {
        let n = self.u32()?;
        if n > limit {
            return Err(self.err(format!("count {n} exceeds the limit {limit}")));
        }
        Ok(n as usize)
    }

    /// Reads a conformance count of elements at least `elem_size` bytes each: bounded by `limit`
    /// and by the bytes left, so a hostile count cannot trigger a large allocation.
    pub fn count_of(&mut self, limit: u32, elem_size: usize) -> Result<usize, DrsrError> {
        let n = self.count(limit)?;
        if n.saturating_mul(elem_size) > self.remaining() {
            return Err(self.err(format!(
                "{n} elements of {elem_size} bytes exceed the input"
            )));
        }
        Ok(n)
    }

    /// Checks that a conformance count agrees with a size field.
    pub fn expect_eq(&self, field: &'static str, got: usize, want: usize) -> Result<(), DrsrError> {
        if got == want {
            Ok(())
        } else {
            Err(self.err(format!("{field} is {want} but the array holds {got}")))
        }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The current offset.
    pub fn position(&self) -> usize {
        self.pos
    }
}

/// Formats a wire-order GUID as `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`.
pub fn guid_string(g: &Guid) -> String {
    format!(
        "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
        g[3],
        g[2],
        g[1],
        g[0],
        g[5],
        g[4],
        g[7],
        g[6],
        g[8],
        g[9],
        g[10],
        g[11],
        g[12],
        g[13],
        g[14],
        g[15]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writer_aligns_from_the_stub_start() {
        let mut w = NdrWriter::new();
        w.u16(1);
        w.u32(2);
        w.u64(3);
        w.pointer();
        w.pointer();
        let b = w.finish();
        assert_eq!(
            hex::encode(&b),
            "01000000020000000300000000000000\
             0000020004000200"
        );
    }

    #[test]
    fn reader_rejects_truncation_and_huge_counts() {
        let mut r = NdrReader::new(&[1, 0, 0], "test");
        assert!(r.u32().is_err());
        let mut r = NdrReader::new(&[0xff, 0xff, 0xff, 0xff], "test");
        assert!(r.count(1000).is_err());
        let mut r = NdrReader::new(&[9, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0], "test");
        assert_eq!(r.u32().unwrap(), 9);
        assert_eq!(r.u64().unwrap(), 7);
        assert_eq!(r.remaining(), 0);
    }
}
