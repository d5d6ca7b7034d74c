//! A byte budget for response data held in memory: file chunks that have been read but not yet
//! handed to the kernel. Without it, a client that asks for many large files and never reads
//! makes the server buffer a chunk (and a read-ahead) per request, and memory grows with the
//! number of such requests. With it, a read first reserves its bytes, from its connection's
//! share and from the whole server's, and waits when there is no room; the reservation is
//! released when the connection drops the chunk (written out, or the stream closed).
//!
//! Chunks also get smaller as room runs short, so a connection whose socket is not draining
//! holds little, and many of them are needed to use up the server's share.
//!
//! So that clients which stopped reading cannot starve everyone else by holding the whole
//! server share (until the no-progress timeout closes them), every connection also owns a
//! small floor of [`MIN_CHUNK`] bytes of its own: when the shared room is gone, it still sends
//! one small chunk at a time. Memory for response data is therefore bounded by
//! `buffer_memory + open connections × MIN_CHUNK`.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The smallest read when room is short: a few TLS records, one HTTP/2 frame.
pub const MIN_CHUNK: usize = 16 * 1024;

/// The server-wide share, made once at start-up.
#[derive(Clone)]
pub struct Budget {
    global: Arc<Semaphore>,
    global_total: usize,
    per_connection: usize,
    /// The most bytes held at once since the last [`Budget::take_peak`].
    peak: Arc<AtomicUsize>,
}

