//! Token bucket filter (TBF) parameters: the default burst and queue limit for a rate, and the
//! raw TCA_OPTIONS attributes of the `tbf` qdisc, which netlink-packet-route has no type for.
//!
//! The layout follows `include/uapi/linux/pkt_sched.h`: `struct tc_tbf_qopt` contains two
//! `struct tc_ratespec` (rate and peak rate), then `limit`, `buffer` and `mtu` as u32, all in
//! the host's byte order.

use rtnetlink::packet_core::{DefaultNla, Nla, NlasIterator};
use serde::{Deserialize, Serialize};

use crate::rate::{MAX_BURST, MIN_BURST, Rate};

/// Time the default burst lasts at the shaped rate. Short enough that the first second of a
/// transfer stays close to the rate, long enough to absorb timer jitter at high rates.
pub const BURST_WINDOW_MICROS: u64 = 5_000;
/// Smallest default burst: four full-sized Ethernet frames, so that TBF never runs out of
/// tokens for one frame at low rates.
pub const MIN_DEFAULT_BURST: u64 = 4 * MIN_BURST;
/// Maximum queueing delay of the TBF queue at the shaped rate; packets beyond it are dropped.
pub const QUEUE_LATENCY_MICROS: u64 = 25_000;

const TCA_TBF_PARMS: u16 = 1;
const TCA_TBF_RATE64: u16 = 4;
const TCA_TBF_BURST: u16 = 6;
/// `TC_LINKLAYER_ETHERNET`: the kernel computes transmit times itself and needs no rate table.
const LINKLAYER_ETHERNET: u8 = 1;
/// Kernel packet scheduler ticks per second: one tick is 64 ns (`PSCHED_SHIFT` = 6).
const PSCHED_TICKS_PER_SECOND: u128 = 1_000_000_000 / 64;
const RATESPEC_LEN: usize = 12;
const QOPT_LEN: usize = 2 * RATESPEC_LEN + 12;

/// Settings of one TBF qdisc, in bytes as the kernel takes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TbfParams {
    /// Shaped rate in bytes/s.
    pub rate_bytes: u64,
    /// Bucket size in bytes: how much may leave at once after an idle period.
    pub burst_bytes: u64,
    /// Queue size in bytes; packets arriving at a full queue are dropped.
    pub limit_bytes: u64,
}

impl TbfParams {
    /// Chooses the settings for a rate: `burst` when given, else [`default_burst`], and a
    /// queue that fits [`QUEUE_LATENCY_MICROS`] of traffic on top of the burst.
    pub fn for_rate(rate: Rate, burst: Option<u64>) -> TbfParams {
        let rate_bytes = rate.bytes_per_second();
        let burst_bytes = burst.unwrap_or_else(|| default_burst(rate));
        TbfParams {
            rate_bytes,
            burst_bytes,
            limit_bytes: queue_limit(rate_bytes, burst_bytes),
        }
    }

    /// Returns the shaped rate in bit/s.
    pub fn rate_bits(&self) -> u64 {
        self.rate_bytes.saturating_mul(8)
    }
}

/// Returns the default burst for a rate: [`BURST_WINDOW_MICROS`] of traffic, at least
/// [`MIN_DEFAULT_BURST`] and at most [`MAX_BURST`].
pub fn default_burst(rate: Rate) -> u64 {
    let window = u128::from(rate.bytes_per_second()) * u128::from(BURST_WINDOW_MICROS) / 1_000_000;
    (window as u64).clamp(MIN_DEFAULT_BURST, MAX_BURST)
}

/// Returns the queue limit in bytes: the burst plus [`QUEUE_LATENCY_MICROS`] at the rate,
/// at least four more frames, at most `u32::MAX` (the field's size).
pub fn queue_limit(rate_bytes: u64, burst_bytes: u64) -> u64 {
    let queued = u128::from(rate_bytes) * u128::from(QUEUE_LATENCY_MICROS) / 1_000_000;
    let queued = (queued as u64).max(4 * MIN_BURST);
    burst_bytes.saturating_add(queued).min(u64::from(u32::MAX))
}

/// Converts a byte count at a rate into kernel scheduler ticks, rounded up, saturating at
/// `u32::MAX`.
fn bytes_to_ticks(bytes: u64, rate_bytes: u64) -> u32 {
    if rate_bytes == 0 {
        return u32::MAX;
    }
    let ticks = (u128::from(bytes) * PSCHED_TICKS_PER_SECOND).div_ceil(u128::from(rate_bytes));
    u32::try_from(ticks).unwrap_or(u32::MAX)
}

