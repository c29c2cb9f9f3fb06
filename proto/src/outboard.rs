//! Verified streaming of a segment: a per-segment outboard of BLAKE3 chunk-group chaining
//! values whose root is the segment's plain BLAKE3 hash ([`SegmentHash`]).
//!
//! BLAKE3 is a Merkle tree over 1 KiB chunks. Cut a segment into groups of [`GROUP_LEN`]
//! (16 chunks, aligned): every group is a subtree of that tree, so its chaining value can be
//! computed alone (`blake3::hazmat`, with the group's input offset), and the group chaining
//! values combine, by the tree's own split rule, into the root hash. The outboard is the list
//! of group chaining values, 32 bytes per 16 KiB (0.2 % of the segment), in group order.
//!
//! A receiver that knows the root hash and the size first checks the outboard against the
//! root ([`Outboard::decode`]: `groups - 1` parent compressions), then checks each group as it
//! arrives against its chaining value ([`Outboard::verify_group`]) and may pass those bytes
//! on at once: a group passes only if its bytes are the ones the root hash commits to. This
//! is the bao idea (iroh's `bao-tree` with a chunk-group size of 16) in its simplest form: the
//! outboard holds only the leaves of the group tree, which is small enough to send whole
//! before the body, so no interleaving of parent nodes is needed.
//!
//! A segment of at most one group has an empty outboard: its bytes are checked whole
//! against the root hash.

use blake3::hazmat::{
    merge_subtrees_non_root, merge_subtrees_root, ChainingValue, HasherExt, Mode,
};

use crate::error::DecodeError;
use crate::ids::SegmentHash;
use crate::transfer::MAX_SEGMENT_BYTES;

/// Bytes per chunk group: 16 BLAKE3 chunks.
pub const GROUP_LEN: usize = 16 * 1024;

/// Bytes of one chaining value in the outboard.
pub const CV_LEN: usize = 32;

/// Largest outboard: that of a [`MAX_SEGMENT_BYTES`] segment (64 KiB).
pub const MAX_OUTBOARD_BYTES: usize = (MAX_SEGMENT_BYTES as usize).div_ceil(GROUP_LEN) * CV_LEN;

/// Number of groups of a segment of `size` bytes (0 for an empty one).
pub fn groups(size: u64) -> usize {
    usize::try_from(size.div_ceil(GROUP_LEN as u64)).unwrap_or(usize::MAX)
}

/// Bytes of the outboard of a segment of `size` bytes: none up to one group, else one
/// chaining value per group. Saturates for sizes no segment can have.
pub fn outboard_len(size: u64) -> usize {
    if size <= GROUP_LEN as u64 {
        0
    } else {
        groups(size).saturating_mul(CV_LEN)
    }
}

/// The byte range `start..end` of group `index` in a segment of `size` bytes.
pub fn group_range(size: u64, index: usize) -> (usize, usize) {
    let size = usize::try_from(size).unwrap_or(usize::MAX);
    let start = index.saturating_mul(GROUP_LEN).min(size);
    (start, start.saturating_add(GROUP_LEN).min(size))
}

fn group_cv(index: usize, data: &[u8]) -> ChainingValue {
    let mut h = blake3::Hasher::new();
    h.set_input_offset((index * GROUP_LEN) as u64);
    h.update(data);
    h.finalize_non_root()
}

/// The chaining value of a subtree of `len` bytes made of the groups `cvs` (`len` > one
/// group), or the root hash when `root`.
fn merge(cvs: &[ChainingValue], len: u64, root: bool) -> ChainingValue {
    if len <= GROUP_LEN as u64 {
        return cvs.first().copied().unwrap_or_default();
    }
    // BLAKE3's split: the largest power of two of chunks leaving at least one byte on the
    // right. For subtrees above one group this is a whole number of groups.
    let left = blake3::hazmat::left_subtree_len(len);
    let split = usize::try_from(left / GROUP_LEN as u64)
        .unwrap_or(cvs.len())
        .min(cvs.len());
    let (l, r) = cvs.split_at(split);
    let lcv = merge(l, left, false);
    let rcv = merge(r, len - left, false);
    if root {
        *merge_subtrees_root(&lcv, &rcv, Mode::Hash).as_bytes()
    } else {
        merge_subtrees_non_root(&lcv, &rcv, Mode::Hash)
    }
}

/// The checked chaining values of one segment's groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outboard {
    size: u64,
    cvs: Vec<ChainingValue>,
}

impl Outboard {
    /// Computes the outboard and the root hash of `data` in one pass over the bytes (the
    /// root equals `SegmentHash::of(data)`).
    pub fn compute(data: &[u8]) -> (SegmentHash, Self) {
        let size = data.len() as u64;
        if data.len() <= GROUP_LEN {
            return (
                SegmentHash::of(data),
                Self {
                    size,
                    cvs: Vec::new(),
                },
            );
        }
        let cvs: Vec<ChainingValue> = data
            .chunks(GROUP_LEN)
            .enumerate()
            .map(|(i, g)| group_cv(i, g))
            .collect();
        let root = SegmentHash(merge(&cvs, size, true));
        (root, Self { size, cvs })
    }

