//! The control thread: a Unix socket server speaking the protocol in
//! `protocol`. Questions and orders for the election (and, for metrics, the
//! responder) go over channels as typed messages and their typed answers
//! come back to be written as JSON; `add`, `remove` and `reload` are the
//! service catalogue's, which this thread keeps (`catalogue`).

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use log::{debug, info, warn};
use mio::net::{UnixListener, UnixStream};
use mio::{Events, Interest, Poll, Token};

use super::answer;
use super::catalogue::Keeper;
use super::protocol::{parse_request, Code, Request, Response, MAX_LINE};
use crate::channel::{mailbox, wait, Inbox, Mailbox};
use crate::config::Control;
use crate::message::{
    ConflictView, ControlEvent as Event, ElectionAnswer, ElectionAsk, ElectionCommand,
    ResponderCommand, ResponderCounters as Counters,
};

use crate::sys::cred;

/// Most clients connected at once; one more gets `busy` and is closed.
pub const MAX_CLIENTS: usize = 32;
/// A reply not written out within this is dropped with its client.
const WRITE_LIMIT: usize = 4 << 20;

const WAKER: Token = Token(0);
const LISTENER: Token = Token(1);
const FIRST_CLIENT: usize = 2;

/// Who may do what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rights {
    Full,
    ReadOnly,
    None,
}

struct Client {
    stream: UnixStream,
    rights: Rights,
    input: Vec<u8>,
    /// How much of `input` is handled (removed in one go, not per line).
    consumed: usize,
    output: Vec<u8>,
    last_active: Instant,
    /// The request in flight; further lines wait until it is answered.
    waiting: Option<u64>,
    /// Close once the output is written.
    closing: bool,
}

impl Client {
    /// Bytes read and not yet handled.
    fn unhandled(&self) -> usize {
        self.input.len() - self.consumed
    }

    /// Drops the handled bytes.
    fn compact(&mut self) {
        self.input.drain(..self.consumed);
        self.consumed = 0;
    }
}

struct Pending {
    client: Token,
    /// The answer also needs the responder's counters and conflicts
    /// (`metrics`, `status`).
    with_responder: bool,
    election: Option<ElectionAnswer>,
    responder: Option<(Box<Counters>, Vec<ConflictView>)>,
}

/// The control thread's state, built (socket bound) before it runs.
pub struct ControlServer {
    poll: Poll,
    listener: UnixListener,
    path: PathBuf,
    events: Inbox<Event>,
    mailbox: Mailbox<Event>,
    election: Mailbox<ElectionCommand>,
    responder: Mailbox<ResponderCommand>,
    keeper: Keeper,
    clients: HashMap<Token, Client>,
    pending: HashMap<u64, Pending>,
    next_token: usize,
    next_id: u64,
    owner_uid: u32,
    group: Option<(u32, Vec<String>)>,
    /// A client silent this long is disconnected.
    idle: Duration,
}

/// The gid and member names of group `name`, from /etc/group.
fn group_entry(name: &str) -> Option<(u32, Vec<String>)> {
    let text = std::fs::read_to_string("/etc/group").ok()?;
    text.lines().find_map(|line| {
        let mut fields = line.split(':');
        let group = fields.next()?;
        let _password = fields.next()?;
        let gid = fields.next()?.parse().ok()?;
        let members = fields
            .next()
            .unwrap_or("")
            .split(',')
            .filter(|m| !m.is_empty())
            .map(str::to_string);
        (group == name).then(|| (gid, members.collect()))
    })
}

/// The name of user `uid`, from /etc/passwd.
fn user_name(uid: u32) -> Option<String> {
    let text = std::fs::read_to_string("/etc/passwd").ok()?;
    text.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let _password = fields.next()?;
        (fields.next()?.parse::<u32>().ok()? == uid).then(|| name.to_string())
    })
}

