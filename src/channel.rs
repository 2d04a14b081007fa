//! A channel into a thread's poll loop: every send wakes the loop; and the
//! loops' one way of waiting.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use mio::{Events, Poll, Registry, Token, Waker};

/// The sending side: a channel paired with the receiving loop's `Waker`.
#[derive(Debug)]
pub struct Mailbox<T> {
    sender: Sender<T>,
    waker: Arc<Waker>,
}

impl<T> Clone for Mailbox<T> {
    fn clone(&self) -> Self {
        Mailbox {
            sender: self.sender.clone(),
            waker: Arc::clone(&self.waker),
        }
    }
}

impl<T> Mailbox<T> {
    /// Sends `message` and wakes the loop. Fails only when the loop is gone.
    pub fn send(&self, message: T) -> Result<(), T> {
        self.sender.send(message).map_err(|e| e.into_inner())?;
        // A failed wake-up leaves the message queued; the loop reads it on
        // its next turn, which every loop bounds by a deadline.
        if let Err(e) = self.waker.wake() {
            log::warn!("waking a thread failed: {e}");
        }
        Ok(())
    }
}

/// Creates a mailbox whose waker is registered in `registry` as `token`.
pub fn mailbox<T>(registry: &Registry, token: Token) -> io::Result<(Mailbox<T>, Receiver<T>)> {
    let waker = Arc::new(Waker::new(registry, token)?);
    let (sender, receiver) = crossbeam_channel::unbounded();
    Ok((Mailbox { sender, waker }, receiver))
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
