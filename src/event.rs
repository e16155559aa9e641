//! Science events (FORMAT.md section 4): the sub-block walk and the JMDC sub-block (4.1).

use nom::IResult;

use crate::block::{self, BlockHeader};
use crate::decode::{Tables, Want};
use crate::dialect::Dialect;
use crate::group::{self, GroupContext};
use crate::problems::{Problem, ProblemKind};
use crate::trd::{HitLut, TrdMap};
use crate::words::{nom_word, Order};

/// Seconds between the Unix epoch and the AMS (GPS) epoch, 1980-01-06 00:00:00 UTC.
pub const AMS_EPOCH_UNIX: u32 = 315_964_800;

/// Sub-block TYPE of the JMDC sub-block.
pub const TYPE_JMDC: u8 = 5;
/// Sub-block TYPE of a detector data group.
pub const TYPE_GROUP: u8 = 1;
/// Sub-block TYPE of a compressed group (FORMAT.md section 8; not decoded).
pub const TYPE_GROUP_COMPRESSED: u8 = 4;
/// Sub-block TYPE of the Level-3 trigger sub-block.
pub const TYPE_LEVEL3: u8 = 6;

/// The JMDC sub-block's data (FORMAT.md 4.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Jmdc {
    /// Run number.
    pub run: u32,
    /// Run tag (start time of data taking).
    pub run_tag: u32,
    /// Event number (from 1 in each run).
    pub event: u32,
    /// Event time, AMS seconds.
    pub time: u32,
    /// Event fine time, microseconds.
    pub fine_time: u32,
    /// The whole status word.
    pub status: u16,
    /// GPS week number (0 without GPS).
    pub gps_week: u16,
    /// GPS seconds (0 without GPS).
    pub gps_second: u32,
    /// GPS fraction of the second (0 without GPS).
    pub gps_fraction: u32,
}

impl Jmdc {
    /// The G bit: GPS data present.
    pub fn gps(&self) -> bool {
        self.status & 0x8000 != 0
    }
    /// The groups field (bits 4..0, a convention of this project).
    pub fn groups(&self) -> u8 {
        (self.status & 0x1F) as u8
    }
}

/// A 32-bit value: two words, most significant word first (least significant first in
/// the PC-DAQ dialect: [`Dialect::jmdc_u32`]).
fn jmdc_u32<O: Order>(input: &[u8], dialect: Dialect) -> IResult<&[u8], u32> {
    let (i, first) = nom_word::<O>(input)?;
    let (i, second) = nom_word::<O>(i)?;
    Ok((i, dialect.jmdc_u32(first, second)))
}

/// Parses the JMDC data words (after the ID word). `gps_words` says whether the
/// sub-block's size leaves room for the GPS words.
pub fn parse_jmdc<O: Order>(data: &[u8], gps_words: bool) -> IResult<&[u8], Jmdc> {
    parse_jmdc_in::<O>(data, gps_words, Dialect::Seed)
}

/// [`parse_jmdc`] in a dialect (FORMAT.md 11.2).
pub fn parse_jmdc_in<O: Order>(
    data: &[u8],
    gps_words: bool,
    dialect: Dialect,
) -> IResult<&[u8], Jmdc> {
    let msw_first = |i| jmdc_u32::<O>(i, dialect);
    let (i, run) = msw_first(data)?;
    let (i, run_tag) = msw_first(i)?;
    let (i, event) = msw_first(i)?;
    let (i, time) = msw_first(i)?;
    let (i, fine_time) = msw_first(i)?;
    let (i, status) = nom_word::<O>(i)?;
    let mut j = Jmdc {
        run,
        run_tag,
        event,
        time,
        fine_time,
        status,
        ..Jmdc::default()
    };
    if !gps_words {
        return Ok((i, j));
    }
    let (i, week) = nom_word::<O>(i)?;
    let (i, second) = msw_first(i)?;
    let (i, fraction) = msw_first(i)?;
    if j.gps() {
        j.gps_week = week;
        j.gps_second = second;
        j.gps_fraction = fraction;
    }
    Ok((i, j))
}

/// Decodes science events into tables.
pub struct EventDecoder<'a, O: Order> {
    bytes: &'a [u8],
    lut: HitLut,
    want: Want,
    dialect: Dialect,
    _order: std::marker::PhantomData<O>,
}

/// What the sub-block walk found of one event, before it becomes a row.
struct EventRow {
    jmdc: Option<Jmdc>,
    n_groups: u16,
    crc_ok: bool,
    level3: Option<(u64, u32)>,
    n_trd_hits: u32,
}

impl<'a, O: Order> EventDecoder<'a, O> {
    /// A decoder over the whole data of a file or stream.
    pub fn new(bytes: &'a [u8], map: &'a TrdMap, want: Want) -> Self {
        EventDecoder {
            bytes,
            lut: HitLut::new(map),
            want,
            dialect: Dialect::Seed,
            _order: std::marker::PhantomData,
        }
    }

    /// Reads the events in `dialect` (FORMAT.md 11.2).
    pub fn with_dialect(mut self, dialect: Dialect) -> Self {
        self.dialect = dialect;
        self
    }

