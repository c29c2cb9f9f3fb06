//! Versioned value encoding: one version byte, then the record in bincode. A later release
//! that changes a record bumps its version and migrates old values when it reads them.

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::StoreError;

/// The version every record is written with today.
pub const VERSION: u8 = 1;

/// Encodes a record with its version byte.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    let mut out = vec![VERSION];
    let body = bincode::serde::encode_to_vec(value, bincode::config::standard())
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    out.extend_from_slice(&body);
    Ok(out)
}

/// Encodes a record with an explicit version byte (a record whose layout changed after
/// version 1: see [`decode_evolved`]).
pub fn encode_version<T: Serialize>(version: u8, value: &T) -> Result<Vec<u8>, StoreError> {
    let mut out = vec![version];
    let body = bincode::serde::encode_to_vec(value, bincode::config::standard())
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    out.extend_from_slice(&body);
    Ok(out)
}

/// Decodes a record whose layout changed: `version` bytes are `New`, [`VERSION`] bytes are
/// the old layout `Old`, migrated with `From`.
pub fn decode_evolved<Old, New>(version: u8, bytes: &[u8]) -> Result<New, StoreError>
where
    Old: DeserializeOwned,
    New: DeserializeOwned + From<Old>,
{
    match bytes.split_first() {
        Some((&v, rest)) if v == version => {
            let (value, _) = bincode::serde::decode_from_slice(rest, bincode::config::standard())
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            Ok(value)
        }
        Some((&VERSION, _)) => decode::<Old>(bytes).map(New::from),
        Some((v, _)) => Err(StoreError::Corrupt(format!("unknown record version {v}"))),
        None => Err(StoreError::Corrupt("empty record".to_owned())),
    }
}

/// Decodes a record written by [`encode`].
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    match bytes.split_first() {
        Some((&VERSION, body)) => {
            let (value, _) = bincode::serde::decode_from_slice(body, bincode::config::standard())
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            Ok(value)
        }
        Some((v, _)) => Err(StoreError::Corrupt(format!("unknown record version {v}"))),
        None => Err(StoreError::Corrupt("empty record".to_owned())),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn round_trip_and_unknown_version() {
        let bytes = encode(&("a".to_owned(), 7u64)).unwrap();
        assert_eq!(
            decode::<(String, u64)>(&bytes).unwrap(),
            ("a".to_owned(), 7)
        );
        let mut future = bytes.clone();
        future[0] = 9;
        assert!(decode::<(String, u64)>(&future).is_err());
        assert!(decode::<(String, u64)>(&[]).is_err());
    }
}
