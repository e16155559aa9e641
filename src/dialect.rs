//! Dialects: writers that depart from FORMAT.md in a known way (FORMAT.md 11.2).
//!
//! The one dialect today is the 2009 tracker PC DAQ ("myTDRControl", `tdr2009_*.dat`):
//! science events of the 2007 layout whose JMDC sub-block stores its 32-bit fields
//! **least significant word first**, and whose group CRC word is always 0 (never
//! computed; by convention 0 then means "no CRC": not checked, `crc_ok` true). The two
//! decisions are [`Dialect::jmdc_u32`] and [`Dialect::crc_ok`]; the event decoder holds
//! the file's dialect as a field and asks them.
//!
//! [`detect`] finds the dialect of a file (`dialect="auto"`): every event's JMDC event
//! number read LSW-first counts 1, 2, 3, ..., and its run read LSW-first equals the run
//! tag and lies in 2008-2010. The first event decides quickly for every other file.

use crate::block;
use crate::problems::{Problem, ProblemKind};
use crate::words::{Be, ByteOrder, Le, Order};

/// How a file departs from FORMAT.md.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// FORMAT.md as written (the seed and the flight layout).
    #[default]
    Seed,
    /// The 2009 tracker PC DAQ: JMDC 32-bit fields LSW first, group CRC 0 = not computed.
    Pc2009,
}

/// Unix time of 2008-01-01 00:00:00 UTC.
const YEAR_2008: u32 = 1_199_145_600;
/// Unix time of 2011-01-01 00:00:00 UTC.
const YEAR_2011: u32 = 1_293_840_000;

impl Dialect {
    /// The name used in the Python API: `"seed"` or `"pc-2009"`.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Seed => "seed",
            Dialect::Pc2009 => "pc-2009",
        }
    }

    /// Parses `"seed"` or `"pc-2009"`.
    pub fn from_name(name: &str) -> Option<Dialect> {
        match name {
            "seed" => Some(Dialect::Seed),
            "pc-2009" => Some(Dialect::Pc2009),
            _ => None,
        }
    }

    /// A JMDC 32-bit field from its two words in file order.
    #[inline]
    pub fn jmdc_u32(self, first: u16, second: u16) -> u32 {
        match self {
            Dialect::Seed => (u32::from(first) << 16) | u32::from(second),
            Dialect::Pc2009 => (u32::from(second) << 16) | u32::from(first),
        }
    }

    /// Whether a group's CRC is good: it checks, or (in the PC DAQ dialect) the stored
    /// word is 0, "no CRC".
    #[inline]
    pub fn crc_ok(self, stored: u16, computed: u16) -> bool {
        stored == computed || (self == Dialect::Pc2009 && stored == 0)
    }

    /// The `dialect` row of `errors()` for a file read in this dialect (none for the seed).
    pub fn problem(self, offset: usize, n_events: usize, detected: bool) -> Option<Problem> {
        match self {
            Dialect::Seed => None,
            Dialect::Pc2009 => Some(Problem::new(
                offset,
                ProblemKind::Dialect,
                format!(
                    "{} the 2009 tracker PC-DAQ dialect (FORMAT.md 11.2) for its {n_events} events: JMDC run, run tag, event, time and fine time read least significant word first; group CRC words of 0 mean no CRC and were not checked",
                    if detected { "found" } else { "read in" }
                ),
            )),
        }
    }
}

/// The JMDC words 0..9 (run, run tag, event, time, fine time) of the event at `offset`,
/// when its first sub-block is a JMDC sub-block of the 2007 layout.
fn jmdc_words<O: Order>(bytes: &[u8], offset: usize) -> Option<[u16; 10]> {
    let h = block::parse::<O>(bytes, offset, bytes.len(), true).ok()?;
    let j = block::parse::<O>(bytes, h.data_start, h.next, false).ok()?;
    if j.type_ != 5 || j.long || j.data_words() < 10 {
        return None;
    }
    let mut w = [0u16; 10];
    for (k, slot) in w.iter_mut().enumerate() {
        let at = j.data_start + 2 * k;
        let b = bytes.get(at..at + 2)?;
        *slot = O::word([b[0], b[1]]);
    }
    Some(w)
}

