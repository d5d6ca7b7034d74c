//! The threads of a delta: all cores index the old image, then scanning threads take
//! segments of the new image as they free up while the calling thread writes the segments'
//! commands in order. A queue between them bounds the commands held and carries the first
//! error (or a panic) to everyone, so that nothing waits forever.

use std::io::{self, Write};

use super::delta::{write_delta, Command};
use super::hash::Weights;
use super::index::Index;
use super::scan::Scan;
use super::source::Source;
use super::{Params, Stats};

/// Bytes of the new image a thread scans at a time. Segments are handed out as threads free
/// up, so a stretch that is slow to scan (changed data: a lookup per byte) does not leave the
/// other cores idle; each cut costs at most a block of literal.
pub(super) const SEGMENT: u64 = 8 << 20;

/// Largest block size: buffers hold a few blocks.
const MAX_BLOCK: usize = 16 << 20;

/// Commands (24 bytes each) of scanned segments held for the writer at most before threads
/// wait to take more: what bounds memory however large the image and however many its
/// changes, without making fast threads wait for a slow one in the usual case (a few
/// thousand commands for a whole image).
const MAX_HELD: usize = 1 << 19;

/// Writes the delta of `old` and `new` to `out`, scanning `segment` bytes of `new` at a time.
pub(super) fn delta_in_segments(
    old: &dyn Source,
    new: &dyn Source,
    params: Params,
    segment: u64,
    out: &mut impl Write,
) -> io::Result<Stats> {
    let block = params.block.max(16);
    if block > MAX_BLOCK {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("block size {block} is larger than {MAX_BLOCK}"),
        ));
    }
    // A segment shorter than a block could only be a literal.
    let segment = segment.max(4 * block as u64);
    let threads = match params.threads {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    };
    let weights = Weights::new(block);
    let started = std::time::Instant::now();
    let index = Index::build(old, block, &weights, threads)?;
    tracing::debug!(
        blocks = index.entries(),
        buckets = index.buckets(),
        ms = started.elapsed().as_millis() as u64,
        "old image indexed"
    );
    let new_size = new.size();
    let segments = usize::try_from(new_size.div_ceil(segment).max(1))
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "the new image is too large"))?;
    let workers = threads.clamp(1, segments);
    let queue = Queue::new(segments);
    let stats = std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                let _stop = StopOnPanic(&queue);
                let mut scan = Scan::new(&index, &weights, old, new);
                while let Some(j) = queue.take() {
                    let from = j as u64 * segment;
                    let to = (from + segment).min(new_size);
                    queue.put(j, scan.run(from, to));
                }
            });
        }
        // This thread writes, segment after segment, while the others scan.
        let written = write_delta(out, new, segments, |j| queue.wait_for(j));
        if written.is_err() {
            queue.stop();
        }
        written
    })?;
    tracing::debug!(
        ms = started.elapsed().as_millis() as u64,
        "new image scanned, delta written"
    );
    Ok(stats)
}

/// Hands segments of the new image to the scanning threads, and their commands, in order,
/// to the writer.
struct Queue {
    state: std::sync::Mutex<QueueState>,
    changed: std::sync::Condvar,
    segments: usize,
}

struct QueueState {
    /// The next segment to scan.
    next: usize,
    /// Scanned segments' commands, until written.
    done: Vec<Option<Vec<Command>>>,
    /// Commands in `done`.
    held: usize,
    error: Option<io::Error>,
    /// Set on an error, a panic or a failed write: threads take no more segments.
    stopped: bool,
}

impl Queue {
    fn new(segments: usize) -> Queue {
        Queue {
            state: std::sync::Mutex::new(QueueState {
                next: 0,
                done: (0..segments).map(|_| None).collect(),
                held: 0,
                error: None,
                stopped: false,
            }),
            changed: std::sync::Condvar::new(),
            segments,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        // The state stays consistent whatever panicked while holding the lock.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn wait<'a>(
        &self,
        state: std::sync::MutexGuard<'a, QueueState>,
    ) -> std::sync::MutexGuard<'a, QueueState> {
        self.changed
            .wait(state)
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The next segment to scan; `None` once all are taken or the delta has failed.
    fn take(&self) -> Option<usize> {
        let mut state = self.lock();
        loop {
            if state.stopped || state.next >= self.segments {
                return None;
            }
            // The segment the writer waits for is always taken already: no deadlock.
            if state.held < MAX_HELD {
                state.next += 1;
                return Some(state.next - 1);
            }
            state = self.wait(state);
        }
    }

    fn put(&self, segment: usize, commands: io::Result<Vec<Command>>) {
        let mut state = self.lock();
        match commands {
            Ok(commands) => {
                state.held += commands.len();
                state.done[segment] = Some(commands);
            }
            Err(e) => {
                state.error.get_or_insert(e);
                state.stopped = true;
            }
        }
        self.changed.notify_all();
    }

    /// The commands of `segment` once it is scanned; the segments before it must have been
    /// asked for.
    fn wait_for(&self, segment: usize) -> io::Result<Vec<Command>> {
        let mut state = self.lock();
        loop {
            if let Some(e) = state.error.take() {
                return Err(e);
            }
            if state.stopped {
                return Err(io::Error::other("a delta thread stopped"));
            }
            if let Some(commands) = state.done[segment].take() {
                state.held -= commands.len();
                self.changed.notify_all();
                return Ok(commands);
            }
            state = self.wait(state);
        }
    }

    fn stop(&self) {
        self.lock().stopped = true;
        self.changed.notify_all();
    }
}

/// Stops the queue if a scanning thread panics, so that the writer does not wait for it
/// forever (the panic itself comes out of the thread scope).
struct StopOnPanic<'a>(&'a Queue);

impl Drop for StopOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.stop();
        }
    }
}
