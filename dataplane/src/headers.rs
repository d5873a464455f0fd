//! A deadline for a request's headers: a client that starts a request must finish its header
//! block within `[limits] header_read_secs`, or the connection is closed.
//!
//! Pingora reads request headers before any hook of the proxy runs, with a timeout per read
//! (60 s) but none for the whole header: a client trickling a byte every few seconds could
//! hold a connection (and its buffer) for hours. So the proxy's connections are wrapped in
//! [`HeaderDeadline`], which watches the bytes read: the clock starts at a request's first
//! byte (an idle keep-alive connection is Pingora's business) and stops at the blank line
//! ending the header block (`\r\n\r\n`, or `\n\n`) or when a response is written. Past the
//! deadline a read fails with `TimedOut` and Pingora drops the connection; there is no
//! request yet to answer in the client's protocol. Bodies have their own deadline
//! (`body_read_secs`, answered with 408).
//!
//! [`Guarded`] is the service that wraps every connection before Pingora's HTTP handling sees
//! it, and re-arms the wrapper for each request of a keep-alive connection.

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::tls::{SslDigest, TlsRef};
use pingora::protocols::{
    ALPN, GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl,
    Stream, TimingDigest, UniqueID, UniqueIDType,
};
use pingora::server::ShutdownWatch;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Where a connection is in its current request's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No byte of the next request yet: no clock.
    Waiting,
    /// In the header block; `tail` holds the last bytes read (to find the blank line across
    /// reads).
    Header { tail: [u8; 3] },
    /// The header is complete (or a response was written): no clock until re-armed.
    Done,
}

/// A connection whose request headers must arrive within a deadline.
pub struct HeaderDeadline {
    inner: Stream,
    limit: Duration,
    phase: Phase,
    deadline: Option<Pin<Box<Sleep>>>,
}

impl std::fmt::Debug for HeaderDeadline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeaderDeadline")
            .field("limit", &self.limit)
            .field("phase", &self.phase)
            .finish_non_exhaustive()
    }
}

impl HeaderDeadline {
    pub fn new(inner: Stream, limit: Duration) -> Self {
        Self {
            inner,
            limit,
            phase: Phase::Waiting,
            deadline: None,
        }
    }

    /// Ready for the connection's next request.
    fn rearm(&mut self) {
        self.phase = Phase::Waiting;
        self.deadline = None;
    }

    /// Follows the bytes just read through the header: the clock starts with the first and
    /// stops at the blank line.
    fn saw(&mut self, bytes: &[u8]) {
        let next = step(self.phase, bytes);
        match (self.phase, next) {
            (_, Phase::Done) => self.deadline = None,
            (Phase::Waiting, Phase::Header { .. }) => {
                self.deadline = Some(Box::pin(tokio::time::sleep_until(
                    Instant::now() + self.limit,
                )));
            }
            _ => {}
        }
        self.phase = next;
    }

    fn done(&mut self) {
        self.phase = Phase::Done;
        self.deadline = None;
    }
}

/// Where the header is after `bytes` more of it. Looks only at line ends (a header is a
/// dozen lines; the scan is the common path's only cost).
fn step(phase: Phase, bytes: &[u8]) -> Phase {
    if bytes.is_empty() {
        return phase;
    }
    let tail = match phase {
        Phase::Done => return Phase::Done,
        Phase::Waiting => [0; 3],
        Phase::Header { tail } => tail,
    };
    // The byte `back` places before `i`, reaching into the previous read's tail.
    let before = |i: usize, back: usize| -> u8 {
        if i >= back {
            bytes[i - back]
        } else {
            tail[3 + i - back]
        }
    };
    let mut from = 0;
    while let Some(off) = bytes[from..].iter().position(|&b| b == b'\n') {
        let i = from + off;
        let (b1, b2) = (before(i, 1), before(i, 2));
        if b1 == b'\n' || (b1 == b'\r' && b2 == b'\n') {
            return Phase::Done;
        }
        from = i + 1;
    }
    let n = bytes.len();
    let tail = [before(n, 3), before(n, 2), before(n, 1)];
    Phase::Header { tail }
}

impl AsyncRead for HeaderDeadline {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if let Some(deadline) = self.deadline.as_mut()
            && deadline.as_mut().poll(cx).is_ready()
        {
            metrics::counter!("portcullis_header_deadline_closed_total").increment(1);
            return Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the request header did not arrive in time",
            )));
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled
            && self.phase != Phase::Done
        {
            self.saw(&buf.filled()[before..]);
        }
        polled
    }
}

impl AsyncWrite for HeaderDeadline {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        // A response means the header was read (or refused): no clock while it is written.
        self.done();
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        self.done();
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[async_trait]
impl Shutdown for HeaderDeadline {
    async fn shutdown(&mut self) {
        self.inner.shutdown().await
    }
}

impl UniqueID for HeaderDeadline {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for HeaderDeadline {
    fn get_ssl(&self) -> Option<&TlsRef> {
        self.inner.get_ssl()
    }

    fn get_ssl_digest(&self) -> Option<Arc<SslDigest>> {
        self.inner.get_ssl_digest()
    }

    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for HeaderDeadline {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }

    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }

    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for HeaderDeadline {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }

    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.inner.set_proxy_digest(digest)
    }
}

impl GetSocketDigest for HeaderDeadline {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }

    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.inner.set_socket_digest(digest)
    }
}

#[async_trait]
impl Peek for HeaderDeadline {
    async fn try_peek(&mut self, buf: &mut [u8]) -> std::io::Result<bool> {
        self.inner.try_peek(buf).await
    }
}

/// A server app whose connections carry a [`HeaderDeadline`] (none when `limit` is `None`).
pub struct Guarded<A> {
    inner: Arc<A>,
    limit: Option<Duration>,
}

impl<A> Guarded<A> {
    pub fn new(inner: A, limit: Option<Duration>) -> Self {
        Self {
            inner: Arc::new(inner),
            limit,
        }
    }
}

impl<A> std::fmt::Debug for Guarded<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guarded")
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for Guarded<A> {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        // A connection kept alive comes back already wrapped: re-armed, not wrapped again.
        let stream: Stream = match self.limit {
            None => stream,
            Some(_) if stream.as_any().is::<HeaderDeadline>() => {
                let mut guarded = stream.into_any().downcast::<HeaderDeadline>().ok()?;
                guarded.rearm();
                guarded
            }
            Some(limit) => Box::new(HeaderDeadline::new(stream, limit)),
        };
        self.inner.process_new(stream, shutdown).await
    }

    async fn cleanup(&self) {
        self.inner.cleanup().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phase_after(chunks: &[&[u8]]) -> Phase {
        chunks.iter().fold(Phase::Waiting, |p, c| step(p, c))
    }

    #[test]
    fn the_header_ends_at_its_blank_line_across_reads() {
        assert_eq!(phase_after(&[]), Phase::Waiting);
        assert!(matches!(
            phase_after(&[b"GET / HTTP/1.1\r\n"]),
            Phase::Header { .. }
        ));
        assert_eq!(
            phase_after(&[b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"]),
            Phase::Done
        );
        assert_eq!(
            phase_after(&[b"GET / HTTP/1.1\r\nHost: x\r", b"\n\r", b"\n"]),
            Phase::Done
        );
        assert_eq!(
            phase_after(&[b"GET / HTTP/1.1\nHost: x\n", b"\n"]),
            Phase::Done
        );
        assert!(matches!(
            phase_after(&[b"GET / HTTP/1.1\r\nHost: x\r\n", b"X: y\r\n"]),
            Phase::Header { .. }
        ));
    }
}
