//! The report: every figure with its raw baseline, the ratio and the target; the CPU time and
//! peak RSS of every process; rendered as a table, as `RESULT <key> <value> <unit>` lines and
//! as JSON.

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use crate::proc::ProcSample;

/// The unit of a figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Unit {
    /// Microseconds.
    Us,
    /// Nanoseconds.
    Ns,
    /// Messages (or frames, or deliveries) per second.
    MsgPerSec,
    /// Megabytes (10^6 bytes) per second.
    MBps,
    /// Gigabytes (10^9 bytes) per second.
    GBps,
    /// Seconds.
    Seconds,
    /// Mebibytes.
    MiB,
    /// Percent.
    Percent,
    /// 1 when a check passed, 0 when it failed.
    Ok,
}

impl Unit {
    /// The unit's symbol in `RESULT` lines.
    pub fn symbol(self) -> &'static str {
        match self {
            Unit::Us => "us",
            Unit::Ns => "ns",
            Unit::MsgPerSec => "msg/s",
            Unit::MBps => "MB/s",
            Unit::GBps => "GB/s",
            Unit::Seconds => "s",
            Unit::MiB => "MiB",
            Unit::Percent => "%",
            Unit::Ok => "ok",
        }
    }

    /// Factor to the unit's base (bandwidths to bytes/s), so ratios across units work.
    fn base(self) -> f64 {
        match self {
            Unit::MBps => 1e6,
            Unit::GBps => 1e9,
            _ => 1.0,
        }
    }

    fn format(self, value: f64) -> String {
        match self {
            Unit::MsgPerSec => {
                if value >= 1e6 {
                    format!("{:.2} M/s", value / 1e6)
                } else {
                    format!("{:.1} k/s", value / 1e3)
                }
            }
            Unit::Ok => if value >= 1.0 { "yes" } else { "NO" }.to_owned(),
            _ if value.abs() < 1.0 => format!("{value:.3} {}", self.symbol()),
            _ if value.abs() < 10.0 => format!("{value:.2} {}", self.symbol()),
            _ => format!("{value:.1} {}", self.symbol()),
        }
    }
}

/// A target for a figure, from the issue.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum Target {
    /// value / baseline ≤ x.
    RatioAtMost(f64),
    /// value / baseline ≥ x.
    RatioAtLeast(f64),
    /// lo ≤ value / baseline ≤ hi.
    RatioWithin(f64, f64),
    /// value ≤ x (in the figure's unit).
    AtMost(f64),
    /// value ≥ x (in the figure's unit).
    AtLeast(f64),
}

impl Target {
    fn describe(self, unit: Unit) -> String {
        match self {
            Target::RatioAtMost(x) => format!("≤{x}×"),
            Target::RatioAtLeast(x) => format!("≥{x}×"),
            Target::RatioWithin(lo, hi) => format!("{lo}–{hi}×"),
            Target::AtMost(x) => format!("≤{}", unit.format(x)),
            Target::AtLeast(_) if unit == Unit::Ok => "yes".to_owned(),
            Target::AtLeast(x) => format!("≥{}", unit.format(x)),
        }
    }

    fn met(self, value: f64, ratio: Option<f64>) -> Option<bool> {
        match self {
            Target::RatioAtMost(x) => ratio.map(|r| r <= x),
            Target::RatioAtLeast(x) => ratio.map(|r| r >= x),
            Target::RatioWithin(lo, hi) => ratio.map(|r| r >= lo && r <= hi),
            Target::AtMost(x) => Some(value <= x),
            Target::AtLeast(x) => Some(value >= x),
        }
    }
}

/// One measured figure.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    /// The key of its `RESULT` line.
    pub key: String,
    /// The value.
    pub value: f64,
    /// Its unit.
    pub unit: Unit,
    /// The key of the figure it is compared with (a raw baseline, or the small `scale`
    /// configuration).
    pub baseline: Option<String>,
    /// Targets from the issue.
    pub targets: Vec<Target>,
    /// What it measures, in a few words.
    pub what: String,
}

/// CPU and memory of one process in one measurement.
#[derive(Debug, Clone, Serialize)]
pub struct ProcFigure {
    /// The measurement (its figures' common key prefix).
    pub run: String,
    /// The process.
    pub process: String,
    /// CPU seconds inside the measurement window.
    pub cpu_seconds: f64,
    /// The window's length in seconds (CPU % = cpu / window).
    pub window_seconds: f64,
    /// Peak resident memory over the process's life.
    pub peak_rss_mib: f64,
}

/// A target's verdict, for the summary.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// The figure.
    pub key: String,
    /// The target, as text.
    pub target: String,
    /// The ratio to the baseline, if any.
    pub ratio: Option<f64>,
    /// Whether it was met (None: the baseline was not measured).
    pub met: Option<bool>,
}

