//! Statistics of `verify`: the Wilson score interval of the observed canary share and the rule
//! that decides whether it agrees with the expected weight.

use serde::Serialize;

/// Two-sided 95% quantile of the standard normal distribution.
pub const Z_95: f64 = 1.959_963_984_540_054;

/// A proportion with its 95% confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Interval {
    /// Observed fraction.
    pub share: f64,
    /// Lower bound of the 95% interval.
    pub low: f64,
    /// Upper bound of the 95% interval.
    pub high: f64,
}

/// Computes the Wilson score interval for `hits` successes out of `trials`.
///
/// The Wilson interval stays inside 0..1 and keeps close to its nominal coverage for shares near
/// 0 or 1 and small samples, where the normal approximation fails. Returns `None` for no trials.
pub fn wilson_interval(hits: u64, trials: u64) -> Option<Interval> {
    if trials == 0 || hits > trials {
        return None;
    }
    let n = trials as f64;
    let share = hits as f64 / n;
    let z2 = Z_95 * Z_95;
    let denominator = 1.0 + z2 / n;
    let center = (share + z2 / (2.0 * n)) / denominator;
    let half = Z_95 / denominator * (share * (1.0 - share) / n + z2 / (4.0 * n * n)).sqrt();
    Some(Interval {
        share,
        low: (center - half).max(0.0),
        high: (center + half).min(1.0),
    })
}

/// Reports whether the expected share lies within the interval, which is the pass rule of
/// `verify --expect-weight`.
pub fn agrees(interval: &Interval, expected_share: f64) -> bool {
    // A tolerance absorbs rounding when the expected share is exactly 0 or 1.
    const EPSILON: f64 = 1e-12;
    expected_share >= interval.low - EPSILON && expected_share <= interval.high + EPSILON
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 5e-4
    }

    #[test]
    fn wilson_matches_reference_values() {
        // 50 of 200: Wilson 95% interval 0.1950 to 0.3143 (computed by hand from the formula).
        let interval = wilson_interval(50, 200).unwrap();
        assert!(close(interval.share, 0.25));
        assert!(close(interval.low, 0.1950), "{interval:?}");
        assert!(close(interval.high, 0.3143), "{interval:?}");
    }

    #[test]
    fn wilson_stays_within_bounds() {
        let none = wilson_interval(0, 20).unwrap();
        assert_eq!(none.low, 0.0);
        assert!(none.high > 0.1 && none.high < 0.2, "{none:?}");
        let all = wilson_interval(20, 20).unwrap();
        assert_eq!(all.high, 1.0);
        assert!(all.low > 0.8, "{all:?}");
    }

    #[test]
    fn no_trials_has_no_interval() {
        assert_eq!(wilson_interval(0, 0), None);
        assert_eq!(wilson_interval(3, 2), None);
    }

    #[test]
    fn decision_rule() {
        let interval = wilson_interval(50, 200).unwrap();
        assert!(agrees(&interval, 0.25));
        assert!(agrees(&interval, 0.20));
        assert!(!agrees(&interval, 0.50));
        assert!(!agrees(&interval, 0.10));
        assert!(agrees(&wilson_interval(0, 200).unwrap(), 0.0));
        assert!(agrees(&wilson_interval(200, 200).unwrap(), 1.0));
    }
}
