//! Detector data group sub-blocks (FORMAT.md 4.2, 9.2, 9.3): the CRC, the fragment tree
//! walked **by node role** (the JINJ port table; the CDP bit is reported, never followed),
//! the flight layout's JINF slave masks, Huffman-coded groups, and the one seam through
//! which detector data are decoded ([`detector_leaf`]: the TRD's UDRs today).

use crate::block::BlockHeader;
use crate::crc;
use crate::huffman;
use crate::jmdc::Layout;
use crate::problems::{Problem, ProblemKind};
use crate::tables::{Tables, Want};
use crate::trd::{self, HitLut, STATUS_CDP};
use crate::words::{Be, Order, Words};

/// JINJ node addresses: a group whose top node is a JINJ holds one fragment per JINJ port.
pub const JINJ_NODES: std::ops::RangeInclusive<u16> = 128..=135;
/// JINF node addresses: a group whose top node is a JINF holds its xDRs' fragments.
pub const JINF_NODES: std::ops::RangeInclusive<u16> = 150..=205;
/// TDR node addresses (tracker xDRs).
pub const TDR_NODES: std::ops::RangeInclusive<u16> = 282..=473;
/// The deepest fragment level: JINJ (0) -> JINF (1) -> xDR (2).
pub const MAX_DEPTH: u8 = 2;

/// The stored and the computed CRC of a group whose `n` data words (event number through
/// CRC word, `n >= 1`) start at byte `start` (FORMAT.md 4.2). The stored word is `None`
/// when it lies past the data.
pub fn group_crc<O: Order>(bytes: &[u8], start: usize, n: usize) -> (Option<u16>, u16) {
    let crc_at = start + 2 * n.saturating_sub(1);
    let stored = bytes.get(crc_at..crc_at + 2).map(|b| O::word([b[0], b[1]]));
    let computed = crc::crc16_words::<O>(bytes.get(start..crc_at).unwrap_or(&[]));
    (stored, computed)
}

/// The role of a node in the fragment tree (the `role` column of `fragments()`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Role {
    /// A JINJ, the group's top node: its content is one fragment per port.
    Jinj = 0,
    /// JINF-T (tracker) on a JINJ port.
    JinfT = 1,
    /// JINF-U (TRD) on a JINJ port or as the top node: its slaves are UDRs.
    JinfU = 2,
    /// JINF-R (RICH).
    JinfR = 3,
    /// JINF-E (ECAL).
    JinfE = 4,
    /// A JINF as the group's top node, not a JINF-U.
    Jinf = 5,
    /// SDR (TOF and ACC) on a JINJ port: a leaf.
    Sdr = 6,
    /// JLV1 (level-1 trigger) on a JINJ port: a leaf.
    Jlv1 = 7,
    /// An xDR (TDR, RDR, EDR) under a JINF, or a TDR as the top node: a leaf.
    Xdr = 8,
    /// A UDR (TRD) under a JINF-U, or as the top node: a leaf decoded by the TRD.
    Udr = 9,
    /// A JINJ port not used in flight data (24..31): a leaf.
    UnknownPort = 10,
    /// A top node of any other kind: a leaf.
    Node = 11,
}

impl Role {
    /// Every role, in code order.
    pub const ALL: [Role; 12] = [
        Role::Jinj,
        Role::JinfT,
        Role::JinfU,
        Role::JinfR,
        Role::JinfE,
        Role::Jinf,
        Role::Sdr,
        Role::Jlv1,
        Role::Xdr,
        Role::Udr,
        Role::UnknownPort,
        Role::Node,
    ];