/// Everything one run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The profile (`full`, `quick`, `smoke`).
    pub profile: String,
    /// The I/O backend the stations used.
    pub backend: String,
    /// `nproc`, kernel and CPU model.
    pub machine: String,
    /// Wall-clock seconds of the whole run.
    pub elapsed_seconds: f64,
    /// The figures, in measurement order.
    pub figures: Vec<Figure>,
    /// CPU and memory of each process.
    pub processes: Vec<ProcFigure>,
    /// Remarks of the scenarios (what was clamped, lost, retried).
    pub notes: Vec<String>,
}

impl Report {
    /// An empty report for `profile`.
    pub fn new(profile: &str) -> Report {
        Report {
            profile: profile.to_owned(),
            backend: String::from("?"),
            machine: machine(),
            elapsed_seconds: 0.0,
            figures: Vec::new(),
            processes: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Records the run's length.
    pub fn set_elapsed(&mut self, elapsed: Duration) {
        self.elapsed_seconds = elapsed.as_secs_f64();
    }

    /// Adds a figure; returns it for baselines and targets.
    pub fn add(&mut self, key: &str, value: f64, unit: Unit, what: &str) -> &mut Figure {
        self.figures.push(Figure {
            key: key.to_owned(),
            value,
            unit,
            baseline: None,
            targets: Vec::new(),
            what: what.to_owned(),
        });
        self.figures.last_mut().expect("just pushed")
    }

    /// Adds the CPU time and peak RSS of the processes of run `run`.
    pub fn add_processes(&mut self, run: &str, samples: &[ProcSample], window: Duration) {
        for s in samples {
            self.processes.push(ProcFigure {
                run: run.to_owned(),
                process: s.name.clone(),
                cpu_seconds: s.cpu_seconds,
                window_seconds: window.as_secs_f64(),
                peak_rss_mib: s.peak_rss_mib,
            });
        }
    }

    /// Adds a remark.
    pub fn note(&mut self, note: impl Into<String>) {
        let note = note.into();
        eprintln!("  note: {note}");
        self.notes.push(note);
    }

    /// The figure with `key`.
    pub fn get(&self, key: &str) -> Option<&Figure> {
        self.figures.iter().find(|f| f.key == key)
    }

    fn ratio(&self, figure: &Figure) -> Option<f64> {
        let base = self.get(figure.baseline.as_deref()?)?;
        let denominator = base.value * base.unit.base();
        (denominator > 0.0).then(|| figure.value * figure.unit.base() / denominator)
    }

    /// Every target with its verdict.
    pub fn verdicts(&self) -> Vec<Verdict> {
        let mut out = Vec::new();
        for f in &self.figures {
            let ratio = self.ratio(f);
            for t in &f.targets {
                out.push(Verdict {
                    key: f.key.clone(),
                    target: t.describe(f.unit),
                    ratio,
                    met: t.met(f.value, ratio),
                });
            }
        }
        out
    }

    /// The human table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "\nTamTam bench ({} profile, backend {}, {}; {:.0} s)\n",
            self.profile, self.backend, self.machine, self.elapsed_seconds
        );
        let _ = writeln!(
            out,
            "{:<34} {:>13}  {:<28} {:>13} {:>8}  {:<16}",
            "figure", "TamTam", "baseline", "", "ratio", "target"
        );
        let _ = writeln!(out, "{}", "-".repeat(120));
        for f in &self.figures {
            let (base_key, base_value) = match f.baseline.as_deref().and_then(|k| self.get(k)) {
                Some(b) => (b.key.clone(), b.unit.format(b.value)),
                None => (f.baseline.clone().unwrap_or_default(), String::new()),
            };
            let ratio = self.ratio(f);
            let ratio_text = ratio.map(|r| format!("{r:.2}×")).unwrap_or_default();
            let targets: Vec<String> = f
                .targets
                .iter()
                .map(|t| {
                    let mark = match t.met(f.value, ratio) {
                        Some(true) => "met",
                        Some(false) => "MISSED",
                        None => "n/a",
                    };
                    format!("{} {mark}", t.describe(f.unit))
                })
                .collect();
            let _ = writeln!(
                out,
                "{:<34} {:>13}  {:<28} {:>13} {:>8}  {}",
                f.key,
                f.unit.format(f.value),
                base_key,
                base_value,
                ratio_text,
                targets.join(", ")
            );
        }
        if !self.processes.is_empty() {
            let _ = writeln!(
                out,
                "\nprocesses (CPU inside the measurement window; peak RSS)"
            );
            let _ = writeln!(
                out,
                "{:<34} {:<18} {:>9} {:>7} {:>10}",
                "run", "process", "CPU s", "CPU %", "peak RSS"
            );
            for p in &self.processes {
                let percent = if p.window_seconds > 0.0 {
                    100.0 * p.cpu_seconds / p.window_seconds
                } else {
                    0.0
                };
                let _ = writeln!(
                    out,
                    "{:<34} {:<18} {:>9.2} {:>6.0}% {:>6.1} MiB",
                    p.run, p.process, p.cpu_seconds, percent, p.peak_rss_mib
                );
            }
        }
        let verdicts = self.verdicts();
        let met = verdicts.iter().filter(|v| v.met == Some(true)).count();
        let missed: Vec<String> = verdicts
            .iter()
            .filter(|v| v.met == Some(false))
            .map(|v| format!("{} {}", v.key, v.target))
            .collect();
        let _ = writeln!(
            out,
            "\ntargets: {met} met, {} missed{}",
            missed.len(),
            if missed.is_empty() {
                String::new()
            } else {
                format!(": {}", missed.join("; "))
            }
        );
        for note in &self.notes {
            let _ = writeln!(out, "note: {note}");
        }
        out
    }

