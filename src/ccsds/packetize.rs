//! Writing packet files: a simulated run cut into APID 976 science packets with ICD
//! headers, interleaved with APID 977 health-and-status packets and (optionally) APID
//! 124 commands, with packets left out on request to make gaps.

use std::io::{self, Write};

use super::apid;
use super::command;
use super::header::{PrimaryHeader, SecondaryHeader, HEADER_LEN, SEQ_MODULUS};
use super::health::SUBSET_ID;
use crate::simulate::{simulate_to_writer, SimConfig};
use crate::words::ByteOrder;

/// Options of [`simulate_ccsds_to_writer`] and [`packetize`].
#[derive(Clone, Debug)]
pub struct CcsdsSimConfig {
    /// Events in the simulated run.
    pub n_events: u64,
    /// Random seed (of the run and of the packet sizes).
    pub seed: u64,
    /// Smallest science packet, bytes with headers (at least 100 for HRDL).
    pub min_packet: usize,
    /// Largest science packet, bytes with headers (at most 4096 for HRDL).
    pub max_packet: usize,
    /// One H&S packet (APID 977, subset 308) after every this many science packets; 0 = none.
    pub housekeeping_every: u64,
    /// One command packet (APID 124) after every this many science packets; 0 = none.
    pub commands_every: u64,
    /// Science packet numbers (0-based, counting all science packets made) to leave out.
    pub drop: Vec<u64>,
    /// Fraction of science packets to leave out at random (besides `drop`).
    pub drop_fraction: f64,
    /// Sequence count of the first science packet.
    pub first_seq: u16,
    /// Coarse time of the first packet (seconds).
    pub start_time: u32,
    /// Packets per second of coarse time (the time stamps' pace).
    pub packets_per_second: f64,
    /// When > 0, the pace is chosen so that the packets span about this many seconds of
    /// coarse time (hours of downlink in a small file); `packets_per_second` is then
    /// ignored.
    pub duration_s: f64,
    /// Runs in the stream: the events are split into this many runs, numbered `run`,
    /// `run + 1`, ... (a run change between each).
    pub runs: u32,
    /// Run number of the first run.
    pub run: u32,
    /// The CHD words of the H&S packets.
    pub chd: ChdProfile,
    /// H&S packet numbers (0-based, counting all H&S packets made) to leave out: a
    /// sequence gap of APID 977 and a break in the H&S cycle counter.
    pub housekeeping_drop: Vec<u64>,
}

/// The CHD words of the simulated H&S packets.
#[derive(Clone, Debug, PartialEq)]
pub enum ChdProfile {
    /// Word `j` of packet `k` is `10 k + j` (mod 65536): every packet distinct.
    Counter,
    /// Word `j` (0-based) near [`chd_nominal`]`(j)` (noise of at most
    /// [`CHD_NOISE`]); every `every` packets (0 = never) one word leaves its band for
    /// `length` packets, to [`CHD_WARN_STEP`] or (every other time) [`CHD_ALARM_STEP`]
    /// above or below nominal: the limit crossings a monitor must show.
    Nominal {
        /// H&S packets between excursions (0 = none).
        every: u64,
        /// H&S packets an excursion lasts.
        length: u64,
    },
}

/// The nominal value of CHD word `j` (0-based) in [`ChdProfile::Nominal`]: 1000 (j + 1).
pub fn chd_nominal(j: usize) -> u16 {
    (1000 * (j + 1)) as u16
}
/// The largest distance from nominal of a CHD word outside an excursion.
pub const CHD_NOISE: u16 = 50;
/// An excursion to the caution band: nominal +- this.
pub const CHD_WARN_STEP: u16 = 450;
/// An excursion to the alarm band: nominal +- this.
pub const CHD_ALARM_STEP: u16 = 800;

