//! Science events (FORMAT.md sections 4 and 6): the walk over an event's sub-blocks. The
//! JMDC header (both layouts) is read by [`crate::jmdc`], the groups by [`crate::group`].

use crate::block::{self, BlockHeader};
use crate::dialect::Dialect;
use crate::group::{self, GroupContext};
use crate::jmdc::{self, Jmdc, Layout};
use crate::problems::{Problem, ProblemKind};
use crate::tables::{Tables, Want};
use crate::trd::{HitLut, TrdMap};
use crate::words::Order;

pub use crate::jmdc::AMS_EPOCH_UNIX;

/// Sub-block TYPE of a detector data group.
pub const TYPE_GROUP: u8 = 1;
/// Sub-block TYPE of a Huffman-coded group (FORMAT.md 9.3).
pub const TYPE_GROUP_COMPRESSED: u8 = 4;
/// Sub-block TYPE of the Level-3 trigger sub-block (2007 layout).
pub const TYPE_LEVEL3: u8 = 6;

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
    /// The JMDC header's layout (known from its TYPE even when its fields are not).
    layout: Layout,
    /// The JMDC header sub-block's NODE.
    jmdc_node: Option<u16>,
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
            layout: Layout::Unknown,
            jmdc_node: None,
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
        let mut level3_sub = false;
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
            let header = jmdc::header_layout(sub.type_, sub.node);
            if index == 0 {
                match header {
                    Some(layout) => {
                        row.layout = layout;
                        row.jmdc_node = Some(sub.node);
                        row.jmdc = self.jmdc(&sub, event, event_index, out);
                    }
                    None => problem(
                        out,
                        pos,
                        ProblemKind::JmdcMissing,
                        format!(
                            "the first sub-block is NODE {} TYPE 0x{:02X}, not a JMDC header (TYPE 5 or 0x10..0x13, NODE 0..15); the event has no JMDC fields",
                            sub.node, sub.type_
                        ),
                    ),
                }
            } else if header.is_some() {
                problem(
                    out,
                    pos,
                    ProblemKind::SubblockOrder,
                    format!(
                        "a second JMDC header (sub-block {index}, TYPE 0x{:02X}) is skipped",
                        sub.type_
                    ),
                );
            } else if sub.type_ == TYPE_GROUP || sub.type_ == TYPE_GROUP_COMPRESSED {
                if level3_sub {
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
                    layout: row.layout,
                    run_id: row.jmdc.map_or(event.time, |j| j.run_tag),
                    dialect: self.dialect,
                };
                let result =
                    group::decode_group::<O>(self.bytes, &sub, &ctx, &self.lut, self.want, out);
                row.crc_ok &= result.crc_ok;
                row.n_trd_hits += result.n_trd_hits;
                row.n_groups = row.n_groups.saturating_add(1);
            } else if sub.type_ == TYPE_LEVEL3
                && jmdc::is_jmdc_node(sub.node)
                && row.layout != Layout::Flight
            {
                if level3_sub {
                    problem(
                        out,
                        pos,
                        ProblemKind::DuplicateLevel3,
                        "a second Level-3 sub-block is skipped".to_string(),
                    );
                } else {
                    level3_sub = true;
                    row.level3 = Some((sub.data_start as u64, sub.data_words() as u32));
                }
            } else {
                problem(
                    out,
                    pos,
                    ProblemKind::UnknownSubblock,
                    format!(
                        "sub-block {index} of NODE {} TYPE {} (data type 0x{:X}) does not belong in an event of the {} layout; skipped",
                        sub.node,
                        sub.type_,
                        sub.data_type(),
                        row.layout.name()
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
        if let Some(r) = row.jmdc.and_then(|j| j.level3) {
            row.level3 = Some((r.offset, r.words));
        }
        row
    }

    fn jmdc(
        &self,
        sub: &BlockHeader,
        event: &BlockHeader,
        event_index: i64,
        out: &mut Tables,
    ) -> Option<Jmdc> {
        let mut found = Vec::new();
        let j = jmdc::parse::<O>(self.bytes, sub, event.time, self.dialect, &mut found);
        out.problems.extend(
            found
                .into_iter()
                .map(|(at, kind, detail)| Problem::in_event(at, event_index, kind, detail)),
        );
        j
    }

    fn push_row(&self, out: &mut Tables, offset: usize, h: &BlockHeader, row: &EventRow) {
        if !self.want.events {
            return;
        }
        let e = &mut out.events;
        let j = row.jmdc.unwrap_or_default();
        e.offset.push(offset as u64);
        e.jmdc_node.push(row.jmdc_node.unwrap_or(h.node));
        e.tag.push(h.tag);
        e.status.push(h.status);
        e.block_time.push(h.time);
        e.layout.push(row.layout.code());
        e.jmdc_type.push(j.type_);
        e.run.push(j.run);
        e.run_tag.push(j.run_tag);
        e.run_type.push(j.run_type);
        e.event.push(j.event);
        e.time.push(j.time);
        e.fine_time.push(j.fine_time);
        e.jmdc_status.push(j.status);
        e.gps.push(j.gps);
        e.groups.push(j.groups());
        e.gps_week.push(j.gps_week);
        e.gps_second.push(j.gps_second);
        e.gps_fraction.push(j.gps_fraction);
        let gps = j.gps_record.unwrap_or_default();
        e.gps_offset.push(gps.offset);
        e.gps_words.push(gps.words);
        e.gps_n.push(j.gps_values_n);
        e.gps_values.extend_from_slice(&j.gps_values);
        e.n_groups.push(row.n_groups);
        e.crc_ok.push(row.crc_ok);
        e.level3.push(row.level3.is_some());
        let (l3_offset, l3_words) = row.level3.unwrap_or((0, 0));
        e.level3_offset.push(l3_offset);
        e.level3_words.push(l3_words);
        e.jmdc_ok.push(row.jmdc.is_some());
        e.n_trd_hits.push(row.n_trd_hits);
        e.unix_time.push(if row.jmdc.is_some() {
            j.unix_time()
        } else {
            f64::NAN
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::words::{Be, Le};

    /// An event block (node 1, TIME 0x4000_0001) whose only sub-block is a 2007 JMDC header.
    fn event_words(gps: bool) -> Vec<u16> {
        let mut j = vec![
            0x0001, 0x0002, 0x3B9A, 0xCA00, 0x0000, 0x0007, 0x4000, 0x0001, 0x000F, 0x4240,
        ];
        j.push(if gps { 0x8003 } else { 0x0002 });
        if gps {
            j.extend([2100, 0x0001, 0x0002, 0x0000, 0x01F4]);
        }
        let mut sub = vec![(2 + 2 * j.len()) as u16, 0x8005 | (1 << 5)];
        sub.extend(j);
        let mut w = vec![0u16, 0x8005 | (1 << 5), 0x0123, 0x4000, 0x0001];
        w.extend(sub);
        w[0] = (2 * (w.len() - 1)) as u16;
        w
    }

    #[test]
    fn jmdc_fields_of_the_2007_layout() {
        let map = TrdMap::flight();
        for gps in [false, true] {
            let words = event_words(gps);
            let be: Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).collect();
            let le: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
            let mut a = Tables::default();
            EventDecoder::<Be>::new(&be, &map, Want::ALL).decode(0, 0, &mut a);
            let mut b = Tables::default();
            EventDecoder::<Le>::new(&le, &map, Want::ALL).decode(0, 0, &mut b);
            assert_eq!(a.events, b.events);
            assert!(a.problems.is_empty(), "{:?}", a.problems);
            let e = &a.events;
            assert_eq!(e.run, vec![0x0001_0002]);
            assert_eq!(e.run_tag, vec![1_000_000_000]);
            assert_eq!(e.event, vec![7]);
            assert_eq!(e.time, vec![0x4000_0001]);
            assert_eq!(e.fine_time, vec![1_000_000]);
            assert_eq!(e.layout, vec![Layout::Seed2007.code()]);
            assert_eq!(e.gps, vec![gps]);
            assert_eq!(e.groups, vec![if gps { 3 } else { 2 }]);
            // 0x4000_0001 is above 10^9: already Unix seconds.
            assert_eq!(e.unix_time, vec![f64::from(0x4000_0001u32) + 1.0]);
            if gps {
                assert_eq!(
                    (e.gps_week[0], e.gps_second[0], e.gps_fraction[0]),
                    (2100, 0x0001_0002, 500)
                );
            } else {
                assert_eq!(
                    (e.gps_week[0], e.gps_second[0], e.gps_fraction[0]),
                    (0, 0, 0)
                );
            }
        }
    }
}
