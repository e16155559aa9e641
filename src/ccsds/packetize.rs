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
    let k16 = k as u16;
    let mut words: Vec<u16> = vec![
        SUBSET_ID,
        (k % 7) as u16,
        k16.wrapping_mul(3),
        if k % 50 == 49 { 0x0001 } else { 0 },
        k16,
        (k % 3) as u16,
    ];
    words.extend((0..10u16).map(|j| k16.wrapping_mul(10).wrapping_add(j)));
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

fn secondary(i: u64, cfg: &CcsdsSimConfig, packet_type: u8, check_word: bool) -> SecondaryHeader {
    SecondaryHeader {
        coarse_time: cfg.start_time.wrapping_add((i / 8) as u32),
        fine_time: ((i % 8) * 32) as u8,
        time_id: 1,
        check_word,
        zoe: false,
        packet_type,
        packet_id1: if check_word { 0x08B7 } else { 0x0001 },
        packet_id2: i as u16,
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
                &secondary(written, cfg, 0, false),
                chunk,
            )?;
            w.write_all(&p)?;
            sum.file_bytes += p.len() as u64;
            written += 1;
        }
        seq = (seq + 1) % SEQ_MODULUS;
        pos += len;
        i += 1;
        if cfg.housekeeping_every > 0 && i % cfg.housekeeping_every == 0 {
            let k = sum.housekeeping_packets;
            let p = health_packet(k, hk_seq, &secondary(written, cfg, 0, false))?;
            w.write_all(&p)?;
            sum.file_bytes += p.len() as u64;
            sum.housekeeping_packets += 1;
            hk_seq = (hk_seq + 1) % SEQ_MODULUS;
            written += 1;
        }
        if cfg.commands_every > 0 && i % cfg.commands_every == 0 {
            let k = sum.command_packets;
            let p = command_packet(k, cmd_seq, &secondary(written, cfg, 0xA, true))?;
            w.write_all(&p)?;
            sum.file_bytes += p.len() as u64;
            sum.command_packets += 1;
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
    let sim = SimConfig {
        n_events: cfg.n_events,
        seed: cfg.seed,
        byte_order: ByteOrder::Big,
        ..Default::default()
    };
    let mut stream: Vec<u8> = Vec::new();
    simulate_to_writer(&mut stream, &sim)?;
    if let Some(b) = blocks {
        b.write_all(&stream)?;
    }
    let mut sum = packetize(w, &stream, cfg)?;
    sum.n_events = cfg.n_events;
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
}
