//! LRDL health-and-status packets (FORMAT.md section 7; ICD figure 3.2.2.2-1).
//!
//! User data after the 8 header words: subset ID (308), service request ID, service
//! request data, caution and warning, H&S cycle counter, payload message, then the
//! critical health data words 1..10 of subset 308; at most 1280 words in all.
//!
//! Which packets are H&S packets is not said by the ICD (its figure 3.1.2.2-4 marks
//! the APID and the secondary header "don't care"): the caller names the APID
//! (**convention**: 977 by default). A packet of that APID that does not have the
//! layout (no secondary header, too short, too long, or a subset ID other than 308)
//! is reported and not decoded.

use nom::multi::count;
use nom::number::complete::be_u16;
use nom::{IResult, Parser};

use super::header::HEADER_LEN;
use super::scan::PacketIndex;
use crate::problems::{Problem, ProblemKind};

/// The subset ID of AMS-02 health and status.
pub const SUBSET_ID: u16 = 308;
/// Words of critical health data.
pub const CHD_WORDS: usize = 10;
/// Words of user data before the CHD words.
pub const FIXED_WORDS: usize = 6;
/// Most words in an H&S packet, headers included.
pub const MAX_WORDS: usize = 1280;

/// The decoded fields of one H&S packet's user data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct HealthRecord {
    /// Subset ID (308).
    pub subset_id: u16,
    /// Service request ID.
    pub service_request_id: u16,
    /// Service request data.
    pub service_request_data: u16,
    /// Caution and warning.
    pub caution_warning: u16,
    /// H&S cycle counter.
    pub cycle_counter: u16,
    /// Payload message.
    pub payload_message: u16,
    /// Critical health data words 1..10.
    pub chd: [u16; CHD_WORDS],
}

/// Parses the user data of an H&S packet (any subset ID; the caller checks it).
pub fn parse_record(input: &[u8]) -> IResult<&[u8], HealthRecord> {
    let (rest, (fixed, chd)) =
        (count(be_u16, FIXED_WORDS), count(be_u16, CHD_WORDS)).parse(input)?;
    let mut rec = HealthRecord::default();
    if let [a, b, c, d, e, f] = fixed[..] {
        rec.subset_id = a;
        rec.service_request_id = b;
        rec.service_request_data = c;
        rec.caution_warning = d;
        rec.cycle_counter = e;
        rec.payload_message = f;
    }
    for (dst, src) in rec.chd.iter_mut().zip(chd) {
        *dst = src;
    }
    Ok((rest, rec))
}

crate::columns::table! {
    /// `PacketFile.health_status()`: one row per health-and-status packet (subset 308)
    /// of the H&S APID (FORMAT.md 7; ICD figure 3.2.2.2-1).
    HealthTable {
        /// [B] byte offset of the packet in the file
        offset: u64,
        /// 14-bit sequence count of the packet
        seq_count: u16,
        /// [s] secondary-header time: coarse time + fine time / 256
        time_s: f64,
        /// H&S subset ID (always 308 here)
        subset_id: u16,
        /// service request ID (user-data word 2)
        service_request_id: u16,
        /// service request data (user-data word 3)
        service_request_data: u16,
        /// caution and warning word (user-data word 4)
        caution_warning: u16,
        /// H&S cycle counter (user-data word 5)
        cycle_counter: u16,
        /// payload message word (user-data word 6)
        payload_message: u16,
        /// the critical health data words 1..10 of subset 308, as stored. Shape (n, 10).
        chd: u16,
    }
}

impl HealthTable {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.offset.len()
    }

    /// True when there is no row.
    pub fn is_empty(&self) -> bool {
        self.offset.is_empty()
    }
}

