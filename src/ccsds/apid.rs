//! AMS-02 APIDs and the packet-size bounds that make a header plausible
//! (FORMAT.md section 7; ICD appendix D, sections 3.2.2, 3.2.3 and 4.2).

/// Science data, Ku-band downlink (HRDL).
pub const SCIENCE: u16 = 976;
/// Housekeeping data, Ku-band downlink (HRDL). Also this project's health-and-status APID.
pub const HOUSEKEEPING: u16 = 977;
/// Payload-to-payload, Ku-band downlink (HRDL).
pub const PAYLOAD_TO_PAYLOAD_1: u16 = 980;
/// Payload-to-payload, Ku-band downlink (HRDL).
pub const PAYLOAD_TO_PAYLOAD_2: u16 = 981;
/// Uplink commands (LRDL).
pub const COMMAND: u16 = 124;
/// Payload MDM to AMS-02 (LRDL).
pub const PAYLOAD_MDM: u16 = 1024;
/// Broadcast ancillary data (LRDL).
pub const BROADCAST: u16 = 2000;

/// Every APID named by FORMAT.md section 7.
pub const KNOWN: [u16; 7] = [
    COMMAND,
    SCIENCE,
    HOUSEKEEPING,
    PAYLOAD_TO_PAYLOAD_1,
    PAYLOAD_TO_PAYLOAD_2,
    PAYLOAD_MDM,
    BROADCAST,
];

/// HRDL packets are 100..4096 bytes (ICD 4.2, "High Rate Data Link").
pub const HRDL_BYTES: (usize, usize) = (100, 4096);
/// LRDL command packets are 24..64 words: 8 header words, spare, mode, data and
/// checksum, at least up to the minimum-length checksum in word 24 (ICD figure
/// 3.2.3.1-1).
pub const COMMAND_BYTES: (usize, usize) = (48, 128);
/// Other LRDL packets: both headers (required on the LRDL, ICD 3.1.2.1) and at most
/// 1280 words (the H&S limit, the largest LRDL packet of ICD 3.2.2).
pub const LRDL_BYTES: (usize, usize) = (16, 2560);

/// The size bounds (total packet bytes, inclusive) of a known APID; `None` for an APID
/// FORMAT.md does not name.
#[inline(always)]
pub fn bounds(apid: u16) -> Option<(usize, usize)> {
    match apid {
        SCIENCE | HOUSEKEEPING | PAYLOAD_TO_PAYLOAD_1 | PAYLOAD_TO_PAYLOAD_2 => Some(HRDL_BYTES),
        COMMAND => Some(COMMAND_BYTES),
        PAYLOAD_MDM | BROADCAST => Some(LRDL_BYTES),
        _ => None,
    }
}

/// A table of the APIDs taken as plausible when looking for a packet in unknown bytes.
#[derive(Clone)]
pub struct ApidSet {
    bits: [u64; 32],
}

impl Default for ApidSet {
    fn default() -> Self {
        Self::known()
    }
}

impl std::fmt::Debug for ApidSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl ApidSet {
    /// No APID.
    pub fn empty() -> ApidSet {
        ApidSet { bits: [0; 32] }
    }

    /// The APIDs of FORMAT.md section 7.
    pub fn known() -> ApidSet {
        let mut s = ApidSet::empty();
        for a in KNOWN {
            s.insert(a);
        }
        s
    }

    /// Adds an APID (only the low 11 bits count).
    #[inline]
    pub fn insert(&mut self, apid: u16) {
        let a = (apid & 0x07FF) as usize;
        if let Some(w) = self.bits.get_mut(a >> 6) {
            *w |= 1u64 << (a & 63);
        }
    }

    /// True when the APID is in the set.
    #[inline(always)]
    pub fn contains(&self, apid: u16) -> bool {
        let a = (apid & 0x07FF) as usize;
        self.bits
            .get(a >> 6)
            .is_some_and(|w| (w >> (a & 63)) & 1 == 1)
    }

    /// The APIDs in the set, ascending.
    pub fn iter(&self) -> impl Iterator<Item = u16> + '_ {
        (0u16..2048).filter(|&a| self.contains(a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_set_and_bounds() {
        let s = ApidSet::known();
        assert_eq!(
            s.iter().collect::<Vec<_>>(),
            vec![124, 976, 977, 980, 981, 1024, 2000]
        );
        assert!(!s.contains(975));
        assert_eq!(bounds(976), Some((100, 4096)));
        assert_eq!(bounds(124), Some((48, 128)));
        assert_eq!(bounds(5), None);
        let mut t = ApidSet::empty();
        t.insert(2047);
        t.insert(0xFFFF); // masked to 2047
        assert_eq!(t.iter().collect::<Vec<_>>(), vec![2047]);
    }
}