impl Budget {
    /// `total`: bytes for all connections; `per_connection`: for one (at most `total`).
    pub fn new(total: usize, per_connection: usize) -> Budget {
        let per_connection = per_connection.clamp(MIN_CHUNK, total.max(MIN_CHUNK));
        let total = total.max(per_connection);
        Budget {
            global: Arc::new(Semaphore::new(total)),
            global_total: total,
            per_connection,
            peak: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// The share of one new connection.
    pub fn connection(&self) -> ConnectionBudget {
        ConnectionBudget {
            server: self.clone(),
            conn: Arc::new(Semaphore::new(self.per_connection)),
            floor: Arc::new(Semaphore::new(MIN_CHUNK)),
        }
    }

    /// Bytes held now, all connections together.
    pub fn held(&self) -> usize {
        self.global_total - self.global.available_permits()
    }

    /// The peak since the last call, and starts a new one.
    pub fn take_peak(&self) -> usize {
        self.peak.swap(self.held(), Relaxed)
    }

    fn note_held(&self) {
        self.peak.fetch_max(self.held(), Relaxed);
    }
}

/// One connection's share, handed to each response body on the connection.
#[derive(Clone)]
pub struct ConnectionBudget {
    server: Budget,
    conn: Arc<Semaphore>,
    /// The connection's own [`MIN_CHUNK`], used when the shared room is gone.
    floor: Arc<Semaphore>,
}

/// Bytes reserved for one chunk; given back on drop.
pub enum Held {
    /// From the connection's share and the server's.
    Shared {
        _conn: OwnedSemaphorePermit,
        _global: OwnedSemaphorePermit,
    },
    /// From the connection's floor.
    Floor(OwnedSemaphorePermit),
}

impl ConnectionBudget {
    /// How long the next read of up to `want` bytes should be: all of it while there is room,
    /// less as the connection's or the server's room shrinks, never under [`MIN_CHUNK`] (or
    /// `want`, if smaller).
    pub fn chunk_len(&self, want: usize) -> usize {
        let room = self
            .conn
            .available_permits()
            .min(self.server.global.available_permits() / 4);
        want.min(room.max(MIN_CHUNK))
            .min(self.server.per_connection)
    }

    /// Reserves `len` bytes of shared room now, if there is some.
    pub fn try_reserve(&self, len: usize) -> Option<Held> {
        let n = u32::try_from(len).ok()?;
        let conn = self.conn.clone().try_acquire_many_owned(n).ok()?;
        let global = self.server.global.clone().try_acquire_many_owned(n).ok()?;
        self.server.note_held();
        Some(Held::Shared {
            _conn: conn,
            _global: global,
        })
    }

    /// Reserves room for a chunk of `len` bytes, waiting if there is none: shared room for all
    /// of it, or the connection's floor for up to [`MIN_CHUNK`] of it, whichever comes first.
    /// Returns the length actually reserved.
    pub async fn reserve(self, len: usize) -> (usize, Held) {
        let len = len.min(self.server.per_connection);
        if let Some(held) = self.try_reserve(len) {
            return (len, held);
        }
        let small = len.min(MIN_CHUNK);
        // `small` ≤ MIN_CHUNK, the floor's size: fits in u32.
        let floor = self.floor.clone().acquire_many_owned(small as u32);
        tokio::select! {
            biased;
            held = self.reserve_shared(len) => (len, held),
            Ok(floor) = floor => (small, Held::Floor(floor)),
        }
    }

    /// Waits for `len` bytes of shared room: connection first, then server, always in that
    /// order, so two waiters never hold each other up.
    async fn reserve_shared(&self, len: usize) -> Held {
        let n = u32::try_from(len).unwrap_or(u32::MAX);
        // The semaphores are never closed, so acquiring cannot fail.
        let conn = self
            .conn
            .clone()
            .acquire_many_owned(n)
            .await
            .expect("budget semaphores are never closed");
        let global = self
            .server
            .global
            .clone()
            .acquire_many_owned(n)
            .await
            .expect("budget semaphores are never closed");
        self.server.note_held();
        Held::Shared {
            _conn: conn,
            _global: global,
        }
    }
}

/// A chunk's bytes together with their reservation, so handing the `Bytes` on (hyper, h2
/// splitting it into frames) keeps the bytes counted until the last piece is dropped.
struct Chunk {
    data: BytesMut,
    _held: Held,
}

impl AsRef<[u8]> for Chunk {
    fn as_ref(&self) -> &[u8] {
        &self.data
    }
}

/// Freezes `data`, tied to its reservation if it has one.
pub fn freeze(data: BytesMut, held: Option<Held>) -> Bytes {
    match held {
        None => data.freeze(),
        Some(held) => Bytes::from_owner(Chunk { data, _held: held }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bytes_stay_counted_until_every_piece_is_dropped() {
        let budget = Budget::new(256 * 1024, 64 * 1024);
        let conn = budget.connection();
        let held = conn.try_reserve(40 * 1024).unwrap();
        let mut bytes = freeze(BytesMut::zeroed(40 * 1024), Some(held));
        assert_eq!(budget.held(), 40 * 1024);
        let front = bytes.split_to(1000);
        drop(bytes);
        assert_eq!(budget.held(), 40 * 1024);
        drop(front);
        assert_eq!(budget.held(), 0);
    }

    #[tokio::test]
    async fn chunks_shrink_as_room_runs_out_and_a_full_connection_waits() {
        let budget = Budget::new(1024 * 1024, 64 * 1024);
        let conn = budget.connection();
        assert_eq!(conn.chunk_len(256 * 1024), 64 * 1024);
        let first = conn.try_reserve(48 * 1024).unwrap();
        assert_eq!(conn.chunk_len(256 * 1024), MIN_CHUNK);
        assert!(conn.try_reserve(32 * 1024).is_none());
        // No shared room: the connection's own floor.
        let (len, floor) = conn.clone().reserve(32 * 1024).await;
        assert_eq!(len, MIN_CHUNK);
        assert!(matches!(floor, Held::Floor(_)));
        let waiting = tokio::spawn(conn.clone().reserve(32 * 1024));
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        drop(first);
        let (len, second) = waiting.await.unwrap();
        assert_eq!(len, 32 * 1024);
        assert_eq!(budget.held(), 32 * 1024);
        // Another connection has its own share.
        assert!(budget.connection().try_reserve(64 * 1024).is_some());
        drop((second, floor));
        assert_eq!(budget.take_peak(), 96 * 1024);
    }

    #[tokio::test]
    async fn a_connection_gets_its_floor_when_others_hold_everything() {
        let budget = Budget::new(64 * 1024, 64 * 1024);
        let hog = budget.connection();
        let _all = hog.try_reserve(64 * 1024).unwrap();
        let (len, _held) = budget.connection().reserve(256 * 1024).await;
        assert_eq!(len, MIN_CHUNK);
    }
}
