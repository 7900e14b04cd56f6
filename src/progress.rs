//! Progress on stderr: a bar redrawn in place on a terminal (events, bytes, events/s, ETA and
//! the progressive metric), plain lines when asked for where stderr is not a terminal (logs),
//! and nothing otherwise.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use eddy_runtime::Progress;

/// Where progress goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Style {
    /// Redrawn in place (stderr is a terminal).
    Bar,
    /// One line per interval (`--progress` when stderr is not a terminal).
    Lines,
}

/// Draws progress reports; remembers the last one to estimate the input's byte rate.
pub(crate) struct ProgressLine {
    style: Style,
    last: Option<(Duration, u64)>,
    /// Bytes per second, smoothed over the intervals.
    byte_rate: Option<f64>,
    /// Set once a bar was drawn, so the caller ends its line before printing more.
    drawn: Arc<AtomicBool>,
}

const BAR_WIDTH: usize = 24;
/// Weight of the newest interval in the smoothed byte rate.
const SMOOTHING: f64 = 0.3;

impl ProgressLine {
    pub(crate) fn new(style: Style, drawn: Arc<AtomicBool>) -> Self {
        ProgressLine {
            style,
            last: None,
            byte_rate: None,
            drawn,
        }
    }

    pub(crate) fn show(&mut self, p: &Progress) {
        self.observe(p);
        let text = self.render(p);
        match self.style {
            Style::Bar => {
                // Return to the line's start and clear it, then draw without a newline.
                eprint!("\r\x1b[2K{text}");
                self.drawn.store(true, Ordering::Relaxed);
            }
            Style::Lines => eprintln!("{text}"),
        }
    }

    fn observe(&mut self, p: &Progress) {
        if let Some((then, read)) = self.last {
            let secs = (p.elapsed.saturating_sub(then)).as_secs_f64();
            if secs > 0.0 && p.input_read >= read {
                let rate = (p.input_read - read) as f64 / secs;
                self.byte_rate = Some(match self.byte_rate {
                    Some(old) => old + SMOOTHING * (rate - old),
                    None => rate,
                });
            }
        }
        self.last = Some((p.elapsed, p.input_read));
    }

    fn render(&self, p: &Progress) -> String {
        let mut parts = Vec::new();
        if let Some(total) = p.input_total {
            let share = (p.input_read as f64 / total as f64).clamp(0.0, 1.0);
            let filled = (share * BAR_WIDTH as f64).round() as usize;
            let eta = match self.byte_rate {
                Some(rate) if rate > 0.0 => clock(total.saturating_sub(p.input_read) as f64 / rate),
                _ => "--:--".to_owned(),
            };
            parts.push(format!(
                "[{}{}] {:>3.0}% {}/{} ETA {eta}",
                "#".repeat(filled),
                "-".repeat(BAR_WIDTH - filled),
                share * 100.0,
                bytes(p.input_read),
                bytes(total),
            ));
        } else if p.input_read > 0 {
            parts.push(format!("{} read", bytes(p.input_read)));
        }
        parts.push(format!(
            "{} events ({}/s) learned {} dead-lettered {}",
            p.counters.events,
            human(p.rate),
            p.counters.learned,
            p.counters.dead_lettered
        ));
        parts.push(format!(
            "{} {:.4} (recent {:.4})",
            p.metric.0, p.metric.1, p.window_metric.1
        ));
        parts.push(clock(p.elapsed.as_secs_f64()));
        format!("eddy: {}", parts.join(" | "))
    }
}

/// `m:ss`, or `h:mm:ss` past an hour.
fn clock(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

fn bytes(n: u64) -> String {
    let n = n as f64;
    if n >= 1e9 {
        format!("{:.2} GB", n / 1e9)
    } else if n >= 1e6 {
        format!("{:.1} MB", n / 1e6)
    } else if n >= 1e3 {
        format!("{:.0} kB", n / 1e3)
    } else {
        format!("{n:.0} B")
    }
}

pub(crate) fn human(n: f64) -> String {
    if n >= 1e6 {
        format!("{:.2}M", n / 1e6)
    } else if n >= 1e3 {
        format!("{:.1}k", n / 1e3)
    } else {
        format!("{n:.0}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(elapsed_s: u64, read: u64, total: Option<u64>) -> Progress {
        Progress {
            counters: Default::default(),
            elapsed: Duration::from_secs(elapsed_s),
            rate: 2_500_000.0,
            metric: ("log_loss", 0.5),
            window_metric: ("log_loss", 0.4),
            input_read: read,
            input_total: total,
        }
    }

    #[test]
    fn the_bar_shows_share_bytes_and_an_eta_from_the_byte_rate() {
        let mut line = ProgressLine::new(Style::Lines, Arc::default());
        line.observe(&progress(1, 100_000_000, Some(1_000_000_000)));
        let at_two = progress(2, 200_000_000, Some(1_000_000_000));
        line.observe(&at_two);
        let text = line.render(&at_two);
        // 100 MB/s with 800 MB left: 8 s.
        assert!(text.contains(" 20% 200.0 MB/1.00 GB ETA 0:08"), "{text}");
        assert!(text.contains("[#####-------------------]"), "{text}");
        assert!(text.contains("(2.50M/s)"), "{text}");
        assert!(text.contains("log_loss 0.5000 (recent 0.4000)"), "{text}");
    }

    #[test]
    fn an_input_without_a_size_has_no_bar() {
        let line = ProgressLine::new(Style::Lines, Arc::default());
        let text = line.render(&progress(3, 0, None));
        assert!(!text.contains('['), "{text}");
        assert!(!text.contains("ETA"), "{text}");
        assert_eq!(clock(3725.0), "1:02:05");
    }
}
