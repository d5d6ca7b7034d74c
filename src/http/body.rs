//! Response bodies: in-memory bytes, or file ranges streamed in large chunks. Data already in
//! the page cache is read right on the runtime thread (`preadv2` with `RWF_NOWAIT`, which never
//! blocks); anything else goes to the blocking pool with one chunk of read-ahead, so the disk
//! and the socket work at the same time.

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

/// Bytes per blocking read: large reads keep HTTP/2 and TLS busy with few wake-ups.
const READ_CHUNK: usize = 256 * 1024;

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

/// Streams segments of one open file (plus literal bytes between them).
pub struct FileStream {
    file: Arc<File>,
    segments: VecDeque<Segment>,
    remaining: u64,
    /// The read in flight; its bytes come before anything still in `segments`.
    inflight: Option<JoinHandle<io::Result<Bytes>>>,
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
        }
    }

    /// Starts reading the next chunk if the next segment is a file range.
    fn start_read(&mut self) {
        let Some(Segment::File { start, end }) = self.segments.front_mut() else {
            return;
        };
        let offset = *start;
        let len = (*end - *start).min(READ_CHUNK as u64) as usize;
        *start += len as u64;
        if *start == *end {
            self.segments.pop_front();
        }
        let file = self.file.clone();
        self.inflight = Some(tokio::task::spawn_blocking(move || {
            read_exact_at(&file, offset, len)
        }));
    }
}

fn read_exact_at(file: &File, offset: u64, len: usize) -> io::Result<Bytes> {
    let mut buffer = BytesMut::zeroed(len);
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
    Ok(buffer.freeze())
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

/// Reads what the page cache already holds, without blocking: `None` if nothing is cached (or
/// the kernel cannot tell), so the caller goes to the blocking pool.
fn read_cached(file: &File, offset: u64, len: usize) -> Option<Bytes> {
    let mut buffer = BytesMut::zeroed(len);
    let n = rustix::io::preadv2(
        file,
        &mut [io::IoSliceMut::new(&mut buffer)],
        offset,
        rustix::io::ReadWriteFlags::NOWAIT,
    )
    .ok()?;
    if n == 0 {
        return None;
    }
    buffer.truncate(n);
    Some(buffer.freeze())
}

impl FileStream {
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
                    // Cached data is read right here: no thread hand-off, no read-ahead needed.
                    let len = (*end - *start).min(READ_CHUNK as u64) as usize;
                    if let Some(bytes) = read_cached(&self.file, *start, len) {
                        self.advance(bytes.len() as u64);
                        return Poll::Ready(Some(Ok(Frame::data(bytes))));
                    }
                    self.start_read()
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
        self.start_read();
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
