//! The shapes of a science event and its JMDC header sub-block, and the two JMDC header
//! layouts (FORMAT.md sections 3, 4, 4.1 and 9.1).
//!
//! One definition serves everything that must recognise an event: the index's
//! resynchronisation ([`crate::index`]), the event decoder ([`crate::event`]) and the CCSDS
//! science-stream reassembly ([`crate::ccsds::science`]).
//!
//! - A **science event** is a top-level reply (`RR = 1`, `RW = 0`) of TYPE 5 and STATUS 0
//!   from NODE 0..15 (the AMS node table names nodes 0..15 JMDC-0..3 four times over).
//! - Its first sub-block is the **JMDC header**, NODE 0..15, whose TYPE decides the layout
//!   of the whole event: TYPE 5 is the 2007 layout (SIZE 24, or 34 with GPS), TYPE
//!   0x10..0x13 the flight layout (bit 0: a level-3 record; bit 1: a GPS record).
//!
//! The flight header holds the fine time in milliseconds, the run type, the run ID and
//! the event number, then its records; the event time is the event block's TIME. Each
//! record's first word carries, in bits 4..0 of its high byte, its length `N` in bytes
//! counted from that byte; it occupies `ceil(N / 2)` words.

use crate::block::BlockHeader;
use crate::dialect::Dialect;
use crate::problems::ProblemKind;
use crate::words::{Order, Words};

/// Seconds between the Unix epoch and the AMS (GPS) epoch, 1980-01-06 00:00:00 UTC.
pub const AMS_EPOCH_UNIX: u32 = 315_964_800;
/// Times at or above this value are Unix seconds already (FORMAT.md section 3).
pub const UNIX_TIME_FROM: u32 = 1_000_000_000;

/// Block and sub-block TYPE of a science event and of the 2007-layout JMDC header.
pub const TYPE_EVENT: u8 = 5;
/// First TYPE of the flight-layout JMDC header.
pub const TYPE_FLIGHT_FIRST: u8 = 0x10;
/// Last TYPE of the flight-layout JMDC header.
pub const TYPE_FLIGHT_LAST: u8 = 0x13;
/// The largest NODE of a JMDC (0..3, aliased four times over).
pub const MAX_JMDC_NODE: u16 = 15;
/// SIZE of the 2007-layout header without GPS words.
pub const SIZE_2007: u32 = 24;
/// SIZE of the 2007-layout header with GPS words.
pub const SIZE_2007_GPS: u32 = 34;
/// Data words of the flight header before its records.
pub const FLIGHT_FIXED_WORDS: usize = 6;
/// The largest flight header the index takes as the shape of one: the fixed words and two
/// records of at most 16 words each, after the ID word.
pub const MAX_FLIGHT_SIZE: u32 = 2 + 2 * (FLIGHT_FIXED_WORDS as u32 + 32);
/// The level-3 record's usual length in bytes.
pub const LEVEL3_RECORD_BYTES: u8 = 9;
/// The most u32 values of a GPS record.
pub const MAX_GPS_VALUES: usize = 7;

/// Unix seconds of an AMS time value by the rule of FORMAT.md section 3: below 10^9 it
/// counts from 1980-01-06 and gets 315,964,800 added; from 10^9 on it is Unix time.
pub fn unix_seconds(t: u32) -> f64 {
    if t < UNIX_TIME_FROM {
        f64::from(t) + f64::from(AMS_EPOCH_UNIX)
    } else {
        f64::from(t)
    }
}

/// The layout of a science event, decided by its JMDC header's TYPE.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[repr(u8)]
pub enum Layout {
    /// No JMDC header was found: the layout is unknown.
    #[default]
    Unknown = 0,
    /// The 2007 layout of the seed (JMDC header TYPE 5).
    Seed2007 = 1,
    /// The flight layout (JMDC header TYPE 0x10..0x13).
    Flight = 2,
}

impl Layout {
    /// The `layout` column's value.
    pub fn code(self) -> u8 {
        self as u8
    }
    /// The name used in the Python API.
    pub fn name(self) -> &'static str {
        match self {
            Layout::Unknown => "unknown",
            Layout::Seed2007 => "2007",
            Layout::Flight => "flight",
        }
    }
}

/// Whether a NODE is a JMDC's (0..15).
#[inline(always)]
pub fn is_jmdc_node(node: u16) -> bool {
    node <= MAX_JMDC_NODE
}

