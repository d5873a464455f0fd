//! Log output off the request path. A logging thread appends its formatted line to a shared
//! buffer (under a lock held for a copy); a writer thread empties the buffer to stderr every
//! few milliseconds with one write. Nobody is woken per line, so a request pays a copy, not a
//! system call and a context switch. A buffer that grows past its cap is written out by the
//! thread that fills it: lines are delayed at most one flush interval, never dropped. Output
//! happens under the buffer's lock, so lines leave in the order they were logged; at
//! shutdown [`flush`] writes what is buffered.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often the writer thread flushes.
const FLUSH_EVERY: Duration = Duration::from_millis(10);
/// Past this many buffered bytes the logging thread writes them itself.
const CAP_BYTES: usize = 4 << 20;

/// A `MakeWriter` for `tracing_subscriber` that buffers lines for the writer thread.
#[derive(Debug, Clone)]
pub struct QueuedStderr {
    buf: Arc<Mutex<Vec<u8>>>,
}

static BUFFER: std::sync::OnceLock<Arc<Mutex<Vec<u8>>>> = std::sync::OnceLock::new();

/// Writes whatever is buffered now (at shutdown).
pub fn flush() {
    if let Some(buf) = BUFFER.get() {
        write_out(&mut buf.lock().unwrap_or_else(|p| p.into_inner()));
    }
}

/// Writes `b` to stderr and empties it; callers hold the buffer's lock, so output is in order.
fn write_out(b: &mut Vec<u8>) {
    if !b.is_empty() {
        let _ = std::io::stderr().lock().write_all(b);
        b.clear();
    }
}

impl QueuedStderr {
    /// Starts the writer thread.
    pub fn start() -> Self {
        let buf = Arc::new(Mutex::new(Vec::with_capacity(64 * 1024)));
        let _ = BUFFER.set(buf.clone());
        let shared = buf.clone();
        let spawned = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(FLUSH_EVERY);
                    write_out(&mut shared.lock().unwrap_or_else(|p| p.into_inner()));
                }
            });
        if let Err(e) = spawned {
            eprintln!("cannot start the log writer thread: {e}");
        }
        Self { buf }
    }
}

/// One event's output, handed over whole when dropped.
#[derive(Debug)]
pub struct Line {
    shared: Arc<Mutex<Vec<u8>>>,
    buf: Vec<u8>,
}

impl Write for Line {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let mut b = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        if b.len() + self.buf.len() > CAP_BYTES {
            write_out(&mut b);
        }
        b.extend_from_slice(&self.buf);
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for QueuedStderr {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line {
            shared: self.buf.clone(),
            buf: Vec::with_capacity(512),
        }
    }
}
