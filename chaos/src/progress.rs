//! The progress line on stderr while scenarios run: rewritten in place on a
//! terminal, one line per change otherwise (CI logs).

use std::io::{IsTerminal, Write};
use std::time::Instant;

pub struct Progress {
    total: usize,
    index: usize,
    started: Instant,
    tty: bool,
}

impl Progress {
    pub fn new(total: usize) -> Progress {
        Progress { total, index: 0, started: Instant::now(), tty: std::io::stderr().is_terminal() }
    }

    /// Moves on to the next scenario.
    pub fn next(&mut self) {
        self.index += 1;
    }

    /// Says what scenario `name` is doing now.
    pub fn say(&mut self, name: &str, what: &str) {
        let line = format!("[{}/{} {:>4}s] {name}: {what}", self.index, self.total, self.started.elapsed().as_secs());
        let mut err = std::io::stderr().lock();
        if self.tty {
            let _ = write!(err, "\r\x1b[K{line}");
        } else {
            let _ = writeln!(err, "{line}");
        }
        let _ = err.flush();
    }

    /// A whole line that stays (a verdict, a log tail).
    pub fn note(&mut self, text: &str) {
        let mut err = std::io::stderr().lock();
        if self.tty {
            let _ = write!(err, "\r\x1b[K");
        }
        let _ = writeln!(err, "{text}");
    }
}