/// Decodes the H&S packets of APID `apid`; every packet of that APID without the
/// H&S layout is a [`ProblemKind::HealthSubset`] row instead.
pub fn health_status(data: &[u8], index: &PacketIndex, apid: u16) -> (HealthTable, Vec<Problem>) {
    let mut t = HealthTable::default();
    let mut problems = Vec::new();
    for (h, &off) in index.headers.iter().zip(&index.offsets) {
        if h.apid() != apid {
            continue;
        }
        let start = off as usize;
        let total = h.total_len();
        let pos = off as usize;
        let report = |what: String| Problem::new(pos, ProblemKind::HealthSubset, what);
        if !h.sec_hdr() {
            problems.push(report(format!(
                "APID {apid} packet without a secondary header: not the H&S layout of 8 header words, not decoded"
            )));
            continue;
        }
        let words = total / 2;
        if total % 2 != 0 || words > MAX_WORDS {
            problems.push(report(format!(
                "APID {apid} packet of {total} bytes: an H&S packet is whole words, at most {MAX_WORDS}; not decoded"
            )));
            continue;
        }
        let user = data.get(start + HEADER_LEN..start + total).unwrap_or(&[]);
        match parse_record(user) {
            Err(_) => problems.push(report(format!(
                "APID {apid} packet with {} bytes of user data, fewer than the {} of the H&S fields; not decoded",
                user.len(),
                2 * (FIXED_WORDS + CHD_WORDS)
            ))),
            Ok((_, rec)) if rec.subset_id != SUBSET_ID => problems.push(report(format!(
                "subset ID {} (0x{:04X}), not {SUBSET_ID}: not decoded",
                rec.subset_id, rec.subset_id
            ))),
            Ok((_, rec)) => {
                t.offset.push(off);
                t.seq_count.push(h.seq_count());
                t.time_s.push(h.secondary().time_s());
                t.subset_id.push(rec.subset_id);
                t.service_request_id.push(rec.service_request_id);
                t.service_request_data.push(rec.service_request_data);
                t.caution_warning.push(rec.caution_warning);
                t.cycle_counter.push(rec.cycle_counter);
                t.payload_message.push(rec.payload_message);
                t.chd.extend_from_slice(&rec.chd);
            }
        }
    }
    (t, problems)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ccsds::header::{PrimaryHeader, SecondaryHeader};
    use crate::ccsds::scan::{scan, ScanOptions};

    fn hs_packet(seq: u16, user: &[u16]) -> Vec<u8> {
        let total = HEADER_LEN + 2 * user.len();
        let mut v = PrimaryHeader {
            version: 0,
            type_flag: 1,
            sec_hdr: true,
            apid: 977,
            seq_flags: 3,
            seq_count: seq,
            length: (total - 7) as u16,
        }
        .to_bytes()
        .to_vec();
        v.extend_from_slice(
            &SecondaryHeader {
                coarse_time: 50,
                fine_time: 32,
                ..Default::default()
            }
            .to_bytes(),
        );
        for w in user {
            v.extend_from_slice(&w.to_be_bytes());
        }
        v
    }

    #[test]
    fn decodes_subset_308_and_reports_others() {
        let mut user: Vec<u16> = vec![308, 1, 2, 3, 4, 5];
        user.extend(100..110);
        user.extend(std::iter::repeat_n(0xEEEE, 34)); // pad to 100+ bytes
        let good = hs_packet(0, &user);
        let mut other = user.clone();
        other[0] = 309;
        let bad = hs_packet(1, &other);
        let data = [good, bad, hs_packet(2, &user)].concat();
        let ix = scan(&data, &ScanOptions::default());
        assert!(ix.problems.is_empty(), "{:?}", ix.problems);
        let (t, p) = health_status(&data, &ix, 977);
        assert_eq!(t.len(), 2);
        assert_eq!(t.subset_id, vec![308, 308]);
        assert_eq!(t.service_request_id, vec![1, 1]);
        assert_eq!(t.service_request_data, vec![2, 2]);
        assert_eq!(t.caution_warning, vec![3, 3]);
        assert_eq!(t.cycle_counter, vec![4, 4]);
        assert_eq!(t.payload_message, vec![5, 5]);
        assert_eq!(&t.chd[..10], &(100..110).collect::<Vec<u16>>()[..]);
        assert_eq!(t.time_s, vec![50.125, 50.125]);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].kind, ProblemKind::HealthSubset);
        assert_eq!(p[0].offset, ix.offsets[1]);
    }
}
