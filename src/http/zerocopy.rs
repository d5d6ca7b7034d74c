//! File bodies on plain HTTP/1 connections go out with `sendfile(2)`: the page cache feeds the
//! socket directly, with no copy through this process (what nginx's `sendfile on` does).
//!
//! hyper writes every body itself and has no sendfile. But with vectored writes it hands body
//! chunks to the connection's writer untouched and in order. So such a body gives hyper
//! *placeholder* chunks, and the connection's writer ([`ZeroCopyStream`]) sends the file range a
//! placeholder stands for with `sendfile` when it meets one, instead of writing its bytes.
//!
//! - Placeholders point into one reserved mapping that is never readable (`PROT_NONE`): no
//!   placeholder byte can ever reach a client. A placeholder only exists for a request that came
//!   over a [`ZeroCopyStream`] as HTTP/1 (see [`divert`]), whose hyper connection writes vectored.
//! - Each placeholder's job (file, offset, length) waits in a per-connection queue, in the order
//!   hyper writes them; the writer checks that a placeholder and the queue's head agree.
//! - Nothing is buffered here: memory per download is the socket buffer, whatever the file size.
//! - A file that shrank under us (a hard-linked original truncated) makes `sendfile` return 0:
//!   that is an error that ends the connection, never short or wrong bytes, and never a SIGBUS.
//! - A body with a [`FinalCheck`](super::body::FinalCheck) (an object hard-linked to an original outside the store) is
//!   never diverted: the socket references page-cache pages until the client has them, so a
//!   check before the last byte could not see a rewrite after it; such bodies are copied.
//! - A chunk whose pages are not all in the page cache (probed every 64 KiB) is read as before
//!   (blocking pool), so a cold disk does not block a runtime thread inside `sendfile`; a page
//!   evicted between the probe and the send costs one short read there.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, IoSlice};
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http::{Response, Version};
use http_body::Frame;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

use super::body::{Body, FileStream, Segment};
use super::budget::ConnectionBudget;

/// The most one placeholder stands for (and the size of the reserved mapping). Small enough
/// that probing its pages ([`cached`]) is cheap and a page evicted between the probe and the
/// send costs a short read, not a long one, on a runtime thread.
const CHUNK: usize = 2 * 1024 * 1024;
/// [`cached`] probes one byte in every this many.
const PROBE_STRIDE: u64 = 64 * 1024;

/// The reserved, inaccessible address range placeholders point into; `None` if it could not be
/// mapped (then nothing is diverted).
fn region() -> Option<&'static [u8]> {
    static REGION: OnceLock<Option<usize>> = OnceLock::new();
    let base = REGION.get_or_init(|| {
        // SAFETY: a fresh anonymous mapping with no access; nothing else refers to it. It is
        // never unmapped, so slices of it live for the whole process.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                CHUNK,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        (ptr != libc::MAP_FAILED).then_some(ptr as usize)
    });
    let base = (*base)?;
    // SAFETY: `CHUNK` bytes at `base` stay mapped forever. The slice is only ever used for its
    // address and length (hyper passes it on unread; `ZeroCopyStream` never reads it).
    Some(unsafe { std::slice::from_raw_parts(base as *const u8, CHUNK) })
}

/// Where `slice` starts inside the placeholder region, if it is a placeholder.
fn placeholder_offset(slice: &[u8]) -> Option<usize> {
    let region = region()?;
    let base = region.as_ptr() as usize;
    let at = slice.as_ptr() as usize;
    (!slice.is_empty() && at >= base && at + slice.len() <= base + CHUNK).then(|| at - base)
}

/// One file range a placeholder stands for.
struct Job {
    file: Arc<File>,
    offset: u64,
    len: usize,
}

/// The queue a connection's bodies and its writer share (both run in the connection's task).
#[derive(Clone, Default)]
pub struct Sender {
    jobs: Arc<Mutex<VecDeque<Job>>>,
}

/// A plain TCP connection whose writer sends placeholders with `sendfile`.
pub struct ZeroCopyStream {
    inner: TcpStream,
    jobs: Arc<Mutex<VecDeque<Job>>>,
}

