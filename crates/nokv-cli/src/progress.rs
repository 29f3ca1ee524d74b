//! Progress bars for long transfers, shown only when stderr is a
//! terminal (scripts and pipes get clean output).

use std::io::IsTerminal;
use std::sync::Arc;

use indicatif::{ProgressBar, ProgressStyle};

/// A byte-count progress bar, or `None` when stderr is not a terminal.
pub fn bytes_bar(total: Option<u64>, what: &str) -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = match total {
        Some(t) => ProgressBar::new(t),
        None => ProgressBar::no_length(),
    };
    let template = if total.is_some() {
        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}"
    } else {
        "{msg} {bytes} {bytes_per_sec}"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_string());
    Some(bar)
}

/// A callback that moves `bar` to an absolute byte position.
pub fn position_callback(bar: &Option<ProgressBar>) -> Option<Arc<dyn Fn(u64) + Send + Sync>> {
    let bar = bar.clone()?;
    Some(Arc::new(move |n| bar.set_position(n)))
}