/// Whether the ID and secondary-header words of a top-level block make it a science event:
/// `RR = 1`, `RW = 0`, NODE 0..15, TYPE 5 (from the ID word) and STATUS 0.
#[inline(always)]
pub fn is_event_id(id: u16, secondary: u16) -> bool {
    id & 0xC01F == 0x8005 && is_jmdc_node((id >> 5) & 0x1FF) && secondary >> 12 == 0
}

/// Whether a parsed top-level block is a science event (FORMAT.md section 4).
#[inline]
pub fn is_event(h: &BlockHeader) -> bool {
    h.top && h.rr && !h.rw && is_jmdc_node(h.node) && h.type_ == TYPE_EVENT && h.status == 0
}

/// The layout a JMDC header sub-block of this TYPE and NODE announces, if it is one.
/// (RR and RW of sub-blocks are not checked, by the index or the decoder.)
#[inline(always)]
pub fn header_layout(type_: u8, node: u16) -> Option<Layout> {
    if !is_jmdc_node(node) {
        return None;
    }
    match type_ {
        TYPE_EVENT => Some(Layout::Seed2007),
        TYPE_FLIGHT_FIRST..=TYPE_FLIGHT_LAST => Some(Layout::Flight),
        _ => None,
    }
}

/// Whether a sub-block of this ID word and size (L = 0, `size` from the size word) has the
/// shape of a JMDC header that the index trusts as evidence of an event: the 2007 layout
/// with SIZE 24 or 34, or the flight layout with room for its fixed words and at most
/// two full records.
#[inline(always)]
pub fn header_shape(size_word: u16, id: u16) -> bool {
    let size = u32::from(size_word);
    match header_layout((id & 0x1F) as u8, (id >> 5) & 0x1FF) {
        Some(Layout::Seed2007) => size == SIZE_2007 || size == SIZE_2007_GPS,
        Some(Layout::Flight) => {
            let need = 2
                + 2 * FLIGHT_FIXED_WORDS as u32
                + 2 * u32::from(id as u8 & 1)
                + 2 * u32::from(id as u8 >> 1 & 1);
            size % 2 == 0 && (need..=MAX_FLIGHT_SIZE).contains(&size)
        }
        _ => false,
    }
}

/// [`header_shape`] of a parsed sub-block header.
#[inline]
pub fn header_shape_of(sub: &BlockHeader) -> bool {
    !sub.long
        && sub.size <= u32::from(u16::MAX)
        && header_shape(
            sub.size as u16,
            (u16::from(sub.rr) << 15)
                | (u16::from(sub.rw) << 14)
                | (sub.node << 5)
                | u16::from(sub.type_),
        )
}

/// A record inside the flight header: where its words are.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Record {
    /// Byte offset of the record's first word.
    pub offset: u64,
    /// Words the record occupies.
    pub words: u32,
}

/// The fields of a JMDC header, in either layout (FORMAT.md 4.1, 9.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Jmdc {
    /// The layout (from the header's TYPE).
    pub layout: Layout,
    /// The header sub-block's TYPE (5, 0x10..0x13).
    pub type_: u8,
    /// 2007: words 0-1 (the seed's run number); flight: the run ID.
    pub run: u32,
    /// The AMS run ID, words 2-3 in both layouts (the 2007 layout's run tag).
    pub run_tag: u32,
    /// Flight: word 1; 0 in the 2007 layout.
    pub run_type: u16,
    /// Event number.
    pub event: u32,
    /// 2007: the JMDC event time (words 6-7); flight: the event block's TIME. Seconds.
    pub time: u32,
    /// Fine time, microseconds (flight: word 0 in milliseconds x 1000).
    pub fine_time: u32,
    /// 2007: the JMDC status word; 0 in the flight layout.
    pub status: u16,
    /// GPS data present: 2007 the G bit; flight TYPE bit 1.
    pub gps: bool,
    /// 2007: GPS week number (0 without GPS).
    pub gps_week: u16,
    /// 2007: GPS seconds (0 without GPS).
    pub gps_second: u32,
    /// 2007: GPS fraction of the second (0 without GPS).
    pub gps_fraction: u32,
    /// Flight: the level-3 record.
    pub level3: Option<Record>,
    /// Flight: the GPS record.
    pub gps_record: Option<Record>,
    /// Flight: the GPS record's u32 values (as many as `gps_values_n`, the rest 0).
    pub gps_values: [u32; MAX_GPS_VALUES],
    /// Flight: how many GPS values the record holds (0 when its length is not valid).
    pub gps_values_n: u8,
}

impl Jmdc {
    /// The groups field of the 2007 status word (bits 4..0, a convention of this project).
    pub fn groups(&self) -> u8 {
        (self.status & 0x1F) as u8
    }

