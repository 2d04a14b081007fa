//! Macvlans for VIPs with a MAC of their own.
//!
//! A VIP with a MAC of its own (`"mac": "virtual"`) gets a macvlan
//! with that MAC on its interface while it is owned, so that the kernel
//! accepts frames sent to the MAC: private mode, `NOARP` (the kernel never
//! answers or asks ARP/NDP on it), no IPv6 addresses (no link-local, so no
//! DAD and no MLD from it), no IPv4 addresses (no IGMP). Heartbeats and
//! multicast joins stay on the interface itself. Its name is `l2v` and the
//! MAC's six bytes in hex, its alias `l2vip`: one left by a crashed run is
//! removed at start, as stale routes are, and only links with that alias
//! (macvlans on a configured interface) are ever removed.

use std::io;
use std::sync::Arc;

use log::{info, warn};

use super::routes::Routes;
use crate::wire::netlink::{self, Message};
use crate::wire::EthernetAddress;

/// The name of the macvlan carrying `mac`: `l2v` and all six bytes in hex
/// (15 characters, the most a Linux interface name holds), so two MACs
/// never share a name.
pub fn macvlan_name(mac: EthernetAddress) -> String {
    let mut name = String::from("l2v");
    for byte in mac.0 {
        name.push_str(&format!("{byte:02x}"));
    }
    name
}

/// The macvlan's own reverse-path filter is off (see
/// `netlink::link_change_request`), but the kernel filters with the higher
/// of it and `all`'s: with `all` on, the VIP's traffic arriving on the
/// macvlan, which has no address, is dropped. Said once per macvlan made.
fn warn_of_rp_filter(name: &str) {
    let all = std::fs::read_to_string("/proc/sys/net/ipv4/conf/all/rp_filter");
    if let Some(value) = all.ok().filter(|v| v.trim() != "0") {
        warn!(
            "{name}: net.ipv4.conf.all.rp_filter is {}: the kernel drops the VIP's IPv4 \
             traffic arriving on its macvlan; set it to 0 (each interface's own filter \
             still applies)",
            value.trim()
        );
    }
}

impl Routes {
    /// The links that are macvlans l2vip made (their alias is
    /// `netlink::MARK`), with their parent's index.
    fn our_macvlans(&mut self) -> io::Result<Vec<(String, u32)>> {
        let mut ours = Vec::new();
        self.dump(
            netlink::RTM_GETLINK,
            netlink::AF_UNSPEC,
            "link dump",
            |message| {
                if let Message::Link(link) = message {
                    if let Some(parent) = link.ours_on {
                        ours.push((link.name, parent));
                    }
                }
            },
        )?;
        Ok(ours)
    }

    /// Removes the macvlans an earlier run left on `parents` (interface
    /// indexes): only links l2vip made, whatever their name, never an
    /// administrator's; returns how many.
    pub fn remove_stale_macvlans(&mut self, parents: &[u32]) -> io::Result<usize> {
        let mut stale = self.our_macvlans()?;
        stale.retain(|(_, parent)| parents.contains(parent));
        for (name, _) in &stale {
            match self.delete_link(name) {
                Ok(()) => info!("removed {name}, a macvlan an earlier run left"),
                Err(e) => warn!("cannot remove {name}, a macvlan an earlier run left: {e}"),
            }
        }
        Ok(stale.len())
    }

    fn delete_link(&mut self, name: &str) -> io::Result<()> {
        let seq = self.next_seq();
        netlink::link_delete_request(&mut self.out, name, seq);
        self.request(seq)
    }