    /// The name used in the Python API.
    pub fn name(self) -> &'static str {
        match self {
            Role::Jinj => "jinj",
            Role::JinfT => "jinf_t",
            Role::JinfU => "jinf_u",
            Role::JinfR => "jinf_r",
            Role::JinfE => "jinf_e",
            Role::Jinf => "jinf",
            Role::Sdr => "sdr",
            Role::Jlv1 => "jlv1",
            Role::Xdr => "xdr",
            Role::Udr => "udr",
            Role::UnknownPort => "unknown_port",
            Role::Node => "node",
        }
    }

    /// The role of the slave on JINJ port `port` (the port table of FORMAT.md 4.2).
    pub fn of_jinj_port(port: u8) -> Role {
        match port {
            0 | 1 | 3 | 9 | 16 | 17 | 22 | 23 => Role::JinfT,
            2 | 8 => Role::JinfU,
            10 | 11 => Role::JinfR,
            12 | 13 => Role::JinfE,
            4..=7 | 18..=21 => Role::Sdr,
            14 | 15 => Role::Jlv1,
            _ => Role::UnknownPort,
        }
    }

    /// The role of a group's top node from its NODE address.
    pub fn of_top_node(node: u16) -> Role {
        if JINJ_NODES.contains(&node) {
            Role::Jinj
        } else if trd::crate_of_jinf_u_node(node).is_some() {
            Role::JinfU
        } else if JINF_NODES.contains(&node) {
            Role::Jinf
        } else if trd::udr_of_node(node).is_some() {
            Role::Udr
        } else if TDR_NODES.contains(&node) {
            Role::Xdr
        } else {
            Role::Node
        }
    }

    /// Whether the node concentrates slaves (its content is their fragments).
    pub fn is_concentrator(self) -> bool {
        matches!(
            self,
            Role::Jinj | Role::JinfT | Role::JinfU | Role::JinfR | Role::JinfE | Role::Jinf
        )
    }

    /// Whether the node is a JINF (its content ends with the slave mask in flight data).
    pub fn is_jinf(self) -> bool {
        self.is_concentrator() && self != Role::Jinj
    }

    /// The CDP bit the flight layout expects (`None`: not checked, JLV1 and unknown ports
    /// and top nodes of other kinds).
    pub fn expected_cdp(self) -> Option<bool> {
        match self {
            Role::Sdr | Role::Xdr | Role::Udr => Some(true),
            Role::Jlv1 | Role::UnknownPort | Role::Node => None,
            _ => Some(false),
        }
    }
}

/// Where a group sits.
pub struct GroupContext {
    /// Row of the event in `events()`.
    pub event_index: i64,
    /// Index of the group sub-block within the event.
    pub group: u8,
    /// The JMDC event number, when the JMDC header was decoded.
    pub jmdc_event: Option<u32>,
    /// The event's layout.
    pub layout: Layout,
    /// The run ID that chooses the Huffman table (the JMDC header's, else the block TIME).
    pub run_id: u32,
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

/// Where a fragment's content came from, for the offsets reported.
#[derive(Clone, Copy)]
pub struct Origin {
    /// For a Huffman-coded group, the byte offset of its sub-block in the file: problems
    /// inside it are reported there (positions in the decoded words mean nothing in the
    /// file), and `data_offset` counts from the decoded event-number word.
    pub coded_at: Option<usize>,
    /// Coded words of a Huffman-coded group (0 for a plain group).
    pub coded_words: u32,
}

impl Origin {
    const PLAIN: Origin = Origin {
        coded_at: None,
        coded_words: 0,
    };
}

/// A problem of the group being walked.
pub(crate) struct Reporter<'c> {
    pub(crate) ctx: &'c GroupContext,
    pub(crate) origin: Origin,
}

impl Reporter<'_> {
    pub(crate) fn report(&self, out: &mut Tables, pos: usize, kind: ProblemKind, detail: String) {
        let (at, detail) = match self.origin.coded_at {
            Some(at) => (at, format!("{detail} (byte {pos} of the decoded group)")),
            None => (pos, detail),
        };
        out.problems
            .push(Problem::in_event(at, self.ctx.event_index, kind, detail));
    }
}