/// Converts kernel scheduler ticks at a rate back into bytes, rounded to the nearest byte.
fn ticks_to_bytes(ticks: u32, rate_bytes: u64) -> u64 {
    let bytes = (u128::from(ticks) * u128::from(rate_bytes) + PSCHED_TICKS_PER_SECOND / 2)
        / PSCHED_TICKS_PER_SECOND;
    u64::try_from(bytes).unwrap_or(u64::MAX)
}

/// Encodes the nested attributes of TCA_OPTIONS for `tbf`: TCA_TBF_PARMS, TCA_TBF_BURST and,
/// for rates of 2^32 bytes/s and above, TCA_TBF_RATE64 (the 32-bit rate field is then
/// `u32::MAX`, as `tc` of iproute2 6.1 sends it).
pub fn encode_options(params: &TbfParams) -> Vec<DefaultNla> {
    let burst = u32::try_from(params.burst_bytes).unwrap_or(u32::MAX);
    let limit = u32::try_from(params.limit_bytes).unwrap_or(u32::MAX);
    let rate32 = u32::try_from(params.rate_bytes).unwrap_or(u32::MAX);

    let mut qopt = Vec::with_capacity(QOPT_LEN);
    // Rate: cell_log, linklayer, overhead, cell_align, mpu, rate.
    qopt.push(0u8);
    qopt.push(LINKLAYER_ETHERNET);
    qopt.extend_from_slice(&0u16.to_ne_bytes());
    qopt.extend_from_slice(&0i16.to_ne_bytes());
    qopt.extend_from_slice(&0u16.to_ne_bytes());
    qopt.extend_from_slice(&rate32.to_ne_bytes());
    // Peak rate: all zero, so the kernel applies no peak rate.
    qopt.extend_from_slice(&[0u8; RATESPEC_LEN]);
    qopt.extend_from_slice(&limit.to_ne_bytes());
    qopt.extend_from_slice(&bytes_to_ticks(u64::from(burst), params.rate_bytes).to_ne_bytes());
    qopt.extend_from_slice(&0u32.to_ne_bytes());

    let mut attributes = vec![
        DefaultNla::new(TCA_TBF_PARMS, qopt),
        DefaultNla::new(TCA_TBF_BURST, burst.to_ne_bytes().to_vec()),
    ];
    if params.rate_bytes > u64::from(u32::MAX) {
        attributes.push(DefaultNla::new(
            TCA_TBF_RATE64,
            params.rate_bytes.to_ne_bytes().to_vec(),
        ));
    }
    attributes
}

/// Decodes the nested TCA_OPTIONS of a `tbf` qdisc as the kernel dumps it: TCA_TBF_PARMS with
/// the bucket in ticks, and TCA_TBF_RATE64 when the rate does not fit 32 bits. The burst is
/// computed back from the ticks, so it can differ from the configured one by a few bytes.
pub fn decode_options(nested: &[u8]) -> Result<TbfParams, String> {
    let mut qopt: Option<Vec<u8>> = None;
    let mut rate64: Option<u64> = None;
    for attribute in NlasIterator::new(nested) {
        let attribute = attribute.map_err(|e| format!("malformed tbf attribute: {e}"))?;
        match attribute.kind() {
            TCA_TBF_PARMS => qopt = Some(attribute.value().to_vec()),
            TCA_TBF_RATE64 => {
                let bytes: [u8; 8] = attribute
                    .value()
                    .try_into()
                    .map_err(|_| "TCA_TBF_RATE64 is not 8 bytes".to_string())?;
                rate64 = Some(u64::from_ne_bytes(bytes));
            }
            _ => {}
        }
    }

    let qopt = qopt.ok_or_else(|| "tbf options lack TCA_TBF_PARMS".to_string())?;
    if qopt.len() < QOPT_LEN {
        return Err(format!(
            "TCA_TBF_PARMS is {} bytes, expected {QOPT_LEN}",
            qopt.len()
        ));
    }
    let field = |offset: usize| {
        u32::from_ne_bytes(qopt[offset..offset + 4].try_into().expect("4-byte slice"))
    };
    let rate32 = field(8);
    let limit = field(2 * RATESPEC_LEN);
    let buffer_ticks = field(2 * RATESPEC_LEN + 4);

    let rate_bytes = rate64.unwrap_or(u64::from(rate32));
    Ok(TbfParams {
        rate_bytes,
        burst_bytes: ticks_to_bytes(buffer_ticks, rate_bytes),
        limit_bytes: u64::from(limit),
    })
}

