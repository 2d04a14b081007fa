//! Routes for owned VIPs, over rtnetlink. With a `local` route in the
//! `local` table the kernel accepts traffic for the VIP without the address
//! being configured on an interface (the ARP sysctls of `sysctl` keep the
//! kernel from answering ARP for it; IPv6 needs nothing: a local route is
//! not an interface address, so the kernel neither answers Neighbor
//! Solicitations for it nor uses it as the source of its own).
//!
//! An exported VIP (`"export"`) also gets a unicast route, `VIP dev IF
//! scope link`, in the export table, for a routing daemon (BIRD's `protocol
//! kernel` with `learn`, FRR's `ip import-table`) to learn and announce
//! over BGP. Routes in both tables carry l2vip's protocol number; those
//! an earlier run left, in any table, are removed at start.
//!
//!
//! An IPv6 link-local VIP is one per interface and the source of the
//! owner's router advertisements (radvd sends only from an address of the
//! interface): the owner has it as an address (`nodad`, `noprefixroute`),
//! and its kernel answers Neighbor Solicitations for it too, with the same
//! interface MAC the responder answers with.
//!
//! The VIPs' own MACs (`macvlans`) are links made over the same socket.

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use log::{info, warn};

use crate::sys::netlink::NetlinkSocket;
use crate::wire::netlink::{self, Message, VipRoute};
use crate::wire::EthernetAddress;

/// How long the kernel may take to answer one request.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(2);
/// Receive buffer for answers and dumps (the kernel sends at most 32 KiB).
const BUFFER: usize = 32 * 1024;

/// The routes l2vip has installed, and the socket to change them.
pub struct Routes {
    pub(super) socket: NetlinkSocket,
    pub(super) seq: u32,
    pub(super) out: Vec<u8>,
    pub(super) buffer: Vec<u8>,
    /// The routes in place, with their interfaces' indexes.
    installed: RouteSet,
    /// (MAC, parent interface, macvlan name) of the macvlans in place (few).
    pub(super) macvlans: Vec<(EthernetAddress, Arc<str>, String)>,
    /// (address, interface, its index) of the link-local VIPs in place as
    /// addresses (few).
    addresses: Vec<(Ipv6Addr, Arc<str>, u32)>,
}

/// Where a VIP's route in one table leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteTo {
    /// The VIP's interface.
    pub interface: Arc<str>,
    /// The route's metric (0 for local routes).
    pub metric: u32,
    /// The interface's index when the route was added (0 in a wish, and
    /// for a route the kernel already had from someone else: noted so it
    /// is not tried again, never shown or removed as l2vip's).
    pub ifindex: u32,
}

/// Routes by (VIP, table): the local routes in `TABLE_LOCAL`, exported
/// ones in their tables. One map type for what is wanted and what is in
/// place (each new map type costs the router binary kilobytes).
pub type RouteSet = BTreeMap<(IpAddr, u32), RouteTo>;

/// "local route", or "route in table 100": for the log.
fn route_kind(table: u32) -> String {
    if table == u32::from(netlink::TABLE_LOCAL) {
        "local route".to_string()
    } else {
        format!("route in table {table}")
    }
}

impl Routes {
    /// Opens the request socket.
    pub fn open() -> io::Result<Routes> {
        Ok(Routes {
            socket: NetlinkSocket::open(0, false, ANSWER_TIMEOUT)?,
            seq: 0,
            out: Vec::with_capacity(128),
            buffer: vec![0; BUFFER],
            installed: BTreeMap::new(),
            macvlans: Vec::new(),
            addresses: Vec::new(),
        })
    }