impl ZeroCopyStream {
    /// The stream, and the sender that requests on it hand to [`divert`].
    pub fn new(inner: TcpStream) -> (ZeroCopyStream, Sender) {
        let sender = Sender::default();
        let stream = ZeroCopyStream {
            inner,
            jobs: sender.jobs.clone(),
        };
        (stream, sender)
    }

    /// Sends (part of) the placeholder `slice`, which must belong to the queue's head.
    fn poll_send_file(&mut self, cx: &mut Context<'_>, slice: &[u8]) -> Poll<io::Result<usize>> {
        let delta = placeholder_offset(slice).unwrap_or(usize::MAX);
        let (file, offset, want) = {
            let jobs = self.jobs.lock().expect("not poisoned");
            match jobs.front() {
                Some(job) if job.len.checked_sub(delta) == Some(slice.len()) => {
                    (job.file.clone(), job.offset + delta as u64, slice.len())
                }
                _ => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "a file placeholder out of step with its queue",
                    )))
                }
            }
        };
        loop {
            ready!(self.inner.poll_write_ready(cx))?;
            let sent = self.inner.try_io(Interest::WRITABLE, || {
                let mut off = libc::off_t::try_from(offset)
                    .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
                // SAFETY: both descriptors are open for the call; `off` is a valid pointer.
                let n = unsafe {
                    libc::sendfile(self.inner.as_raw_fd(), file.as_raw_fd(), &mut off, want)
                };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            });
            match sent {
                Ok(0) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "object shorter than its manifest says",
                    )))
                }
                Ok(n) => {
                    if delta + n == self.job_len() {
                        self.jobs.lock().expect("not poisoned").pop_front();
                    }
                    return Poll::Ready(Ok(n));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    fn job_len(&self) -> usize {
        let jobs = self.jobs.lock().expect("not poisoned");
        jobs.front().map_or(0, |job| job.len)
    }
}

impl AsyncRead for ZeroCopyStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for ZeroCopyStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if placeholder_offset(buf).is_some() {
            return this.poll_send_file(cx, buf);
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    /// Ordinary slices before the first placeholder go out in one `writev`; a placeholder
    /// first in line goes out with `sendfile`.
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if bufs.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let plain = bufs
            .iter()
            .position(|b| placeholder_offset(b).is_some())
            .unwrap_or(bufs.len());
        if plain == 0 {
            return this.poll_send_file(cx, &bufs[0]);
        }
        Pin::new(&mut this.inner).poll_write_vectored(cx, &bufs[..plain])
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Turns a file-streaming response into a sendfile one when the request came over a
/// [`ZeroCopyStream`] (`sender` is set) as HTTP/1; anything else is returned as it was.
pub fn divert(
    mut response: Response<Body>,
    sender: Option<&Sender>,
    version: Version,
) -> Response<Body> {
    let Some(sender) = sender else {
        return response;
    };
    if version > Version::HTTP_11 || region().is_none() {
        return response;
    }
    if let Body::Stream(stream) = response.body_mut() {
        // A body whose file may change under it (a hard-linked original) is copied before its
        // final check; sendfile would check pages the socket still references, and a rewrite
        // after the check would reach the client under the old ETag.
        if stream.has_final_check() {
            return response;
        }
        let (file, segments, remaining) = stream.take_parts();
        *response.body_mut() = Body::ZeroCopy(ZeroCopyBody {
            file,
            segments,
            remaining,
            sender: sender.clone(),
            cold: None,
            cold_left: 0,
            budget: None,
        });
    }
    response
}

/// A body of placeholders (and literal bytes, for multipart heads).
pub struct ZeroCopyBody {
    file: Arc<File>,
    segments: VecDeque<Segment>,
    remaining: u64,
    sender: Sender,
    /// A chunk not in the page cache, being read the ordinary way.
    cold: Option<FileStream>,
    /// Bytes of `cold` still to come.
    cold_left: u64,
    /// The connection's buffer budget, for chunks read the ordinary way.
    budget: Option<ConnectionBudget>,
}

impl ZeroCopyBody {
    /// Counts the chunks read the ordinary way (not in the page cache) against a connection's
    /// buffer budget; sendfile chunks hold no memory.
    pub fn set_budget(&mut self, budget: ConnectionBudget) {
        self.budget = Some(budget);
    }

    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Frame<Bytes>>>> {
        if let Some(cold) = &mut self.cold {
            match ready!(cold.poll_next(cx)) {
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        self.remaining -= data.len() as u64;
                        self.cold_left -= data.len() as u64;
                    }
                    return Poll::Ready(Some(Ok(frame)));
                }
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                None => self.cold = None,
            }
        }
        let Some(region) = region() else {
            return Poll::Ready(Some(Err(io::Error::other("no placeholder region"))));
        };
        match self.segments.pop_front() {
            None => Poll::Ready(None),
            Some(Segment::Bytes(bytes)) => {
                self.remaining -= bytes.len() as u64;
                Poll::Ready(Some(Ok(Frame::data(bytes))))
            }
            Some(Segment::File { start, end }) if start >= end => self.poll_next(cx),
            Some(Segment::File { start, end }) => {
                let len = (end - start).min(CHUNK as u64) as usize;
                if start + (len as u64) < end {
                    self.segments.push_front(Segment::File {
                        start: start + len as u64,
                        end,
                    });
                }
                if !cached(&self.file, start, len) {
                    let chunk = Segment::File {
                        start,
                        end: start + len as u64,
                    };
                    let mut cold = FileStream::new(self.file.clone(), vec![chunk]);
                    if let Some(budget) = &self.budget {
                        cold.set_budget(budget.clone());
                    }
                    self.cold = Some(cold);
                    self.cold_left = len as u64;
                    return self.poll_next(cx);
                }
                self.sender
                    .jobs
                    .lock()
                    .expect("not poisoned")
                    .push_back(Job {
                        file: self.file.clone(),
                        offset: start,
                        len,
                    });
                self.remaining -= len as u64;
                Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(&region[..len])))))
            }
        }
    }
}

