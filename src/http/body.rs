//! Response bodies: in-memory bytes, or file ranges streamed in large chunks. Data already in
//! the page cache is read right on the runtime thread (`preadv2` with `RWF_NOWAIT`, which never
//! blocks); anything else goes to the blocking pool with one chunk of read-ahead, so the disk
//! and the socket work at the same time.
//!
//! On a connection, every chunk first reserves its bytes from the [`budget`]
//! (waiting when the connection or the server holds too much already) and is shorter when room
//! is short; the read-ahead is only made when there is room for it right away.

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Frame, SizeHint};
use tokio::task::JoinHandle;

use super::budget::{self, ConnectionBudget, Held};

/// Bytes per read at most: large reads keep HTTP/2 and TLS busy with few wake-ups.
const READ_CHUNK: usize = 256 * 1024;

/// A reservation being waited for; it yields the length it got.
type Reserving = Pin<Box<dyn Future<Output = (usize, Held)> + Send>>;

/// One piece of a body: literal bytes (multipart headers) or a file range.
#[derive(Debug)]
pub enum Segment {
    Bytes(Bytes),
    File { start: u64, end: u64 },
}

/// The body of every response this server sends.
pub enum Body {
    Empty,
    Full(Option<Bytes>),
    Stream(FileStream),
    /// A file body sent with `sendfile` (plain HTTP/1; see `zerocopy`).
    ZeroCopy(super::zerocopy::ZeroCopyBody),
}

impl Body {
    pub fn bytes(bytes: impl Into<Bytes>) -> Body {
        let bytes = bytes.into();
        if bytes.is_empty() {
            Body::Empty
        } else {
            Body::Full(Some(bytes))
        }
    }
}

/// Runs just before the last frame of a stream goes out; an error replaces that frame, so the
/// response is cut (never ends cleanly) when the file changed while it was being sent.
pub type FinalCheck = Arc<dyn Fn() -> io::Result<()> + Send + Sync>;

/// Streams segments of one open file (plus literal bytes between them).
pub struct FileStream {
    file: Arc<File>,
    segments: VecDeque<Segment>,
    remaining: u64,
    /// The read in flight; its bytes come before anything still in `segments`.
    inflight: Option<JoinHandle<io::Result<Bytes>>>,
    final_check: Option<FinalCheck>,
    /// The connection's share of the buffer budget; `None` outside a connection (tests).
    budget: Option<ConnectionBudget>,
    /// Waiting for room for the next chunk.
    reserving: Option<Reserving>,
}

impl FileStream {
    pub fn new(file: Arc<File>, segments: Vec<Segment>) -> FileStream {
        let remaining = segments
            .iter()
            .map(|s| match s {
                Segment::Bytes(b) => b.len() as u64,
                Segment::File { start, end } => end - start,
            })
            .sum();
        FileStream {
            file,
            segments: segments.into(),
            remaining,
            inflight: None,
            final_check: None,
            budget: None,
            reserving: None,
        }
    }

    /// Adds a [`FinalCheck`].
    pub fn with_final_check(mut self, check: FinalCheck) -> FileStream {
        self.final_check = Some(check);
        self
    }

    /// Counts this stream's chunks against a connection's budget.
    pub fn set_budget(&mut self, budget: ConnectionBudget) {
        self.budget = Some(budget);
    }

    /// Starts reading the next chunk into `buffer` (its length is the chunk's), from the front
    /// file segment, in the blocking pool.
    fn start_read(&mut self, mut buffer: BytesMut, held: Option<Held>) {
        let Some(Segment::File { start, end }) = self.segments.front_mut() else {
            return;
        };
        let offset = *start;
        let len = ((*end - *start) as usize).min(buffer.len());
        buffer.truncate(len);
        *start += len as u64;
        if *start == *end {
            self.segments.pop_front();
        }
        let file = self.file.clone();
        self.inflight = Some(tokio::task::spawn_blocking(move || {
            read_exact_at(&file, offset, &mut buffer)?;
            Ok(budget::freeze(buffer, held))
        }));
    }