    pub(super) fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    /// Sends the request in `self.out` and waits for its answer.
    pub(super) fn request(&mut self, seq: u32) -> io::Result<()> {
        self.socket.send(&self.out)?;
        for _ in 0..16 {
            let Some(len) = self.socket.recv(&mut self.buffer)? else {
                break;
            };
            for message in netlink::messages(&self.buffer[..len]) {
                match message {
                    Ok(Message::Ack {
                        seq: answered,
                        errno,
                    }) if answered == seq => {
                        return if errno == 0 {
                            Ok(())
                        } else {
                            Err(io::Error::from_raw_os_error(errno))
                        };
                    }
                    Ok(_) => {}
                    Err(e) => {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("netlink answer: {e}"),
                        ))
                    }
                }
            }
        }
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the kernel did not answer",
        ))
    }

    fn change(&mut self, add: bool, route: VipRoute) -> io::Result<()> {
        let seq = self.next_seq();
        netlink::route_request(&mut self.out, add, route, seq);
        self.request(seq)
    }

    /// Dumps `kind` for `family`, handing each message to `each`; `what`
    /// names the dump in errors.
    pub(super) fn dump(
        &mut self,
        kind: u16,
        family: u8,
        what: &str,
        mut each: impl FnMut(Message),
    ) -> io::Result<()> {
        let seq = self.next_seq();
        netlink::dump_request(&mut self.out, kind, family, seq);
        self.socket.send(&self.out)?;
        loop {
            let Some(len) = self.socket.recv(&mut self.buffer)? else {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("{what}: the kernel did not answer"),
                ));
            };
            for message in netlink::messages(&self.buffer[..len]) {
                match message {
                    Ok(Message::Done { .. }) => return Ok(()),
                    Ok(Message::Ack { errno, .. }) if errno != 0 => {
                        return Err(io::Error::from_raw_os_error(errno))
                    }
                    Ok(message) => each(message),
                    Err(e) => {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("{what}: {e}"),
                        ))
                    }
                }
            }
        }
    }

    /// Removes l2vip's routes an earlier run that did not stop cleanly
    /// left, local and exported, in every table; returns how many.
    pub fn remove_stale(&mut self) -> io::Result<usize> {
        let mut stale = Vec::new();
        for family in [netlink::AF_INET, netlink::AF_INET6] {
            self.dump(netlink::RTM_GETROUTE, family, "route dump", |message| {
                let Message::Route(route) = message else {
                    return;
                };
                let local = route.table == u32::from(netlink::TABLE_LOCAL);
                let ours = route.protocol == netlink::PROTOCOL
                    && route.kind
                        == if local {
                            netlink::RTN_LOCAL
                        } else {
                            netlink::RTN_UNICAST
                        };
                if let (true, Some((ip, _)), Some(ifindex)) = (ours, route.dst, route.oif) {
                    stale.push(VipRoute {
                        ip,
                        ifindex,
                        table: route.table,
                        metric: route.metric,
                    });
                }
            })?;
        }
        for route in &stale {
            match self.change(false, *route) {
                Ok(()) => info!(
                    "removed a stale l2vip route for {} (table {})",
                    route.ip, route.table
                ),
                Err(e) => warn!("cannot remove the stale route for {}: {e}", route.ip),
            }
        }
        Ok(stale.len())
    }

    /// The routes l2vip put in place: (VIP, table, interface).
    pub fn installed(&self) -> impl Iterator<Item = (IpAddr, u32, &str)> {
        self.installed
            .iter()
            .filter(|(_, to)| to.ifindex != 0)
            .map(|((ip, table), to)| (*ip, *table, &*to.interface))
    }

    /// Makes the installed routes exactly `wanted` (their `ifindex` is not
    /// read): adds first when `adding`, else removes. Failures are logged
    /// and retried on the next call.
    pub fn apply(&mut self, wanted: &RouteSet, adding: bool) {
        let same = |held: &RouteTo, want: Option<&RouteTo>| {
            want.is_some_and(|want| held.interface == want.interface && held.metric == want.metric)
        };
        if !adding {
            let gone: Vec<(IpAddr, u32)> = self
                .installed
                .iter()
                .filter(|(key, held)| !same(held, wanted.get(key)))
                .map(|(key, _)| *key)
                .collect();
            for key in gone {
                self.remove(key);
            }
            return;
        }
        for (&(ip, table), want) in wanted {
            let key = (ip, table);
            let held = self.installed.get(&key);
            if held.is_some_and(|held| same(held, Some(want))) {
                continue;
            }
            let RouteTo {
                interface, metric, ..
            } = want;
            // Moved to another interface or metric: the old one goes first.
            if held.is_some() && !self.remove(key) {
                continue;
            }
            let what = route_kind(table);
            let Some(ifindex) = crate::sys::iface::index(interface) else {
                warn!("{interface}: no such interface; no {what} for {ip}");
                continue;
            };
            let route = VipRoute {
                ip,
                ifindex,
                table,
                metric: *metric,
            };
            let ifindex = match self.change(true, route) {
                Ok(()) => {
                    info!("{ip}: {what} added on {interface}");
                    ifindex
                }
                // Ours (protocol 76: only ours can be deleted this way),
                // e.g. added again after its interface came back: put back
                // and kept as ours. Someone else's: left as it is.
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                    if self.change(false, route).is_ok() {
                        if let Err(e) = self.change(true, route) {
                            warn!("{ip}: cannot add a {what} on {interface}: {e}");
                            continue;
                        }
                        ifindex
                    } else {
                        warn!(
                            "{ip}: the kernel already has a {what} for it (is it an address \
                             on this host, or routed by someone else?); left as it is"
                        );
                        0
                    }
                }
                Err(e) => {
                    warn!("{ip}: cannot add a {what} on {interface}: {e}");
                    continue;
                }
            };
            self.installed.insert(
                key,
                RouteTo {
                    interface: Arc::clone(interface),
                    metric: *metric,
                    ifindex,
                },
            );
        }
    }

    /// Removes the installed route `key`; false when it is still there.
    fn remove(&mut self, key: (IpAddr, u32)) -> bool {
        let Some(&RouteTo {
            ifindex, metric, ..
        }) = self.installed.get(&key)
        else {
            return true;
        };
        if ifindex == 0 {
            // Someone else's: not ours to remove.
            self.installed.remove(&key);
            return true;
        }
        let (ip, table) = key;
        let route = VipRoute {
            ip,
            ifindex,
            table,
            metric,
        };
        match self.change(false, route) {
            Ok(()) => info!("{ip}: {} removed", route_kind(table)),
            // Gone with its interface, or never ours.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ESRCH | libc::ENOENT | libc::ENODEV)
                ) => {}
            Err(e) => {
                warn!("{ip}: cannot remove the {}: {e}", route_kind(table));
                return false;
            }
        }
        self.installed.remove(&key);
        true
    }

    /// An interface came back under a new index, or up again: the kernel
    /// dropped its routes (and macvlans) with the old one, and its IPv6
    /// addresses when it went down, so they are added again on the next
    /// `apply` (`apply_macs`, `apply_addresses`).
    pub fn forget_interface(&mut self, interface: &str) {
        self.installed.retain(|_, to| *to.interface != *interface);
        self.macvlans
            .retain(|(_, parent, _)| **parent != *interface);
        self.addresses.retain(|(_, on, _)| **on != *interface);
    }

    /// The link-local VIPs in place as addresses: (VIP, interface).
    pub fn addresses(&self) -> impl Iterator<Item = (Ipv6Addr, &str)> {
        self.addresses.iter().map(|(ip, on, _)| (*ip, &**on))
    }

    fn change_address(&mut self, add: bool, ip: Ipv6Addr, ifindex: u32) -> io::Result<()> {
        let seq = self.next_seq();
        netlink::address_request(&mut self.out, add, ip, ifindex, seq);
        self.request(seq)
    }

    /// Makes the link-local VIPs in place as addresses exactly `wanted`:
    /// adds first when `adding`, else removes. An address already there
    /// (an earlier run's, or the administrator's for this VIP) is taken as
    /// the VIP's, and removed with it. Failures are logged and retried on
    /// the next call.
    pub fn apply_addresses(&mut self, wanted: &[(Ipv6Addr, Arc<str>)], adding: bool) {
        if !adding {
            let mut index = 0;
            while let Some((ip, interface, ifindex)) = self.addresses.get(index).cloned() {
                if wanted.iter().any(|(w, on)| *w == ip && *on == interface) {
                    index += 1;
                    continue;
                }
                match self.change_address(false, ip, ifindex) {
                    Ok(()) => info!("{ip}: address removed from {interface}"),
                    Err(e)
                        if matches!(
                            e.raw_os_error(),
                            Some(libc::EADDRNOTAVAIL | libc::ENODEV | libc::ENOENT)
                        ) => {}
                    Err(e) => {
                        warn!("{ip}: cannot remove the address from {interface}: {e}");
                        index += 1;
                        continue;
                    }
                }
                self.addresses.remove(index);
            }
            return;
        }
        for (ip, interface) in wanted {
            if self
                .addresses
                .iter()
                .any(|(held, on, _)| held == ip && on == interface)
            {
                continue;
            }
            let Some(ifindex) = crate::sys::iface::index(interface) else {
                warn!("{interface}: no such interface; no address {ip} on it");
                continue;
            };
            match self.change_address(true, *ip, ifindex) {
                Ok(()) => info!("{ip}: address added on {interface}"),
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
                Err(e) => {
                    warn!("{ip}: cannot add the address on {interface}: {e}");
                    continue;
                }
            }
            self.addresses.push((*ip, Arc::clone(interface), ifindex));
        }
    }

    /// Removes the link-local VIPs of `wanted` that are addresses of their
    /// interfaces now, before this run owns any: an earlier run that did
    /// not stop cleanly left them, and the kernel would answer for them
    /// whoever owns them. Returns how many.
    pub fn remove_stale_addresses(&mut self, vips: &[(Ipv6Addr, Arc<str>)]) -> usize {
        let mut removed = 0;
        for (ip, interface) in vips {
            let Some(ifindex) = crate::sys::iface::index(interface) else {
                continue;
            };
            if self.change_address(false, *ip, ifindex).is_ok() {
                info!("removed {ip} from {interface}, left by an earlier run");
                removed += 1;
            }
        }
        removed
    }
}
