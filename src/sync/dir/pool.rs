//! The files a walk must read, read by a few threads while the walk goes on, and handed back
//! in the order the walk met them.
//!
//! A cold sync of many small files spends its time in system calls (open, read, the unnamed
//! file, its write and link) and in hashing, one file after the other: other cores stay idle.
//! Here the walk stays one thread and in path order; each file to ingest goes to a worker, and
//! what the walk met (ingested or not) waits in a window, in order, until it is done. The
//! walk takes items back from the front only, so the snapshot's order, the reports and the
//! first error are those of a walk that reads every file itself.
//!
//! Memory is bounded: at most [`WINDOW`] items wait, and a worker reads a large file through
//! the store's fixed buffer, never whole. With one worker (a one-core machine) nothing is
//! spawned: each file is read as it is handed in.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Mutex;

use crate::store::{IngestMode, Store, StoreError, Stored};

/// How many items the walk may have met and not yet taken back: enough to keep the workers
/// busy while one of them reads a large file at the front.
pub const WINDOW: usize = 256;

/// At most this many workers: past that the disk, not the CPU, sets the pace.
const MAX_WORKERS: usize = 4;

/// What a worker made of one file.
pub type Ingested = Result<Stored, StoreError>;

/// How many threads ingest files for `store` on this machine: one per core, up to
/// [`MAX_WORKERS`], when the store copies what it ingests. A store that may hard-link
/// (`ingest = auto`) ingests on the walk's thread: two files of the same bytes linked at once
/// both touch the inode that becomes the object (a link made, then undone on `EEXIST`), which
/// moves its ctime after the other one stamped it, and the object would then be refused as
/// changed on disk. One at a time, the second finds the object and links nothing.
pub fn workers(store: &Store) -> usize {
    if store.ingest_mode() != IngestMode::Copy {
        return 1;
    }
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(MAX_WORKERS)
}

/// One file for a worker: its number in the walk's order and its (resolved) path.
struct Job {
    seq: u64,
    path: PathBuf,
}

/// An item of the window: what the walk knows of it (`T`), and the file read for it, if any.
struct Slot<T> {
    met: T,
    state: State,
}

enum State {
    /// Nothing to read (the walk reused the previous entry).
    Ready,
    /// With a worker.
    Reading,
    Read(Ingested),
}

/// The window of items the walk met, in order, and the workers reading their files.
pub struct Pool<'s, T> {
    store: &'s Store,
    window: VecDeque<Slot<T>>,
    /// The number of the window's first item.
    first: u64,
    limit: usize,
    /// `None` with no worker: files are read as they are handed in.
    jobs: Option<Sender<Job>>,
    results: Option<Receiver<(u64, Ingested)>>,
    /// Set when the walk gives up: workers drop what is queued.
    stop: &'s AtomicBool,
}

/// Runs `walk` with a pool of `workers` threads reading files from `store` (none if
/// `workers <= 1`). Every worker has ended when this returns, whatever `walk` returned: a
/// walk that fails stops them after the file each is reading.
pub fn with_pool<T, R>(
    store: &Store,
    workers: usize,
    walk: impl FnOnce(&mut Pool<'_, T>) -> R,
) -> R {
    with_pool_window(store, workers, WINDOW, walk)
}

/// [`with_pool`] with a window of `limit` items.
pub fn with_pool_window<T, R>(
    store: &Store,
    workers: usize,
    limit: usize,
    walk: impl FnOnce(&mut Pool<'_, T>) -> R,
) -> R {
    let stop = AtomicBool::new(false);
    let limit = limit.max(1);
    if workers <= 1 {
        let mut pool = Pool::new(store, limit, None, None, &stop);
        return walk(&mut pool);
    }
    let (jobs, queued) = channel::<Job>();
    let (done, results) = channel();
    let queued = Mutex::new(queued);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let done = done.clone();
            let (queued, stop) = (&queued, &stop);
            scope.spawn(move || work(store, queued, done, stop));
        }
        drop(done);
        let mut pool = Pool::new(store, limit, Some(jobs), Some(results), &stop);
        let result = walk(&mut pool);
        // Closes the queue: each worker ends after its file, and the scope waits for them.
        drop(pool);
        result
    })
}