    /// Starts a read-ahead of the front file segment, if there is room for it right now.
    fn read_ahead(&mut self) {
        let Some(Segment::File { start, end }) = self.segments.front() else {
            return;
        };
        let want = (*end - *start).min(READ_CHUNK as u64) as usize;
        let (len, held) = match &self.budget {
            None => (want, None),
            Some(budget) => {
                let len = budget.chunk_len(want);
                match budget.try_reserve(len) {
                    Some(held) => (len, Some(held)),
                    None => return,
                }
            }
        };
        self.start_read(BytesMut::zeroed(len), held);
    }

    /// Room for the next chunk of up to `want` bytes: its length and reservation.
    fn poll_reserve(&mut self, cx: &mut Context<'_>, want: usize) -> Poll<(usize, Option<Held>)> {
        let Some(budget) = &self.budget else {
            return Poll::Ready((want, None));
        };
        if self.reserving.is_none() {
            let len = budget.chunk_len(want);
            if let Some(held) = budget.try_reserve(len) {
                return Poll::Ready((len, Some(held)));
            }
            self.reserving = Some(Box::pin(budget.clone().reserve(len)));
        }
        let waiting = self.reserving.as_mut().expect("a reservation is pending");
        let (len, held) = ready!(waiting.as_mut().poll(cx));
        self.reserving = None;
        Poll::Ready((len, Some(held)))
    }
}

fn read_exact_at(file: &File, offset: u64, buffer: &mut [u8]) -> io::Result<()> {
    let len = buffer.len();
    let mut filled = 0;
    while filled < len {
        match file.read_at(&mut buffer[filled..], offset + filled as u64) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "object shorter than its manifest says",
                ))
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match self.get_mut() {
            Body::Empty => Poll::Ready(None),
            Body::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Body::Stream(stream) => stream.poll_next(cx),
            Body::ZeroCopy(body) => body.poll_next(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Body::Empty => true,
            Body::Full(bytes) => bytes.is_none(),
            Body::Stream(stream) => stream.remaining == 0,
            Body::ZeroCopy(body) => body.remaining() == 0,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Empty => SizeHint::with_exact(0),
            Body::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Body::Stream(stream) => SizeHint::with_exact(stream.remaining),
            Body::ZeroCopy(body) => SizeHint::with_exact(body.remaining()),
        }
    }
}

/// Reads what the page cache already holds into `buffer`, without blocking: the length read,
/// or `None` if nothing is cached (or the kernel cannot tell), so the caller goes to the
/// blocking pool.
fn read_cached(file: &File, offset: u64, buffer: &mut [u8]) -> Option<usize> {
    let n = rustix::io::preadv2(
        file,
        &mut [io::IoSliceMut::new(buffer)],
        offset,
        rustix::io::ReadWriteFlags::NOWAIT,
    )
    .ok()?;
    (n > 0).then_some(n)
}

impl FileStream {
    /// Whether a [`FinalCheck`] guards this stream's last frame.
    pub(super) fn has_final_check(&self) -> bool {
        self.final_check.is_some()
    }

    /// The file and what is left to send, for a body that sends it another way (before any
    /// read started); this stream is left empty.
    pub(super) fn take_parts(&mut self) -> (Arc<File>, VecDeque<Segment>, u64) {
        let remaining = std::mem::take(&mut self.remaining);
        (
            self.file.clone(),
            std::mem::take(&mut self.segments),
            remaining,
        )
    }

    /// Takes `len` bytes off the front file segment.
    fn advance(&mut self, len: u64) {
        if let Some(Segment::File { start, end }) = self.segments.front_mut() {
            *start += len;
            if *start == *end {
                self.segments.pop_front();
            }
        }
        self.remaining -= len;
    }

