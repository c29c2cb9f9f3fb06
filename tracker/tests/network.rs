//! Network membership against a real tracker process: the network document, invites
//! (single use, expiry, made through the running tracker and while it is stopped),
//! enrollment with a proof of possession, renewal, revocation, roles, open enrollment,
//! network key rotation, and bad input that changes nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::{access, wait_for, Member, Tracker, TRACKER_BIN};
use reelnet_proto::membership::{NetworkDocument, SignedCertificate};
use reqwest::Method;
use serde_json::{json, Value};

fn trust(doc: &NetworkDocument) -> reelnet_proto::membership::Trust {
    doc.trust(reelnet_runtime::clock::unix_secs()).unwrap().0
}

async fn renew(t: &Tracker, m: &Member) -> (u16, Value) {
    t.node_post("/api/v1/nodes/renew", Some(m), json!({})).await
}

fn cert_of(b: &Value) -> SignedCertificate {
    SignedCertificate::from_hex(b["certificate"].as_str().unwrap()).unwrap()
}

#[tokio::test]
async fn invites_enrollment_renewal_revocation_and_rotation() {
    let mut t = Tracker::start().await;
    let doc = t.network().await;
    assert!(doc.network_id.starts_with("reelnet-"), "{doc:?}");
    assert_eq!(doc.keys.len(), 1);
    assert_eq!(doc.revocations.serial, 0);

    // An invite made through the running tracker (sled is locked: the CLI goes through
    // the tracker's operator API).
    let invite = t.invite(&["replica", "ingest"], 1, "1h");
    assert!(invite.starts_with("rninv_"), "{invite}");
    let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    let started = std::time::Instant::now();
    let (s, b) = t.enroll_key(&key, &invite).await;
    println!("enrollment took {:?}", started.elapsed());
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["roles"], json!(["replica", "ingest"]));
    let node = reelnet_proto::NodeId::from_verifying_key(&key.verifying_key());
    let cert = trust(&doc)
        .check(&cert_of(&b), &node, reelnet_runtime::clock::unix_secs())
        .unwrap();
    assert!(!cert.open);
    let m = Member {
        id: node.to_string(),
        key: key.clone(),
        cert: cert_of(&b),
    };

    // Single use: a second node cannot use it.
    let other = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    let (s, b) = t.enroll_key(&other, &invite).await;
    assert_eq!((s, b["error"].as_str()), (403, Some("bad_invite")), "{b}");
    // A proof made for another key, a forged proof, an unknown invite, no invite: refused.
    let inv2 = t.invite(&["edge"], 1, "1h");
    let now = reelnet_runtime::clock::unix_secs();
    let (s, b) = t
        .post(
            "/api/v1/nodes/enroll",
            json!({
                "invite": inv2, "node_id": node.to_string(), "timestamp": now,
                "proof": reelnet_proto::membership::sign_enroll(&other, &doc.network_id, &inv2, now),
            }),
        )
        .await;
    assert_eq!((s, b["error"].as_str()), (403, Some("bad_proof")), "{b}");
    let (s, b) = t.enroll_key(&other, "rninv_0000").await;
    assert_eq!((s, b["error"].as_str()), (403, Some("bad_invite")), "{b}");
    let (s, b) = t.enroll_key(&other, "").await;
    assert_eq!(
        (s, b["error"].as_str()),
        (403, Some("invite_required")),
        "{b}"
    );
    let (s, b) = t
        .post(
            "/api/v1/nodes/enroll",
            json!({"invite": inv2, "node_id": "zz"}),
        )
        .await;
    assert_eq!(s, 400, "{b}");
    // ...and the refused attempts did not use the invite up.
    let (s, b) = t.enroll_key(&other, &inv2).await;
    assert_eq!((s, b["roles"].clone()), (200, json!(["edge"])), "{b}");

    // Expiry.
    let short = t.invite(&["edge"], 1, "1s");
    let third = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    let (_, took) = wait_for("the invite to expire", Duration::from_secs(10), || async {
        let (_, out, _) = t.cli(&["node", "list", "--json"]);
        let list: Value = serde_json::from_str(&out).ok()?;
        list["invites"].as_array()?.is_empty().then_some(())
    })
    .await;
    println!("invite expired after {took:?}");
    let (s, b) = t.enroll_key(&third, &short).await;
    assert_eq!(
        (s, b["error"].as_str()),
        (403, Some("invite_expired")),
        "{b}"
    );

    // Renewal: a fresh certificate with the roles the tracker has now.
    let (ok, out, err) = t.cli(&["node", "set-role", &m.id, "replica"]);
    assert!(ok, "{out}{err}");
    // The ingest role is gone at once for claims, though the old certificate still names it.
    let (s, b) = t
        .node_post("/api/v1/requests/claim", Some(&m), json!({"node_id": m.id}))
        .await;
    assert_eq!((s, b["error"].as_str()), (403, Some("missing_role")), "{b}");
    let (s, b) = renew(&t, &m).await;
    assert_eq!((s, b["roles"].clone()), (200, json!(["replica"])), "{b}");
    let renewed = trust(&doc)
        .check(&cert_of(&b), &node, reelnet_runtime::clock::unix_secs())
        .unwrap();
    assert!(renewed.serial > cert.serial);
    // A stranger cannot renew.
    let (s, b) = renew(&t, &Member::stranger(&doc.network_id)).await;
    assert_eq!((s, b["error"].as_str()), (403, Some("not_a_member")), "{b}");

    // Network key rotation while running: both keys published, the old certificate still
    // verifies, renewals are signed by the new key.
    let (ok, out, err) = t.cli(&["network", "rotate-key"]);
    assert!(ok, "{out}{err}");
    let (doc2, _) = wait_for(
        "the rotated key to be published",
        Duration::from_secs(10),
        || async {
            let d = t.network().await;
            (d.keys.len() == 2).then_some(d)
        },
    )
    .await;
    let now = reelnet_runtime::clock::unix_secs();
    assert!(trust(&doc2).check(&m.cert, &node, now).is_ok());
    let (s, b) = renew(&t, &m).await;
    assert_eq!(s, 200, "{b}");
    let new_kid = cert_of(&b).unverified().unwrap().kid;
    assert_eq!(
        Some(new_kid.as_str()),
        doc2.keys
            .iter()
            .find(|k| k.not_after.is_none())
            .map(|k| k.kid.as_str())
    );

    // List and revoke through the running tracker.
    let (ok, out, err) = t.cli(&["node", "list", "--json"]);
    assert!(ok, "{err}");
    let list: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list["nodes"].as_array().unwrap().len(), 2, "{list}");
    let (ok, out, err) = t.cli(&["node", "revoke", &m.id]);
    assert!(ok && out.contains("REVOKED"), "{out}{err}");
    let doc3 = t.network().await;
    assert_eq!(doc3.revocations.serial, 1);
    assert_eq!(doc3.revocations.revoked, vec![node]);
    let (t3, _) = doc3.trust(reelnet_runtime::clock::unix_secs()).unwrap();
    assert!(t3
        .check(&m.cert, &node, reelnet_runtime::clock::unix_secs())
        .is_err());
    let (s, b) = renew(&t, &m).await;
    assert_eq!((s, b["error"].as_str()), (403, Some("not_a_member")), "{b}");
    // A revoked node cannot come back with a new invite.
    let again = t.invite(&["replica"], 1, "1h");
    let (s, b) = t.enroll_key(&key, &again).await;
    assert_eq!((s, b["error"].as_str()), (403, Some("revoked")), "{b}");
    // Bad operator input changes nothing.
    let (ok, _, err) = t.cli(&["node", "revoke", "not-a-node"]);
    assert!(!ok && err.contains("64"), "{err}");

    // The same commands while the tracker is stopped (they open the store themselves).
    t.terminate();
    let (ok, out, err) = t.cli(&["node", "invite", "--role", "edge"]);
    assert!(ok, "{out}{err}");
    let offline = out.lines().last().unwrap().trim().to_owned();
    let (ok, out, _) = t.cli(&["node", "list"]);
    assert!(ok && out.contains("REVOKED"), "{out}");
    t.spawn().await;
    let fourth = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    let (s, b) = t.enroll_key(&fourth, &offline).await;
    assert_eq!(
        s, 200,
        "an invite made offline works once the tracker runs: {b}"
    );
}

