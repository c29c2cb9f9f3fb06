//! Access tokens (the JWTs browsers send in `Authorization` and `?access_token=`) from
//! untrusted bytes, verified against a real keyring: nothing panics, and a token the
//! fuzzer made up never verifies (it cannot forge the keyring's EdDSA signature).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use reelnet_tracker::keys::{rotate, Keyring};

const NOW: u64 = 1_800_000_000;

fn keyring() -> &'static Keyring {
    static RING: OnceLock<Keyring> = OnceLock::new();
    RING.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("reelnet-fuzz-keys-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        rotate(&dir, NOW).unwrap();
        let ring = Keyring::load(&dir, 3600).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        ring
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let ring = keyring();
    assert!(ring
        .verify(token, "https://tracker.fuzz", "reelnet", NOW)
        .is_err());
});
