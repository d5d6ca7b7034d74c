//! Decoding on one thread while parsing on another: a compressed index costs about as much
//! to inflate as to parse, so a sync planning a large archive uses two cores for it.
//!
//! The reader fills chunks on a thread of its own and hands them over through a short queue
//! (a few chunks: memory stays bounded whatever the index's size); the writer consumes them
//! in order on the calling thread, and the emptied chunks go back to the reader. Errors keep
//! their order in the stream: the writer's error on a chunk comes before a reader's error
//! after it, as with [`std::io::copy`].

use std::io::{self, Read, Write};
use std::sync::mpsc;

/// Bytes per chunk handed over: large enough that the hand-over costs nothing next to the
/// work on it.
const CHUNK: usize = 256 * 1024;

/// Chunks decoded ahead of the writer.
const AHEAD: usize = 2;

/// Copies everything `reader` gives into `writer`, reading on a second thread.
pub(super) fn copy(reader: impl Read + Send, writer: &mut impl Write) -> io::Result<()> {
    std::thread::scope(|scope| {
        let (full, filled) = mpsc::sync_channel::<Vec<u8>>(AHEAD);
        let (give_back, emptied) = mpsc::channel::<Vec<u8>>();
        let decoder = scope.spawn(move || fill(reader, &full, &emptied));
        let written = (|| {
            for chunk in filled.iter() {
                writer.write_all(&chunk)?;
                // The reader may be done already: then the chunk is simply dropped.
                let _ = give_back.send(chunk);
            }
            Ok(())
        })();
        // Dropping the queue stops a reader still at work when the writer failed.
        drop(filled);
        let read = decoder
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        written.and(read)
    })
}

/// The reader's side: fills chunks until the end of `reader` or until the writer is gone.
fn fill(
    mut reader: impl Read,
    full: &mpsc::SyncSender<Vec<u8>>,
    emptied: &mpsc::Receiver<Vec<u8>>,
) -> io::Result<()> {
    loop {
        let mut chunk = emptied.try_recv().unwrap_or_default();
        chunk.resize(CHUNK, 0);
        let mut len = 0;
        while len < CHUNK {
            match reader.read(&mut chunk[len..]) {
                Ok(0) => break,
                Ok(n) => len += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if len == 0 {
            return Ok(());
        }
        chunk.truncate(len);
        if full.send(chunk).is_err() {
            return Ok(()); // the writer stopped: its error is the one reported
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Gives `data` in reads of `step` bytes, then fails if `fail` is set.
    struct Source {
        data: Vec<u8>,
        at: usize,
        step: usize,
        fail: bool,
    }

    impl Read for Source {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(buf.len()).min(self.data.len() - self.at);
            if n == 0 && self.fail {
                return Err(io::Error::other("broken input"));
            }
            buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    fn source(len: usize, step: usize, fail: bool) -> Source {
        let data = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        Source {
            data,
            at: 0,
            step,
            fail,
        }
    }

    #[test]
    fn every_byte_arrives_in_order() {
        for (len, step) in [(0, 1), (1, 1), (CHUNK - 1, 1000), (CHUNK * 5 + 3, 70_000)] {
            let input = source(len, step, false);
            let expected = input.data.clone();
            let mut out = Vec::new();
            copy(input, &mut out).unwrap();
            assert!(out == expected, "{len} bytes in reads of {step}");
        }
    }

    #[test]
    fn a_read_error_comes_after_the_bytes_before_it() {
        let mut out = Vec::new();
        let error = copy(source(CHUNK * 3 + 10, 4096, true), &mut out).unwrap_err();
        assert_eq!(error.to_string(), "broken input");
        assert_eq!(out.len(), CHUNK * 3);
    }

    /// Takes `limit` bytes, then fails.
    struct Picky {
        taken: usize,
        limit: usize,
    }

    impl Write for Picky {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.taken + buf.len() > self.limit {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "not an index"));
            }
            self.taken += buf.len();
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_write_error_stops_the_reader_and_wins() {
        // The reader would fail later; the writer's earlier error is the one reported, and
        // the reader, however much it has left, stops.
        let mut picky = Picky {
            taken: 0,
            limit: CHUNK,
        };
        let error = copy(source(CHUNK * 50, CHUNK, true), &mut picky).unwrap_err();
        assert_eq!(error.to_string(), "not an index");
    }
}
