//! Local routes for owned VIPs, and the kernel settings that keep the
//! kernel itself from answering ARP for them.
//!
//! With a `local` route in the `local` table the kernel accepts traffic for
//! the VIP without the address being configured on an interface. Linux then
//! also answers ARP for it, on every interface (the weak host model), unless
//! `arp_ignore` is at least 1 (answer only for addresses configured on the
//! receiving interface), and it would use the VIP as the sender address of
//! its own ARP requests unless `arp_announce` is 2 (which would point other
//! hosts' caches at this node during linger). Both are raised on `all`: the
//! kernel uses the larger of `all` and each interface's own value.
//! IPv6 needs nothing: a local route is not an interface address, so the
//! kernel neither answers Neighbor Solicitations for it nor uses it as the
//! source of its own.
//!
//! An exported VIP (`"export"`) also gets a unicast route, `VIP dev IF
//! scope link`, in the export table, for a routing daemon (BIRD's `protocol
//! kernel` with `learn`, FRR's `ip import-table`) to learn and announce
//! over BGP. Routes in both tables carry l2vip's protocol number; those
//! an earlier run left, in any table, are removed at start.
//!
//! A VIP with a MAC of its own (`"mac": "virtual"`) also gets a macvlan
//! with that MAC on its interface while it is owned, so that the kernel
//! accepts frames sent to the MAC: private mode, `NOARP` (the kernel never
//! answers or asks ARP/NDP on it), no IPv6 addresses (no link-local, so no
//! DAD and no MLD from it), no IPv4 addresses (no IGMP). Heartbeats and
//! multicast joins stay on the interface itself. Its name is `l2v` and the
//! MAC's last four bytes in hex; one left by a crashed run is removed at
//! start, as stale routes are.

use std::collections::BTreeMap;
use std::io;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use log::{info, warn};

use crate::sys::netlink::NetlinkSocket;
use crate::wire::netlink::{self, Message, VipRoute};

/// How long the kernel may take to answer one request.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(2);
/// Receive buffer for answers and dumps (the kernel sends at most 32 KiB).
const BUFFER: usize = 32 * 1024;

/// The routes l2vip has installed, and the socket to change them.
pub struct Routes {
    socket: NetlinkSocket,
    seq: u32,
    out: Vec<u8>,
    buffer: Vec<u8>,
    /// The routes in place, with their interfaces' indexes.
    installed: RouteSet,
    /// (MAC, parent interface, macvlan name) of the macvlans in place (few).
    macvlans: Vec<([u8; 6], Arc<str>, String)>,
}

/// Where a VIP's route in one table leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteTo {
    /// The VIP's interface.
    pub interface: Arc<str>,
    /// The route's metric (0 for local routes).
    pub metric: u32,
    /// The interface's index when the route was added (0 in a wish).
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

/// The name of the macvlan carrying `mac`: `l2v` and its last four bytes.
pub fn macvlan_name(mac: [u8; 6]) -> String {
    let [_, _, c, d, e, f] = mac;
    format!("l2v{c:02x}{d:02x}{e:02x}{f:02x}")
}