/// A worker: takes files from the queue until it closes or the walk stops, and sends back
/// what each gave. A panic is sent back as an error (so the walk never waits for a file that
/// will not come), then goes on up to the scope.
fn work(
    store: &Store,
    queued: &Mutex<Receiver<Job>>,
    done: Sender<(u64, Ingested)>,
    stop: &AtomicBool,
) {
    loop {
        let job = match queued.lock() {
            Ok(queue) => queue.recv(),
            Err(_) => return,
        };
        let Ok(Job { seq, path }) = job else {
            return;
        };
        if stop.load(Ordering::Relaxed) {
            return;
        }
        match catch_unwind(AssertUnwindSafe(|| store.ingest_resolved(&path))) {
            Ok(ingested) => {
                if done.send((seq, ingested)).is_err() {
                    return;
                }
            }
            Err(panic) => {
                stop.store(true, Ordering::Relaxed);
                let failed = StoreError {
                    action: "ingest",
                    path,
                    source: std::io::Error::other("the reading thread panicked"),
                };
                let _ = done.send((seq, Err(failed)));
                std::panic::resume_unwind(panic);
            }
        }
    }
}

impl<'s, T> Pool<'s, T> {
    fn new(
        store: &'s Store,
        limit: usize,
        jobs: Option<Sender<Job>>,
        results: Option<Receiver<(u64, Ingested)>>,
        stop: &'s AtomicBool,
    ) -> Pool<'s, T> {
        Pool {
            store,
            window: VecDeque::with_capacity(limit),
            first: 0,
            limit,
            jobs,
            results,
            stop,
        }
    }

    /// Adds an item that needs no file read.
    pub fn ready(&mut self, met: T) {
        self.window.push_back(Slot {
            met,
            state: State::Ready,
        });
    }

    /// Adds an item whose file at `path` (resolved) must be ingested.
    pub fn ingest(&mut self, met: T, path: PathBuf) {
        let state = match &self.jobs {
            None => State::Read(self.store.ingest_resolved(&path)),
            Some(jobs) => {
                let seq = self.first + self.window.len() as u64;
                match jobs.send(Job { seq, path }) {
                    Ok(()) => State::Reading,
                    // Every worker is gone (one panicked): read it here.
                    Err(unsent) => State::Read(self.store.ingest_resolved(&unsent.0.path)),
                }
            }
        };
        self.window.push_back(Slot { met, state });
    }

    /// The first item of the window, with its file's outcome (`None`: nothing was read), if it
    /// is done; when `wait`, or when the window is full, waits for it. `None` once the window
    /// is empty, or its first item is not done and need not be waited for.
    pub fn next(&mut self, wait: bool) -> Option<(T, Option<Ingested>)> {
        let wait = wait || self.window.len() >= self.limit;
        loop {
            self.collect(false);
            let front = self.window.front()?;
            if !matches!(front.state, State::Reading) {
                break;
            }
            if !wait {
                return None;
            }
            if !self.collect(true) {
                // Every worker is gone without an answer: cannot happen, as a worker that
                // fails or panics answers first; never wait for ever all the same.
                let slot = self.window.front_mut()?;
                slot.state = State::Read(Err(StoreError {
                    action: "ingest",
                    path: PathBuf::new(),
                    source: std::io::Error::other("the reading threads stopped"),
                }));
            }
        }
        let slot = self.window.pop_front()?;
        self.first += 1;
        let ingested = match slot.state {
            State::Ready => None,
            State::Read(ingested) => Some(ingested),
            State::Reading => unreachable!("taken only once read"),
        };
        Some((slot.met, ingested))
    }

    /// How many items wait in the window.
    #[cfg(test)]
    pub fn waiting(&self) -> usize {
        self.window.len()
    }

    /// Gives up on every item left (the walk failed at the first): the workers stop after
    /// the file each is reading, and [`Pool::next`] has nothing more.
    pub fn abandon(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.jobs = None;
        self.results = None;
        self.window.clear();
    }

    /// Files the workers read since the last look, put in their slots; with `block`, waits
    /// for one first. False if the workers are all gone.
    fn collect(&mut self, block: bool) -> bool {
        let Some(results) = self.results.take() else {
            return true;
        };
        let mut alive = true;
        if block {
            match results.recv() {
                Ok(result) => self.put(result),
                Err(_) => alive = false,
            }
        }
        while let Ok(result) = results.try_recv() {
            self.put(result);
        }
        self.results = Some(results);
        alive
    }

    fn put(&mut self, (seq, ingested): (u64, Ingested)) {
        let index = usize::try_from(seq - self.first).expect("within the window");
        self.window[index].state = State::Read(ingested);
    }
}

impl<T> Drop for Pool<'_, T> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