    /// `unix_time`: the time rule of section 3 plus the fine time.
    pub fn unix_time(&self) -> f64 {
        unix_seconds(self.time) + f64::from(self.fine_time) / 1e6
    }
}

/// A problem found in a JMDC header: where, what kind, what.
pub type HeaderProblem = (usize, ProblemKind, String);

/// Reads the JMDC header sub-block `sub` of the event whose block TIME is `block_time`.
/// `None` when its fields cannot be read (the event then has no JMDC fields); the problems
/// found are appended to `problems` either way.
pub fn parse<O: Order>(
    bytes: &[u8],
    sub: &BlockHeader,
    block_time: u32,
    dialect: Dialect,
    problems: &mut Vec<HeaderProblem>,
) -> Option<Jmdc> {
    match header_layout(sub.type_, sub.node)? {
        Layout::Seed2007 => parse_2007::<O>(bytes, sub, dialect, problems),
        Layout::Flight => parse_flight::<O>(bytes, sub, block_time, problems),
        Layout::Unknown => None,
    }
}

/// A 32-bit value from two words at `at`: most significant word first, or least
/// significant first in the PC-DAQ dialect of FORMAT.md 11.2 ([`Dialect::jmdc_u32`]).
#[inline]
fn u32_at<O: Order>(w: &Words<'_, O>, at: usize, dialect: Dialect) -> Option<u32> {
    Some(dialect.jmdc_u32(w.word(at)?, w.word(at + 2)?))
}

fn parse_2007<O: Order>(
    bytes: &[u8],
    sub: &BlockHeader,
    dialect: Dialect,
    problems: &mut Vec<HeaderProblem>,
) -> Option<Jmdc> {
    let w = Words::<O>::new(bytes);
    let d = sub.data_start;
    let words = sub.data_words();
    let standard = !sub.long && (sub.size == SIZE_2007 || sub.size == SIZE_2007_GPS);
    // Words 0-10 are needed; longer sub-blocks (calibration-request words of pre-flight
    // data) are reported and read as far as word 10.
    if sub.long || words < 11 {
        problems.push((
            sub.offset,
            ProblemKind::JmdcSize,
            format!(
                "JMDC header has {}SIZE {}; FORMAT.md 4.1 allows 24 (no GPS) or 34 (GPS) with L = 0",
                if sub.long { "L = 1, " } else { "" },
                sub.size
            ),
        ));
        return None;
    }
    let mut j = Jmdc {
        layout: Layout::Seed2007,
        type_: sub.type_,
        run: u32_at(&w, d, dialect)?,
        run_tag: u32_at(&w, d + 4, dialect)?,
        event: u32_at(&w, d + 8, dialect)?,
        time: u32_at(&w, d + 12, dialect)?,
        fine_time: u32_at(&w, d + 16, dialect)?,
        status: w.word(d + 20)?,
        ..Jmdc::default()
    };
    j.gps = j.status & 0x8000 != 0;
    if !standard {
        problems.push((
            sub.offset,
            ProblemKind::JmdcExtraWords,
            format!(
                "JMDC header of SIZE {} holds {} words after word 10 (SIZE 24 or 34 expected); words 0-10 decoded, the rest kept",
                sub.size,
                words - 11
            ),
        ));
        return Some(j);
    }
    let gps_words = sub.size == SIZE_2007_GPS;
    if gps_words != j.gps {
        problems.push((
            sub.offset,
            ProblemKind::JmdcGpsMismatch,
            format!(
                "JMDC SIZE {} but GPS flag G = {}; GPS fields are left 0",
                sub.size,
                u8::from(j.gps)
            ),
        ));
    } else if gps_words {
        j.gps_week = w.word(d + 22)?;
        j.gps_second = u32_at(&w, d + 24, dialect)?;
        j.gps_fraction = u32_at(&w, d + 28, dialect)?;
    }
    Some(j)
}