    /// The bytes decoded.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The hit tables built from the TRD map.
    pub fn lut(&self) -> &HitLut {
        &self.lut
    }

    /// The tables filled.
    pub fn want(&self) -> Want {
        self.want
    }

    /// Decodes the science event block at `offset` (row `event_index` of `events()`),
    /// appending one events row (always, so that rows match the block index) and any
    /// fragments, hits, raw read-outs and problems.
    pub fn decode(&self, offset: usize, event_index: i64, out: &mut Tables) {
        let header = match block::parse::<O>(self.bytes, offset, self.bytes.len(), true) {
            Ok(h) => h,
            Err(e) => {
                out.problems.push(Problem::in_event(
                    offset,
                    event_index,
                    ProblemKind::BadBlockHeader,
                    e.describe(),
                ));
                self.push_row(out, offset, &BlockHeader::default(), &Self::empty_row());
                return;
            }
        };
        let row = self.walk(&header, event_index, out);
        self.push_row(out, offset, &header, &row);
    }

    fn empty_row() -> EventRow {
        EventRow {
            jmdc: None,
            n_groups: 0,
            crc_ok: true,
            level3: None,
            n_trd_hits: 0,
        }
    }

    fn walk(&self, event: &BlockHeader, event_index: i64, out: &mut Tables) -> EventRow {
        let mut row = Self::empty_row();
        let end = event.next;
        let mut pos = event.data_start;
        let mut index = 0usize;
        let problem = |out: &mut Tables, at: usize, kind: ProblemKind, detail: String| {
            out.problems
                .push(Problem::in_event(at, event_index, kind, detail));
        };
        while pos < end {
            let sub = match block::parse::<O>(self.bytes, pos, end, false) {
                Ok(h) => h,
                Err(e) => {
                    let kind = match e {
                        block::HeaderError::TooSmall { .. } => ProblemKind::BadBlockHeader,
                        _ => ProblemKind::SubblockOverrun,
                    };
                    problem(
                        out,
                        pos,
                        kind,
                        format!(
                            "sub-block {index}: {}; the rest of the event ({} bytes) is not decoded",
                            e.describe(),
                            end - pos
                        ),
                    );
                    break;
                }
            };
            let jmdc_node = sub.node <= 3;
            let is_jmdc = sub.type_ == TYPE_JMDC && jmdc_node;
            let is_jmdc_variant = (0x10..=0x13).contains(&sub.type_) && jmdc_node;
            if index == 0 && !is_jmdc {
                if is_jmdc_variant {
                    problem(
                        out,
                        pos,
                        ProblemKind::UnsupportedVariant,
                        format!(
                            "JMDC sub-block of TYPE 0x{:02X} (a later layout not defined by FORMAT.md); event fields are not decoded",
                            sub.type_
                        ),
                    );
                } else {
                    problem(
                        out,
                        pos,
                        ProblemKind::JmdcMissing,
                        format!(
                            "the first sub-block is NODE {} TYPE {}, not the JMDC sub-block (TYPE 5, NODE 0..3)",
                            sub.node, sub.type_
                        ),
                    );
                }
            }
            if is_jmdc_variant && index == 0 {
                // Reported above.
            } else if is_jmdc {
                if index == 0 {
                    row.jmdc = self.jmdc(&sub, event_index, out);
                } else {
                    problem(
                        out,
                        pos,
                        ProblemKind::SubblockOrder,
                        format!("a second JMDC sub-block (sub-block {index}) is skipped"),
                    );
                }
            } else if sub.type_ == TYPE_GROUP {
                if row.level3.is_some() {
                    problem(
                        out,
                        pos,
                        ProblemKind::SubblockOrder,
                        "a group sub-block after the Level-3 sub-block (decoded all the same)"
                            .to_string(),
                    );
                }
                let ctx = GroupContext {
                    event_index,
                    group: row.n_groups.min(255) as u8,
                    jmdc_event: row.jmdc.map(|j| j.event),
                    dialect: self.dialect,
                };
                let result =
                    group::decode_group::<O>(self.bytes, &sub, &ctx, &self.lut, self.want, out);
                row.crc_ok &= result.crc_ok;
                row.n_trd_hits += result.n_trd_hits;
                row.n_groups = row.n_groups.saturating_add(1);
            } else if sub.type_ == TYPE_GROUP_COMPRESSED {
                problem(
                    out,
                    pos,
                    ProblemKind::UnsupportedVariant,
                    format!(
                        "group sub-block of TYPE 4 (compressed group, NODE {}) is not defined by FORMAT.md; skipped",
                        sub.node
                    ),
                );
            } else if is_jmdc_variant {
                problem(
                    out,
                    pos,
                    ProblemKind::UnsupportedVariant,
                    format!(
                        "JMDC sub-block of TYPE 0x{:02X} (sub-block {index}) skipped",
                        sub.type_
                    ),
                );
            } else if sub.type_ == TYPE_LEVEL3 && jmdc_node {
                if row.level3.is_some() {
                    problem(
                        out,
                        pos,
                        ProblemKind::DuplicateLevel3,
                        "a second Level-3 sub-block is skipped".to_string(),
                    );
                } else {
                    row.level3 = Some((sub.data_start as u64, sub.data_words() as u32));
                }
            } else {
                problem(
                    out,
                    pos,
                    ProblemKind::UnknownSubblock,
                    format!(
                        "sub-block {index} of NODE {} TYPE {} (data type 0x{:X}) does not belong in an event; skipped",
                        sub.node,
                        sub.type_,
                        sub.data_type()
                    ),
                );
            }
            index += 1;
            pos = sub.next;
        }
        if index == 0 {
            problem(
                out,
                event.offset,
                ProblemKind::JmdcMissing,
                "the event has no sub-blocks".to_string(),
            );
        }
        row
    }

