//! Command packets and their checksum word (FORMAT.md section 7; ICD 3.2.3.1).
//!
//! A command packet is one of APID 124 (uplink commands) or one whose secondary
//! header sets the check word flag (ICD table 3.1.2.1-2, command header). Its
//! checksum word is the sum of the packet's other 16-bit words, ignoring overflow.
//! **Convention** (FORMAT.md says what the sum covers but not where the word sits):
//! the checksum word is the last word of the packet, as in ICD figure 3.2.3.1-1
//! (word 24 of a minimum-length command, word 64 of a maximum-length one), and the
//! sum covers every other word of the packet, headers included.

use super::apid;
use super::header::HeaderBytes;
use super::scan::PacketIndex;
use crate::problems::{Problem, ProblemKind};

/// True when the packet is a command packet (module docs).
#[inline]
pub fn is_command(h: &HeaderBytes) -> bool {
    h.apid() == apid::COMMAND || (h.sec_hdr() && h.secondary().check_word)
}

/// The checksum of a whole packet: `(stored, computed)`, or `None` when the packet is
/// not a whole number of words (or shorter than one word).
pub fn checksum(packet: &[u8]) -> Option<(u16, u16)> {
    if packet.len() % 2 != 0 || packet.len() < 2 {
        return None;
    }
    let (body, last) = packet.split_at(packet.len() - 2);
    let stored = u16::from_be_bytes([last[0], last[1]]);
    let computed = body.chunks_exact(2).fold(0u16, |s, w| {
        s.wrapping_add(u16::from_be_bytes([w[0], w[1]]))
    });
    Some((stored, computed))
}

crate::columns::table! {
    /// `PacketFile.verify_commands()`: one row per command packet (APID 124, or the check
    /// word flag set), whose last word is a checksum (FORMAT.md 7).
    CommandTable {
        /// [B] byte offset of the packet in the file
        offset: u64,
        /// APID of the packet
        apid: u16,
        /// 14-bit sequence count of the packet
        seq_count: u16,
        /// the checksum word as stored: the packet's last word (0 for an odd length)
        checksum: u16,
        /// the sum of the packet's other 16-bit words, modulo 65536
        computed: u16,
        /// checksum and computed agree (a failure is also a command_checksum row of errors())
        ok: bool,
    }
}

/// Checks every command packet; each failure is also a [`ProblemKind::CommandChecksum`]
/// row.
pub fn verify_commands(data: &[u8], index: &PacketIndex) -> (CommandTable, Vec<Problem>) {
    let mut t = CommandTable::default();
    let mut problems = Vec::new();
    for (h, &off) in index.headers.iter().zip(&index.offsets) {
        if !is_command(h) {
            continue;
        }
        let start = off as usize;
        let packet = data.get(start..start + h.total_len()).unwrap_or(&[]);
        let (stored, computed, ok) = match checksum(packet) {
            Some((s, c)) => (s, c, s == c),
            None => (0, 0, false),
        };
        t.offset.push(off);
        t.apid.push(h.apid());
        t.seq_count.push(h.seq_count());
        t.checksum.push(stored);
        t.computed.push(computed);
        t.ok.push(ok);
        if !ok {
            let detail = if packet.len() % 2 != 0 {
                format!(
                    "command packet of APID {} has {} bytes, not a whole number of words: no checksum word",
                    h.apid(),
                    packet.len()
                )
            } else {
                format!(
                    "command packet of APID {}, sequence count {}: checksum word 0x{stored:04X}, sum of the other words 0x{computed:04X}",
                    h.apid(),
                    h.seq_count()
                )
            };
            problems.push(Problem::new(start, ProblemKind::CommandChecksum, detail));
        }
    }
    (t, problems)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ccsds::header::{PrimaryHeader, SecondaryHeader, HEADER_LEN};
    use crate::ccsds::scan::{scan, ScanOptions};

    /// A minimum-length command as in ICD figures 3.1.2.2-8 and 3.2.3.1-1: 24 words,
    /// APID 124, sequence flags 11, time ID 01, check word 1, packet type 1010.
    pub(crate) fn command(seq: u16, data: &[u16], corrupt: bool) -> Vec<u8> {
        let words = 8 + 2 + data.len() + 1;
        let total = 2 * words;
        let mut v = PrimaryHeader {
            version: 0,
            type_flag: 1,
            sec_hdr: true,
            apid: 124,
            seq_flags: 3,
            seq_count: seq,
            length: (total - 7) as u16,
        }
        .to_bytes()
        .to_vec();
        v.extend_from_slice(
            &SecondaryHeader {
                coarse_time: 0x0001_0002,
                fine_time: 0,
                time_id: 1,
                check_word: true,
                zoe: false,
                packet_type: 0xA,
                packet_id1: 0x08F2,
                packet_id2: 308,
            }
            .to_bytes(),
        );
        assert_eq!(v.len(), HEADER_LEN);
        v.extend_from_slice(&[0, 0, 0, 1]); // spare, mode
        for w in data {
            v.extend_from_slice(&w.to_be_bytes());
        }
        let (_, sum) = checksum(&[v.clone(), vec![0, 0]].concat()).unwrap_or((0, 0));
        let sum = if corrupt { sum ^ 1 } else { sum };
        v.extend_from_slice(&sum.to_be_bytes());
        v
    }

    #[test]
    fn checks_and_reports() {
        let data = [
            command(0, &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13], false),
            command(1, &[0xFFFF; 13], true),
            command(2, &[0xFFFF; 53], false),
        ]
        .concat();
        let ix = scan(&data, &ScanOptions::default());
        assert!(ix.problems.is_empty(), "{:?}", ix.problems);
        assert_eq!(ix.offsets, vec![0, 48, 96]);
        let (t, p) = verify_commands(&data, &ix);
        assert_eq!(t.ok, vec![true, false, true]);
        assert_eq!(t.checksum[1] ^ 1, t.computed[1]);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].offset, 48);
        assert_eq!(p[0].kind, ProblemKind::CommandChecksum);
    }

    #[test]
    fn checksum_wraps() {
        let pkt = [0xFF, 0xFF, 0x00, 0x02, 0x00, 0x01];
        assert_eq!(checksum(&pkt), Some((1, 1)));
        assert_eq!(checksum(&[1, 2, 3]), None);
    }
}
