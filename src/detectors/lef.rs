//! The AMS-02 Layer-0 upgrade front-end (LEF) raw events and their calibration
//! (FORMAT.md 11.1).
//!
//! A LEF raw event is the data of a reply of TYPE 0x13 from node 0x40 (the USB-L0 box),
//! in `l0_541.dat` the inner block of a fine-time envelope: 1794 bytes, one word (low byte
//! an 8-bit event counter, high byte the link) and 896 words of bit planes. The 896 words,
//! each written high byte first, are the stream `s[0..1792]`; group `g` (0..127) is
//! `s[14 g .. 14 g + 14]`, byte `b` of a group holds bit `b` of 8 samples, ADC `a` in bit
//! `a`. Raw channel `r = 128 a + g` is channel `c = (15 - r / 64) * 64 + r % 64`, VA
//! `c / 64`, channel in the VA `c % 64`. An empty reply (no data) is a poll; any other
//! length is one `lef_payload` problem.
//!
//! The calibration ([`calibrate`]) is btdaq's `DecodeData::ComputeCalibration` with every
//! quantity in `f32` and the same order of operations, so that the same inputs give the
//! same bits.

use crate::block::BlockHeader;
use crate::columns::table;
use crate::envelope::NestedRow;
use crate::problems::{Problem, ProblemKind};
use crate::words::{Be, ByteOrder, Le, Order};

/// NODE of the USB-L0 box that sends the LEF raw events.
pub const NODE: u16 = 0x40;
/// `data_type` of a LEF read-event reply.
pub const DATA_TYPE: u32 = 0x13;
/// Data bytes of a LEF raw event: one counter/link word and 896 bit-plane words.
pub const EVENT_BYTES: usize = 1794;
/// Bytes of bit planes.
pub const PLANE_BYTES: usize = 1792;
/// Channels of a LEF.
pub const CHANNELS: usize = 1024;
/// VA chips of a LEF.
pub const N_VA: usize = 16;
/// Channels of a VA.
pub const VA_CHANNELS: usize = 64;
/// ADCs (one bit of each plane byte each).
pub const N_ADC: usize = 8;
/// Bits of a sample.
pub const SAMPLE_BITS: usize = 14;
/// Groups of 14 plane bytes.
pub const GROUPS: usize = PLANE_BYTES / SAMPLE_BITS;
/// The smallest average number of samples above 0 per channel for a valid calibration.
pub const MIN_CALIBRATION_EVENTS: usize = 100;

table! {
    /// `File.lef_raw()`: one row per LEF raw event (FORMAT.md 11.1); `adc` holds 1024
    /// values a row, in channel order.
    LefRawColumns {
        /// [B] byte offset of the event's own block (the reply of TYPE 0x13 from node 0x40)
        offset: u64,
        /// [s] TIME of the event's block as stored (Unix seconds in the Layer-0 files)
        time: u32,
        /// [us] the enclosing fine-time envelope's microseconds (0 without one)
        time_us: u32,
        /// 8-bit event counter (low byte of the first data word)
        counter: u8,
        /// the link the event came in on (high byte of the first data word)
        link: u8,
        /// [ADC] the 1024 14-bit samples in channel order (ams02.l0.channel_map()). Shape (n, 1024).
        adc: u16,
    }
}

table! {
    /// `ams02.l0.channel_map()`: one row per LEF channel (FORMAT.md 11.1).
    LefChannelColumns {
        /// channel c (0..1023), the column of lef_raw()'s adc
        channel: u16,
        /// VA chip of the channel: c // 64 (0..15)
        va: u8,
        /// channel in its VA: c % 64 (0..63)
        va_channel: u8,
        /// raw channel r = 128 adc + group that reads it: c = (15 - r // 64) * 64 + r % 64
        raw_channel: u16,
        /// the ADC (0..7, a bit of each plane byte) that reads it: r // 128
        adc: u8,
    }
}

/// The [`LefChannelColumns`] of the 1024 channels, in channel order.
pub fn channel_table() -> LefChannelColumns {
    let mut t = LefChannelColumns::default();
    t.reserve(CHANNELS);
    let mut raw = vec![0u16; CHANNELS];
    for r in 0..CHANNELS {
        raw[channel(r)] = r as u16;
    }
    for (c, &r) in raw.iter().enumerate() {
        t.channel.push(c as u16);
        t.va.push((c / VA_CHANNELS) as u8);
        t.va_channel.push((c % VA_CHANNELS) as u8);
        t.raw_channel.push(r);
        t.adc.push((usize::from(r) / GROUPS) as u8);
    }
    t
}

