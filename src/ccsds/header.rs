//! CCSDS primary and secondary headers (FORMAT.md section 7; ICD figure 3.1.2.1-1).
//!
//! All fields are big-endian. The ICD numbers bits 0 = MSB; here, as in FORMAT.md,
//! shifts are written from the least significant end.

/// Bytes in the primary header (3 words).
pub const PRIMARY_LEN: usize = 6;
/// Bytes in the secondary header (5 words).
pub const SECONDARY_LEN: usize = 10;
/// Bytes in both headers (8 words).
pub const HEADER_LEN: usize = PRIMARY_LEN + SECONDARY_LEN;
/// The sequence count is 14 bits: it wraps at 16384.
pub const SEQ_MODULUS: u16 = 1 << 14;

/// The CCSDS primary header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct PrimaryHeader {
    /// Version number (3 bits; must be 0).
    pub version: u8,
    /// Packet type bit.
    pub type_flag: u8,
    /// Secondary header flag.
    pub sec_hdr: bool,
    /// Application process identifier (11 bits).
    pub apid: u16,
    /// Sequence flags (2 bits).
    pub seq_flags: u8,
    /// Packet sequence count (14 bits).
    pub seq_count: u16,
    /// Packet length field: bytes after the primary header minus 1.
    pub length: u16,
}

impl PrimaryHeader {
    /// Decodes the 6 bytes of a primary header.
    #[inline(always)]
    pub fn parse(b: [u8; PRIMARY_LEN]) -> PrimaryHeader {
        let w0 = u16::from_be_bytes([b[0], b[1]]);
        let w1 = u16::from_be_bytes([b[2], b[3]]);
        let w2 = u16::from_be_bytes([b[4], b[5]]);
        PrimaryHeader {
            version: (w0 >> 13) as u8,
            type_flag: ((w0 >> 12) & 1) as u8,
            sec_hdr: (w0 >> 11) & 1 == 1,
            apid: w0 & 0x07FF,
            seq_flags: (w1 >> 14) as u8,
            seq_count: w1 & 0x3FFF,
            length: w2,
        }
    }

    /// Decodes the primary header at the start of `bytes`, if there are 6 bytes.
    #[inline(always)]
    pub fn from_slice(bytes: &[u8]) -> Option<PrimaryHeader> {
        let b: [u8; PRIMARY_LEN] = bytes.get(..PRIMARY_LEN)?.try_into().ok()?;
        Some(PrimaryHeader::parse(b))
    }

    /// Total bytes of the packet: `length + 7`.
    #[inline(always)]
    pub fn total_len(&self) -> usize {
        self.length as usize + 7
    }

    /// Bytes of the headers (primary, plus secondary when the flag is set).
    #[inline(always)]
    pub fn header_len(&self) -> usize {
        if self.sec_hdr {
            HEADER_LEN
        } else {
            PRIMARY_LEN
        }
    }

    /// Encodes the header (fields are masked to their widths).
    pub fn to_bytes(&self) -> [u8; PRIMARY_LEN] {
        let w0 = ((self.version as u16 & 7) << 13)
            | ((self.type_flag as u16 & 1) << 12)
            | ((self.sec_hdr as u16) << 11)
            | (self.apid & 0x07FF);
        let w1 = ((self.seq_flags as u16 & 3) << 14) | (self.seq_count & 0x3FFF);
        let mut out = [0u8; PRIMARY_LEN];
        out[0..2].copy_from_slice(&w0.to_be_bytes());
        out[2..4].copy_from_slice(&w1.to_be_bytes());
        out[4..6].copy_from_slice(&self.length.to_be_bytes());
        out
    }
}

/// The ISS secondary header (5 words).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SecondaryHeader {
    /// Coarse time, seconds (32 bits).
    pub coarse_time: u32,
    /// Fine time, 1/256 s (the high byte of word 6).
    pub fine_time: u8,
    /// Time ID (2 bits).
    pub time_id: u8,
    /// Check word flag (a checksum word is present).
    pub check_word: bool,
    /// ZOE / spare bit.
    pub zoe: bool,
    /// Packet type (the low nibble of word 6).
    pub packet_type: u8,
    /// Packet ID word 1 (element and usage dependent).
    pub packet_id1: u16,
    /// Packet ID word 2 (element and usage dependent).
    pub packet_id2: u16,
}

impl SecondaryHeader {
    /// Decodes the 10 bytes of a secondary header.
    #[inline(always)]
    pub fn parse(b: [u8; SECONDARY_LEN]) -> SecondaryHeader {
        let w = u16::from_be_bytes([b[4], b[5]]);
        SecondaryHeader {
            coarse_time: u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            fine_time: (w >> 8) as u8,
            time_id: ((w >> 6) & 3) as u8,
            check_word: (w >> 5) & 1 == 1,
            zoe: (w >> 4) & 1 == 1,
            packet_type: (w & 0xF) as u8,
            packet_id1: u16::from_be_bytes([b[6], b[7]]),
            packet_id2: u16::from_be_bytes([b[8], b[9]]),
        }
    }

    /// Time in seconds: coarse + fine / 256.
    #[inline(always)]
    pub fn time_s(&self) -> f64 {
        self.coarse_time as f64 + self.fine_time as f64 / 256.0
    }

    /// Encodes the header (fields are masked to their widths).
    pub fn to_bytes(&self) -> [u8; SECONDARY_LEN] {
        let w = ((self.fine_time as u16) << 8)
            | ((self.time_id as u16 & 3) << 6)
            | ((self.check_word as u16) << 5)
            | ((self.zoe as u16) << 4)
            | (self.packet_type as u16 & 0xF);
        let mut out = [0u8; SECONDARY_LEN];
        out[0..4].copy_from_slice(&self.coarse_time.to_be_bytes());
        out[4..6].copy_from_slice(&w.to_be_bytes());
        out[6..8].copy_from_slice(&self.packet_id1.to_be_bytes());
        out[8..10].copy_from_slice(&self.packet_id2.to_be_bytes());
        out
    }
}

