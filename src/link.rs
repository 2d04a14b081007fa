//! The link thread: follows link and address changes over NETLINK_ROUTE
//! (events, no polling) and tells the election, the responder and the
//! actions about the interfaces that changed.

use std::collections::HashMap;
use std::io;
use std::os::fd::AsRawFd;
use std::time::Duration;

use log::{debug, warn};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

use crate::channel::{mailbox, wait, Inbox, Mailbox};
use crate::message::{
    ActionsCommand, ElectionCommand, LinkCommand as Command, LinkState, ResponderCommand,
};
use crate::sys::netlink::NetlinkSocket;
use crate::wire::netlink::{self, Link, Message};

/// What the other threads are told of `link`.
fn state_of(link: &Link, present: bool) -> LinkState {
    LinkState {
        name: link.name.clone(),
        index: link.index,
        present,
        usable: present && link.usable(),
        mac: link.mac,
    }
}

/// Where link news goes.
pub struct Listeners {
    /// The election (eligibility).
    pub election: Mailbox<ElectionCommand>,
    /// The responder (sockets, MAC, announcements).
    pub responder: Mailbox<ResponderCommand>,
    /// The actions (routes, kernel settings).
    pub actions: Mailbox<ActionsCommand>,
}

const WAKER: Token = Token(0);
const SOCKET: Token = Token(1);
/// Events come in bursts when many interfaces change at once.
const RECEIVE_BUFFER: usize = 1 << 20;
/// Datagrams read per wake-up before commands are looked at again.
const DATAGRAMS_PER_WAKE: usize = 64;

/// The link thread's state.
pub struct LinkThread {
    poll: Poll,
    commands: Inbox<Command>,
    socket: NetlinkSocket,
    listeners: Listeners,
    links: HashMap<u32, Link>,
    buffer: Vec<u8>,
    out: Vec<u8>,
    seq: u32,
    dumping: bool,
    dump_again: bool,
}

impl LinkThread {
    /// Subscribes to link and address events and asks for every link's
    /// current state (subscribed first, so no change falls in between).
    pub fn new(listeners: Listeners) -> io::Result<(LinkThread, Mailbox<Command>)> {
        let poll = Poll::new()?;
        let (mailbox, commands) = mailbox(poll.registry(), WAKER)?;
        let groups =
            netlink::GROUP_LINK | netlink::GROUP_IPV4_ADDRESS | netlink::GROUP_IPV6_ADDRESS;
        let socket = NetlinkSocket::open(groups, true, Duration::ZERO)?;
        if let Err(e) = socket.set_receive_buffer(RECEIVE_BUFFER) {
            debug!("netlink receive buffer: {e}");
        }
        poll.registry().register(
            &mut SourceFd(&socket.as_raw_fd()),
            SOCKET,
            Interest::READABLE,
        )?;
        let mut thread = LinkThread {
            poll,
            commands,
            socket,
            listeners,
            links: HashMap::new(),
            // A dump datagram is at most 32 KiB; notifications are smaller.
            buffer: vec![0; 32 * 1024],
            out: Vec::new(),
            seq: 0,
            dumping: false,
            dump_again: false,
        };
        thread.dump()?;
        Ok((thread, mailbox))
    }

    fn dump(&mut self) -> io::Result<()> {
        if self.dumping {
            self.dump_again = true;
            return Ok(());
        }
        self.seq = self.seq.wrapping_add(1);
        netlink::dump_request(
            &mut self.out,
            netlink::RTM_GETLINK,
            netlink::AF_UNSPEC,
            self.seq,
        );
        self.socket.send(&self.out)?;
        self.dumping = true;
        Ok(())
    }

    /// Runs until `Shutdown`.
    pub fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(8);
        let mut pending = false;
        loop {
            let timeout = pending.then_some(Duration::ZERO);
            wait(&mut self.poll, &mut events, timeout)?;
            if let Some(Command::Shutdown) = self.commands.try_recv() {
                return Ok(());
            }
            if pending || events.iter().any(|e| e.token() == SOCKET) {
                pending = !self.receive()?;
            }
        }
    }

    /// Reads up to the per-wake cap; true when the socket is empty.
    fn receive(&mut self) -> io::Result<bool> {
        for _ in 0..DATAGRAMS_PER_WAKE {
            let len = match self.socket.recv(&mut self.buffer) {
                Ok(Some(len)) => len,
                Ok(None) => return Ok(true),
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    warn!("link events were lost (receive queue full); reading every link again");
                    self.dumping = false;
                    self.dump()?;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let messages: Vec<Result<Message, crate::wire::Error>> =
                netlink::messages(&self.buffer[..len]).collect();
            for message in messages {
                match message {
                    Ok(message) => self.handle(message)?,
                    Err(e) => warn!("dropped a netlink message: {e}"),
                }
            }
        }
        Ok(false)
    }

    fn handle(&mut self, message: Message) -> io::Result<()> {
        match message {
            Message::Link(link) => {
                // A name seen under another index: deleted and re-created.
                self.links
                    .retain(|index, old| *index == link.index || old.name != link.name);
                let changed = self.links.get(&link.index).map_or(true, |old| {
                    old.name != link.name || old.usable() != link.usable() || old.mac != link.mac
                });
                if changed {
                    debug!(
                        "{} (index {}): {}",
                        link.name,
                        link.index,
                        if link.usable() { "up" } else { "down" }
                    );
                    self.tell(state_of(&link, true));
                }
                self.links.insert(link.index, link);
            }
            Message::LinkGone(link) => {
                self.links.remove(&link.index);
                debug!("{} (index {}): deleted", link.name, link.index);
                self.tell(state_of(&link, false));
            }
            Message::Address { added, index, ip } => {
                let interface = self.links.get(&index).map(|l| l.name.clone());
                let _ = self.listeners.election.send(ElectionCommand::Address {
                    ip,
                    interface,
                    added,
                });
            }
            Message::Done { .. } => {
                self.dumping = false;
                if std::mem::take(&mut self.dump_again) {
                    self.dump()?;
                }
            }
            Message::Ack { errno, .. } if errno != 0 => {
                warn!("link dump refused: {}", io::Error::from_raw_os_error(errno));
                self.dumping = false;
            }
            _ => {}
        }
        Ok(())
    }

    fn tell(&self, state: LinkState) {
        let _ = self
            .listeners
            .election
            .send(ElectionCommand::Link(state.clone()));
        let _ = self
            .listeners
            .responder
            .send(ResponderCommand::Link(state.clone()));
        let _ = self.listeners.actions.send(ActionsCommand::Link(state));
    }
}
