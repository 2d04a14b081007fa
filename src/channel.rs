//! A channel into a thread's poll loop: every send wakes the loop; and the
//! loops' one way of waiting. Every channel carries `Letter`s (one type,
//! so the channel code is in the binary once); `Mailbox<T>` and `Inbox<T>`
//! keep each channel to its one message type.

use std::io;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use mio::{Events, Poll, Registry, Token, Waker};

use crate::message::{Letter, Post};

/// The sending side: a channel paired with the receiving loop's `Waker`.
#[derive(Debug)]
pub struct Mailbox<T> {
    sender: Sender<Letter>,
    waker: Arc<Waker>,
    kind: PhantomData<fn(T)>,
}

/// The receiving loop has ended: the message was not delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gone;

impl<T> Clone for Mailbox<T> {
    fn clone(&self) -> Self {
        Mailbox {
            sender: self.sender.clone(),
            waker: Arc::clone(&self.waker),
            kind: PhantomData,
        }
    }
}

impl<T: Post> Mailbox<T> {
    /// Sends `message` and wakes the loop. Fails only when the loop is gone.
    pub fn send(&self, message: T) -> Result<(), Gone> {
        self.sender.send(message.into_letter()).map_err(|_| Gone)?;
        // A failed wake-up leaves the message queued; the loop reads it on
        // its next turn, which every loop bounds by a deadline.
        if let Err(e) = self.waker.wake() {
            log::warn!("waking a thread failed: {e}");
        }
        Ok(())
    }
}

/// The receiving side, for the loop the mailbox wakes.
#[derive(Debug)]
pub struct Inbox<T> {
    receiver: Receiver<Letter>,
    kind: PhantomData<fn() -> T>,
}

impl<T: Post> Inbox<T> {
    /// The next message, if one waits. (Only its mailboxes send here, so
    /// every letter is a `T`; another would be skipped.)
    pub fn try_recv(&self) -> Option<T> {
        loop {
            let letter = self.receiver.try_recv().ok()?;
            if let Some(message) = T::from_letter(letter) {
                return Some(message);
            }
        }
    }
}

/// Creates a mailbox whose waker is registered in `registry` as `token`,
/// and the inbox it delivers to.
pub fn mailbox<T>(registry: &Registry, token: Token) -> io::Result<(Mailbox<T>, Inbox<T>)> {
    let waker = Arc::new(Waker::new(registry, token)?);
    let (sender, receiver) = crossbeam_channel::unbounded();
    let mailbox = Mailbox {
        sender,
        waker,
        kind: PhantomData,
    };
    let inbox = Inbox {
        receiver,
        kind: PhantomData,
    };
    Ok((mailbox, inbox))
}

/// Waits for events as `Poll::poll` does. An interrupted wait returns with
/// no events, a spurious wake-up that every loop takes in its stride (it
/// looks at its channel and deadlines again); any other error ends the loop.
pub fn wait(poll: &mut Poll, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
    match poll.poll(events, timeout) {
        Err(e) if e.kind() == io::ErrorKind::Interrupted => {
            events.clear();
            Ok(())
        }
        other => other,
    }
}
