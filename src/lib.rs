//! Parley: a live chat server.