/// Decodes one group sub-block (TYPE 1, or TYPE 4 Huffman-coded).
pub fn decode_group<O: Order>(
    bytes: &[u8],
    sub: &BlockHeader,
    ctx: &GroupContext,
    lut: &HitLut,
    want: Want,
    out: &mut Tables,
) -> GroupResult {
    if sub.type_ == crate::event::TYPE_GROUP_COMPRESSED {
        return decode_coded::<O>(bytes, sub, ctx, lut, want, out);
    }
    let rep = Reporter {
        ctx,
        origin: Origin::PLAIN,
    };
    let span = sub.data_end.saturating_sub(sub.data_start);
    if span % 2 == 1 {
        rep.report(
            out,
            sub.offset,
            ProblemKind::GroupMalformed,
            format!(
                "group {} has an odd SIZE {}; the last byte is ignored",
                ctx.group, sub.size
            ),
        );
    }
    walk::<O>(
        bytes,
        sub.offset,
        sub.node,
        sub.data_start,
        span / 2,
        &rep,
        lut,
        want,
        out,
    )
}

/// The most bytes a Huffman-coded group may decode to: what a plain group of the same
/// size form can hold (2 x 32767 bytes for a short-form sub-block; a long-form one, whose
/// codes are at least a bit each, 8 bytes per stream byte).
fn coded_bound(sub: &BlockHeader, stream_bytes: usize) -> usize {
    if sub.long {
        stream_bytes.saturating_mul(8)
    } else {
        2 * 0x7FFF
    }
}

/// Events whose coded groups are decoded side by side at a time ([`Ahead::prepare`]).
pub(crate) const AHEAD_EVENTS: usize = 32;

/// The Huffman-coded groups of the next events, decoded ahead side by side (one stream a
/// lane, [`huffman::Batch`]) before the events are walked: each is then taken by
/// [`decode_coded`] when the walk meets it, if it was decoded with the table the group's
/// event names (its key: where its stream lies and its bound). Every result is what
/// decoding the group there and then gives, so the tables do not depend on it.
#[derive(Clone, Debug, Default)]
pub(crate) struct Ahead {
    batch: huffman::Batch,
    /// `(data_start, data words, bound)` of each stream of the batch.
    keys: Vec<(usize, usize, usize)>,
    /// The table the batch was decoded with.
    table: Option<&'static huffman::Table>,
    /// The stream after the last one taken.
    next: usize,
    /// The table of the last coded group met: the next batch's.
    last_table: Option<&'static huffman::Table>,
}

impl Ahead {
    /// Decodes the coded groups of the events at `offsets` (event blocks of `bytes`) side
    /// by side, with the table of the last coded group met (nothing before one is met:
    /// the table comes from an event's run ID). The groups are found as the event walk
    /// finds them: TYPE 4 sub-blocks, in order, up to a sub-block whose header does not
    /// parse.
    pub(crate) fn prepare<O: Order>(&mut self, bytes: &[u8], offsets: &[u64]) {
        self.keys.clear();
        self.next = 0;
        let Some(table) = self.last_table else {
            return;
        };
        let mut streams: Vec<(&[u8], usize)> = Vec::with_capacity(offsets.len());
        for &off in offsets {
            let Ok(event) = crate::block::parse::<O>(bytes, off as usize, bytes.len(), true) else {
                continue;
            };
            let mut pos = event.data_start;
            while pos < event.next {
                let Ok(sub) = crate::block::parse::<O>(bytes, pos, event.next, false) else {
                    break;
                };
                if sub.type_ == crate::event::TYPE_GROUP_COMPRESSED {
                    let stream = coded_stream(bytes, &sub);
                    let bound = coded_bound(&sub, stream.len());
                    self.keys.push((sub.data_start, sub.data_words(), bound));
                    streams.push((stream, bound));
                }
                pos = sub.next;
            }
        }
        self.table = Some(table);
        self.batch.decode::<O>(&streams, table);
    }

    /// The batch's stream of `key` when it was decoded with `table`.
    fn find(&mut self, key: (usize, usize, usize), table: &huffman::Table) -> Option<usize> {
        if !self.table.is_some_and(|t| std::ptr::eq(t, table)) {
            return None;
        }
        let i = if self.keys.get(self.next) == Some(&key) {
            self.next
        } else {
            self.keys.iter().position(|k| *k == key)?
        };
        self.next = i + 1;
        Some(i)
    }
}

/// The coded stream of a TYPE 4 group: `floor((SIZE - 2) / 2)` whole words (an odd last
/// byte is not read).
fn coded_stream<'b>(bytes: &'b [u8], sub: &BlockHeader) -> &'b [u8] {
    bytes
        .get(sub.data_start..sub.data_start + 2 * sub.data_words())
        .unwrap_or(&[])
}