/// The first 16 bytes of a packet as kept by the index: the primary header, then the
/// secondary header when the flag is set (zero bytes otherwise, so that every
/// secondary-header field reads 0 when the flag is clear).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct HeaderBytes(pub [u8; HEADER_LEN]);

impl HeaderBytes {
    /// Copies the headers of the packet starting at `bytes[0]`.
    ///
    /// The caller has checked that the packet is at least 6 bytes, and at least 16
    /// when the secondary header flag is set.
    #[inline(always)]
    pub fn capture(bytes: &[u8], sec_hdr: bool) -> HeaderBytes {
        let mut out = [0u8; HEADER_LEN];
        let n = if sec_hdr { HEADER_LEN } else { PRIMARY_LEN };
        if let Some(src) = bytes.get(..n) {
            out[..n].copy_from_slice(src);
        }
        HeaderBytes(out)
    }

    /// The primary header.
    #[inline(always)]
    pub fn primary(&self) -> PrimaryHeader {
        let b = &self.0;
        PrimaryHeader::parse([b[0], b[1], b[2], b[3], b[4], b[5]])
    }

    /// The secondary header (all zero when the flag is clear).
    #[inline(always)]
    pub fn secondary(&self) -> SecondaryHeader {
        let b = &self.0;
        SecondaryHeader::parse([
            b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15],
        ])
    }

    /// The APID (11 bits).
    #[inline(always)]
    pub fn apid(&self) -> u16 {
        u16::from_be_bytes([self.0[0], self.0[1]]) & 0x07FF
    }

    /// The sequence count (14 bits).
    #[inline(always)]
    pub fn seq_count(&self) -> u16 {
        u16::from_be_bytes([self.0[2], self.0[3]]) & 0x3FFF
    }

    /// The packet length field.
    #[inline(always)]
    pub fn length(&self) -> u16 {
        u16::from_be_bytes([self.0[4], self.0[5]])
    }

    /// True when the secondary header flag is set.
    #[inline(always)]
    pub fn sec_hdr(&self) -> bool {
        self.0[0] & 0x08 != 0
    }

    /// Total packet bytes: `length + 7`.
    #[inline(always)]
    pub fn total_len(&self) -> usize {
        self.length() as usize + 7
    }

    /// Bytes of header before the user data.
    #[inline(always)]
    pub fn header_len(&self) -> usize {
        if self.sec_hdr() {
            HEADER_LEN
        } else {
            PRIMARY_LEN
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ICD figure 3.1.2.2-1: word 1 bits `000 1 1 01111010000` = science, APID 976.
    #[test]
    fn figure_3_1_2_2_1_science() {
        // version 000, type 1, secondary header 1, APID 01111010000
        let w0: u16 = (1 << 12) | (1 << 11) | 0b011_1101_0000;
        assert_eq!(w0, 0x1BD0);
        let mut b = [0u8; 6];
        b[0..2].copy_from_slice(&w0.to_be_bytes());
        b[2..4].copy_from_slice(&0x0005u16.to_be_bytes());
        b[4..6].copy_from_slice(&99u16.to_be_bytes());
        let h = PrimaryHeader::parse(b);
        assert_eq!(h.version, 0);
        assert_eq!(h.type_flag, 1);
        assert!(h.sec_hdr);
        assert_eq!(h.apid, 976);
        assert_eq!(h.seq_flags, 0);
        assert_eq!(h.seq_count, 5);
        assert_eq!(h.total_len(), 106);
        assert_eq!(h.to_bytes(), b);
    }

    #[test]
    fn figures_housekeeping_and_payload_to_payload() {
        assert_eq!(PrimaryHeader::parse([0x1B, 0xD1, 0, 0, 0, 0]).apid, 977);
        assert_eq!(PrimaryHeader::parse([0x1B, 0xD4, 0, 0, 0, 0]).apid, 980);
        assert_eq!(PrimaryHeader::parse([0x1B, 0xD5, 0, 0, 0, 0]).apid, 981);
    }

    #[test]
    fn secondary_round_trip_and_bits() {
        let s = SecondaryHeader {
            coarse_time: 0x0102_0304,
            fine_time: 0x80,
            time_id: 1,
            check_word: true,
            zoe: false,
            packet_type: 0xA,
            packet_id1: 0x08F2,
            packet_id2: 308,
        };
        let b = s.to_bytes();
        // ICD figure 3.1.2.2-8 word 6 low byte: time ID 01, check word 1, spare 0, type 1010.
        assert_eq!(b[5], 0b0110_1010);
        assert_eq!(b[4], 0x80);
        assert_eq!(SecondaryHeader::parse(b), s);
        assert_eq!(s.time_s(), 16909060.5);
    }

    #[test]
    fn capture_zeroes_missing_secondary() {
        let mut pkt = vec![0x13u8, 0xD0, 0xC0, 0x01, 0x00, 0x10];
        pkt.extend_from_slice(&[0xFF; 17]);
        let h = HeaderBytes::capture(&pkt, false);
        assert!(!h.sec_hdr());
        assert_eq!(h.secondary(), SecondaryHeader::default());
        assert_eq!(h.apid(), 976);
        assert_eq!(h.seq_count(), 1);
        assert_eq!(h.total_len(), 23);
        assert_eq!(h.header_len(), 6);
    }
}