impl LefRawColumns {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.offset.len()
    }
    /// True without rows.
    pub fn is_empty(&self) -> bool {
        self.offset.is_empty()
    }
}

/// The channel of raw channel `r` (ADC `a`, group `g`: `r = 128 a + g`).
#[inline]
pub const fn channel(r: usize) -> usize {
    (15 - r / VA_CHANNELS) * VA_CHANNELS + r % VA_CHANNELS
}

/// Whether a block is a LEF read-event reply (data type 0x13, RR = 1, node 0x40).
#[inline]
pub fn is_lef_reply(h: &BlockHeader) -> bool {
    h.top && h.rr && h.node == NODE && h.data_type() == DATA_TYPE
}

/// The `lef_payload` problem of a LEF reply whose data are neither empty nor 1794 bytes.
pub fn check_block(h: &BlockHeader) -> Option<Problem> {
    if !is_lef_reply(h) {
        return None;
    }
    let n = h.data_end - h.data_start;
    (n != 0 && n != EVENT_BYTES).then(|| {
        Problem::new(
            h.offset,
            ProblemKind::LefPayload,
            format!(
                "LEF reply (TYPE 0x13, node 0x40) with {n} data bytes: FORMAT.md 11.1 expects {EVENT_BYTES} (a raw event) or 0 (a poll); skipped"
            ),
        )
    })
}

/// Decodes the 1792 plane bytes `stream` (`s[0..1792]`) into 1024 samples in channel
/// order.
pub fn decode_planes(stream: &[u8; PLANE_BYTES], out: &mut [u16; CHANNELS]) {
    for (g, bytes) in stream.chunks_exact(SAMPLE_BITS).enumerate() {
        // Spread the 14 bytes into one u16 per ADC bit: the 8 samples of this group.
        let mut v = [0u16; N_ADC];
        for (b, &byte) in bytes.iter().enumerate() {
            for (a, slot) in v.iter_mut().enumerate() {
                *slot |= u16::from((byte >> a) & 1) << b;
            }
        }
        for (a, &value) in v.iter().enumerate() {
            out[channel(a * GROUPS + g)] = value;
        }
    }
}

/// The plane stream of a LEF event's data (after its counter word): each of the 896
/// words, read in the file's byte order, written high byte first.
fn stream_of<O: Order>(data: &[u8]) -> [u8; PLANE_BYTES] {
    let mut s = [0u8; PLANE_BYTES];
    for (dst, src) in s.chunks_exact_mut(2).zip(data.chunks_exact(2)) {
        let w = O::word([src[0], src[1]]);
        dst[0] = (w >> 8) as u8;
        dst[1] = w as u8;
    }
    s
}

/// The LEF raw events among the blocks `rows` (the nested walk, in file order).
pub fn lef_raw(bytes: &[u8], order: ByteOrder, rows: &[NestedRow]) -> LefRawColumns {
    match order {
        ByteOrder::Little => lef_raw_with::<Le>(bytes, rows),
        ByteOrder::Big => lef_raw_with::<Be>(bytes, rows),
    }
}

fn lef_raw_with<O: Order>(bytes: &[u8], rows: &[NestedRow]) -> LefRawColumns {
    let mut t = LefRawColumns::default();
    let mut samples = [0u16; CHANNELS];
    for r in rows {
        let Ok(h) = crate::block::parse::<O>(bytes, r.offset as usize, bytes.len(), true) else {
            continue;
        };
        if !is_lef_reply(&h) || h.data_end - h.data_start != EVENT_BYTES {
            continue;
        }
        let Some(data) = bytes.get(h.data_start..h.data_end) else {
            continue;
        };
        let first = O::word([data[0], data[1]]);
        decode_planes(&stream_of::<O>(&data[2..]), &mut samples);
        t.offset.push(r.offset);
        t.time.push(h.time);
        t.time_us.push(r.time_us);
        t.counter.push(first as u8);
        t.link.push((first >> 8) as u8);
        t.adc.extend_from_slice(&samples);
    }
    t
}

/// A LEF calibration (FORMAT.md 11.1).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Calibration {
    /// Per channel: the mean of its samples above 0.
    pub pedestal: Vec<f32>,
    /// Per channel: the RMS of its samples above 0 around the pedestal.
    pub raw_sigma: Vec<f32>,
    /// Per channel: the RMS of the pedestal- and common-noise-subtracted samples (0 when
    /// the calibration is not valid).
    pub sigma: Vec<f32>,
    /// Per event and VA (`n_events * 16`, event-major): the median of the VA's
    /// pedestal-subtracted samples (empty when the calibration is not valid).
    pub common_noise: Vec<f32>,
    /// Whether the samples above 0 average at least 100 per channel.
    pub valid: bool,
    /// Number of events.
    pub n_events: usize,
}