fn parse_flight<O: Order>(
    bytes: &[u8],
    sub: &BlockHeader,
    block_time: u32,
    problems: &mut Vec<HeaderProblem>,
) -> Option<Jmdc> {
    let w = Words::<O>::new(bytes);
    let d = sub.data_start;
    let end = sub.data_start + 2 * sub.data_words();
    let has_l3 = sub.type_ & 1 != 0;
    let has_gps = sub.type_ & 2 != 0;
    let short = |problems: &mut Vec<HeaderProblem>, at: usize, what: String| {
        problems.push((
            at,
            ProblemKind::JmdcShort,
            format!(
                "flight JMDC header (TYPE 0x{:02X}, SIZE {}) {what}; the event has no JMDC fields",
                sub.type_, sub.size
            ),
        ));
    };
    if sub.data_words() < FLIGHT_FIXED_WORDS {
        short(
            problems,
            sub.offset,
            format!(
                "holds {} data words, words 0-5 are needed",
                sub.data_words()
            ),
        );
        return None;
    }
    let mut j = Jmdc {
        layout: Layout::Flight,
        type_: sub.type_,
        fine_time: u32::from(w.word(d)?) * 1000,
        run_type: w.word(d + 2)?,
        run: u32_at(&w, d + 4, Dialect::Seed)?,
        event: u32_at(&w, d + 8, Dialect::Seed)?,
        time: block_time,
        gps: has_gps,
        ..Jmdc::default()
    };
    j.run_tag = j.run;
    let mut pos = d + 2 * FLIGHT_FIXED_WORDS;
    for (present, name) in [(has_l3, "level-3"), (has_gps, "GPS")] {
        if !present {
            continue;
        }
        let Some(first) = w.word(pos).filter(|_| pos + 2 <= end) else {
            short(
                problems,
                pos,
                format!("ends before its {name} record, which its TYPE announces"),
            );
            return None;
        };
        let n = (first >> 8) as u8 & 0x1F;
        let words = usize::from(n).div_ceil(2).max(1);
        if pos + 2 * words > end {
            short(
                problems,
                pos,
                format!(
                    "{name} record of {n} bytes ({words} words) runs {} words past the end of the sub-block",
                    (pos + 2 * words - end) / 2
                ),
            );
            return None;
        }
        let record = Record {
            offset: pos as u64,
            words: words as u32,
        };
        if name == "level-3" {
            if n != LEVEL3_RECORD_BYTES {
                problems.push((
                    pos,
                    ProblemKind::Level3Length,
                    format!("level-3 record of {n} bytes (9 expected); kept as {words} words"),
                ));
            }
            j.level3 = Some(record);
        } else {
            let values = (usize::from(n) + 1) / 4;
            if n % 2 == 1 && (n + 1) % 4 == 0 && values <= MAX_GPS_VALUES {
                for k in 0..values {
                    j.gps_values[k] = u32_at(&w, pos + 4 * k, Dialect::Seed)?;
                }
                j.gps_values_n = values as u8;
            } else {
                problems.push((
                    pos,
                    ProblemKind::GpsLength,
                    format!(
                        "GPS record of {n} bytes: the length must be odd with (N + 1) % 4 == 0 and at most 7 values; kept as {words} words, no values"
                    ),
                ));
            }
            j.gps_record = Some(record);
        }
        pos += 2 * words;
    }
    if pos < end {
        problems.push((
            pos,
            ProblemKind::JmdcExtraWords,
            format!(
                "flight JMDC header holds {} words after its records; kept",
                (end - pos) / 2
            ),
        ));
    }
    Some(j)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block;
    use crate::words::{Be, Le};

    fn bytes_of(words: &[u16], big: bool) -> Vec<u8> {
        words
            .iter()
            .flat_map(|w| {
                if big {
                    w.to_be_bytes()
                } else {
                    w.to_le_bytes()
                }
            })
            .collect()
    }

    /// A flight header sub-block of `type_` with the given record words.
    fn flight(type_: u8, records: &[u16]) -> Vec<u16> {
        let mut w = vec![0u16, 0x8000 | (2 << 5) | u16::from(type_)];
        w.extend([123, 7, 0x4DE8, 0x0001, 0x0000, 0x0042]);
        w.extend_from_slice(records);
        w[0] = (2 * (w.len() - 1)) as u16;
        w
    }

    fn parse_words(words: &[u16], big: bool) -> (Option<Jmdc>, Vec<HeaderProblem>) {
        let bytes = bytes_of(words, big);
        let mut problems = Vec::new();
        let j = if big {
            let sub = block::parse::<Be>(&bytes, 0, bytes.len(), false).expect("header");
            parse::<Be>(&bytes, &sub, 1_400_000_000, Dialect::Seed, &mut problems)
        } else {
            let sub = block::parse::<Le>(&bytes, 0, bytes.len(), false).expect("header");
            parse::<Le>(&bytes, &sub, 1_400_000_000, Dialect::Seed, &mut problems)
        };
        (j, problems)
    }

    #[test]
    fn time_rule_of_section_3() {
        assert_eq!(unix_seconds(0), 315_964_800.0);
        assert_eq!(unix_seconds(999_999_999), 1_315_964_799.0);
        assert_eq!(unix_seconds(1_000_000_000), 1_000_000_000.0);
        assert_eq!(unix_seconds(1_307_049_984), 1_307_049_984.0);
    }

    #[test]
    fn flight_header_with_both_records() {
        // Level-3 record of 9 bytes (5 words), GPS record of 11 bytes (6 words, 3 values).
        let l3 = [0x0900 | 0xAB, 1, 2, 3, 4];
        let gps = [0x0B00 | 0x12, 0x3456, 0x789A, 0xBCDE, 0xF012, 0x3456];
        let mut records = l3.to_vec();
        records.extend(gps);
        for big in [false, true] {
            let (j, problems) = parse_words(&flight(0x13, &records), big);
            let j = j.expect("fields");
            assert!(problems.is_empty(), "{problems:?}");
            assert_eq!(j.layout, Layout::Flight);
            assert_eq!((j.fine_time, j.run_type), (123_000, 7));
            assert_eq!(
                (j.run, j.run_tag, j.event),
                (0x4DE8_0001, 0x4DE8_0001, 0x42)
            );
            assert_eq!(j.time, 1_400_000_000);
            assert_eq!(
                j.level3,
                Some(Record {
                    offset: 16,
                    words: 5
                })
            );
            assert_eq!(
                j.gps_record,
                Some(Record {
                    offset: 26,
                    words: 6
                })
            );
            assert_eq!(j.gps_values_n, 3);
            assert_eq!(&j.gps_values[..3], &[0x0B12_3456, 0x789A_BCDE, 0xF012_3456]);
            assert!(j.gps);
        }
    }

    #[test]
    fn flight_header_problems() {
        // TYPE 0x11 announces a level-3 record the sub-block does not hold.
        let (j, p) = parse_words(&flight(0x11, &[]), false);
        assert!(j.is_none());
        assert_eq!(p.len(), 1);
        assert_eq!((p[0].0, p[0].1), (16, ProblemKind::JmdcShort));
        // A record whose length overruns the sub-block.
        let (j, p) = parse_words(&flight(0x11, &[0x1F00, 0, 0]), false);
        assert!(j.is_none());
        assert_eq!((p[0].0, p[0].1), (16, ProblemKind::JmdcShort));
        // Odd level-3 length and an even GPS length: reported, kept, fields decoded.
        let (j, p) = parse_words(&flight(0x13, &[0x0700, 0, 0, 0, 0x0400, 0]), true);
        let j = j.expect("fields");
        let kinds: Vec<_> = p.iter().map(|x| x.1).collect();
        assert_eq!(
            kinds,
            vec![ProblemKind::Level3Length, ProblemKind::GpsLength]
        );
        assert_eq!(j.level3.map(|r| r.words), Some(4));
        assert_eq!(j.gps_record.map(|r| r.words), Some(2));
        assert_eq!(j.gps_values_n, 0);
        // Words after the records.
        let (j, p) = parse_words(&flight(0x10, &[9, 9]), false);
        assert!(j.is_some());
        assert_eq!((p[0].0, p[0].1), (16, ProblemKind::JmdcExtraWords));
        // Fewer than 6 data words.
        let (j, p) = parse_words(&[8, 0x8010, 1, 2, 3], false);
        assert!(j.is_none());
        assert_eq!(p[0].1, ProblemKind::JmdcShort);
    }

    #[test]
    fn shapes() {
        assert!(is_event_id(0x8005 | (15 << 5), 0x0123));
        assert!(!is_event_id(0x8005 | (16 << 5), 0));
        assert!(!is_event_id(0xC005, 0));
        assert!(!is_event_id(0x8005, 0x1000));
        assert!(header_shape(24, 0x8005) && header_shape(34, 0x8005 | (3 << 5)));
        assert!(!header_shape(26, 0x8005));
        assert!(header_shape(14, 0x8010) && header_shape(24, 0x8011));
        assert!(!header_shape(14, 0x8011), "TYPE 0x11 needs a record word");
        assert!(!header_shape(15, 0x8010) && !header_shape(80, 0x8010));
        assert!(!header_shape(24, 0x8014) && !header_shape(24, 0x8005 | (16 << 5)));
        assert_eq!(header_layout(5, 15), Some(Layout::Seed2007));
        assert_eq!(header_layout(0x12, 4), Some(Layout::Flight));
        assert_eq!(header_layout(6, 0), None);
    }
}