/// A Huffman-coded group (FORMAT.md 9.3): decoded to its plain words (big-endian), or
/// taken decoded ahead ([`Ahead`]), then walked as a TYPE-1 group with the same NODE.
fn decode_coded<O: Order>(
    bytes: &[u8],
    sub: &BlockHeader,
    ctx: &GroupContext,
    lut: &HitLut,
    want: Want,
    out: &mut Tables,
) -> GroupResult {
    let rep = Reporter {
        ctx,
        origin: Origin {
            coded_at: Some(sub.offset),
            coded_words: sub.data_words() as u32,
        },
    };
    let stream = coded_stream(bytes, sub);
    let table = huffman::table_for_run(ctx.run_id);
    let bound = coded_bound(sub, stream.len());
    let mut ahead = std::mem::take(&mut out.ahead);
    ahead.last_table = Some(table);
    let mut scratch = std::mem::take(&mut out.scratch);
    let decoded = match ahead
        .find((sub.data_start, sub.data_words(), bound), table)
        .and_then(|i| ahead.batch.get(i))
    {
        Some(r) => r.map(|(words, _)| words),
        None => {
            scratch.clear();
            huffman::decode::<O>(stream, table, bound, &mut scratch).map(|_| scratch.as_slice())
        }
    };
    let result = match decoded {
        Ok(words) => walk::<Be>(
            words,
            sub.offset,
            sub.node,
            0,
            words.len() / 2,
            &rep,
            lut,
            want,
            out,
        ),
        Err(e) => {
            out.problems.push(Problem::in_event(
                sub.data_start + e.offset(),
                ctx.event_index,
                ProblemKind::HuffmanInvalid,
                format!(
                    "group {} (TYPE 4, table {}): {}; the group is skipped",
                    ctx.group,
                    table.name(),
                    e.describe()
                ),
            ));
            GroupResult {
                crc_ok: false,
                n_trd_hits: 0,
            }
        }
    };
    out.scratch = scratch;
    out.ahead = ahead;
    result
}

#[derive(Clone, Copy)]
struct Frame {
    pos: usize,
    end: usize,
    parent: i64,
    depth: u8,
    /// The role of the node whose content this is.
    role: Role,
    /// For a JINF-U's content: its crate.
    crate_: u8,
}