    /// One `RESULT <key> <value> <unit>` line per figure and per process measure.
    pub fn result_lines(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "RESULT backend_{} 1 ok", self.backend);
        for f in &self.figures {
            let _ = writeln!(
                out,
                "RESULT {} {} {}",
                f.key,
                round(f.value),
                f.unit.symbol()
            );
        }
        for p in &self.processes {
            let _ = writeln!(
                out,
                "RESULT {}_cpu_{} {} s",
                p.run,
                p.process,
                round(p.cpu_seconds)
            );
            let _ = writeln!(
                out,
                "RESULT {}_rss_{} {} MiB",
                p.run,
                p.process,
                round(p.peak_rss_mib)
            );
        }
        out
    }

    /// The report as JSON: `results` maps each `RESULT` key to `{value, unit}`; the figures,
    /// processes, verdicts and notes follow in full.
    pub fn to_json(&self) -> String {
        let mut results = serde_json::Map::new();
        for line in self.result_lines().lines() {
            let mut f = line.split_whitespace().skip(1);
            if let (Some(key), Some(value), Some(unit)) = (f.next(), f.next(), f.next()) {
                results.insert(
                    key.to_owned(),
                    serde_json::json!({
                        "value": value.parse::<f64>().unwrap_or(f64::NAN),
                        "unit": unit,
                    }),
                );
            }
        }
        let value = serde_json::json!({
            "profile": self.profile,
            "backend": self.backend,
            "machine": self.machine,
            "elapsed_seconds": self.elapsed_seconds,
            "results": results,
            "figures": self.figures,
            "processes": self.processes,
            "verdicts": self.verdicts(),
            "notes": self.notes,
        });
        serde_json::to_string_pretty(&value).expect("serialisable")
    }
}

/// Rounds to a readable number of significant digits for `RESULT` lines.
fn round(value: f64) -> f64 {
    if value == 0.0 || !value.is_finite() {
        return value;
    }
    let digits = 4 - value.abs().log10().floor() as i32;
    let factor = 10f64.powi(digits.max(0));
    (value * factor).round() / factor
}

/// `nproc`, kernel and CPU model of this machine.
pub fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "?".into());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_owned())
        })
        .unwrap_or_else(|| "?".into());
    format!("nproc {cpus}, Linux {kernel}, {model}")
}

impl Figure {
    /// Compares this figure with the figure `key`.
    pub fn with_baseline(&mut self, key: &str) -> &mut Figure {
        self.baseline = Some(key.to_owned());
        self
    }

    /// Adds a target.
    pub fn target(&mut self, target: Target) -> &mut Figure {
        self.targets.push(target);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_and_targets() {
        let mut r = Report::new("smoke");
        r.add("raw", 2.0, Unit::GBps, "raw");
        r.add("fast", 1000.0, Unit::MBps, "fast")
            .with_baseline("raw")
            .target(Target::RatioAtLeast(0.8));
        let v = r.verdicts();
        assert_eq!(v.len(), 1);
        assert!((v[0].ratio.unwrap() - 0.5).abs() < 1e-9);
        assert_eq!(v[0].met, Some(false));
        assert!(r.result_lines().contains("RESULT fast 1000 MB/s"));
        assert!(r.to_json().contains("\"fast\""));
        assert!(r.table().contains("MISSED"));
    }

    #[test]
    fn rounding_keeps_significant_digits() {
        assert_eq!(round(71.234_56), 71.235);
        assert_eq!(round(12_345_678.9), 12_345_679.0);
    }
}