/// Returns the value bytes of an attribute that netlink-packet-route kept unparsed.
pub fn nla_value(attribute: &DefaultNla) -> Vec<u8> {
    let mut value = vec![0u8; attribute.value_len()];
    attribute.emit_value(&mut value);
    value
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rate::parse_rate;
    use rtnetlink::packet_core::Emitable;

    fn emit(attributes: &[DefaultNla]) -> Vec<u8> {
        let mut buffer = vec![0u8; attributes.buffer_len()];
        attributes.emit(&mut buffer);
        buffer
    }

    #[test]
    fn default_burst_follows_rate() {
        let cases = [
            ("100M", 62_500),
            ("20M", 12_500),
            ("1G", 625_000),
            ("1M", MIN_DEFAULT_BURST),
            ("1k", MIN_DEFAULT_BURST),
            ("1P", u64::from(u32::MAX)),
        ];
        for (rate, expected) in cases {
            assert_eq!(
                default_burst(parse_rate(rate).unwrap()),
                expected,
                "burst for {rate}"
            );
        }
    }

    #[test]
    fn limit_adds_queue_latency() {
        let params = TbfParams::for_rate(parse_rate("100M").unwrap(), None);
        assert_eq!(params.rate_bytes, 12_500_000);
        assert_eq!(params.limit_bytes, 62_500 + 312_500);
        let slow = TbfParams::for_rate(parse_rate("10k").unwrap(), Some(2_000));
        assert_eq!(slow.limit_bytes, 2_000 + 4 * MIN_BURST);
    }

    #[test]
    fn options_round_trip() {
        let params = TbfParams {
            rate_bytes: 2_500_000,
            burst_bytes: 12_500,
            limit_bytes: 75_000,
        };
        let bytes = emit(&encode_options(&params));
        assert_eq!(decode_options(&bytes), Ok(params));
    }

    #[test]
    fn parms_layout_matches_kernel_struct() {
        let params = TbfParams {
            rate_bytes: 2_500_000,
            burst_bytes: 12_500,
            limit_bytes: 75_000,
        };
        let attributes = encode_options(&params);
        assert_eq!(attributes.len(), 2);
        let qopt = nla_value(&attributes[0]);
        assert_eq!(qopt.len(), 36);
        assert_eq!(qopt[1], LINKLAYER_ETHERNET);
        assert_eq!(&qopt[8..12], &2_500_000u32.to_ne_bytes());
        assert_eq!(&qopt[12..24], &[0u8; 12]);
        assert_eq!(&qopt[24..28], &75_000u32.to_ne_bytes());
        // 12,500 bytes at 2.5 MB/s take 5 ms, which is 78,125 ticks of 64 ns.
        assert_eq!(&qopt[28..32], &78_125u32.to_ne_bytes());
        assert_eq!(nla_value(&attributes[1]), 12_500u32.to_ne_bytes());
    }

    #[test]
    fn rates_above_32_bits_use_rate64() {
        let params = TbfParams::for_rate(parse_rate("40G").unwrap(), None);
        let attributes = encode_options(&params);
        assert_eq!(attributes.len(), 3);
        assert_eq!(attributes[2].kind(), TCA_TBF_RATE64);
        let qopt = nla_value(&attributes[0]);
        assert_eq!(&qopt[8..12], &u32::MAX.to_ne_bytes());
        let decoded = decode_options(&emit(&attributes)).unwrap();
        assert_eq!(decoded.rate_bytes, 5_000_000_000);
    }

    #[test]
    fn truncated_parms_rejected() {
        let short = emit(&[DefaultNla::new(TCA_TBF_PARMS, vec![0; 20])]);
        assert_eq!(
            decode_options(&short),
            Err("TCA_TBF_PARMS is 20 bytes, expected 36".to_string())
        );
        assert!(
            decode_options(&[])
                .unwrap_err()
                .contains("lack TCA_TBF_PARMS")
        );
    }
}