/// Walks a plain group of `n` data words at `start` (event number .. CRC) whose sub-block
/// is at `sub_offset` with top node `node`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn walk<O: Order>(
    bytes: &[u8],
    sub_offset: usize,
    node: u16,
    start: usize,
    n: usize,
    rep: &Reporter<'_>,
    lut: &HitLut,
    want: Want,
    out: &mut Tables,
) -> GroupResult {
    let ctx = rep.ctx;
    let flight = ctx.layout == Layout::Flight;
    // JINF slave masks: the flight layout's (FORMAT.md 9.2), and, a convention of this
    // project, the 2009 PC-DAQ dialect's, whose JINFs end with the same two words.
    let masks = flight || ctx.dialect == crate::dialect::Dialect::Pc2009;
    let w = Words::<O>::new(bytes);
    let mut result = GroupResult {
        crc_ok: false,
        n_trd_hits: 0,
    };
    if n < 3 {
        rep.report(
            out,
            sub_offset,
            ProblemKind::GroupMalformed,
            format!(
                "group {} has {n} data words; event number, top node status and CRC need 3",
                ctx.group
            ),
        );
        return result;
    }
    // n >= 3 words lie inside the data, checked by the block parser (or the Huffman
    // decoder's output length).
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
        rep.report(
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
            rep.report(
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
    let top_role = Role::of_top_node(node);
    let mut rows: i64 = out.fragments.len() as i64;
    let compressed = rep.origin.coded_at.is_some();
    let data_base = if compressed { start } else { 0 };
    #[allow(clippy::too_many_arguments)]
    let mut push_fragment = |out: &mut Tables,
                             depth: u8,
                             parent: i64,
                             status: u16,
                             data: usize,
                             words: usize,
                             role: Role,
                             port: i8,
                             mask: u32| {
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
            f.data_offset.push((data - data_base) as u64);
            f.n_words.push(words as u32);
            f.role.push(role as u8);
            f.port.push(port);
            f.cdp.push(status & STATUS_CDP != 0);
            f.jinf_mask.push(mask);
            f.compressed.push(compressed);
            f.coded_words.push(if depth == 0 {
                rep.origin.coded_words
            } else {
                0
            });
        }
        row
    };
    // Without the fragments table or the checks, the walk goes down only the paths to the
    // UDRs (all that hits, raw read-outs and `n_trd_hits` need), skipping the other
    // detectors' subtrees whole, and the problems inside them.
    let trd_only = !want.walk_all();
    let check = |out: &mut Tables, role: Role, status: u16, at: usize, what: &str| {
        if flight && !trd_only {
            check_cdp(rep, out, role, status, at, what);
        }
    };
    let top_content_end = status_pos;
    let (top_mask, top_end) = if top_role.is_jinf() {
        match jinf_mask(&w, content_start, top_content_end, masks) {
            Some(m) => m,
            None => {
                rep.report(
                    out,
                    content_start,
                    ProblemKind::FragmentOverrun,
                    format!(
                        "group {}: the top JINF's content ({} words) cannot hold its two slave-mask words",
                        ctx.group,
                        (top_content_end - content_start) / 2
                    ),
                );
                (0, content_start)
            }
        }
    } else {
        (0, top_content_end)
    };
    let top_row = push_fragment(
        out,
        0,
        -1,
        top_status,
        content_start,
        n - 3,
        top_role,
        -1,
        top_mask,
    );
    check(out, top_role, top_status, status_pos, "top node");
    if !top_role.is_concentrator() {
        result.n_trd_hits += detector_leaf::<O>(
            &w,
            top_role,
            None,
            node,
            top_status,
            content_start,
            n - 3,
            rep,
            lut,
            want,
            out,
        );
        if want.hits {
            out.flush_hits(ctx.event_index, lut);
        }
        return result;
    }
    if trd_only && top_role != Role::Jinj && top_role != Role::JinfU {
        return result;
    }
    // The frame being walked stays in locals; its ancestors wait in a fixed array (at
    // most MAX_DEPTH deep), so that no heap allocation is made per group.
    let mut frame = Frame {
        pos: content_start,
        end: top_end,
        parent: top_row,
        depth: 1,
        role: top_role,
        crate_: trd::crate_of_jinf_u_node(node).unwrap_or(0),
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
            rep.report(
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
        if frag_end > frame.end {
            rep.report(
                out,
                pos,
                ProblemKind::FragmentOverrun,
                format!(
                    "fragment of {len} words at depth {} runs {} words past the end of its parent{}; the rest of the parent is not decoded",
                    frame.depth,
                    (frag_end - frame.end) / 2,
                    if masks && frame.role.is_jinf() { " (up to its slave mask)" } else { "" }
                ),
            );
            frame.pos = frame.end;
            continue;
        }
        frame.pos = frag_end;
        let status = word(frag_end - 2);
        let slave = (status & 0x1F) as u8;
        let data = pos + 2;
        let data_words = len - 1;
        let role = match frame.role {
            Role::Jinj => Role::of_jinj_port(slave),
            Role::JinfU => Role::Udr,
            _ => Role::Xdr,
        };
        if trd_only && frame.role == Role::Jinj && role != Role::JinfU {
            continue;
        }
        let (mask, content_end) = if role.is_jinf() {
            match jinf_mask(&w, data, frag_end - 2, masks) {
                Some(m) => m,
                None => {
                    rep.report(
                        out,
                        pos,
                        ProblemKind::FragmentOverrun,
                        format!(
                            "{} on JINJ port {slave}: its content ({data_words} words) cannot hold its two slave-mask words; not walked",
                            role.name()
                        ),
                    );
                    (0, data)
                }
            }
        } else {
            (0, frag_end - 2)
        };
        let row = push_fragment(
            out,
            frame.depth,
            frame.parent,
            status,
            data,
            data_words,
            role,
            slave as i8,
            mask,
        );
        check(out, role, status, frag_end - 2, "slave");
        if role == Role::UnknownPort && flight && !trd_only {
            rep.report(
                out,
                pos,
                ProblemKind::UnknownPort,
                format!(
                    "JINJ port {slave} is not used in flight data; its fragment is kept as a leaf"
                ),
            );
        }
        if !role.is_concentrator() {
            result.n_trd_hits += detector_leaf::<O>(
                &w,
                role,
                Some(frame.crate_),
                slave.into(),
                status,
                data,
                data_words,
                rep,
                lut,
                want,
                out,
            );
            continue;
        }
        if frame.depth >= MAX_DEPTH {
            continue; // cannot happen: only a JINJ's slaves are concentrators
        }
        if let Some(slot) = saved.get_mut(n_saved) {
            *slot = frame;
            n_saved += 1;
        }
        frame = Frame {
            pos: data,
            end: content_end,
            parent: row,
            depth: frame.depth + 1,
            role,
            crate_: if role == Role::JinfU {
                trd::crate_of_jinj_port(slave).unwrap_or(0)
            } else {
                0
            },
        };
    }
    if want.hits {
        out.flush_hits(ctx.event_index, lut);
    }
    result
}

/// The slave mask of a JINF whose content is `[start, end)`, and where its slaves'
/// fragments end: in the flight layout the two words before the status (MSW first), else
/// no mask (nor for an empty content). `None` when the content cannot hold the mask.
fn jinf_mask<O: Order>(
    w: &Words<'_, O>,
    start: usize,
    end: usize,
    masks: bool,
) -> Option<(u32, usize)> {
    // A JINF fragment that is only its status word (no reply from it: the real 2009 files
    // have such JINF-Us, status 0x2002) has no mask either (a convention of this project).
    if !masks || end == start {
        return Some((0, end));
    }
    if end < start + 4 {
        return None;
    }
    let hi = u32::from(w.word(end - 4)?);
    let lo = u32::from(w.word(end - 2)?);
    Some((hi << 16 | lo, end - 4))
}

/// Reports a flight-layout CDP bit that disagrees with the node's role (FORMAT.md 4.2).
fn check_cdp(rep: &Reporter<'_>, out: &mut Tables, role: Role, status: u16, at: usize, what: &str) {
    let Some(expected) = role.expected_cdp() else {
        return;
    };
    let cdp = status & STATUS_CDP != 0;
    if cdp != expected {
        rep.report(
            out,
            at,
            ProblemKind::CdpMismatch,
            format!(
                "{what} {} (slave ID {}) has CDP {}, its role says {}; walked by its role",
                role.name(),
                status & 0x1F,
                u8::from(cdp),
                u8::from(expected)
            ),
        );
    }
}

/// The seam to the detectors: decodes a leaf's content by its role. `crate_` is the crate
/// of the JINF-U above a UDR slave (`None` for a top node, whose NODE `id` says it);
/// `id` is the slave ID (or the top NODE). Returns the compressed TRD hits found.
#[allow(clippy::too_many_arguments)]
fn detector_leaf<O: Order>(
    w: &Words<'_, O>,
    role: Role,
    crate_: Option<u8>,
    id: u16,
    status: u16,
    data: usize,
    n_words: usize,
    rep: &Reporter<'_>,
    lut: &HitLut,
    want: Want,
    out: &mut Tables,
) -> u32 {
    if role != Role::Udr {
        return 0;
    }
    let place = match crate_ {
        Some(c) => trd::udr_of_slave(id as u8).map(|u| (c, u)),
        None => trd::udr_of_node(id),
    };
    let Some((crate_, udr)) = place else {
        rep.report(
            out,
            data,
            ProblemKind::UdrSlaveId,
            format!(
                "UDR slave ID {id} in crate U{} is not one of 0..23; not decoded",
                crate_.unwrap_or(0)
            ),
        );
        return 0;
    };
    trd::decode_udr::<O>(w, crate_, udr, status, data, n_words, rep, lut, want, out)
}
