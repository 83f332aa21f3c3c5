//! Progress display: two `indicatif` bars on a terminal, or plain periodic lines (`--quiet`,
//! or whenever stdout is not a terminal).
//!
//! The figures shown (bytes done, rate, ETA) are the engine's, as its Reporter publishes
//! them; the bars only draw them.

use std::io::Write;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tamtam_engine::core::Progress;

/// One direction's progress as shown.
#[derive(Debug, Clone, Copy, Default)]
pub struct Shown {
    /// Bytes durable at the receiver.
    pub done: u64,
    /// Object size.
    pub total: u64,
    /// Bytes per second (0: unknown).
    pub rate: u64,
    /// Milliseconds left (`u64::MAX`: unknown).
    pub eta_ms: u64,
    /// No figures yet (or the peer is unreachable).
    pub unknown: bool,
}

impl Shown {
    /// Figures from an engine [`Progress`].
    pub fn of(progress: Progress) -> Shown {
        Shown {
            done: progress.bytes_done,
            total: progress.bytes_total,
            rate: progress.rate_bytes_per_sec,
            eta_ms: progress.eta_ms,
            unknown: false,
        }
    }

    /// A finished direction of `total` bytes.
    pub fn finished(total: u64) -> Shown {
        Shown {
            done: total,
            total,
            rate: 0,
            eta_ms: 0,
            unknown: false,
        }
    }

    /// Nothing known yet about an object of `total` bytes.
    pub fn waiting(total: u64) -> Shown {
        Shown {
            done: 0,
            total,
            rate: 0,
            eta_ms: u64::MAX,
            unknown: true,
        }
    }

    fn percent(&self) -> f64 {
        if self.total == 0 {
            100.0
        } else {
            self.done as f64 * 100.0 / self.total as f64
        }
    }

    /// `12.3% 45.6 MB/s eta 7s`.
    fn figures(&self) -> String {
        if self.unknown {
            return format!("{:.1}% (no figures yet)", self.percent());
        }
        if self.done >= self.total && self.eta_ms == 0 {
            return "100.0% done".into();
        }
        format!(
            "{:.1}% {} eta {}",
            self.percent(),
            rate_text(self.rate),
            eta_text(self.eta_ms)
        )
    }
}

/// `123.4 MB/s` (decimal megabytes).
pub fn rate_text(bytes_per_sec: u64) -> String {
    format!("{:.1} MB/s", bytes_per_sec as f64 / 1e6)
}

/// `7s`, `2m05s`, `1h02m`, or `?` when unknown.
pub fn eta_text(ms: u64) -> String {
    if ms == u64::MAX {
        return "?".into();
    }
    let secs = ms.div_ceil(1000);
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m{:02}s", secs / 60, secs % 60),
        _ => format!("{}h{:02}m", secs / 3600, secs % 3600 / 60),
    }
}

enum Mode {
    Bars {
        multi: MultiProgress,
        send: ProgressBar,
        receive: ProgressBar,
    },
    Lines {
        interval: Duration,
        last: Option<Instant>,
    },
}

/// The progress display of a swap.
pub struct Display {
    mode: Mode,
}

impl Display {
    /// Bars labelled with the two images' names, or lines every `interval` when `plain`.
    pub fn new(plain: bool, interval: Duration, send_name: &str, receive_name: &str) -> Display {
        if plain {
            return Display {
                mode: Mode::Lines {
                    interval,
                    last: None,
                },
            };
        }
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stdout());
        let style = ProgressStyle::with_template(
            "{prefix:<24} [{bar:32.cyan/blue}] {bytes:>10}/{total_bytes:<10} {msg}",
        )
        .expect("a valid template")
        .progress_chars("=> ");
        let bar = |label: String| {
            let bar = multi.add(ProgressBar::new(0));
            bar.set_style(style.clone());
            bar.set_prefix(label);
            bar
        };
        let send = bar(format!("send {}", short(send_name)));
        let receive = bar(format!("recv {}", short(receive_name)));
        Display {
            mode: Mode::Bars {
                multi,
                send,
                receive,
            },
        }
    }

    /// Prints a line (above the bars, when there are bars).
    pub fn say(&self, line: &str) {
        match &self.mode {
            Mode::Bars { multi, .. } => {
                let _ = multi.println(line);
            }
            Mode::Lines { .. } => say(line),
        }
    }

    /// Shows the latest figures of both directions (lines: at most once per interval).
    pub fn update(&mut self, send: Shown, receive: Shown) {
        match &mut self.mode {
            Mode::Bars {
                send: send_bar,
                receive: receive_bar,
                ..
            } => {
                for (bar, shown) in [(send_bar, send), (receive_bar, receive)] {
                    bar.set_length(shown.total);
                    bar.set_position(shown.done.min(shown.total));
                    bar.set_message(shown.figures());
                }
            }
            Mode::Lines { interval, last } => {
                let now = Instant::now();
                if last.is_some_and(|at| now.duration_since(at) < *interval) {
                    return;
                }
                *last = Some(now);
                say(&format!(
                    "progress send {}/{} {} | recv {}/{} {}",
                    send.done,
                    send.total,
                    send.figures(),
                    receive.done,
                    receive.total,
                    receive.figures()
                ));
            }
        }
    }

    /// Leaves the bars drawn at their final state.
    pub fn finish(&self) {
        if let Mode::Bars { send, receive, .. } = &self.mode {
            send.abandon();
            receive.abandon();
        }
    }
}

/// Prints one line on stdout and flushes it (tests and logs follow the output line by line).
pub fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// At most 19 characters of a name, for a bar's label.
fn short(name: &str) -> String {
    if name.chars().count() <= 19 {
        name.to_owned()
    } else {
        let head: String = name.chars().take(18).collect();
        format!("{head}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eta_and_rate_read_well() {
        assert_eq!(eta_text(0), "0s");
        assert_eq!(eta_text(1), "1s");
        assert_eq!(eta_text(59_000), "59s");
        assert_eq!(eta_text(125_000), "2m05s");
        assert_eq!(eta_text(3_720_000), "1h02m");
        assert_eq!(eta_text(u64::MAX), "?");
        assert_eq!(rate_text(123_456_789), "123.5 MB/s");
    }

    #[test]
    fn figures_show_percent_rate_and_eta() {
        let shown = Shown {
            done: 25,
            total: 100,
            rate: 2_000_000,
            eta_ms: 3_000,
            unknown: false,
        };
        assert_eq!(shown.figures(), "25.0% 2.0 MB/s eta 3s");
        assert_eq!(Shown::waiting(10).figures(), "0.0% (no figures yet)");
        assert_eq!(Shown::finished(0).percent(), 100.0);
        assert_eq!(Shown::finished(7).figures(), "100.0% done");
    }
}