    /// Creates the macvlan for `mac` on `parent` and brings it up.
    fn add_macvlan(&mut self, mac: EthernetAddress, parent: &str, name: &str) -> io::Result<()> {
        let Some(index) = crate::sys::iface::index(parent) else {
            return Err(io::Error::new(io::ErrorKind::NotFound, "no such interface"));
        };
        let seq = self.next_seq();
        netlink::macvlan_request(&mut self.out, name, index, mac, seq);
        match self.request(seq) {
            // Ours from before: replaced. Someone else's: left alone.
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                if !self.our_macvlans()?.iter().any(|(ours, _)| ours == name) {
                    return Err(io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        format!("a link named {name} exists and l2vip did not make it"),
                    ));
                }
                self.delete_link(name)?;
                let seq = self.next_seq();
                netlink::macvlan_request(&mut self.out, name, index, mac, seq);
                self.request(seq)?;
            }
            other => other?,
        }
        let seq = self.next_seq();
        netlink::link_change_request(&mut self.out, name, false, true, seq);
        let configured = self.request(seq).and_then(|()| {
            let seq = self.next_seq();
            netlink::link_change_request(&mut self.out, name, true, false, seq);
            self.request(seq)
        });
        if let Err(e) = configured {
            let _ = self.delete_link(name);
            return Err(e);
        }
        Ok(())
    }

    /// The macvlans in place now: (MAC, parent, name).
    pub fn macvlans(&self) -> impl Iterator<Item = (EthernetAddress, &str, &str)> {
        self.macvlans
            .iter()
            .map(|(mac, parent, name)| (*mac, &**parent, name.as_str()))
    }

    /// Makes the macvlans in place exactly `wanted` (MAC, interface):
    /// adds when `adding`, else removes. Failures are logged and retried
    /// on the next call.
    pub fn apply_macs(&mut self, wanted: &[(EthernetAddress, Arc<str>)], adding: bool) {
        let held = |macvlans: &[(EthernetAddress, Arc<str>, String)],
                    mac: &EthernetAddress,
                    parent: &str| {
            macvlans.iter().any(|(m, p, _)| m == mac && **p == *parent)
        };
        if adding {
            for (mac, parent) in wanted {
                if held(&self.macvlans, mac, parent) {
                    continue;
                }
                let name = macvlan_name(*mac);
                match self.add_macvlan(*mac, parent, &name) {
                    Ok(()) => {
                        info!("{name}: {} on {parent}", mac);
                        warn_of_rp_filter(&name);
                        self.macvlans.push((*mac, Arc::clone(parent), name));
                    }
                    Err(e) => warn!("{parent}: cannot add macvlan {name} for {}: {e}", mac),
                }
            }
        } else {
            let mut index = 0;
            while index < self.macvlans.len() {
                let (mac, parent, name) = &self.macvlans[index];
                if wanted.iter().any(|(m, p)| m == mac && p == parent) {
                    index += 1;
                    continue;
                }
                let name = name.clone();
                match self.delete_link(&name) {
                    Ok(()) => info!("{name}: removed"),
                    // Gone with its interface.
                    Err(e) if matches!(e.raw_os_error(), Some(libc::ENODEV | libc::ENOENT)) => {}
                    Err(e) => {
                        warn!("{name}: cannot remove: {e}");
                        index += 1;
                        continue;
                    }
                }
                self.macvlans.remove(index);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::virtual_mac;

    #[test]
    fn macs_that_share_their_last_four_bytes_get_names_of_their_own() {
        let given = [
            EthernetAddress([0x02, 0, 0xaa, 0xbb, 0xcc, 0xdd]),
            EthernetAddress([0x06, 0, 0xaa, 0xbb, 0xcc, 0xdd]),
        ];
        // Two services whose derived MACs end alike in cluster `lan`.
        let derived = [virtual_mac("lan", "s76068"), virtual_mac("lan", "s83671")];
        assert_eq!(derived[0].0[2..], derived[1].0[2..]);
        for [a, b] in [given, derived] {
            let (name_a, name_b) = (macvlan_name(a), macvlan_name(b));
            assert_ne!(name_a, name_b);
            for name in [&name_a, &name_b] {
                assert_eq!(name.len(), 15, "{name} fits IFNAMSIZ");
            }
        }
        assert_eq!(macvlan_name(given[0]), "l2v0200aabbccdd");
    }
}