/// The CHD words of H&S packet `k` under `profile`.
pub fn chd_words(k: u64, profile: &ChdProfile, seed: u64) -> [u16; 10] {
    let mut out = [0u16; 10];
    match profile {
        ChdProfile::Counter => {
            let k16 = k as u16;
            for (j, w) in out.iter_mut().enumerate() {
                *w = k16.wrapping_mul(10).wrapping_add(j as u16);
            }
        }
        ChdProfile::Nominal { every, length } => {
            let mut rng = SplitMix::new(seed ^ k.wrapping_mul(0x9E37_79B9));
            for (j, w) in out.iter_mut().enumerate() {
                let noise = rng.range(0, 2 * CHD_NOISE as usize) as i32 - CHD_NOISE as i32;
                *w = (chd_nominal(j) as i32 + noise) as u16;
            }
            if *every > 0 && k >= *every && k % every < (*length).max(1) {
                let n = k / every; // excursion number, from 1
                let j = ((n * 7) % 10) as usize;
                let step = if n % 2 == 0 {
                    CHD_ALARM_STEP
                } else {
                    CHD_WARN_STEP
                };
                let v = if (n / 2) % 2 == 0 {
                    chd_nominal(j).saturating_add(step)
                } else {
                    chd_nominal(j).saturating_sub(step)
                };
                if let Some(w) = out.get_mut(j) {
                    *w = v;
                }
            }
        }
    }
    out
}

impl Default for CcsdsSimConfig {
    fn default() -> Self {
        CcsdsSimConfig {
            n_events: 1000,
            seed: 0,
            min_packet: 100,
            max_packet: 4096,
            housekeeping_every: 16,
            commands_every: 0,
            drop: Vec::new(),
            drop_fraction: 0.0,
            first_seq: 0,
            start_time: 1_300_000_000,
            packets_per_second: 8.0,
            duration_s: 0.0,
            runs: 1,
            run: 1_305_000_000,
            chd: ChdProfile::Counter,
            housekeeping_drop: Vec::new(),
        }
    }
}

/// What [`packetize`] wrote.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CcsdsSimSummary {
    /// Events in the run.
    pub n_events: u64,
    /// Bytes of the block stream.
    pub stream_bytes: u64,
    /// Science packets made (written or dropped).
    pub science_packets: u64,
    /// Science packet numbers left out.
    pub dropped: Vec<u64>,
    /// Stream byte ranges `[start, end)` of the packets left out.
    pub dropped_ranges: Vec<(u64, u64)>,
    /// H&S packets written.
    pub housekeeping_packets: u64,
    /// Command packets written.
    pub command_packets: u64,
    /// Bytes written.
    pub file_bytes: u64,
    /// H&S packet numbers left out.
    pub housekeeping_dropped: Vec<u64>,
    /// The run numbers, in stream order.
    pub runs: Vec<u32>,
    /// Coarse time of the first and of the last packet written.
    pub time_span: (u32, u32),
}

/// SplitMix64: small, fast, good enough for sizes and drops.
#[derive(Clone, Debug)]
pub struct SplitMix(u64);

