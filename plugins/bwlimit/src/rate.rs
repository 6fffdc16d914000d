//! Bandwidth values: Kubernetes quantities in bit/s for rates and in bytes for burst sizes,
//! parsed the way kubelet parses the `kubernetes.io/*-bandwidth` annotations.

use std::fmt;

/// Smallest rate kubelet accepts in a bandwidth annotation, in bit/s (`1k`).
pub const MIN_RATE: u64 = 1_000;
/// Largest rate kubelet accepts in a bandwidth annotation, in bit/s (`1P`).
pub const MAX_RATE: u64 = 1_000_000_000_000_000;
/// Smallest burst: one Ethernet frame with VLAN tag. TBF drops any packet larger than its
/// burst unless the packet is a GSO packet it can segment.
pub const MIN_BURST: u64 = 1_518;
/// Largest burst: TCA_TBF_BURST is a u32 byte count.
pub const MAX_BURST: u64 = u32::MAX as u64;

/// A rate in bit/s, within [`MIN_RATE`]..=[`MAX_RATE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rate(u64);

impl Rate {
    /// Builds a rate from bit/s, checking the range kubelet accepts.
    pub fn from_bits_per_second(bits: u64) -> Result<Rate, String> {
        check_rate_range(&bits.to_string(), bits)
    }

    /// Returns the rate in bit/s.
    pub fn bits_per_second(self) -> u64 {
        self.0
    }

    /// Returns the rate in bytes/s as the kernel takes it, rounded down.
    pub fn bytes_per_second(self) -> u64 {
        self.0 / 8
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&human_rate(self.0))
    }
}

/// Parses a rate the way kubelet parses a bandwidth annotation: a Kubernetes quantity read as
/// bit/s (`240M` = 240,000,000, `1Mi` = 1,048,576, `1.5M`, `1e6`), rounded up to a whole
/// number as `resource.Quantity.Value()` rounds, and within 1k..=1P.
pub fn parse_rate(text: &str) -> Result<Rate, String> {
    let bits = parse_quantity(text).map_err(|reason| {
        format!(
            "invalid rate {text:?}: {reason}: use a Kubernetes quantity in bit/s such as 100M, 1.5G or 512Ki"
        )
    })?;
    check_rate_range(text, bits)
}

fn check_rate_range(text: &str, bits: u64) -> Result<Rate, String> {
    if bits < MIN_RATE {
        return Err(format!(
            "invalid rate {text:?}: below the minimum of 1k (1000 bit/s)"
        ));
    }
    if bits > MAX_RATE {
        return Err(format!(
            "invalid rate {text:?}: above the maximum of 1P (10^15 bit/s)"
        ));
    }
    Ok(Rate(bits))
}

/// Parses a burst size in bytes: a Kubernetes quantity such as `64Ki` or `1M`, from one
/// Ethernet frame ([`MIN_BURST`]) up to `u32::MAX`.
pub fn parse_burst(text: &str) -> Result<u64, String> {
    let bytes = parse_quantity(text).map_err(|reason| {
        format!("invalid burst {text:?}: {reason}: use a size in bytes such as 32Ki or 1Mi")
    })?;
    if bytes < MIN_BURST {
        return Err(format!(
            "invalid burst {text:?}: below the minimum of {MIN_BURST} bytes (one Ethernet frame)"
        ));
    }
    if bytes > MAX_BURST {
        return Err(format!(
            "invalid burst {text:?}: above the maximum of {MAX_BURST} bytes"
        ));
    }
    Ok(bytes)
}

/// Parses a Kubernetes quantity (`resource.Quantity` syntax) and rounds it up to an integer.
/// Negative values and values above `u64::MAX` are errors.
pub fn parse_quantity(text: &str) -> Result<u64, String> {
    let (negative, unsigned) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        Some(_) => (false, text),
        None => return Err("empty value".to_string()),
    };

    // Split the number (digits with at most one decimal point) from the suffix.
    let number_len = unsigned
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(unsigned.len());
    let (number, suffix) = unsigned.split_at(number_len);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() {
        return Err("no number".to_string());
    }
    if fraction.contains('.') {
        return Err("more than one decimal point".to_string());
    }
    let scale = parse_suffix(suffix)?;

    // value = digits * 10^(exponent10 - fraction digits) * 2^exponent2, rounded up.
    let digits = format!("{whole}{fraction}");
    let digits = digits.trim_start_matches('0');
    if digits.is_empty() {
        return Ok(0);
    }
    if negative {
        return Err("negative value".to_string());
    }
    let exponent10 = scale.exponent10 - fraction.len() as i64;
    scaled_ceiling(digits, exponent10, scale.exponent2).ok_or_else(|| "too large".to_string())
}

