//! Detector data group sub-blocks (FORMAT.md 4.2): CRC, the fragment tree (nesting by the
//! CDP bit) and, under a JINJ, the TRD UDR data (4.3, 5).

use crate::block::BlockHeader;
use crate::crc;
use crate::decode::{Tables, Want};
use crate::problems::{Problem, ProblemKind};
use crate::trd::{self, HitLut, STATUS_CDP, STATUS_COMPRESSED, STATUS_RAW, UDR_CHANNELS};
use crate::words::{Order, Words};

/// JINJ node addresses (a group whose top node is a JINJ can carry TRD data).
pub const JINJ_NODES: std::ops::RangeInclusive<u16> = 128..=131;
/// The deepest fragment level decoded; deeper levels are reported, not followed.
pub const MAX_DEPTH: u8 = 32;

/// The stored and the computed CRC of a group whose `n` data words (event number through
/// CRC word, `n >= 1`) start at byte `start` (FORMAT.md 4.2). The stored word is `None`
/// when it lies past the data.
pub fn group_crc<O: Order>(bytes: &[u8], start: usize, n: usize) -> (Option<u16>, u16) {
    let crc_at = start + 2 * n.saturating_sub(1);
    let stored = bytes.get(crc_at..crc_at + 2).map(|b| O::word([b[0], b[1]]));
    let computed = crc::crc16_words::<O>(bytes.get(start..crc_at).unwrap_or(&[]));
    (stored, computed)
}

/// Where a group sits.
pub struct GroupContext {
    /// Row of the event in `events()`.
    pub event_index: i64,
    /// Index of the group sub-block within the event.
    pub group: u8,
    /// The JMDC event number, when the JMDC sub-block was decoded.
    pub jmdc_event: Option<u32>,
    /// The file's dialect (FORMAT.md 11.2): decides whether a CRC word of 0 is checked.
    pub dialect: crate::dialect::Dialect,
}

/// What a group contributes to its event's row.
pub struct GroupResult {
    /// The CRC checks (false also when the group is too short to carry one).
    pub crc_ok: bool,
    /// Compressed TRD hits found.
    pub n_trd_hits: u32,
}

/// What a fragment's content is, from its place in the tree.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Place {
    /// A slave of the JINJ top node.
    JinjSlave,
    /// A slave of a JINF-U (a UDR position), in crate 0 or 1.
    UdrSlot(u8),
    /// Anywhere else.
    Other,
}

#[derive(Clone, Copy)]
struct Frame {
    pos: usize,
    end: usize,
    parent: i64,
    depth: u8,
    place: Place,
}

