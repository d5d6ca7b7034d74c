//! The response body wrapper that counts the bytes each answer hands to its connection.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use prometheus_client::metrics::counter::Counter;

use super::super::body::Body;

/// A response body that adds the bytes it hands to the connection to its (status, mount)
/// counter: a handle resolved once at start-up (see [`super::Metrics::count_request`]), so
/// counting a chunk is one relaxed atomic addition, with no lookup.
pub struct CountedBody {
    inner: Body,
    meter: Option<Counter>,
}

impl CountedBody {
    /// `bytes`: the counter of the answer's (status, mount) cell.
    pub fn new(inner: Body, bytes: Counter) -> CountedBody {
        let meter = match inner {
            Body::Empty => None,
            _ => Some(bytes),
        };
        CountedBody { inner, meter }
    }

    /// Counts a streamed file's chunks against its connection's buffer budget.
    pub fn budgeted(mut self, budget: super::super::budget::ConnectionBudget) -> CountedBody {
        match &mut self.inner {
            Body::Stream(stream) => stream.set_budget(budget),
            Body::ZeroCopy(body) => body.set_budget(budget),
            Body::Empty | Body::Full(_) => {}
        }
        self
    }
}

impl http_body::Body for CountedBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        let frame = ready!(Pin::new(&mut this.inner).poll_frame(cx));
        if let (Some(Ok(frame)), Some(bytes)) = (&frame, &this.meter) {
            if let Some(data) = frame.data_ref() {
                bytes.inc_by(data.len() as u64);
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