/// Sums `f32` values left to right from 0, as `std::accumulate(b, e, 0.0f)` does.
#[inline]
fn running_sum(values: impl Iterator<Item = f32>) -> f32 {
    values.fold(0.0f32, |acc, v| acc + v)
}

/// Calibrates `adc`, `n_events * 1024` samples (event-major, channel order), as btdaq's
/// `DecodeData::ComputeCalibration` does (FORMAT.md 11.1):
///
/// 1. per channel, its samples above 0 sorted ascending: pedestal = their `f32` running
///    sum / their count; raw sigma = sqrt(running sum of (sample - pedestal)^2 / count);
/// 2. valid when the count averages (integer division) at least 100 per channel; else
///    sigma is 0 and there is no common noise;
/// 3. per event and VA, common noise = the mean of the 32nd and 33rd of the VA's 64
///    values (sample - pedestal) sorted ascending;
/// 4. per channel, sigma = sqrt(running sum over events of
///    ((sample - pedestal) - common noise)^2 / number of events).
///
/// Steps 3 and 4 take every sample of every event (btdaq takes each channel's samples
/// above 0, the same when no sample is 0, as in `l0_541.dat`).
pub fn calibrate(adc: &[u16], n_events: usize) -> Calibration {
    let n = n_events.min(adc.len() / CHANNELS);
    let sample = |e: usize, c: usize| f32::from(adc[e * CHANNELS + c]);
    let mut cal = Calibration {
        pedestal: vec![0.0; CHANNELS],
        raw_sigma: vec![0.0; CHANNELS],
        sigma: vec![0.0; CHANNELS],
        common_noise: Vec::new(),
        valid: false,
        n_events: n,
    };
    let mut total_above = 0usize;
    let mut column: Vec<f32> = Vec::with_capacity(n);
    for c in 0..CHANNELS {
        column.clear();
        column.extend((0..n).map(|e| sample(e, c)).filter(|&v| v > 0.0));
        column.sort_by(f32::total_cmp);
        let count = column.len() as f32;
        let ped = running_sum(column.iter().copied()) / count;
        let rss = running_sum(column.iter().map(|&v| (v - ped) * (v - ped)));
        cal.pedestal[c] = ped;
        cal.raw_sigma[c] = (rss / count).sqrt();
        total_above += column.len();
    }
    cal.valid = total_above / CHANNELS >= MIN_CALIBRATION_EVENTS;
    if !cal.valid {
        return cal;
    }
    cal.common_noise = vec![0.0; n * N_VA];
    let mut sums = vec![0.0f32; CHANNELS];
    let mut values = [0.0f32; VA_CHANNELS];
    for e in 0..n {
        for va in 0..N_VA {
            let base = va * VA_CHANNELS;
            for (k, v) in values.iter_mut().enumerate() {
                *v = sample(e, base + k) - cal.pedestal[base + k];
            }
            values.sort_by(f32::total_cmp);
            let mid = VA_CHANNELS / 2;
            let cn = (0.5 * (f64::from(values[mid - 1]) + f64::from(values[mid]))) as f32;
            cal.common_noise[e * N_VA + va] = cn;
            for k in 0..VA_CHANNELS {
                let c = base + k;
                let d = sample(e, c) - cal.pedestal[c] - cn;
                sums[c] += d * d;
            }
        }
    }
    for (s, sum) in cal.sigma.iter_mut().zip(&sums) {
        *s = (sum / n as f32).sqrt();
    }
    cal
}

/// The pedestal- and common-noise-subtracted signals of `adc` (`n_events * 1024`):
/// `(sample - pedestal) - common noise`, in `f32` (the terms of step 4 of [`calibrate`]).
/// Without common noise (an invalid calibration) only the pedestal is subtracted.
pub fn subtract(adc: &[u16], n_events: usize, pedestal: &[f32], common_noise: &[f32]) -> Vec<f32> {
    let n = n_events.min(adc.len() / CHANNELS);
    let mut out = Vec::with_capacity(n * CHANNELS);
    for e in 0..n {
        for c in 0..CHANNELS {
            let cn = common_noise
                .get(e * N_VA + c / VA_CHANNELS)
                .copied()
                .unwrap_or(0.0);
            let ped = pedestal.get(c).copied().unwrap_or(0.0);
            out.push(f32::from(adc[e * CHANNELS + c]) - ped - cn);
        }
    }
    out
}

