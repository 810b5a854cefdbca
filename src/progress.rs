//! The terminal progress bar of long commands (`tokenize`): documents, tokens/s and ETA from the input
//! bytes read. indicatif draws nothing when stderr is not a terminal, so logs and CI stay clean.
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};

use crate::tokenize::Progress;

pub struct TerminalProgress {
    bar: ProgressBar,
    started: Instant,
}

impl TerminalProgress {
    pub fn new() -> Self {
        let bar = ProgressBar::new(0);
        let style = ProgressStyle::with_template("{bar:30} {percent:>3}% {msg} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        Self {
            bar,
            started: Instant::now(),
        }
    }
}

impl Default for TerminalProgress {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress for TerminalProgress {
    fn start(&self, total_input_bytes: u64) {
        self.bar.set_length(total_input_bytes);
    }

    fn advance(&self, documents: u64, tokens: u64, input_bytes_read: u64) {
        let rate = tokens as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
        self.bar.set_position(input_bytes_read);
        self.bar.set_message(format!(
            "{documents} documents, {tokens} tokens, {:.0} tokens/s",
            rate
        ));
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