/// Whether event `k` (0-based) of a file, at `offset`, fits the PC-DAQ dialect: a file
/// is read in it when every event fits ([`detect`]).
pub fn fits<O: Order>(bytes: &[u8], offset: usize, k: usize) -> bool {
    fits_pc2009::<O>(bytes, offset, k)
}

/// Whether event `k` (0-based) of a file fits the PC-DAQ dialect.
fn fits_pc2009<O: Order>(bytes: &[u8], offset: usize, k: usize) -> bool {
    let Some(w) = jmdc_words::<O>(bytes, offset) else {
        return false;
    };
    let d = Dialect::Pc2009;
    let run = d.jmdc_u32(w[0], w[1]);
    let run_tag = d.jmdc_u32(w[2], w[3]);
    let event = d.jmdc_u32(w[4], w[5]);
    run == run_tag && (YEAR_2008..YEAR_2011).contains(&run) && u64::from(event) == k as u64 + 1
}

/// The dialect of a file whose science events start at `events`.
pub fn detect(bytes: &[u8], order: ByteOrder, events: &[u64]) -> Dialect {
    match order {
        ByteOrder::Little => detect_with::<Le>(bytes, events),
        ByteOrder::Big => detect_with::<Be>(bytes, events),
    }
}

fn detect_with<O: Order>(bytes: &[u8], events: &[u64]) -> Dialect {
    let all = !events.is_empty()
        && events
            .iter()
            .enumerate()
            .all(|(k, &off)| fits_pc2009::<O>(bytes, off as usize, k));
    if all {
        Dialect::Pc2009
    } else {
        Dialect::Seed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(k: u32, run: u32) -> Vec<u16> {
        let lsw = |v: u32| [v as u16, (v >> 16) as u16];
        let mut j = vec![24u16, 0x8005];
        for v in [run, run, k, run + k, 7] {
            j.extend(lsw(v));
        }
        j.push(0);
        let mut w = vec![0u16, 0x8005, 0, (run >> 16) as u16, run as u16];
        w.extend(j);
        w[0] = ((w.len() - 1) * 2) as u16;
        w
    }

    #[test]
    fn detects_lsw_first_runs() {
        let run = 1_232_707_072;
        let mut words = Vec::new();
        let mut offsets = Vec::new();
        for k in 1..=3 {
            offsets.push(words.len() as u64 * 2);
            words.extend(event(k, run));
        }
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        assert_eq!(detect(&bytes, ByteOrder::Little, &offsets), Dialect::Pc2009);
        // Not counting from 1, or a run outside 2008-2010: the seed's reading.
        assert_eq!(
            detect(&bytes, ByteOrder::Little, &offsets[1..]),
            Dialect::Seed
        );
        let mut late = Vec::new();
        late.extend(event(1, 1_400_000_000));
        let bytes: Vec<u8> = late.iter().flat_map(|w| w.to_le_bytes()).collect();
        assert_eq!(detect(&bytes, ByteOrder::Little, &[0]), Dialect::Seed);
        assert_eq!(detect(&[], ByteOrder::Little, &[]), Dialect::Seed);
    }

    #[test]
    fn word_order_and_crc_decisions() {
        assert_eq!(Dialect::Seed.jmdc_u32(1, 2), 0x0001_0002);
        assert_eq!(Dialect::Pc2009.jmdc_u32(1, 2), 0x0002_0001);
        assert!(Dialect::Pc2009.crc_ok(0, 0x1234));
        assert!(!Dialect::Seed.crc_ok(0, 0x1234));
        assert!(!Dialect::Pc2009.crc_ok(5, 0x1234));
        assert_eq!(Dialect::from_name("pc-2009"), Some(Dialect::Pc2009));
    }
}
