//! The JSON bodies of the tracker's node-facing movie-request routes (claim, progress, done,
//! failed, in both directions) from untrusted bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reelnet_proto::requests::{
    ClaimRequest, ClaimView, DoneReport, FailedReport, ProgressReport, RequestState,
};

fn round_trips<T>(data: &[u8])
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    if let Ok(value) = serde_json::from_slice::<T>(data) {
        let json = serde_json::to_vec(&value).unwrap();
        assert_eq!(serde_json::from_slice::<T>(&json).unwrap(), value);
    }
}

fuzz_target!(|data: &[u8]| {
    round_trips::<ClaimRequest>(data);
    round_trips::<ClaimView>(data);
    round_trips::<DoneReport>(data);
    round_trips::<FailedReport>(data);
    round_trips::<RequestState>(data);
    // `percent` is an f32 that JSON can overflow to infinity (which serialises as null), so
    // this one only has to decode without panicking; the tracker range-checks it.
    let _ = serde_json::from_slice::<ProgressReport>(data);
});