#[tokio::test]
async fn admins_manage_nodes_over_http_and_open_enrollment_gives_open_edge_certificates() {
    let t = Tracker::start_with("[network]\nopen_enrollment = \"edge\"\n").await;
    let admin = access(&t.admin("root@example.org", "a long password").await);
    let user = access(&t.user("user@example.org", "a long password").await);
    let body = json!({"roles": ["ingest"], "uses": 2, "ttl_secs": 600});
    let (s, b) = t
        .call(
            Method::POST,
            "/api/v1/admin/nodes/invites",
            &user,
            Some(body.clone()),
        )
        .await;
    assert_eq!((s, b["error"].as_str()), (403, Some("not_admin")), "{b}");
    let (s, b) = t
        .call(
            Method::POST,
            "/api/v1/admin/nodes/invites",
            &admin,
            Some(body),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    let token = b["token"].as_str().unwrap().to_owned();
    for bad in [
        json!({"roles": ["admin"]}),
        json!({"uses": 0}),
        json!({"ttl_secs": 0}),
        json!({"roles": ["edge"], "extra": 1}),
    ] {
        let (s, b) = t
            .call(
                Method::POST,
                "/api/v1/admin/nodes/invites",
                &admin,
                Some(bad.clone()),
            )
            .await;
        assert!(s == 400, "{bad} -> {s} {b}");
    }
    // A wrong operator token is refused.
    let r = t
        .http
        .get(t.url("/api/v1/admin/nodes"))
        .header("reelnet-operator-token", "0000")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);

    // Open enrollment: no invite, an edge certificate marked open.
    let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    let (s, b) = t.enroll_key(&key, "").await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["roles"], json!(["edge"]));
    assert!(cert_of(&b).unverified().unwrap().open);
    // The invited one is not open and has its invite's roles.
    let key2 = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    let (s, b) = t.enroll_key(&key2, &token).await;
    assert_eq!((s, b["roles"].clone()), (200, json!(["ingest"])), "{b}");
    assert!(!cert_of(&b).unverified().unwrap().open);

    let (s, list) = t
        .call(Method::GET, "/api/v1/admin/nodes", &admin, None)
        .await;
    assert_eq!(s, 200, "{list}");
    assert_eq!(list["nodes"].as_array().unwrap().len(), 2);
    assert_eq!(list["invites"][0]["uses_left"], 1, "{list}");
    let id = reelnet_proto::NodeId::from_verifying_key(&key.verifying_key()).to_string();
    let (s, b) = t
        .call(
            Method::PUT,
            &format!("/api/v1/admin/nodes/{id}/roles"),
            &admin,
            Some(json!({"roles": ["edge", "replica"]})),
        )
        .await;
    assert_eq!(
        (s, b["roles"].clone()),
        (200, json!(["replica", "edge"])),
        "{b}"
    );
    let (s, b) = t
        .call(
            Method::POST,
            &format!("/api/v1/admin/nodes/{id}/revoke"),
            &admin,
            None,
        )
        .await;
    assert_eq!((s, b["revoked"].as_bool()), (200, Some(true)), "{b}");
    // A revoked node cannot come back through open enrollment either.
    let (s, b) = t.enroll_key(&key, "").await;
    assert_eq!((s, b["error"].as_str()), (403, Some("revoked")), "{b}");
    let (s, b) = t
        .call(Method::POST, "/api/v1/admin/nodes/00/revoke", &admin, None)
        .await;
    assert_eq!(s, 400, "{b}");
}

#[test]
fn a_config_with_the_removed_node_secret_is_refused_with_a_pointer_to_invites() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("t.toml");
    std::fs::write(&config, "[requests]\nnode_secret = \"s3cret\"\n").unwrap();
    let out = Command::new(TRACKER_BIN)
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("requests.node_secret") && err.contains("node invite"),
        "{err}"
    );
}
