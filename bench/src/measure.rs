//! Latency histograms (hdrhistogram, nanoseconds) and their summaries.

use hdrhistogram::Histogram;

/// Largest value recorded: 60 s in nanoseconds (larger samples are clamped).
const HIGHEST_NS: u64 = 60_000_000_000;

/// A histogram of nanosecond samples with 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIGHEST_NS, 3).expect("valid histogram bounds")
}

/// Records one sample, clamped into the histogram's range.
pub fn record(histogram: &mut Histogram<u64>, nanos: u64) {
    histogram.saturating_record(nanos.clamp(1, HIGHEST_NS));
}

/// Percentiles of a latency histogram, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latency {
    /// Median.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Largest sample.
    pub max_us: f64,
    /// Mean.
    pub mean_us: f64,
    /// Samples.
    pub count: u64,
}

impl Latency {
    /// The summary of `histogram`.
    pub fn of(histogram: &Histogram<u64>) -> Latency {
        let us = |ns: u64| ns as f64 / 1000.0;
        Latency {
            p50_us: us(histogram.value_at_quantile(0.5)),
            p99_us: us(histogram.value_at_quantile(0.99)),
            p999_us: us(histogram.value_at_quantile(0.999)),
            max_us: us(histogram.max()),
            mean_us: histogram.mean() / 1000.0,
            count: histogram.len(),
        }
    }

    /// The line a child prints: `p50 p99 p999 max mean count`.
    pub fn to_line(&self) -> String {
        format!(
            "{} {} {} {} {} {}",
            self.p50_us, self.p99_us, self.p999_us, self.max_us, self.mean_us, self.count
        )
    }

    /// Parses [`Latency::to_line`].
    pub fn parse(line: &str) -> Result<Latency, String> {
        let v: Vec<f64> = line
            .split_whitespace()
            .map(|f| f.parse::<f64>())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("bad latency line {line:?}: {e}"))?;
        if v.len() != 6 {
            return Err(format!("bad latency line {line:?}"));
        }
        Ok(Latency {
            p50_us: v[0],
            p99_us: v[1],
            p999_us: v[2],
            max_us: v[3],
            mean_us: v[4],
            count: v[5] as u64,
        })
    }
}

/// The median of `values` (the mean of the middle two for an even count; 0 when empty).
pub fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_line_round_trips() {
        let mut h = histogram();
        for ns in [1_000, 2_000, 3_000, 100_000] {
            record(&mut h, ns);
        }
        let l = Latency::of(&h);
        assert_eq!(l.count, 4);
        assert_eq!(Latency::parse(&l.to_line()).unwrap(), l);
    }

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
    }
}
