//! Signed catalog record envelopes and bare record bodies from untrusted bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reelnet_proto::codec::{self, MAX_CATALOG_RECORD_BYTES};
use reelnet_proto::{CatalogRecord, SignedCatalogRecord};

fuzz_target!(|data: &[u8]| {
    if let Ok(signed) = SignedCatalogRecord::decode(data) {
        assert_eq!(signed.encode(), data);
        if let Ok(record) = signed.verify(1_700_000_000) {
            let again = codec::encode::<_, MAX_CATALOG_RECORD_BYTES>(&record).unwrap();
            assert_eq!(again, signed.record_bytes());
        }
    }
    if let Ok(record) = codec::decode::<CatalogRecord, MAX_CATALOG_RECORD_BYTES>(data) {
        let again = codec::encode::<_, MAX_CATALOG_RECORD_BYTES>(&record).unwrap();
        assert_eq!(again, data);
        let _ = record.validate();
        let _ = record.check_time(u64::MAX);
    }
});