    pub(super) fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let frame = ready!(self.poll_chunk(cx));
        if self.remaining == 0 && matches!(frame, Some(Ok(_))) {
            if let Some(check) = self.final_check.take() {
                check()?;
            }
        }
        Poll::Ready(frame)
    }

    fn poll_chunk(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        if self.inflight.is_none() {
            match self.segments.front() {
                None => return Poll::Ready(None),
                Some(Segment::Bytes(_)) => {
                    let Some(Segment::Bytes(bytes)) = self.segments.pop_front() else {
                        unreachable!("front was bytes")
                    };
                    self.remaining -= bytes.len() as u64;
                    return Poll::Ready(Some(Ok(Frame::data(bytes))));
                }
                Some(Segment::File { start, end }) => {
                    let (start, want) = (*start, (*end - *start).min(READ_CHUNK as u64) as usize);
                    let (len, held) = ready!(self.poll_reserve(cx, want));
                    let mut buffer = BytesMut::zeroed(len);
                    // Cached data is read right here: no thread hand-off, no read-ahead needed.
                    if let Some(n) = read_cached(&self.file, start, &mut buffer) {
                        buffer.truncate(n);
                        self.advance(n as u64);
                        let bytes = budget::freeze(buffer, held);
                        return Poll::Ready(Some(Ok(Frame::data(bytes))));
                    }
                    self.start_read(buffer, held)
                }
            }
        }
        let handle = self.inflight.as_mut().expect("a read is in flight");
        let result = ready!(Pin::new(handle).poll(cx));
        self.inflight = None;
        let bytes = match result {
            Ok(Ok(bytes)) => bytes,
            Ok(Err(e)) => return Poll::Ready(Some(Err(e))),
            Err(join) => return Poll::Ready(Some(Err(io::Error::other(join)))),
        };
        self.remaining -= bytes.len() as u64;
        // Read ahead while this chunk goes out.
        self.read_ahead();
        Poll::Ready(Some(Ok(Frame::data(bytes))))
    }
}

use std::future::Future;

impl Drop for FileStream {
    fn drop(&mut self) {
        if let Some(handle) = self.inflight.take() {
            handle.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body::Body as _;
    use http_body_util::BodyExt;
    use std::io::Write;

    #[tokio::test]
    async fn segments_come_out_in_order() {
        let mut file = tempfile::tempfile().unwrap();
        let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
        file.write_all(&data).unwrap();
        let body = Body::Stream(FileStream::new(
            Arc::new(file),
            vec![
                Segment::Bytes(Bytes::from_static(b"<head>")),
                Segment::File {
                    start: 10,
                    end: 700_000,
                },
                Segment::Bytes(Bytes::from_static(b"<mid>")),
                Segment::File { start: 0, end: 5 },
            ],
        ));
        assert_eq!(body.size_hint().exact(), Some(6 + 699_990 + 5 + 5));
        let collected = body.collect().await.unwrap().to_bytes();
        let mut expected = b"<head>".to_vec();
        expected.extend_from_slice(&data[10..700_000]);
        expected.extend_from_slice(b"<mid>");
        expected.extend_from_slice(&data[0..5]);
        assert_eq!(collected.as_ref(), expected.as_slice());
    }

    #[tokio::test]
    async fn a_budgeted_stream_is_whole_and_gives_its_room_back() {
        let mut file = tempfile::tempfile().unwrap();
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
        file.write_all(&data).unwrap();
        // Less room than one full read: chunks come in smaller pieces, one after the other.
        let server = super::super::budget::Budget::new(96 * 1024, 64 * 1024);
        let mut stream = FileStream::new(
            Arc::new(file),
            vec![Segment::File {
                start: 7,
                end: 2_999_000,
            }],
        );
        stream.set_budget(server.connection());
        let mut body = Body::Stream(stream);
        let mut collected = Vec::new();
        while let Some(frame) = body.frame().await {
            let chunk = frame.unwrap().into_data().unwrap();
            assert!(chunk.len() <= 64 * 1024);
            collected.extend_from_slice(&chunk);
        }
        assert_eq!(collected, &data[7..2_999_000]);
        drop(body);
        assert_eq!(server.held(), 0);
    }

    #[tokio::test]
    async fn truncated_file_is_an_error_not_a_short_body() {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(b"short").unwrap();
        let body = Body::Stream(FileStream::new(
            Arc::new(file),
            vec![Segment::File { start: 0, end: 10 }],
        ));
        assert!(body.collect().await.is_err());
    }
}