/// Removes a socket file no daemon answers on; fails if one does.
fn clear_stale(path: &Path) -> io::Result<()> {
    if std::fs::symlink_metadata(path).is_err() {
        return Ok(());
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("another daemon answers on {}", path.display()),
        )),
        Err(_) => std::fs::remove_file(path),
    }
}

impl ControlServer {
    /// Binds the control socket (replacing a stale file) with mode 0600, or
    /// 0660 and the read-only group.
    pub fn new(
        control: &Control,
        keeper: Keeper,
        election: Mailbox<ElectionCommand>,
        responder: Mailbox<ResponderCommand>,
    ) -> io::Result<(ControlServer, Mailbox<Event>)> {
        let path = PathBuf::from(&control.socket);
        let context = |what: &str, e: io::Error| {
            io::Error::new(e.kind(), format!("{}: {what}: {e}", path.display()))
        };
        let group = match &control.group {
            None => None,
            Some(name) => Some(group_entry(name).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("control.group: no group named {name:?}"),
                )
            })?),
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| context("create directory", e))?;
        }
        clear_stale(&path).map_err(|e| context("stale socket", e))?;
        // The socket is created with its final mode (no chmod by path
        // afterwards), and its group is set without following a link: a
        // file swapped in at the path can never be given our mode or group.
        let mode: u32 = if group.is_some() { 0o660 } else { 0o600 };
        let listener = crate::sys::process::with_umask(0o777 & !mode, || UnixListener::bind(&path))
            .map_err(|e| context("bind", e))?;
        if let Some((gid, _)) = &group {
            std::os::unix::fs::lchown(&path, None, Some(*gid)).map_err(|e| context("chown", e))?;
        }
        let poll = Poll::new()?;
        let mut listener = listener;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let (mailbox, events) = mailbox(poll.registry(), WAKER)?;
        info!("control socket {} (mode {mode:o})", path.display());
        Ok((
            ControlServer {
                poll,
                listener,
                path,
                events,
                mailbox: mailbox.clone(),
                election,
                responder,
                keeper,
                clients: HashMap::new(),
                pending: HashMap::new(),
                next_token: FIRST_CLIENT,
                next_id: 1,
                owner_uid: cred::effective_uid(),
                group,
                idle: control.idle(),
            },
            mailbox,
        ))
    }

    fn rights(&self, stream: &UnixStream) -> Rights {
        let Ok(peer) = cred::peer(stream) else {
            return Rights::None;
        };
        if peer.uid == 0 || peer.uid == self.owner_uid {
            return Rights::Full;
        }
        match &self.group {
            Some((gid, members)) => {
                let member = peer.gid == *gid
                    || user_name(peer.uid).is_some_and(|name| members.contains(&name));
                if member {
                    Rights::ReadOnly
                } else {
                    Rights::None
                }
            }
            None => Rights::None,
        }
    }

    /// Serves until `Event::Stop`; removes the socket file on the way out.
    pub fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(64);
        loop {
            // Clients waiting for an answer are never idle (see drop_idle).
            let timeout = self
                .clients
                .values()
                .filter(|c| c.waiting.is_none())
                .map(|c| (c.last_active + self.idle).saturating_duration_since(Instant::now()))
                .min();
            wait(&mut self.poll, &mut events, timeout)?;
            let mut ready = Vec::new();
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(),
                    WAKER => {}
                    token => ready.push(token),
                }
            }
            while let Some(event) = self.events.try_recv() {
                if let Event::Stop = event {
                    return Ok(());
                }
                self.on_event(event);
            }
            for token in ready {
                self.serve(token);
            }
            self.drop_idle();
        }
    }

    fn accept(&mut self) {
        loop {
            let (mut stream, _) = match self.listener.accept() {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    warn!("control: accept failed: {e}");
                    return;
                }
            };
            let rights = self.rights(&stream);
            // The last slot is kept for a client with full rights (the
            // administrator), whoever holds the others.
            let room = if rights == Rights::Full {
                MAX_CLIENTS
            } else {
                MAX_CLIENTS - 1
            };
            if self.clients.len() >= room {
                // Best effort: the socket buffer takes one short line.
                let line = Response::error(
                    Code::Busy,
                    format!("{MAX_CLIENTS} clients are connected; try again"),
                );
                let _ = stream.write(&line.to_line());
                continue;
            }
            let token = Token(self.next_token);
            self.next_token += 1;
            let interest = Interest::READABLE | Interest::WRITABLE;
            if let Err(e) = self.poll.registry().register(&mut stream, token, interest) {
                warn!("control: cannot watch a client: {e}");
                continue;
            }
            debug!("control: client {} connected ({rights:?})", token.0);
            self.clients.insert(
                token,
                Client {
                    stream,
                    rights,
                    input: Vec::new(),
                    consumed: 0,
                    output: Vec::new(),
                    last_active: Instant::now(),
                    waiting: None,
                    closing: false,
                },
            );
        }
    }

    /// Reads what a client sent, handles complete lines, writes what is due.
    /// Writes what is pending, then reads and handles the client's lines:
    /// only while it has no request in flight, no answer unwritten and
    /// less than a line unhandled. The rest waits in the kernel's socket
    /// buffer, so a client that floods or never reads costs a line and an
    /// answer of memory, never more.
    fn serve(&mut self, token: Token) {
        self.flush(token);
        let mut open = true;
        let mut chunk = [0u8; 4096];
        loop {
            let Some(client) = self.clients.get_mut(&token) else {
                return;
            };
            let busy = client.waiting.is_some() || client.closing || !client.output.is_empty();
            if busy || client.unhandled() > MAX_LINE {
                break;
            }
            match client.stream.read(&mut chunk) {
                Ok(0) => {
                    open = false;
                    break;
                }
                Ok(n) => client.input.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    open = false;
                    break;
                }
            }
            self.handle_lines(token);
            self.flush(token);
        }
        if !open {
            self.close(token);
        }
    }

    fn handle_lines(&mut self, token: Token) {
        loop {
            let Some(client) = self.clients.get_mut(&token) else {
                return;
            };
            if client.waiting.is_some() || client.closing {
                client.compact();
                return;
            }
            let rest = &client.input[client.consumed..];
            let end = rest.iter().position(|b| *b == b'\n');
            let too_long = match end {
                Some(end) => end >= MAX_LINE,
                None => rest.len() > MAX_LINE,
            };
            if too_long {
                let response = Response::error(
                    Code::TooLong,
                    format!("a request is at most {MAX_LINE} bytes"),
                );
                client.output.extend_from_slice(&response.to_line());
                client.input.clear();
                client.consumed = 0;
                client.closing = true;
                return;
            }
            let Some(end) = end else {
                client.compact();
                return;
            };
            let line = rest[..end].to_vec();
            client.consumed += end + 1;
            let line = line.strip_suffix(b"\r").unwrap_or(&line);
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            // Blank lines do not keep a client's slot: only requests do.
            client.last_active = Instant::now();
            let rights = client.rights;
            match parse_request(line) {
                Err(response) => client.output.extend_from_slice(&response.to_line()),
                Ok(request)
                    if rights == Rights::None
                        || (rights == Rights::ReadOnly && request.is_mutating()) =>
                {
                    let response =
                        Response::error(Code::Forbidden, "this client may not use that command");
                    client.output.extend_from_slice(&response.to_line());
                }
                Ok(request) => self.forward(token, request),
            }
        }
    }

    fn forward(&mut self, token: Token, request: Request) {
        let ask = match request {
            Request::Status => ElectionAsk::Status,
            Request::Services => ElectionAsk::Services,
            Request::Metrics => ElectionAsk::Metrics,
            Request::Drain => ElectionAsk::Drain(true),
            Request::Undrain => ElectionAsk::Drain(false),
            Request::Handover { service } => ElectionAsk::Handover(service),
            // The catalogue's: answered here, once the change is handed on.
            Request::Add { service } => {
                let response = self.keeper.add(service);
                return self.answer(token, response);
            }
            Request::Remove { service } => {
                let response = self.keeper.remove(&service);
                return self.answer(token, response);
            }
            Request::Reload => {
                let response = self.keeper.reload();
                return self.answer(token, response);
            }
        };
        let id = self.next_id;
        self.next_id += 1;
        let with_responder = matches!(ask, ElectionAsk::Metrics | ElectionAsk::Status);
        self.pending.insert(
            id,
            Pending {
                client: token,
                with_responder,
                election: None,
                responder: None,
            },
        );
        if let Some(client) = self.clients.get_mut(&token) {
            client.waiting = Some(id);
        }
        let reply_to = self.mailbox.clone();
        let sent = self
            .election
            .send(ElectionCommand::Ask { id, ask, reply_to })
            .is_ok();
        let counted = !with_responder
            || self
                .responder
                .send(ResponderCommand::Counters {
                    id,
                    reply_to: self.mailbox.clone(),
                })
                .is_ok();
        if !sent || !counted {
            self.pending.remove(&id);
            self.answer(
                token,
                Response::error(Code::Internal, "the daemon is stopping"),
            );
        }
    }

    fn on_event(&mut self, event: Event) {
        let id = match event {
            Event::Answer { id, answer } => {
                if let Some(pending) = self.pending.get_mut(&id) {
                    pending.election = Some(answer);
                }
                id
            }
            Event::Counters {
                id,
                counters,
                conflicts,
            } => {
                if let Some(pending) = self.pending.get_mut(&id) {
                    pending.responder = Some((counters, conflicts));
                }
                id
            }
            Event::Reload => {
                match self.keeper.reload() {
                    Response::Ok(data) => info!("reloaded: {data}"),
                    Response::Error(error) => warn!("reload refused: {}", error.message),
                }
                return;
            }
            Event::Stop => return,
        };
        let done = self.pending.get(&id).is_some_and(|pending| {
            pending.election.is_some() && (!pending.with_responder || pending.responder.is_some())
        });
        if !done {
            return;
        }
        let Some(pending) = self.pending.remove(&id) else {
            return;
        };
        let response = match pending.election {
            Some(reply) => answer::response(
                reply,
                pending
                    .responder
                    .as_ref()
                    .map(|(counters, conflicts)| (&**counters, conflicts.as_slice())),
            ),
            None => Response::error(Code::Internal, "no reply"),
        };
        self.answer(pending.client, response);
        // Its next lines, and what waits in the socket since.
        self.handle_lines(pending.client);
        self.serve(pending.client);
    }

    fn answer(&mut self, token: Token, response: Response) {
        if let Some(client) = self.clients.get_mut(&token) {
            client.waiting = None;
            client.output.extend_from_slice(&response.to_line());
        }
        self.flush(token);
    }

    fn flush(&mut self, token: Token) {
        let Some(client) = self.clients.get_mut(&token) else {
            return;
        };
        while !client.output.is_empty() {
            match client.stream.write(&client.output) {
                Ok(0) => break,
                Ok(n) => {
                    client.output.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // EPIPE and friends: an ordinary disconnect.
                Err(_) => {
                    self.close(token);
                    return;
                }
            }
        }
        let overfull = client.output.len() > WRITE_LIMIT;
        if (client.closing && client.output.is_empty()) || overfull {
            self.close(token);
        }
    }

    fn close(&mut self, token: Token) {
        if let Some(mut client) = self.clients.remove(&token) {
            let _ = self.poll.registry().deregister(&mut client.stream);
            debug!("control: client {} gone", token.0);
        }
        self.pending.retain(|_, p| p.client != token);
    }

    fn drop_idle(&mut self) {
        let now = Instant::now();
        let idle: Vec<Token> = self
            .clients
            .iter()
            .filter(|(_, c)| {
                now.saturating_duration_since(c.last_active) >= self.idle && c.waiting.is_none()
            })
            .map(|(t, _)| *t)
            .collect();
        for token in idle {
            self.close(token);
        }
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
