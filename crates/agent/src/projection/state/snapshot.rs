//! The state's byte form: bincode (standard configuration) of [`State`]'s serialized fields (listed in
//! [`super`]'s doc, "Snapshot bytes"); equal states give equal bytes.
//!
//! Enters: a [`State`] to encode, or bytes to decode. Leaves: the bytes, or the decoded state with its
//! indexes rebuilt and checked ([`StateError`] for bytes that do not decode, trail, or contradict
//! themselves). The envelope around these bytes (magic, version, checksum, sequence) is
//! [`crate::projection::store`]'s.

use super::State;

/// The bincode configuration of state snapshots (varint integers, bounded length prefixes).
const CONFIG: bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<{ 16 * 1024 * 1024 * 1024 }>,
> = bincode::config::standard().with_limit::<{ 16 * 1024 * 1024 * 1024 }>();

/// Snapshot decoding failures.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The bytes are not a state of this format version.
    #[error("projection snapshot does not decode: {0}")]
    Decode(#[from] bincode::error::DecodeError),
    /// Encoding failed (cannot happen for this type; reported rather than unwrapped).
    #[error("projection snapshot does not encode: {0}")]
    Encode(#[from] bincode::error::EncodeError),
    /// Bytes remained after the state.
    #[error("projection snapshot has {0} trailing bytes")]
    Trailing(usize),
    /// The decoded state contradicts itself (an id out of range, a GUID twice, …).
    #[error("projection snapshot is inconsistent: {0}")]
    Inconsistent(&'static str),
}

impl State {
    /// The state as bytes (bincode, standard configuration): equal states give equal bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>, StateError> {
        Ok(bincode::serde::encode_to_vec(self, CONFIG)?)
    }

    /// Writes [`State::to_bytes`]'s bytes to `w` as they are produced, without holding them (a
    /// million objects' state is a few hundred MiB); returns the bytes written.
    pub fn encode_into(&self, w: &mut impl std::io::Write) -> Result<usize, StateError> {
        Ok(bincode::serde::encode_into_std_write(self, w, CONFIG)?)
    }

    /// Reads one state in [`State::to_bytes`]'s form from `r` (exactly its bytes, nothing after
    /// them) and rebuilds the indexes.
    pub fn decode_from(r: &mut impl std::io::Read) -> Result<State, StateError> {
        let mut state: State = bincode::serde::decode_from_std_read(r, CONFIG)?;
        state.rebuild_index()?;
        Ok(state)
    }

    /// Decodes [`State::to_bytes`] and rebuilds the indexes.
    pub fn from_bytes(bytes: &[u8]) -> Result<State, StateError> {
        let (mut state, used): (State, usize) = bincode::serde::decode_from_slice(bytes, CONFIG)?;
        if used != bytes.len() {
            return Err(StateError::Trailing(bytes.len() - used));
        }
        state.rebuild_index()?;
        Ok(state)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_object as object;
    use super::*;

    #[test]
    fn inconsistent_snapshots_are_refused() {
        let mut st = State::default();
        object(&mut st, 1, "CN=A,DC=x");
        st.member_of.insert((0, 7));
        assert!(matches!(
            State::from_bytes(&st.to_bytes().unwrap()),
            Err(StateError::Inconsistent(_))
        ));
    }
}