    /// Checks `bytes` as the outboard of a segment of `size` bytes hashing to `root`: the
    /// length must be [`outboard_len`]`(size)` and the chaining values must combine into
    /// `root`. Refuses sizes above [`MAX_SEGMENT_BYTES`] before looking at the bytes.
    pub fn decode(bytes: &[u8], size: u64, root: &SegmentHash) -> Result<Self, DecodeError> {
        if size > MAX_SEGMENT_BYTES {
            return Err(DecodeError::Invalid(format!(
                "segment size {size} exceeds {MAX_SEGMENT_BYTES}"
            )));
        }
        let want = outboard_len(size);
        if bytes.len() != want {
            return Err(DecodeError::Invalid(format!(
                "outboard of {} bytes, a {size}-byte segment has {want}",
                bytes.len()
            )));
        }
        if want == 0 {
            return Ok(Self {
                size,
                cvs: Vec::new(),
            });
        }
        let cvs: Vec<ChainingValue> = bytes
            .chunks_exact(CV_LEN)
            .map(|c| {
                let mut cv = [0u8; CV_LEN];
                cv.copy_from_slice(c);
                cv
            })
            .collect();
        if merge(&cvs, size, true) != root.0 {
            return Err(DecodeError::Invalid(
                "outboard does not match the segment hash".into(),
            ));
        }
        Ok(Self { size, cvs })
    }

    /// The outboard's wire and disk form.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.cvs.concat()
    }

    /// Size of the segment this outboard describes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Number of groups of the segment.
    pub fn groups(&self) -> usize {
        groups(self.size)
    }

    /// Whether `data` is group `index` of the segment. For a segment of at most one group
    /// (empty outboard) the only group is checked against `root` as a whole.
    pub fn verify_group(&self, root: &SegmentHash, index: usize, data: &[u8]) -> bool {
        let (start, end) = group_range(self.size, index);
        if data.len() != end - start || index >= self.groups().max(1) {
            return false;
        }
        if self.cvs.is_empty() {
            return SegmentHash::of(data) == *root;
        }
        self.cvs.get(index) == Some(&group_cv(index, data))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn root_is_the_plain_blake3_hash() {
        for len in [
            0,
            1,
            1024,
            GROUP_LEN - 1,
            GROUP_LEN,
            GROUP_LEN + 1,
            2 * GROUP_LEN,
            3 * GROUP_LEN + 7,
            5 * GROUP_LEN,
            7 * GROUP_LEN + 1023,
            (2 << 20) + 12345,
        ] {
            let d = data(len);
            let (root, ob) = Outboard::compute(&d);
            assert_eq!(root, SegmentHash::of(&d), "len {len}");
            assert_eq!(ob.to_bytes().len(), outboard_len(len as u64));
            let back = Outboard::decode(&ob.to_bytes(), len as u64, &root).unwrap();
            assert_eq!(back, ob);
            for i in 0..ob.groups().max(1) {
                let (s, e) = group_range(len as u64, i);
                assert!(back.verify_group(&root, i, &d[s..e]), "len {len} group {i}");
            }
        }
    }

    #[test]
    fn a_flipped_bit_fails_its_group_only() {
        let len = 5 * GROUP_LEN + 100;
        let mut d = data(len);
        let (root, ob) = Outboard::compute(&d);
        d[2 * GROUP_LEN + 5] ^= 1;
        for i in 0..ob.groups() {
            let (s, e) = group_range(len as u64, i);
            assert_eq!(ob.verify_group(&root, i, &d[s..e]), i != 2);
        }
        // A group under another index does not pass.
        let (s, e) = group_range(len as u64, 0);
        assert!(!ob.verify_group(&root, 1, &d[s..e]));
    }

    #[test]
    fn a_bad_outboard_is_refused() {
        let d = data(4 * GROUP_LEN);
        let (root, ob) = Outboard::compute(&d);
        let mut bytes = ob.to_bytes();
        bytes[40] ^= 1;
        assert!(Outboard::decode(&bytes, d.len() as u64, &root).is_err());
        assert!(Outboard::decode(&ob.to_bytes()[..64], d.len() as u64, &root).is_err());
        assert!(Outboard::decode(&ob.to_bytes(), d.len() as u64 + 1, &root).is_err());
        assert!(Outboard::decode(&[], MAX_SEGMENT_BYTES + 1, &root).is_err());
        let other = SegmentHash::of(b"other");
        assert!(Outboard::decode(&ob.to_bytes(), d.len() as u64, &other).is_err());
    }
}