    fn jmdc(&self, sub: &BlockHeader, event_index: i64, out: &mut Tables) -> Option<Jmdc> {
        let size_ok = !sub.long && (sub.size == 24 || sub.size == 34);
        if !size_ok {
            out.problems.push(Problem::in_event(
                sub.offset,
                event_index,
                ProblemKind::JmdcSize,
                format!(
                    "JMDC sub-block has {}SIZE {}; FORMAT.md 4.1 allows 24 (no GPS) or 34 (GPS) with L = 0",
                    if sub.long { "L = 1, " } else { "" },
                    sub.size
                ),
            ));
            return None;
        }
        let data = self.bytes.get(sub.data_start..sub.data_end)?;
        let (_, j) = parse_jmdc_in::<O>(data, sub.size == 34, self.dialect).ok()?;
        if j.gps() != (sub.size == 34) {
            out.problems.push(Problem::in_event(
                sub.offset,
                event_index,
                ProblemKind::JmdcGpsMismatch,
                format!(
                    "JMDC SIZE {} but GPS flag G = {}; GPS fields are left 0",
                    sub.size,
                    u8::from(j.gps())
                ),
            ));
        }
        Some(j)
    }

    fn push_row(&self, out: &mut Tables, offset: usize, h: &BlockHeader, row: &EventRow) {
        if !self.want.events {
            return;
        }
        let e = &mut out.events;
        let j = row.jmdc.unwrap_or_default();
        e.offset.push(offset as u64);
        e.jmdc_node.push(h.node);
        e.tag.push(h.tag);
        e.status.push(h.status);
        e.block_time.push(h.time);
        e.run.push(j.run);
        e.run_tag.push(j.run_tag);
        e.event.push(j.event);
        e.time.push(j.time);
        e.fine_time.push(j.fine_time);
        e.jmdc_status.push(j.status);
        e.gps.push(j.gps());
        e.groups.push(j.groups());
        e.gps_week.push(j.gps_week);
        e.gps_second.push(j.gps_second);
        e.gps_fraction.push(j.gps_fraction);
        e.n_groups.push(row.n_groups);
        e.crc_ok.push(row.crc_ok);
        e.has_level3.push(row.level3.is_some());
        let (l3_offset, l3_words) = row.level3.unwrap_or((0, 0));
        e.level3_offset.push(l3_offset);
        e.level3_words.push(l3_words);
        e.jmdc_ok.push(row.jmdc.is_some());
        e.n_trd_hits.push(row.n_trd_hits);
        e.unix_time.push(if row.jmdc.is_some() {
            f64::from(j.time) + f64::from(AMS_EPOCH_UNIX) + f64::from(j.fine_time) / 1e6
        } else {
            f64::NAN
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::words::{Be, Le};

    fn jmdc_words(gps: bool) -> Vec<u16> {
        let mut w = vec![
            0x0001, 0x0002, 0x3B9A, 0xCA00, 0x0000, 0x0007, 0x4000, 0x0001, 0x000F, 0x4240,
        ];
        w.push(if gps { 0x8003 } else { 0x0002 });
        if gps {
            w.extend([2100, 0x0001, 0x0002, 0x0000, 0x01F4]);
        }
        w
    }

    #[test]
    fn jmdc_fields_from_format_md() {
        for gps in [false, true] {
            let words = jmdc_words(gps);
            let be: Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).collect();
            let le: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
            let (_, a) = parse_jmdc::<Be>(&be, gps).expect("parses");
            let (_, b) = parse_jmdc::<Le>(&le, gps).expect("parses");
            assert_eq!(a, b);
            assert_eq!(a.run, 0x0001_0002);
            assert_eq!(a.run_tag, 1_000_000_000);
            assert_eq!(a.event, 7);
            assert_eq!(a.time, 0x4000_0001);
            assert_eq!(a.fine_time, 1_000_000);
            assert_eq!(a.gps(), gps);
            assert_eq!(a.groups(), if gps { 3 } else { 2 });
            if gps {
                assert_eq!(
                    (a.gps_week, a.gps_second, a.gps_fraction),
                    (2100, 0x0001_0002, 500)
                );
            } else {
                assert_eq!((a.gps_week, a.gps_second, a.gps_fraction), (0, 0, 0));
            }
        }
        assert!(parse_jmdc::<Be>(&[0u8; 20], false).is_err());
    }
}