/// Decodes one group sub-block.
pub fn decode_group<O: Order>(
    bytes: &[u8],
    sub: &BlockHeader,
    ctx: &GroupContext,
    lut: &HitLut,
    want: Want,
    out: &mut Tables,
) -> GroupResult {
    let w = Words::<O>::new(bytes);
    let mut result = GroupResult {
        crc_ok: false,
        n_trd_hits: 0,
    };
    let problem = |out: &mut Tables, at: usize, kind: ProblemKind, detail: String| {
        out.problems
            .push(Problem::in_event(at, ctx.event_index, kind, detail));
    };
    let start = sub.data_start;
    let span = sub.data_end.saturating_sub(start);
    if span % 2 == 1 {
        problem(
            out,
            sub.offset,
            ProblemKind::GroupMalformed,
            format!(
                "group {} has an odd SIZE {}; the last byte is ignored",
                ctx.group, sub.size
            ),
        );
    }
    let n = span / 2;
    if n < 3 {
        problem(
            out,
            sub.offset,
            ProblemKind::GroupMalformed,
            format!(
                "group {} has {n} data words; event number, top node status and CRC need 3",
                ctx.group
            ),
        );
        return result;
    }
    // n >= 3 words lie inside the data, checked by the block parser.
    let word = |pos: usize| w.word(pos).unwrap_or(0);
    let crc_pos = start + 2 * (n - 1);
    let status_pos = crc_pos - 2;
    let (stored, computed) = if want.crc() {
        let (stored, computed) = group_crc::<O>(bytes, start, n);
        (stored.unwrap_or(0), computed)
    } else {
        (0, 0)
    };
    result.crc_ok = ctx.dialect.crc_ok(stored, computed);
    if !result.crc_ok {
        problem(
            out,
            crc_pos,
            ProblemKind::CrcMismatch,
            format!(
                "group {} CRC word is 0x{stored:04X}, the words compute to 0x{computed:04X}",
                ctx.group
            ),
        );
    }
    let event_number = word(start);
    if let Some(jmdc_event) = ctx.jmdc_event {
        if u32::from(event_number) != jmdc_event & 0xFFFF {
            problem(
                out,
                start,
                ProblemKind::GroupEventNumber,
                format!(
                    "group {} event number is {event_number}, the JMDC event number's low 16 bits are {}",
                    ctx.group,
                    jmdc_event & 0xFFFF
                ),
            );
        }
    }
    let top_status = word(status_pos);
    let content_start = start + 2;
    let mut rows: i64 = out.fragments.len() as i64;
    let mut push_fragment =
        |out: &mut Tables, depth: u8, parent: i64, status: u16, data: usize, words: usize| {
            let row = rows;
            rows += 1;
            if want.fragments {
                let f = &mut out.fragments;
                f.event_index.push(ctx.event_index);
                f.group.push(ctx.group);
                f.depth.push(depth);
                f.parent.push(parent);
                f.slave_id.push((status & 0x1F) as u8);
                f.node_status.push(status);
                f.data_offset.push(data as u64);
                f.n_words.push(words as u32);
            }
            row
        };
    let top_row = push_fragment(out, 0, -1, top_status, content_start, n - 3);
    if top_status & STATUS_CDP == 0 {
        return result;
    }
    let top_place = if JINJ_NODES.contains(&sub.node) {
        Place::JinjSlave
    } else {
        Place::Other
    };
    // Without the fragments table or the checks, the walk goes down only the JINJ ->
    // JINF-U -> UDR2 paths (all that hits, raw read-outs and `n_trd_hits` need),
    // skipping the other detectors' subtrees whole, and the problems inside them.
    let trd_only = !want.walk_all();
    if trd_only && top_place == Place::Other {
        return result;
    }
    // The frame being walked stays in locals; its ancestors wait in a fixed array (at
    // most MAX_DEPTH deep), so that no heap allocation is made per group and the walk's
    // position is not stored to memory and read back at every fragment.
    let mut frame = Frame {
        pos: content_start,
        end: status_pos,
        parent: top_row,
        depth: 1,
        place: top_place,
    };
    let mut saved = [frame; MAX_DEPTH as usize];
    let mut n_saved = 0usize;
    loop {
        if frame.pos >= frame.end {
            if n_saved == 0 {
                break;
            }
            n_saved -= 1;
            frame = saved[n_saved];
            continue;
        }
        let pos = frame.pos;
        let len = usize::from(word(pos));
        if len == 0 {
            problem(
                out,
                pos,
                ProblemKind::FragmentEmpty,
                format!(
                    "fragment of length 0 (no node status word) at depth {}; the rest of its parent ({} words) is not decoded",
                    frame.depth,
                    (frame.end - pos) / 2
                ),
            );
            frame.pos = frame.end;
            continue;
        }
        let frag_end = pos + 2 * (len + 1);
        if frame.end - pos == 4 && len != 1 && frame.depth > 1 {
            // Two words left that cannot be a fragment: the JINF layout with two extra
            // words before the status (FORMAT.md section 8).
            problem(
                out,
                pos,
                ProblemKind::UnsupportedVariant,
                format!(
                    "concentrator at depth {} ends with two words (0x{:04X} 0x{:04X}) that are not a fragment: the JINF layout with two extra words before the status, not defined by FORMAT.md; not decoded",
                    frame.depth - 1,
                    len,
                    word(pos + 2)
                ),
            );
            frame.pos = frame.end;
            continue;
        }
        if frag_end > frame.end {
            problem(
                out,
                pos,
                ProblemKind::FragmentOverrun,
                format!(
                    "fragment of {len} words at depth {} runs {} words past the end of its parent; the rest of the parent is not decoded",
                    frame.depth,
                    (frag_end - frame.end) / 2
                ),
            );
            frame.pos = frame.end;
            continue;
        }
        frame.pos = frag_end;
        let (depth, parent, place) = (frame.depth, frame.parent, frame.place);
        let status = word(frag_end - 2);
        let slave = (status & 0x1F) as u8;
        let data = pos + 2;
        let data_words = len - 1;
        let row = push_fragment(out, depth, parent, status, data, data_words);
        let cdp = status & STATUS_CDP != 0;
        match place {
            Place::UdrSlot(crate_) if !cdp => {
                result.n_trd_hits +=
                    decode_udr::<O>(&w, crate_, slave, status, data, data_words, ctx, lut, want, out);
                continue;
            }
            Place::UdrSlot(_) => problem(
                out,
                pos,
                ProblemKind::UdrConcentrator,
                format!("slave {slave} of a JINF-U is a concentrator (CDP set), not a UDR2; walked as other data"),
            ),
            _ => {}
        }
        if !cdp {
            continue;
        }
        if depth >= MAX_DEPTH {
            problem(
                out,
                pos,
                ProblemKind::FragmentOverrun,
                format!("fragments nest deeper than {MAX_DEPTH} levels; the deeper levels are not decoded"),
            );
            continue;
        }
        let child_place = match place {
            Place::JinjSlave => match trd::crate_of_jinj_port(slave) {
                Some(c) => Place::UdrSlot(c),
                None => Place::Other,
            },
            _ => Place::Other,
        };
        if trd_only && child_place == Place::Other {
            continue;
        }
        // depth < MAX_DEPTH (checked above) and each saved frame is one level: the
        // array has room.
        if let Some(slot) = saved.get_mut(n_saved) {
            *slot = frame;
            n_saved += 1;
        }
        frame = Frame {
            pos: data,
            end: frag_end - 2,
            parent: row,
            depth: depth + 1,
            place: child_place,
        };
    }
    if want.hits {
        out.flush_hits(ctx.event_index, lut);
    }
    result
}