impl SplitMix {
    /// A generator from a seed.
    pub fn new(seed: u64) -> SplitMix {
        SplitMix(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi` (`lo` when `hi < lo`).
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        if hi <= lo {
            return lo;
        }
        lo + (self.next_u64() % (hi - lo + 1) as u64) as usize
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Encodes one packet with both headers.
pub fn encode_packet(
    apid: u16,
    seq_count: u16,
    secondary: &SecondaryHeader,
    user_data: &[u8],
) -> io::Result<Vec<u8>> {
    let total = HEADER_LEN + user_data.len();
    let length = u16::try_from(total - 7).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("packet of {total} bytes is longer than the 65542 a length field allows"),
        )
    })?;
    let primary = PrimaryHeader {
        version: 0,
        type_flag: 1,
        sec_hdr: true,
        apid,
        seq_flags: 3,
        seq_count: seq_count % SEQ_MODULUS,
        length,
    };
    let mut v = Vec::with_capacity(total);
    v.extend_from_slice(&primary.to_bytes());
    v.extend_from_slice(&secondary.to_bytes());
    v.extend_from_slice(user_data);
    Ok(v)
}

/// The H&S packet number `k` (64 words: headers, the 16 words of FORMAT.md section 7,
/// then 40 more subset-308 data words).
pub fn health_packet(k: u64, seq_count: u16, secondary: &SecondaryHeader) -> io::Result<Vec<u8>> {
    health_packet_with(
        k,
        seq_count,
        secondary,
        &chd_words(k, &ChdProfile::Counter, 0),
    )
}

/// The H&S packet number `k` with the given CHD words.
pub fn health_packet_with(
    k: u64,
    seq_count: u16,
    secondary: &SecondaryHeader,
    chd: &[u16; 10],
) -> io::Result<Vec<u8>> {
    let k16 = k as u16;
    let mut words: Vec<u16> = vec![
        SUBSET_ID,
        (k % 7) as u16,
        k16.wrapping_mul(3),
        if k % 50 == 49 { 0x0001 } else { 0 },
        k16,
        (k % 3) as u16,
    ];
    words.extend_from_slice(chd);
    words.extend((0..40u16).map(|j| 0xA000 | j));
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).collect();
    encode_packet(apid::HOUSEKEEPING, seq_count, secondary, &bytes)
}

/// A minimum-length command packet (24 words, ICD figure 3.2.3.1-1) with a correct
/// checksum word.
pub fn command_packet(k: u64, seq_count: u16, secondary: &SecondaryHeader) -> io::Result<Vec<u8>> {
    let mut user: Vec<u8> = vec![0, 0, 0, 1]; // spare, legal station mode
    for j in 0..13u16 {
        user.extend_from_slice(&(k as u16).wrapping_add(j).to_be_bytes());
    }
    user.extend_from_slice(&[0, 0]);
    let mut v = encode_packet(apid::COMMAND, seq_count, secondary, &user)?;
    let (_, sum) = command::checksum(&v).unwrap_or((0, 0));
    let n = v.len();
    if let Some(last) = v.get_mut(n - 2..) {
        last.copy_from_slice(&sum.to_be_bytes());
    }
    Ok(v)
}

fn secondary(
    i: u64,
    pps: f64,
    cfg: &CcsdsSimConfig,
    packet_type: u8,
    check_word: bool,
) -> SecondaryHeader {
    let t = i as f64 / pps;
    let whole = t.floor();
    SecondaryHeader {
        coarse_time: cfg.start_time.wrapping_add(whole as u32),
        fine_time: ((t - whole) * 256.0).floor().min(255.0) as u8,
        time_id: 1,
        check_word,
        zoe: false,
        packet_type,
        packet_id1: if check_word { 0x08B7 } else { 0x0001 },
        packet_id2: i as u16,
    }
}

/// Records the coarse time of packet `i` in the summary's time span.
fn note_time(sum: &mut CcsdsSimSummary, i: u64, pps: f64, cfg: &CcsdsSimConfig) {
    let t = secondary(i, pps, cfg, 0, false).coarse_time;
    if i == 0 {
        sum.time_span = (t, t);
    } else {
        sum.time_span.1 = t;
    }
}

/// Cuts a big-endian block stream into science packets of `min_packet..=max_packet`
/// bytes and writes them with the interleaved H&S and command packets.
pub fn packetize<W: Write>(
    w: &mut W,
    stream: &[u8],
    cfg: &CcsdsSimConfig,
) -> io::Result<CcsdsSimSummary> {
    let min_data = cfg.min_packet.saturating_sub(HEADER_LEN).max(1);
    let max_data = cfg.max_packet.saturating_sub(HEADER_LEN);
    if max_data < 2 * min_data {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "packet sizes {}..{} leave no room to cut a stream (need max >= 2 * min - 16)",
                cfg.min_packet, cfg.max_packet
            ),
        ));
    }
    if stream.len() < min_data {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "a stream of {} bytes is too short for one packet of {} bytes",
                stream.len(),
                cfg.min_packet
            ),
        ));
    }
    let pps = if cfg.duration_s > 0.0 {
        let avg = (min_data + max_data.min(stream.len())) as f64 / 2.0;
        let science = (stream.len() as f64 / avg).max(1.0);
        let per = |e: u64| if e > 0 { 1.0 / e as f64 } else { 0.0 };
        science * (1.0 + per(cfg.housekeeping_every) + per(cfg.commands_every)) / cfg.duration_s
    } else {
        cfg.packets_per_second
    };
    if !(pps.is_finite() && pps > 0.0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("packets per second must be positive, not {pps}"),
        ));
    }
    let mut rng = SplitMix::new(cfg.seed.wrapping_add(0xCC5D5));
    let mut sum = CcsdsSimSummary {
        stream_bytes: stream.len() as u64,
        ..Default::default()
    };
    let mut seq = cfg.first_seq % SEQ_MODULUS;
    let (mut hk_seq, mut cmd_seq) = (0u16, 0u16);
    let mut pos = 0usize;
    let mut i = 0u64; // science packet number
    let mut written = 0u64; // packets written (for time stamps)
    let mut hk_made = 0u64; // H&S packets made (written or dropped)
    while pos < stream.len() {
        let left = stream.len() - pos;
        let len = if left <= max_data {
            left
        } else {
            rng.range(min_data, max_data.min(left - min_data))
        };
        let chunk = stream.get(pos..pos + len).unwrap_or(&[]);
        let drop =
            cfg.drop.contains(&i) || (cfg.drop_fraction > 0.0 && rng.unit() < cfg.drop_fraction);
        if drop {
            sum.dropped.push(i);
            sum.dropped_ranges.push((pos as u64, (pos + len) as u64));
        } else {
            let p = encode_packet(
                apid::SCIENCE,
                seq,
                &secondary(written, pps, cfg, 0, false),
                chunk,
            )?;
            w.write_all(&p)?;
            sum.file_bytes += p.len() as u64;
            note_time(&mut sum, written, pps, cfg);
            written += 1;
        }
        seq = (seq + 1) % SEQ_MODULUS;
        pos += len;
        i += 1;
        if cfg.housekeeping_every > 0 && i % cfg.housekeeping_every == 0 {
            let k = hk_made;
            hk_made += 1;
            if cfg.housekeeping_drop.contains(&k) {
                sum.housekeeping_dropped.push(k);
            } else {
                let chd = chd_words(k, &cfg.chd, cfg.seed);
                let p =
                    health_packet_with(k, hk_seq, &secondary(written, pps, cfg, 0, false), &chd)?;
                w.write_all(&p)?;
                sum.file_bytes += p.len() as u64;
                sum.housekeeping_packets += 1;
                note_time(&mut sum, written, pps, cfg);
                written += 1;
            }
            hk_seq = (hk_seq + 1) % SEQ_MODULUS;
        }
        if cfg.commands_every > 0 && i % cfg.commands_every == 0 {
            let k = sum.command_packets;
            let p = command_packet(k, cmd_seq, &secondary(written, pps, cfg, 0xA, true))?;
            w.write_all(&p)?;
            sum.file_bytes += p.len() as u64;
            sum.command_packets += 1;
            note_time(&mut sum, written, pps, cfg);
            cmd_seq = (cmd_seq + 1) % SEQ_MODULUS;
            written += 1;
        }
    }
    sum.science_packets = i;
    Ok(sum)
}

/// Simulates a run (big-endian blocks, `crate::simulate`) and packetizes it. When
/// `blocks` is given, the block stream is written there too.
pub fn simulate_ccsds_to_writer<W: Write>(
    w: &mut W,
    cfg: &CcsdsSimConfig,
    blocks: Option<&mut dyn Write>,
) -> io::Result<CcsdsSimSummary> {
    let runs = u64::from(cfg.runs.max(1));
    let mut stream: Vec<u8> = Vec::new();
    let mut numbers = Vec::new();
    for r in 0..runs {
        // The events split as evenly as they go; the first runs take the remainder.
        let n = cfg.n_events / runs + u64::from(r < cfg.n_events % runs);
        let sim = SimConfig {
            n_events: n,
            seed: cfg.seed.wrapping_add(r),
            byte_order: ByteOrder::Big,
            run: cfg.run.wrapping_add(r as u32),
            ..Default::default()
        };
        simulate_to_writer(&mut stream, &sim)?;
        numbers.push(sim.run);
    }
    if let Some(b) = blocks {
        b.write_all(&stream)?;
    }
    let mut sum = packetize(w, &stream, cfg)?;
    sum.n_events = cfg.n_events;
    sum.runs = numbers;
    Ok(sum)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ccsds::scan::{scan, ScanOptions};
    use crate::ccsds::{command::verify_commands, health::health_status};

    #[test]
    fn packets_in_bounds_and_decodable() {
        let stream: Vec<u8> = (0..50_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let cfg = CcsdsSimConfig {
            commands_every: 5,
            housekeeping_every: 4,
            drop: vec![3],
            ..Default::default()
        };
        let mut out = Vec::new();
        let s = packetize(&mut out, &stream, &cfg).unwrap();
        assert_eq!(s.file_bytes, out.len() as u64);
        let ix = scan(&out, &ScanOptions::default());
        // one sequence gap (packet 3), nothing else
        assert_eq!(ix.problems.len(), 1, "{:?}", ix.problems);
        let sci = ix.rows_of_apid(976);
        assert_eq!(sci.len() as u64, s.science_packets - 1);
        for &r in &sci {
            let t = ix.headers[r].total_len();
            assert!(
                (100..=4096).contains(&t) || r == *sci.last().unwrap(),
                "{t}"
            );
        }
        let (hs, p) = health_status(&out, &ix, 977);
        assert!(p.is_empty());
        assert_eq!(hs.len() as u64, s.housekeeping_packets);
        assert_eq!(hs.cycle_counter[..3], [0, 1, 2]);
        let (c, p) = verify_commands(&out, &ix);
        assert!(p.is_empty());
        assert_eq!(c.ok.len() as u64, s.command_packets);
        assert_eq!(s.dropped, vec![3]);
    }

    #[test]
    fn nominal_chd_excursions_and_hours() {
        let stream: Vec<u8> = (0..400_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let cfg = CcsdsSimConfig {
            housekeeping_every: 2,
            duration_s: 7200.0,
            chd: ChdProfile::Nominal {
                every: 20,
                length: 3,
            },
            housekeeping_drop: vec![5],
            ..Default::default()
        };
        let mut out = Vec::new();
        let s = packetize(&mut out, &stream, &cfg).unwrap();
        let span = s.time_span.1 - s.time_span.0;
        assert!((6000..8400).contains(&span), "{span}");
        let ix = scan(&out, &ScanOptions::default());
        let (hs, p) = health_status(&out, &ix, 977);
        assert!(p.is_empty());
        assert_eq!(hs.len() as u64, s.housekeeping_packets);
        assert_eq!(s.housekeeping_dropped, vec![5]);
        // the cycle counter skips 5
        assert_eq!(hs.cycle_counter[4..6], [4, 6]);
        let mut out_of_band = 0;
        for (row, k) in hs.cycle_counter.iter().enumerate() {
            let chd = &hs.chd[row * 10..row * 10 + 10];
            let k = *k as u64;
            let exc = k >= 20 && k % 20 < 3;
            for (j, &v) in chd.iter().enumerate() {
                let d = (v as i32 - chd_nominal(j) as i32).unsigned_abs() as u16;
                if d > CHD_NOISE {
                    assert!(exc, "packet {k} word {j} = {v}");
                    assert!(d == CHD_WARN_STEP || d == CHD_ALARM_STEP);
                    out_of_band += 1;
                }
            }
        }
        assert!(out_of_band > 10);
    }
}
