//! Ranking and the service-list digest. Every node of a cluster must
//! compute the same numbers, whatever its version and architecture: the
//! wire protocol freezes these functions.

use std::fmt::Write;

use super::ServiceSpec;
use crate::config::Mode;

/// Mixes 64 bits well (splitmix64's finaliser).
pub(crate) fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn fnv64(parts: &[&[u8]]) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for part in parts {
        for byte in part.iter().chain(&[0xff]) {
            hash = (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

/// The digest of a canonical service list: names and addresses.
pub fn digest(services: &[ServiceSpec]) -> u64 {
    let mut hash = 0u64;
    let mut ip = String::with_capacity(48);
    for service in services {
        ip.clear();
        // Writing to a String cannot fail.
        let _ = write!(ip, "{}", service.ip);
        hash = mix(hash ^ fnv64(&[service.name.as_bytes(), ip.as_bytes()]));
    }
    hash
}

/// How `node` (with `priority`) ranks for `service`: higher wins.
/// Integer only, so every architecture agrees.
pub fn rank<'n>(
    mode: Mode,
    node: &'n str,
    priority: u8,
    service: &str,
) -> (u128, std::cmp::Reverse<&'n str>) {
    let score = match mode {
        Mode::Single => u128::from(priority),
        // Rendezvous hashing weighted by priority: each (node, service)
        // draws a number; the highest weighted draw wins.
        Mode::Spread => {
            u128::from(mix(fnv64(&[node.as_bytes(), service.as_bytes()]))) * u128::from(priority)
        }
    };
    (score, std::cmp::Reverse(node))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use super::*;

    #[test]
    fn the_digest_does_not_change_between_versions() {
        // Nodes running different versions must agree on it: names and
        // addresses in their text form ("2001:db8::53"), FNV-1a, mixed.
        let specs: Vec<ServiceSpec> = [("dns", "2001:db8::53"), ("web", "192.0.2.1")]
            .iter()
            .map(|(name, ip)| ServiceSpec {
                name: Arc::from(*name),
                ip: ip.parse().unwrap(),
                nodes: Vec::new(),
            })
            .collect();
        assert_eq!(digest(&specs), 0x8c27_4aa1_ae9a_8ed1);
    }

    #[test]
    fn spread_ranks_differ_per_service_and_priority_weighs() {
        let names = ["n1", "n2", "n3"];
        let winners: BTreeMap<String, &str> = (0..32)
            .map(|i| {
                let service = format!("vip{i}");
                let best = names
                    .iter()
                    .max_by_key(|n| rank(Mode::Spread, n, 100, &service))
                    .unwrap();
                (service, *best)
            })
            .collect();
        for name in names {
            assert!(
                winners.values().any(|w| *w == name),
                "{name} wins nothing: {winners:?}"
            );
        }
        let heavy = (0..32)
            .filter(|i| {
                let service = format!("vip{i}");
                rank(Mode::Spread, "n1", 255, &service) > rank(Mode::Spread, "n2", 1, &service)
            })
            .count();
        assert!(
            heavy >= 30,
            "priority 255 beats priority 1 almost always: {heavy}"
        );
    }
}