/// Whether the first and last byte of a range are in the page cache (a cheap probe: `sendfile`
/// reads ahead from there on).
fn cached(file: &File, start: u64, len: usize) -> bool {
    let mut byte = [0u8; 1];
    let last = start + len as u64 - 1;
    (start..last)
        .step_by(PROBE_STRIDE as usize)
        .chain(std::iter::once(last))
        .all(|at| {
            rustix::io::preadv2(
                file,
                &mut [io::IoSliceMut::new(&mut byte)],
                at,
                rustix::io::ReadWriteFlags::NOWAIT,
            )
            .is_ok_and(|n| n == 1)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use std::io::Write;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn file_with(data: &[u8]) -> Arc<File> {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(data).unwrap();
        Arc::new(file)
    }

    fn stream_response(file: Arc<File>, segments: Vec<Segment>) -> Response<Body> {
        Response::new(Body::Stream(FileStream::new(file, segments)))
    }

    /// A connected pair: the server end as a `ZeroCopyStream`, and the client end.
    async fn pair() -> (ZeroCopyStream, Sender, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap());
        let (server, client) = tokio::join!(listener.accept(), client);
        let (stream, sender) = ZeroCopyStream::new(server.unwrap().0);
        (stream, sender, client.unwrap())
    }

    #[tokio::test]
    async fn only_http1_requests_with_a_sender_are_diverted() {
        let file = file_with(b"0123456789");
        let segments = || vec![Segment::File { start: 0, end: 10 }];
        let sender = Sender::default();
        let kept = divert(
            stream_response(file.clone(), segments()),
            None,
            Version::HTTP_11,
        );
        assert!(matches!(kept.body(), Body::Stream(_)));
        let h2 = divert(
            stream_response(file.clone(), segments()),
            Some(&sender),
            Version::HTTP_2,
        );
        assert!(matches!(h2.body(), Body::Stream(_)));
        let h1 = divert(
            stream_response(file, segments()),
            Some(&sender),
            Version::HTTP_11,
        );
        assert!(matches!(h1.body(), Body::ZeroCopy(_)));
        let memory = divert(
            Response::new(Body::bytes("x")),
            Some(&sender),
            Version::HTTP_11,
        );
        assert!(matches!(memory.body(), Body::Full(_)));
    }

    /// What hyper does with a body: each frame written in order (here one at a time, with
    /// partial writes), through the stream the jobs were queued for.
    #[tokio::test]
    async fn placeholders_become_the_exact_file_bytes() {
        let data: Vec<u8> = (0..(2 * CHUNK + 12_345) as u32)
            .map(|i| (i % 253) as u8)
            .collect();
        let file = file_with(&data);
        let (mut stream, sender, mut client) = pair().await;
        let segments = vec![
            Segment::Bytes(Bytes::from_static(b"<head>")),
            Segment::File {
                start: 5,
                end: data.len() as u64,
            },
            Segment::Bytes(Bytes::from_static(b"<mid>")),
            Segment::File { start: 0, end: 3 },
        ];
        let mut expected = b"<head>".to_vec();
        expected.extend_from_slice(&data[5..]);
        expected.extend_from_slice(b"<mid>");
        expected.extend_from_slice(&data[..3]);
        let response = divert(
            stream_response(file, segments),
            Some(&sender),
            Version::HTTP_11,
        );
        let mut body = response.into_body();
        let reading = tokio::spawn(async move {
            let mut got = Vec::new();
            client.read_to_end(&mut got).await.unwrap();
            got
        });
        while let Some(frame) = body.frame().await {
            let data = frame.unwrap().into_data().unwrap();
            let mut at = 0;
            while at < data.len() {
                let slices = [IoSlice::new(&data[at..])];
                at += std::future::poll_fn(|cx| {
                    Pin::new(&mut stream).poll_write_vectored(cx, &slices)
                })
                .await
                .unwrap();
            }
        }
        stream.shutdown().await.unwrap();
        drop(stream);
        assert!(reading.await.unwrap() == expected, "bytes differ");
        assert!(sender.jobs.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_placeholder_without_its_job_is_an_error_not_bytes() {
        let (mut stream, _sender, _client) = pair().await;
        let region = region().unwrap();
        let slices = [IoSlice::new(&region[..100])];
        let result =
            std::future::poll_fn(|cx| Pin::new(&mut stream).poll_write_vectored(cx, &slices)).await;
        assert_eq!(result.unwrap_err().kind(), io::ErrorKind::InvalidData);
    }

    #[tokio::test]
    async fn a_file_shorter_than_promised_is_an_error() {
        // Short already when the body starts: the ordinary read path reports it.
        let (_stream, sender, _client) = pair().await;
        let short = divert(
            stream_response(
                file_with(b"short"),
                vec![Segment::File { start: 0, end: 10 }],
            ),
            Some(&sender),
            Version::HTTP_11,
        );
        assert!(short.into_body().collect().await.is_err());

        // Truncated after its placeholder went out (a hard-linked original cut short): the
        // write fails once the bytes that are left have gone.
        let (mut stream, sender, _client) = pair().await;
        let file = file_with(b"0123456789");
        let response = divert(
            stream_response(file.clone(), vec![Segment::File { start: 0, end: 10 }]),
            Some(&sender),
            Version::HTTP_11,
        );
        let placeholder = response.into_body().frame().await.unwrap().unwrap();
        let placeholder = placeholder.into_data().unwrap();
        file.set_len(5).unwrap();
        let first = [IoSlice::new(&placeholder[..])];
        let sent = std::future::poll_fn(|cx| Pin::new(&mut stream).poll_write_vectored(cx, &first));
        assert_eq!(sent.await.unwrap(), 5);
        let rest = [IoSlice::new(&placeholder[5..])];
        let sent = std::future::poll_fn(|cx| Pin::new(&mut stream).poll_write_vectored(cx, &rest));
        assert_eq!(sent.await.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
    }

    #[tokio::test]
    async fn an_empty_write_is_no_error() {
        let (mut stream, _sender, _client) = pair().await;
        let written = std::future::poll_fn(|cx| Pin::new(&mut stream).poll_write_vectored(cx, &[]));
        assert_eq!(written.await.unwrap(), 0);
    }

    #[tokio::test]
    async fn a_body_with_a_final_check_is_never_diverted() {
        let (_stream, sender, _client) = pair().await;
        let Body::Stream(stream) = stream_response(
            file_with(b"0123456789"),
            vec![Segment::File { start: 0, end: 10 }],
        )
        .into_body() else {
            panic!("a streamed body")
        };
        let check: crate::http::body::FinalCheck = Arc::new(|| Ok(()));
        let response = Response::new(Body::Stream(stream.with_final_check(check)));
        let response = divert(response, Some(&sender), Version::HTTP_11);
        assert!(matches!(response.body(), Body::Stream(_)));
    }
}
