//! The responder's thread (filled in below).