/// The LEF raw files of btdaq's `trunkBT/DecodeL0/LEFP*.bin` use another record layout:
/// SIZE counts 16-bit **words** including the size word itself, then the ID word 0x8013,
/// a counter word and the 896 plane words (899 words, 1798 bytes a record). They are
/// not AMS block files: a description of the layout when `bytes` start with such
/// records (three, or all of a shorter file), else `None`.
pub fn words_layout(bytes: &[u8]) -> Option<String> {
    let word = |at: usize| {
        bytes
            .get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let mut p = 0usize;
    let mut records = 0usize;
    while records < 3 && p < bytes.len() {
        let (Some(size), Some(id)) = (word(p), word(p + 2)) else {
            return None;
        };
        // SIZE in words, counting itself; the ID of a TYPE 0x13 reply from node 0.
        if id != 0x8013 || size < 3 || size & 0x8000 != 0 {
            return None;
        }
        let len = (usize::from(size) + 1) * 2;
        if p + len > bytes.len() {
            return None;
        }
        p += len;
        records += 1;
    }
    let size = word(0)?;
    Some(format!(
        "a btdaq LEF raw file of the word-size layout (LEFP*.bin: SIZE {size} counts 16-bit words including the size word, ID 0x8013, one record every {} bytes), not AMS blocks whose SIZE counts bytes (FORMAT.md 2, 11.1)",
        (usize::from(size) + 1) * 2
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_map_follows_format_md() {
        assert_eq!(channel(0), 15 * 64);
        assert_eq!(channel(63), 15 * 64 + 63);
        assert_eq!(channel(64), 14 * 64);
        assert_eq!(channel(1023), 63);
        let mut seen = vec![false; CHANNELS];
        for r in 0..CHANNELS {
            seen[channel(r)] = true;
        }
        assert!(seen.iter().all(|&s| s));
    }

    #[test]
    fn planes_decode_each_bit() {
        // Sample of ADC a in group g: a * 100 + g (at most 827, 14 bits).
        let mut s = [0u8; PLANE_BYTES];
        for g in 0..GROUPS {
            for a in 0..N_ADC {
                let v = (a * 100 + g) as u16;
                for b in 0..SAMPLE_BITS {
                    s[g * SAMPLE_BITS + b] |= (((v >> b) & 1) as u8) << a;
                }
            }
        }
        let mut out = [0u16; CHANNELS];
        decode_planes(&s, &mut out);
        for g in 0..GROUPS {
            for a in 0..N_ADC {
                assert_eq!(out[channel(a * GROUPS + g)], (a * 100 + g) as u16);
            }
        }
    }

    #[test]
    fn calibration_of_a_flat_run() {
        // Every channel c reads 500 + c % 3 in even events and 502 + c % 3 in odd ones.
        let n = 120;
        let mut adc = Vec::with_capacity(n * CHANNELS);
        for e in 0..n {
            for c in 0..CHANNELS {
                adc.push(500 + (c % 3) as u16 + 2 * (e % 2) as u16);
            }
        }
        let cal = calibrate(&adc, n);
        assert!(cal.valid);
        assert_eq!(cal.pedestal[0], 501.0);
        assert_eq!(cal.pedestal[2], 503.0);
        assert_eq!(cal.raw_sigma[5], 1.0);
        // The whole VA moves together: the common noise takes it all.
        assert_eq!(cal.common_noise[0], -1.0);
        assert_eq!(cal.common_noise[N_VA], 1.0);
        assert!(cal.sigma.iter().all(|&s| s == 0.0));
        let sub = subtract(&adc, n, &cal.pedestal, &cal.common_noise);
        assert!(sub.iter().all(|&v| v == 0.0));
        // Too few events: not valid, sigma 0.
        let few = calibrate(&adc[..50 * CHANNELS], 50);
        assert!(!few.valid && few.common_noise.is_empty());
        assert_eq!(few.raw_sigma[0], 1.0);
    }

    #[test]
    fn word_layout_files_are_recognised() {
        let mut rec = vec![898u16, 0x8013, 0x0100];
        rec.extend(std::iter::repeat_n(0u16, 896));
        let mut data: Vec<u8> = Vec::new();
        for _ in 0..3 {
            data.extend(rec.iter().flat_map(|w| w.to_le_bytes()));
        }
        assert!(words_layout(&data).is_some());
        assert!(words_layout(&data[..100]).is_none());
        data[2] = 0x05;
        assert!(words_layout(&data).is_none());
    }
}