/// Multiplier of a quantity suffix, as powers of ten and two.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Scale {
    exponent10: i64,
    exponent2: u32,
}

fn parse_suffix(suffix: &str) -> Result<Scale, String> {
    let decimal = |exponent10| {
        Ok(Scale {
            exponent10,
            exponent2: 0,
        })
    };
    let binary = |exponent2| {
        Ok(Scale {
            exponent10: 0,
            exponent2,
        })
    };
    match suffix {
        "" => decimal(0),
        "n" => decimal(-9),
        "u" => decimal(-6),
        "m" => decimal(-3),
        "k" => decimal(3),
        "M" => decimal(6),
        "G" => decimal(9),
        "T" => decimal(12),
        "P" => decimal(15),
        "E" => decimal(18),
        "Ki" => binary(10),
        "Mi" => binary(20),
        "Gi" => binary(30),
        "Ti" => binary(40),
        "Pi" => binary(50),
        "Ei" => binary(60),
        other => parse_exponent(other).ok_or_else(|| {
            format!("unknown suffix {other:?} (decimal k M G T P E, binary Ki Mi Gi Ti Pi Ei)")
        }),
    }
}

/// Parses a decimal exponent suffix such as `e6` or `E-3`.
fn parse_exponent(suffix: &str) -> Option<Scale> {
    let rest = suffix.strip_prefix(['e', 'E'])?;
    let digits = rest.strip_prefix(['+', '-']).unwrap_or(rest);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || digits.len() > 4 {
        return None;
    }
    let exponent10: i64 = rest.parse().ok()?;
    Some(Scale {
        exponent10,
        exponent2: 0,
    })
}

/// Computes ceil(digits * 10^exponent10 * 2^exponent2), or None when it exceeds u64.
fn scaled_ceiling(digits: &str, exponent10: i64, exponent2: u32) -> Option<u64> {
    // Any value with more than 40 significant digits above the decimal point is beyond u64.
    if digits.len() as i64 + exponent10 > 40 {
        return None;
    }
    let mut numerator: u128 = 0;
    for digit in digits.bytes() {
        numerator = numerator
            .checked_mul(10)?
            .checked_add(u128::from(digit - b'0'))?;
    }
    numerator = numerator.checked_mul(1u128.checked_shl(exponent2)?)?;

    let value = if exponent10 >= 0 {
        numerator.checked_mul(10u128.checked_pow(u32::try_from(exponent10).ok()?)?)?
    } else {
        // A divisor beyond u128 leaves a positive value below 1, which rounds up to 1.
        match 10u128.checked_pow(u32::try_from(-exponent10).ok()?) {
            Some(divisor) => numerator.div_ceil(divisor),
            None => 1,
        }
    };
    u64::try_from(value).ok()
}

/// Formats bit/s exactly with the largest decimal unit that needs at most three decimals,
/// as `240Mbit/s`, `1.5Gbit/s` or `1048.576kbit/s`.
pub fn human_rate(bits: u64) -> String {
    const UNITS: [(u64, &str); 5] = [
        (1_000_000_000_000_000, "Pbit/s"),
        (1_000_000_000_000, "Tbit/s"),
        (1_000_000_000, "Gbit/s"),
        (1_000_000, "Mbit/s"),
        (1_000, "kbit/s"),
    ];
    for (unit, name) in UNITS {
        if bits >= unit && (u128::from(bits) * 1000) % u128::from(unit) == 0 {
            let whole = bits / unit;
            let thousandths = (u128::from(bits % unit) * 1000 / u128::from(unit)) as u64;
            return if thousandths == 0 {
                format!("{whole}{name}")
            } else {
                let fraction = format!("{thousandths:03}");
                format!("{whole}.{}{name}", fraction.trim_end_matches('0'))
            };
        }
    }
    format!("{bits}bit/s")
}

