//! Parsing of canary weights, weight totals and rollout step lists.

/// Default of `canary-weight-total`, and the total the controller uses when a smaller one is set.
pub const DEFAULT_TOTAL: u32 = 100;

/// Parses a weight given on the command line or read from an annotation.
///
/// The value must be a whole number. The range check happens in [`check_weight`] because the
/// total may come from another flag or annotation.
pub fn parse_weight(value: &str) -> Result<u32, String> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err("invalid weight \"\": expected a whole number such as 10".to_string());
    }
    trimmed
        .parse::<u32>()
        .map_err(|_| format!("invalid weight {value:?}: expected a whole number such as 10"))
}

/// Parses a weight total (`--total` or `canary-weight-total`), which must be at least 1.
pub fn parse_total(value: &str) -> Result<u32, String> {
    let total = value.trim().parse::<u32>().map_err(|_| {
        format!("invalid weight total {value:?}: expected a whole number such as 100")
    })?;
    if total == 0 {
        return Err("invalid weight total \"0\": the total must be at least 1".to_string());
    }
    Ok(total)
}

/// Checks that `weight` lies within `0..=total`.
pub fn check_weight(weight: u32, total: u32) -> Result<(), String> {
    if weight > total {
        return Err(format!(
            "weight {weight} is out of range: it must lie between 0 and the total {total}"
        ));
    }
    Ok(())
}

/// Returns the total ingress-nginx really uses: totals below 100 count as 100.
pub fn effective_total(total: u32) -> u32 {
    total.max(DEFAULT_TOTAL)
}

/// Returns the share of requests (0.0 to 1.0) that ingress-nginx sends to the canary for a weight.
///
/// The controller draws a random integer in `1..=total` and picks the canary when it is at most
/// the weight, so weights above the total send everything.
pub fn canary_share(weight: u32, total: u32) -> f64 {
    let total = effective_total(total);
    (f64::from(weight) / f64::from(total)).min(1.0)
}

/// Parses `--steps` such as `10,25,50,100`: whole numbers, strictly increasing.
pub fn parse_steps(value: &str) -> Result<Vec<u32>, String> {
    let mut steps = Vec::new();
    for part in value.split(',') {
        let step = parse_weight(part).map_err(|_| {
            format!("invalid step {part:?} in --steps {value:?}: expected whole numbers such as 10,25,50,100")
        })?;
        if let Some(&previous) = steps.last()
            && step <= previous
        {
            return Err(format!(
                "invalid --steps {value:?}: weights must increase, but {step} follows {previous}"
            ));
        }
        steps.push(step);
    }
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weight_parses_whole_numbers() {
        assert_eq!(parse_weight("10"), Ok(10));
        assert_eq!(parse_weight(" 0 "), Ok(0));
    }

    #[test]
    fn weight_rejects_non_numbers() {
        for bad in ["", "ten", "-5", "1.5", "10%"] {
            let error = parse_weight(bad).unwrap_err();
            assert!(error.starts_with("invalid weight"), "{bad}: {error}");
            assert!(error.contains("whole number"), "{bad}: {error}");
        }
    }

    #[test]
    fn weight_above_total_rejected() {
        assert!(check_weight(100, 100).is_ok());
        assert!(check_weight(0, 100).is_ok());
        assert_eq!(
            check_weight(101, 100).unwrap_err(),
            "weight 101 is out of range: it must lie between 0 and the total 100"
        );
    }

    #[test]
    fn total_zero_rejected() {
        assert!(parse_total("0").is_err());
        assert_eq!(parse_total("200"), Ok(200));
        assert!(parse_total("x").is_err());
    }

    #[test]
    fn share_uses_total_of_at_least_hundred() {
        assert_eq!(canary_share(50, 100), 0.5);
        assert_eq!(canary_share(100, 200), 0.5);
        assert_eq!(canary_share(25, 50), 0.25);
        assert_eq!(canary_share(200, 200), 1.0);
        assert_eq!(canary_share(150, 100), 1.0);
        assert_eq!(canary_share(0, 100), 0.0);
    }

    #[test]
    fn steps_parse_and_must_increase() {
        assert_eq!(parse_steps("10,25,50,100"), Ok(vec![10, 25, 50, 100]));
        assert!(parse_steps("10,5").unwrap_err().contains("must increase"));
        assert!(parse_steps("10,,20").unwrap_err().contains("invalid step"));
        assert!(parse_steps("a").is_err());
    }
}
