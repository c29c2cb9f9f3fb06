//! Full sync: one byte-limited page at a time, every live record (by node id) and then every
//! manifest (by id), resumable at a [`SyncCursor`] the peer sends back.

use super::*;

pub use reelnet_proto::sync::SyncCursor;

/// One page of a full sync: encoded records and manifests.
#[derive(Debug, Clone, Default)]
pub struct SyncPage {
    /// `SignedCatalogRecord::encode` of each live record.
    pub records: Vec<Vec<u8>>,
    /// `SignedManifest::encode` of each manifest.
    pub manifests: Vec<Vec<u8>>,
    /// Where the next page starts; `None` when this is the last page.
    pub next: Option<SyncCursor>,
}

impl State {
    pub(super) fn sync_page(
        &self,
        after: Option<SyncCursor>,
        max_bytes: usize,
        now: u64,
    ) -> SyncPage {
        let mut page = SyncPage::default();
        let mut used = 0usize;
        // Each item costs its bytes plus a length prefix.
        let fits = |used: usize, len: usize, empty: bool| empty || used + len + 10 <= max_bytes;
        let records_from = match after {
            None => Some(None),
            Some(SyncCursor::RecordsAfter(node)) => Some(Some(node)),
            Some(SyncCursor::ManifestsAfter(_)) => None,
        };
        let mut last_node = None;
        if let Some(from) = records_from {
            let range = match from {
                None => self.records.range(..),
                Some(node) => self
                    .records
                    .range((std::ops::Bound::Excluded(node), std::ops::Bound::Unbounded)),
            };
            for (node, entry) in range {
                if entry.live_until <= now {
                    continue;
                }
                let bytes = entry.signed.encode();
                if !fits(used, bytes.len(), page.records.is_empty()) {
                    page.next = last_node.map(SyncCursor::RecordsAfter);
                    return page;
                }
                used += bytes.len() + 10;
                page.records.push(bytes);
                last_node = Some(*node);
            }
        }
        let range = match after {
            Some(SyncCursor::ManifestsAfter(id)) => self
                .manifests
                .range((std::ops::Bound::Excluded(id), std::ops::Bound::Unbounded)),
            _ => self.manifests.range(..),
        };
        let mut last_manifest = None;
        for (id, entry) in range {
            let bytes = entry.signed.encode();
            let empty = page.records.is_empty() && page.manifests.is_empty();
            if !fits(used, bytes.len(), empty) {
                page.next = match last_manifest {
                    Some(m) => Some(SyncCursor::ManifestsAfter(m)),
                    // Stopped before the first manifest: continue after the records.
                    None => last_node.map(SyncCursor::RecordsAfter),
                };
                return page;
            }
            used += bytes.len() + 10;
            page.manifests.push(bytes);
            last_manifest = Some(*id);
        }
        page
    }
}