/// Formats a byte count with a binary unit when one divides it, as `64KiB`, else `1500B`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [(u64, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    for (unit, name) in UNITS {
        if bytes >= unit && bytes.is_multiple_of(unit) {
            return format!("{}{name}", bytes / unit);
        }
    }
    format!("{bytes}B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_as_kubelet_reads_them() {
        let cases = [
            ("240M", 240_000_000),
            ("1Mi", 1_048_576),
            ("1k", 1_000),
            ("1P", 1_000_000_000_000_000),
            ("100000", 100_000),
            ("1.5M", 1_500_000),
            ("0.5G", 500_000_000),
            ("1e6", 1_000_000),
            ("1E6", 1_000_000),
            ("2Ki", 2_048),
            ("3Gi", 3 * (1 << 30)),
            ("1Ti", 1 << 40),
            ("+10M", 10_000_000),
            (".5M", 500_000),
            ("5.M", 5_000_000),
            ("1000000m", 1_000),
            ("1500500m", 1_501),
            ("1.0001k", 1_001),
            ("001k", 1_000),
            ("10e3", 10_000),
        ];
        for (text, expected) in cases {
            assert_eq!(
                parse_rate(text).map(Rate::bits_per_second),
                Ok(expected),
                "rate {text}"
            );
        }
    }

    #[test]
    fn rates_outside_range_rejected() {
        for text in [
            "999", "0", "0.999k", "1001T", "2P", "1E", "1Pi", "-5M", "-0.5k",
        ] {
            let error = parse_rate(text).expect_err(text);
            assert!(error.contains(&format!("{text:?}")), "{error}");
        }
        assert_eq!(
            parse_rate("999").unwrap_err(),
            "invalid rate \"999\": below the minimum of 1k (1000 bit/s)"
        );
        assert_eq!(
            parse_rate("2P").unwrap_err(),
            "invalid rate \"2P\": above the maximum of 1P (10^15 bit/s)"
        );
    }

    #[test]
    fn malformed_rates_rejected() {
        for text in [
            "", "M", "abc", "10 M", "10MB", "10mbit", "10K", "1.2.3M", "1e", "1e+", "10Mi5",
            "0x10", "1,5M", "--1M", "1e99999",
        ] {
            let error = parse_rate(text).expect_err(text);
            assert!(
                error.starts_with(&format!("invalid rate {text:?}: ")),
                "{error}"
            );
        }
        assert_eq!(
            parse_rate("10K").unwrap_err(),
            "invalid rate \"10K\": unknown suffix \"K\" (decimal k M G T P E, binary Ki Mi Gi Ti Pi Ei): \
             use a Kubernetes quantity in bit/s such as 100M, 1.5G or 512Ki"
        );
    }

    #[test]
    fn huge_quantities_report_too_large() {
        assert_eq!(
            parse_quantity("99999999999999999999999E"),
            Err("too large".to_string())
        );
        assert_eq!(parse_quantity("1e-30"), Ok(1));
        assert_eq!(parse_quantity("0.000"), Ok(0));
    }

    #[test]
    fn bursts_parse_in_bytes() {
        assert_eq!(parse_burst("64Ki"), Ok(65_536));
        assert_eq!(parse_burst("1M"), Ok(1_000_000));
        assert_eq!(parse_burst("1518"), Ok(1_518));
        assert_eq!(
            parse_burst("1k").unwrap_err(),
            "invalid burst \"1k\": below the minimum of 1518 bytes (one Ethernet frame)"
        );
        assert!(
            parse_burst("4Gi")
                .unwrap_err()
                .contains("above the maximum")
        );
        assert!(
            parse_burst("lots")
                .unwrap_err()
                .starts_with("invalid burst \"lots\": ")
        );
    }

    #[test]
    fn bytes_per_second_rounds_down() {
        assert_eq!(parse_rate("1001").unwrap().bytes_per_second(), 125);
        assert_eq!(parse_rate("20M").unwrap().bytes_per_second(), 2_500_000);
    }

    #[test]
    fn human_rates_use_decimal_units() {
        let cases = [
            (240_000_000, "240Mbit/s"),
            (1_500_000_000, "1.5Gbit/s"),
            (1_000, "1kbit/s"),
            (1_048_576, "1048.576kbit/s"),
            (1_048_577, "1048.577kbit/s"),
            (999, "999bit/s"),
            (20_250_000, "20.25Mbit/s"),
            (1_000_000_000_000_000, "1Pbit/s"),
        ];
        for (bits, expected) in cases {
            assert_eq!(human_rate(bits), expected, "{bits} bit/s");
        }
    }

    #[test]
    fn human_bytes_use_binary_units() {
        assert_eq!(human_bytes(65_536), "64KiB");
        assert_eq!(human_bytes(3 << 20), "3MiB");
        assert_eq!(human_bytes(1_500), "1500B");
    }
}