/// Whether `name` is one `macvlan_name` makes.
fn is_macvlan_name(name: &str) -> bool {
    name.len() == 11
        && name.starts_with("l2v")
        && name[3..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
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
        })
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    /// Sends the request in `self.out` and waits for its answer.
    fn request(&mut self, seq: u32) -> io::Result<()> {
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
    fn dump(
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

    /// The routes in place now: (VIP, table, interface).
    pub fn installed(&self) -> impl Iterator<Item = (IpAddr, u32, &str)> {
        self.installed
            .iter()
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
            match self.change(true, route) {
                Ok(()) => info!("{ip}: {what} added on {interface}"),
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => warn!(
                    "{ip}: the kernel already has a {what} for it (is it an address on this \
                     host, or routed by someone else?)"
                ),
                Err(e) => {
                    warn!("{ip}: cannot add a {what} on {interface}: {e}");
                    continue;
                }
            }
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

    /// An interface came back under a new index: the kernel dropped its
    /// routes (and macvlans) with the old one, so they are added again on
    /// the next `apply` (and `apply_macs`).
    pub fn forget_interface(&mut self, interface: &str) {
        self.installed.retain(|_, to| *to.interface != *interface);
        self.macvlans
            .retain(|(_, parent, _)| **parent != *interface);
    }

    /// Removes the macvlans an earlier run left (by their names); returns
    /// how many.
    pub fn remove_stale_macvlans(&mut self) -> io::Result<usize> {
        let mut stale = Vec::new();
        self.dump(
            netlink::RTM_GETLINK,
            netlink::AF_UNSPEC,
            "link dump",
            |message| {
                if let Message::Link(link) = message {
                    if is_macvlan_name(&link.name) {
                        stale.push(link.name);
                    }
                }
            },
        )?;
        for name in &stale {
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
    fn add_macvlan(&mut self, mac: [u8; 6], parent: &str, name: &str) -> io::Result<()> {
        let Some(index) = crate::sys::iface::index(parent) else {
            return Err(io::Error::new(io::ErrorKind::NotFound, "no such interface"));
        };
        let seq = self.next_seq();
        netlink::macvlan_request(&mut self.out, name, index, mac, seq);
        match self.request(seq) {
            // Someone's link of that name, or ours from before: replaced.
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
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
    pub fn macvlans(&self) -> impl Iterator<Item = ([u8; 6], &str, &str)> {
        self.macvlans
            .iter()
            .map(|(mac, parent, name)| (*mac, &**parent, name.as_str()))
    }

    /// Makes the macvlans in place exactly `wanted` (MAC, interface):
    /// adds when `adding`, else removes. Failures are logged and retried
    /// on the next call.
    pub fn apply_macs(&mut self, wanted: &[([u8; 6], Arc<str>)], adding: bool) {
        let held = |macvlans: &[([u8; 6], Arc<str>, String)], mac: &[u8; 6], parent: &str| {
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
                        info!("{name}: {} on {parent}", crate::config::mac_text(*mac));
                        self.macvlans.push((*mac, Arc::clone(parent), name));
                    }
                    Err(e) => warn!(
                        "{parent}: cannot add macvlan {name} for {}: {e}",
                        crate::config::mac_text(*mac)
                    ),
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

/// The values l2vip needs for `net.ipv4.conf.all.<key>`: at least these.
pub const ARP_SETTINGS: [(&str, u8); 2] = [("arp_ignore", 1), ("arp_announce", 2)];

/// The ARP sysctls l2vip raised, with their values before, to put back
/// at exit. The values before are also kept in a record file while they
/// are changed, so a run after a crash puts back the administrator's
/// values, not the ones the crashed run set.
#[derive(Debug, Default)]
pub struct ArpSettings {
    changed: BTreeMap<(String, &'static str), String>,
    record: Option<std::path::PathBuf>,
}

/// The record's lines: `interface key value`.
fn format_record(changed: &BTreeMap<(String, &'static str), String>) -> String {
    changed
        .iter()
        .map(|((interface, key), value)| format!("{interface} {key} {value}\n"))
        .collect()
}

/// Reads a record; lines that name no known key, or a value that is not a
/// small number, are skipped.
fn parse_record(text: &str) -> BTreeMap<(String, &'static str), String> {
    let mut changed = BTreeMap::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let (Some(interface), Some(key), Some(value), None) =
            (words.next(), words.next(), words.next(), words.next())
        else {
            continue;
        };
        let known = ARP_SETTINGS.iter().find(|(name, _)| *name == key);
        let sane_interface = !interface.is_empty()
            && interface.len() <= crate::config::MAX_INTERFACE_NAME
            && !interface.contains('/')
            && !matches!(interface, "." | "..");
        if let (Some((key, _)), true, Ok(_)) = (known, sane_interface, value.parse::<u8>()) {
            changed.insert((interface.to_string(), *key), value.to_string());
        }
    }
    changed
}

fn sysctl_path(interface: &str, key: &str) -> String {
    format!("/proc/sys/net/ipv4/conf/{interface}/{key}")
}

impl ArpSettings {
    /// Settings kept in the record file at `record`; values an earlier run
    /// changed and recorded (it crashed) are the ones put back at exit.
    pub fn new(record: Option<std::path::PathBuf>) -> ArpSettings {
        let mut settings = ArpSettings {
            changed: BTreeMap::new(),
            record,
        };
        if let Some(path) = &settings.record {
            if let Ok(text) = crate::state::read_regular(path, 4096) {
                settings.changed = parse_record(&text);
                for ((interface, key), value) in &settings.changed {
                    info!(
                        "net.ipv4.conf.{interface}.{key} was {value} before an earlier run \
                         changed it; it goes back to {value} at exit"
                    );
                }
            }
        }
        settings
    }

    fn save_record(&self) {
        let Some(path) = &self.record else {
            return;
        };
        let written = if self.changed.is_empty() {
            std::fs::remove_file(path).or_else(|e| match e.kind() {
                std::io::ErrorKind::NotFound => Ok(()),
                _ => Err(e),
            })
        } else {
            crate::state::write_atomically(path, format_record(&self.changed).as_bytes())
        };
        if let Err(e) = written {
            warn!(
                "cannot keep the ARP settings' old values in {}: {e}",
                path.display()
            );
        }
    }

    /// Raises `arp_ignore` and `arp_announce` of `interface` ("all" for
    /// every interface) where they are lower than needed; logs each change.
    pub fn ensure(&mut self, interface: &str) {
        for (key, needed) in ARP_SETTINGS {
            let path = sysctl_path(interface, key);
            let current = match std::fs::read_to_string(&path) {
                Ok(text) => text.trim().to_string(),
                Err(e) => {
                    warn!("{interface}: cannot read {path}: {e}");
                    continue;
                }
            };
            if current.parse::<u8>().is_ok_and(|value| value >= needed) {
                continue;
            }
            match std::fs::write(&path, format!("{needed}\n")) {
                Ok(()) => {
                    info!(
                        "{interface}: set net.ipv4.conf.{interface}.{key} {current} -> {needed} \
                         so the kernel does not answer ARP for VIPs itself"
                    );
                    self.changed
                        .entry((interface.to_string(), key))
                        .or_insert(current);
                    self.save_record();
                }
                Err(e) => warn!(
                    "{interface}: cannot set {path} to {needed}: {e}; the kernel may answer ARP \
                     for VIPs itself"
                ),
            }
        }
    }

    /// Puts back every value `ensure` changed.
    pub fn restore(&mut self) {
        for ((interface, key), value) in std::mem::take(&mut self.changed) {
            let path = sysctl_path(&interface, key);
            if let Err(e) = std::fs::write(&path, format!("{value}\n")) {
                warn!("{interface}: cannot restore {path} to {value}: {e}");
            }
        }
        self.save_record();
    }
}

#[cfg(test)]
mod record_tests {
    use super::*;

    #[test]
    fn the_record_keeps_the_values_before_and_nothing_else() {
        let mut changed = BTreeMap::new();
        changed.insert(("all".to_string(), "arp_ignore"), "0".to_string());
        changed.insert(("eth0".to_string(), "arp_announce"), "1".to_string());
        let text = format_record(&changed);
        assert_eq!(text, "all arp_ignore 0\neth0 arp_announce 1\n");
        assert_eq!(parse_record(&text), changed);
        // Unknown keys, paths, odd values and extra words are skipped.
        let hostile =
            "all rp_filter 0\n../../x arp_ignore 0\nall arp_ignore 9999\nall arp_ignore 1 2\n";
        assert!(parse_record(hostile).is_empty());
    }
}
