//! Network membership with real processes: a `reelnet-tracker` and three `reelnet-node`s
//! that enroll with invites made by the operator CLI through the running tracker.
//!
//! Certificates live 12 s here, so every node renews (without a restart) during the test;
//! the network key is rotated and nothing breaks; then a member that holds a replica is
//! revoked with `reelnet-tracker node revoke`: within 60 s the others drop it and placement
//! copies its share to the remaining node. A node started without an invite runs, says it
//! is not a member and takes no part.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{make_movie, merge_toml, wait_for, Cluster, Network, TestNode, FAST};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_renew_survive_key_rotation_and_a_revoked_member_is_cut_off_and_re_placed() {
    let network = Network::start("[network]\ncert_lifetime_secs = 12\n").await;
    let extra = format!("{FAST}\n[storage]\nreplication = 2\n");
    let cluster = Cluster::start_in(network, 3, |_| extra.clone()).await;
    cluster.wait_live(3, Duration::from_secs(30)).await;
    for n in &cluster.nodes {
        let s = n.status().await;
        assert!(s.membership.member, "node {}: {:?}", n.index, s.membership);
        assert_eq!(
            s.membership.roles,
            vec![
                reelnet_proto::membership::RoleName::Replica,
                reelnet_proto::membership::RoleName::Ingest
            ]
        );
    }

    // Renewal without a restart: every node's certificate is replaced before it expires.
    let serials: Vec<u64> = {
        let mut v = Vec::new();
        for n in &cluster.nodes {
            v.push(n.status().await.membership.serial.unwrap());
        }
        v
    };
    let (_, took) = wait_for("every node to renew", Duration::from_secs(30), || async {
        for (n, s0) in cluster.nodes.iter().zip(&serials) {
            let m = n.status().await.membership;
            if !(m.member && m.serial.unwrap_or(0) > *s0) {
                return None;
            }
        }
        Some(())
    })
    .await;
    println!("every node renewed its 12 s certificate within {took:?}");
    let metrics = reqwest::get(format!("{}/metrics", cluster.node(1).gateway_url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("reelnet_member 1\n"), "{metrics}");
    // The swarm's refusal counters are there (honest members stay within their budgets).
    assert!(
        metrics.contains("reelnet_sync_refused_budget 0\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("reelnet_connections_denied 0\n"),
        "{metrics}"
    );

    // Key rotation: old certificates keep working, renewals use the new key.
    let (ok, out, err) = cluster.network.cli(&["network", "rotate-key"]);
    assert!(ok, "{out}{err}");

    let movie = make_movie(cluster.dir.path(), "movie.mp4", 8, 240);
    cluster
        .node(1)
        .ingest_and_wait(&movie, "Membership Test", Duration::from_secs(120))
        .await;
    // Replication 2: node 1 (the origin) and one other hold it.
    let (holder, _) = wait_for(
        "a second complete holder",
        Duration::from_secs(60),
        || async {
            for i in [2, 3] {
                let s = cluster.node(i).status().await;
                if s.manifests
                    .iter()
                    .any(|m| m.responsible && m.complete && m.held_segments == m.total_segments)
                {
                    return Some(i);
                }
            }
            None
        },
    )
    .await;
    let other = if holder == 2 { 3 } else { 2 };
    cluster.wait_live(3, Duration::from_secs(30)).await;

    // Revoke the holder through the running tracker.
    let revoked_id = cluster.node(holder).node_id.clone();
    let (ok, out, err) = cluster.network.cli(&["node", "revoke", &revoked_id]);
    assert!(ok && out.contains("REVOKED"), "{out}{err}");
    let t0 = Instant::now();
    wait_for(
        "the members to drop the revoked node",
        Duration::from_secs(60),
        || async {
            for i in [1, other] {
                let s = cluster.node(i).status().await;
                if s.live_nodes.iter().any(|n| n.node_id == revoked_id) {
                    return None;
                }
            }
            Some(())
        },
    )
    .await;
    let dropped = t0.elapsed();
    wait_for(
        "the remaining node to take the share",
        Duration::from_secs(60),
        || async {
            let s = cluster.node(other).status().await;
            s.manifests
                .iter()
                .any(|m| m.responsible && m.complete && m.held_segments == m.total_segments)
                .then_some(())
        },
    )
    .await;
    let replaced = t0.elapsed();
    println!("revocation: dropped by every member after {dropped:?}, re-placed after {replaced:?}");
    assert!(replaced < Duration::from_secs(60), "{replaced:?}");
    wait_for(
        "the revoked node to know",
        Duration::from_secs(60),
        || async {
            let m = cluster.node(holder).status().await.membership;
            (!m.member && m.problem.is_some_and(|p| p.contains("revoked"))).then_some(())
        },
    )
    .await;

    // A node started without an invite: runs, says why, takes no part.
    let stranger_toml = merge_toml(
        &format!(
            "[tracker]\nurl = \"{}\"\nmembership_refresh_secs = 1\n",
            cluster.network.url
        ),
        FAST,
    );
    let mut stranger = TestNode::new(
        cluster.dir.path(),
        9,
        vec![cluster.node(1).p2p_addr()],
        &stranger_toml,
    );
    // It publishes no record, so its QUIC address must be known up front.
    stranger.quic = format!("127.0.0.1:{}", common::free_tcp_port())
        .parse()
        .unwrap();
    stranger.start().await;
    let health: serde_json::Value = reqwest::get(format!("{}/healthz", stranger.gateway_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["membership"]["member"], false, "{health}");
    assert!(
        health["membership"]["problem"]
            .as_str()
            .is_some_and(|p| p.contains("invite")),
        "{health}"
    );
    let s = stranger.status().await;
    assert!(!s.membership.member);
    let metrics = reqwest::get(format!("{}/metrics", stranger.gateway_url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("reelnet_member 0\n"), "{metrics}");
    let s = cluster.node(1).status().await;
    assert!(!s.live_nodes.iter().any(|n| n.node_id == stranger.node_id));
}