/// Decodes the content of one UDR2 fragment; returns the number of compressed hits.
#[allow(clippy::too_many_arguments)]
fn decode_udr<O: Order>(
    w: &Words<'_, O>,
    crate_: u8,
    slave: u8,
    status: u16,
    data: usize,
    n_words: usize,
    ctx: &GroupContext,
    lut: &HitLut,
    want: Want,
    out: &mut Tables,
) -> u32 {
    let problem = |out: &mut Tables, at: usize, kind: ProblemKind, detail: String| {
        out.problems
            .push(Problem::in_event(at, ctx.event_index, kind, detail));
    };
    let Some(udr) = trd::udr_of_slave(slave) else {
        problem(
            out,
            data,
            ProblemKind::UdrSlaveId,
            format!(
                "UDR slave ID {slave} in crate U{crate_} is not one of 0, 4, ..., 20; not decoded"
            ),
        );
        return 0;
    };
    let slot = trd::SLOTS[udr as usize];
    let raw = status & STATUS_RAW != 0;
    let compressed = status & STATUS_COMPRESSED != 0;
    if !raw && !compressed {
        problem(
            out,
            data,
            ProblemKind::UdrMode,
            format!("UDR U{crate_} slot {slot}: status 0x{status:04X} has neither RAW nor COMPRESSED set; not decoded"),
        );
        return 0;
    }
    let bytes = w.bytes();
    let content = match bytes.get(data..data + 2 * n_words) {
        Some(c) => c,
        None => return 0,
    };
    let mut pairs_start = 0usize;
    if raw {
        if n_words < UDR_CHANNELS || (!compressed && n_words != UDR_CHANNELS) {
            problem(
                out,
                data,
                ProblemKind::UdrRawLength,
                format!(
                    "UDR U{crate_} slot {slot}: {} data hold {n_words} words, raw data are 448",
                    if compressed { "mixed" } else { "raw" }
                ),
            );
        }
        if n_words < UDR_CHANNELS {
            return 0;
        }
        if want.raw {
            let mut adc = [0u16; UDR_CHANNELS];
            trd::raw_to_channel_order(
                content[..2 * UDR_CHANNELS]
                    .chunks_exact(2)
                    .map(|b| O::word([b[0], b[1]])),
                &mut adc,
            );
            let r = &mut out.raw;
            r.event_index.push(ctx.event_index);
            r.crate_.push(crate_);
            r.slot.push(slot);
            r.udr.push(udr);
            r.adc.extend_from_slice(&adc);
        }
        if !compressed {
            return 0;
        }
        pairs_start = 2 * UDR_CHANNELS;
    }
    let pairs = &content[pairs_start..];
    if pairs.len() % 4 != 0 {
        problem(
            out,
            data + pairs_start + pairs.len() - 2,
            ProblemKind::UdrOddCompressed,
            format!(
                "UDR U{crate_} slot {slot}: {} compressed words, an odd number; the last word is ignored",
                pairs.len() / 2
            ),
        );
    }
    // Whole pairs only (the odd word is reported above). `chunks_exact` would ignore it
    // anyway, but with the length a known multiple of 4 the loops below compile to
    // tighter code: about 10 % of a one-thread `events()` or `trd_hits()` (measured).
    let pairs = &pairs[..pairs.len() / 4 * 4];
    let base = HitLut::key(crate_, udr, 0);
    let channel_of = |p: &[u8]| O::word([p[0], p[1]]) & 0x01FF;
    let amplitude_of = |p: &[u8]| O::word([p[2], p[3]]) & 0x7FFF;
    // Bit `channel / 64` of `mask` is set for a channel on a connected UFE (never for
    // channels 448..511, whose quotient is 7): one test says a hit needs no problem row.
    let mask = lut.connected(crate_, udr);
    let good = |channel: u16| mask >> (channel >> 6) & 1 != 0;
    if pairs.chunks_exact(4).all(|p| good(channel_of(p))) {
        // Every hit is in range and connected, the usual case: no problem rows.
        if want.hits {
            out.pending_hits.extend(
                pairs
                    .chunks_exact(4)
                    .map(|p| u32::from(base + channel_of(p)) << 16 | u32::from(amplitude_of(p))),
            );
        }
        return (pairs.len() / 4) as u32;
    }
    let mut hits = 0u32;
    for (k, pair) in pairs.chunks_exact(4).enumerate() {
        let channel = channel_of(pair);
        if channel as usize >= UDR_CHANNELS {
            problem(
                out,
                data + pairs_start + 4 * k,
                ProblemKind::TrdChannelRange,
                format!("UDR U{crate_} slot {slot}: hit on channel {channel}, above 447; dropped"),
            );
            continue;
        }
        if !good(channel) {
            problem(
                out,
                data + pairs_start + 4 * k,
                ProblemKind::TrdNotConnected,
                format!(
                    "UDR U{crate_} slot {slot}: hit on channel {channel}, UFE {} has no module connected",
                    channel / 64
                ),
            );
        }
        hits += 1;
        if want.hits {
            out.pending_hits
                .push(u32::from(base + channel) << 16 | u32::from(amplitude_of(pair)));
        }
    }
    hits
}
