//! TRD: where the UDRs sit (FORMAT.md 4.3), the UDR2 data (raw, compressed, mixed; 5) and
//! the channel-to-module map (5.1). The fragment walk of [`crate::group`] hands every UDR
//! leaf to [`decode_udr`].

use crate::group::Reporter;
use crate::jmdc::Layout;
use crate::problems::{Error, ProblemKind, Result};
use crate::tables::{Tables, Want};
use crate::words::{Order, Words};

/// Channels read by one UDR2: 7 UFE boards x 64.
pub const UDR_CHANNELS: usize = 448;
/// UFE boards (links) on one UDR2.
pub const UFES: usize = 7;
/// Channels of one UFE board.
pub const UFE_CHANNELS: usize = 64;
/// UDR2 slots of a U-crate, in UDR index order.
pub const SLOTS: [u8; 6] = [1, 3, 4, 6, 7, 9];
/// The flight map as shipped: one line per link (see the file's header for the format).
pub const FLIGHT_MAP: &str = include_str!("trd_flight_map.txt");

/// Node status bits (FORMAT.md 4.2).
pub const STATUS_COMPRESSED: u16 = 1 << 7;
/// Raw data present.
pub const STATUS_RAW: u16 = 1 << 6;
/// The replying node is a concentrator: its content is its slaves' fragments.
pub const STATUS_CDP: u16 = 1 << 5;

/// JINJ port of JINF-U1 (crate U1, RAM side).
pub const JINJ_PORT_U1: u8 = 2;
/// JINJ port of JINF-U0 (crate U0, WAKE side).
pub const JINJ_PORT_U0: u8 = 8;

/// The crate read through a JINJ port, if the port is a JINF-U's.
pub fn crate_of_jinj_port(port: u8) -> Option<u8> {
    match port {
        JINJ_PORT_U0 => Some(0),
        JINJ_PORT_U1 => Some(1),
        _ => None,
    }
}

/// The UDR index (0..5) of a JINF-U slave ID 0..23: slave ID // 4 (4k is the A side,
/// 4k + 1 the B side).
pub fn udr_of_slave(slave_id: u8) -> Option<u8> {
    (slave_id < 24).then_some(slave_id / 4)
}

/// The crate of a JINF-U node (198..201: crate U0; 202..205: crate U1).
pub fn crate_of_jinf_u_node(node: u16) -> Option<u8> {
    match node {
        198..=201 => Some(0),
        202..=205 => Some(1),
        _ => None,
    }
}

/// (crate, UDR index) of a UDR node 474..509: three nodes per UDR, six UDRs per crate.
pub fn udr_of_node(node: u16) -> Option<(u8, u8)> {
    if !(474..=509).contains(&node) {
        return None;
    }
    let k = (node - 474) / 3;
    Some(((k / 6) as u8, (k % 6) as u8))
}

/// One straw module (one UFE board).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Module {
    /// Label `<layer><side><position>`, e.g. `5-7`.
    pub label: String,
    /// Module layer 1..5.
    pub layer: u8,
    /// Side: +1 or -1.
    pub side: i8,
    /// Position 1..9.
    pub position: u8,
    /// Crate: 0 = U0 (WAKE), 1 = U1 (RAM).
    pub crate_: u8,
    /// UDR2 slot.
    pub slot: u8,
    /// UDR index 0..5.
    pub udr: u8,
    /// UFE (link) 0..6.
    pub ufe: u8,
    /// AMS offline ladder.
    pub ams_ladder: u8,
    /// Tube direction (0 or 1).
    pub direction: u8,
}

/// What a link carries, for the hot loop.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Link {
    /// Row in [`TrdMap::modules`], -1 when not connected.
    pub module: i16,
    /// Module layer 1..5 (0 when not connected).
    pub layer: u8,
    /// AMS ladder (0 when not connected).
    pub ams_ladder: u8,
    /// Tube direction.
    pub direction: u8,
}

/// The map from (crate, UDR, UFE) to modules.
#[derive(Clone, Debug)]
pub struct TrdMap {
    /// The connected modules, in the order of the map's lines.
    pub modules: Vec<Module>,
    /// `links[crate][udr][ufe]`.
    pub links: [[[Link; UFES]; 6]; 2],
    /// The text the map was read from.
    pub text: String,
}

fn parse_label(label: &str) -> Option<(u8, i8, u8)> {
    let b = label.as_bytes();
    if b.len() != 3 {
        return None;
    }
    let layer = (b[0] as char).to_digit(10)? as u8;
    let side = match b[1] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let position = (b[2] as char).to_digit(10)? as u8;
    if !(1..=5).contains(&layer) || !(1..=9).contains(&position) {
        return None;
    }
    Some((layer, side, position))
}

impl TrdMap {
    /// The flight map shipped with the package.
    pub fn flight() -> TrdMap {
        // The shipped table is checked by the tests; failing here would be a build defect.
        match TrdMap::parse(FLIGHT_MAP) {
            Ok(m) => m,
            Err(e) => panic!("the embedded TRD flight map is invalid: {e}"),
        }
    }

    /// Reads a map in the text format of `trd_flight_map.txt`: one line per link,
    /// `crate slot ufe label [ladder dir]`, `#` comments. Every one of the 84 links
    /// (2 crates x 6 slots x 7 UFEs) must appear exactly once and labels must be distinct.
    pub fn parse(text: &str) -> Result<TrdMap> {
        let mut seen = [[[false; UFES]; 6]; 2];
        let mut links = [[[Link {
            module: -1,
            ..Link::default()
        }; UFES]; 6]; 2];
        let mut modules: Vec<Module> = Vec::new();
        for (lineno, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let bad =
                |why: &str| Error::Value(format!("TRD map line {}: {why}: {raw:?}", lineno + 1));
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() != 4 && f.len() != 6 {
                return Err(bad(
                    "expected 'crate slot ufe label ladder dir' or 'crate slot ufe NC'",
                ));
            }
            let crate_: u8 = match f[0] {
                "U0" | "0" => 0,
                "U1" | "1" => 1,
                _ => return Err(bad("crate must be U0 or U1")),
            };
            let slot: u8 = f[1].parse().map_err(|_| bad("slot is not a number"))?;
            let udr = SLOTS
                .iter()
                .position(|&s| s == slot)
                .ok_or_else(|| bad("slot must be one of 1, 3, 4, 6, 7, 9"))?
                as u8;
            let ufe: u8 = f[2].parse().map_err(|_| bad("ufe is not a number"))?;
            if ufe as usize >= UFES {
                return Err(bad("ufe must be 0..6"));
            }
            let (c, u, l) = (crate_ as usize, udr as usize, ufe as usize);
            if seen[c][u][l] {
                return Err(bad("link listed twice"));
            }
            seen[c][u][l] = true;
            if f[3] == "NC" {
                if f.len() != 4 {
                    return Err(bad("an NC link takes no ladder or direction"));
                }
                continue;
            }
            if f.len() != 6 {
                return Err(bad("a connected link needs ladder and direction"));
            }
            let (layer, side, position) = parse_label(f[3])
                .ok_or_else(|| bad("label must read <layer 1-5><+|-><position 1-9>"))?;
            if modules.iter().any(|m| m.label == f[3]) {
                return Err(bad("label used twice"));
            }
            let ams_ladder: u8 = f[4].parse().map_err(|_| bad("ladder is not a number"))?;
            let direction: u8 = match f[5] {
                "0" => 0,
                "1" => 1,
                _ => return Err(bad("direction must be 0 or 1")),
            };
            links[c][u][l] = Link {
                module: modules.len() as i16,
                layer,
                ams_ladder,
                direction,
            };
            modules.push(Module {
                label: f[3].to_string(),
                layer,
                side,
                position,
                crate_,
                slot,
                udr,
                ufe,
                ams_ladder,
                direction,
            });
        }
        let missing = seen.iter().flatten().flatten().filter(|s| !**s).count();
        if missing > 0 {
            return Err(Error::Value(format!(
                "TRD map lists {} of the 84 links; every (crate, slot, ufe) must appear once",
                84 - missing
            )));
        }
        Ok(TrdMap {
            modules,
            links,
            text: text.to_string(),
        })
    }

    /// The link of (crate, UDR, UFE); out-of-range arguments give a not-connected link.
    #[inline(always)]
    pub fn link(&self, crate_: u8, udr: u8, ufe: u8) -> Link {
        self.links
            .get(crate_ as usize)
            .and_then(|c| c.get(udr as usize))
            .and_then(|u| u.get(ufe as usize))
            .copied()
            .unwrap_or(Link {
                module: -1,
                ..Link::default()
            })
    }
}

/// AMS offline coordinates of a channel (0..447) on a link.
#[inline(always)]
pub fn ams_coordinates(link: &Link, channel: u16) -> (u8, u8, u8) {
    if link.module < 0 {
        return (0, 0, 0);
    }
    let ch = (channel % UFE_CHANNELS as u16) as u8;
    let ute = ch / 16;
    let ams_layer = 4 * (link.layer - 1) + ute;
    let tube = if link.direction == 0 {
        ch % 16
    } else {
        15 - ch % 16
    };
    (ams_layer, link.ams_ladder, tube)
}

/// Table length of [`HitLut`]: a power of two above the 2 x 6 x 448 keys, so that a masked
/// key indexes without a bounds check.
const LUT_LEN: usize = 8192;
const LUT_MASK: usize = LUT_LEN - 1;

/// Every column of a `trd_hits()` row that follows from (crate, UDR, channel), one table
/// per column (each small enough for the L1 cache), built once per decode from a
/// [`TrdMap`]. The decoder keeps a key per hit and fills the columns from these tables
/// a group at a time, in tight loops, instead of pushing twelve columns per hit.
#[derive(Clone, Debug)]
pub struct HitLut {
    /// Crate 0/1.
    pub crate_: Box<[u8; LUT_LEN]>,
    /// UDR2 slot.
    pub slot: Box<[u8; LUT_LEN]>,
    /// UDR index 0..5.
    pub udr: Box<[u8; LUT_LEN]>,
    /// UFE 0..6.
    pub ufe: Box<[u8; LUT_LEN]>,
    /// Channel 0..447.
    pub channel: Box<[u16; LUT_LEN]>,
    /// Module row, -1 when the UFE has no module.
    pub module: Box<[i16; LUT_LEN]>,
    /// Module layer (0 when not connected).
    pub layer: Box<[u8; LUT_LEN]>,
    /// AMS layer, ladder and tube ([`ams_coordinates`]).
    pub ams_layer: Box<[u8; LUT_LEN]>,
    /// AMS ladder.
    pub ams_ladder: Box<[u8; LUT_LEN]>,
    /// AMS tube.
    pub ams_tube: Box<[u8; LUT_LEN]>,
    /// `connected[crate * 6 + udr]`: bit `ufe` set when the UFE has a module.
    connected: [u8; 12],
}

impl HitLut {
    /// The tables of `map`.
    pub fn new(map: &TrdMap) -> Self {
        let mut t = HitLut {
            crate_: Box::new([0; LUT_LEN]),
            slot: Box::new([0; LUT_LEN]),
            udr: Box::new([0; LUT_LEN]),
            ufe: Box::new([0; LUT_LEN]),
            channel: Box::new([0; LUT_LEN]),
            module: Box::new([-1; LUT_LEN]),
            layer: Box::new([0; LUT_LEN]),
            ams_layer: Box::new([0; LUT_LEN]),
            ams_ladder: Box::new([0; LUT_LEN]),
            ams_tube: Box::new([0; LUT_LEN]),
            connected: [0; 12],
        };
        for crate_ in 0..2u8 {
            for udr in 0..6u8 {
                for channel in 0..UDR_CHANNELS as u16 {
                    let k = usize::from(Self::key(crate_, udr, channel));
                    let ufe = (channel / UFE_CHANNELS as u16) as u8;
                    let link = map.link(crate_, udr, ufe);
                    let (ams_layer, ams_ladder, ams_tube) = ams_coordinates(&link, channel);
                    t.crate_[k] = crate_;
                    t.slot[k] = SLOTS[usize::from(udr)];
                    t.udr[k] = udr;
                    t.ufe[k] = ufe;
                    t.channel[k] = channel;
                    t.module[k] = link.module;
                    t.layer[k] = link.layer;
                    t.ams_layer[k] = ams_layer;
                    t.ams_ladder[k] = ams_ladder;
                    t.ams_tube[k] = ams_tube;
                    if link.module >= 0 {
                        t.connected[usize::from(crate_) * 6 + usize::from(udr)] |= 1 << ufe;
                    }
                }
            }
        }
        t
    }

    /// The key of a hit: `crate` 0..1, `udr` 0..5, `channel` 0..447.
    #[inline(always)]
    pub fn key(crate_: u8, udr: u8, channel: u16) -> u16 {
        (u16::from(crate_) * 6 + u16::from(udr)) * UDR_CHANNELS as u16 + channel
    }

    /// Bit `ufe` (0..6) set for each UFE of (crate 0..1, UDR 0..5) that has a module;
    /// bit 7 never set. 0 for a crate or UDR out of range.
    #[inline(always)]
    pub fn connected(&self, crate_: u8, udr: u8) -> u8 {
        if crate_ > 1 || udr > 5 {
            return 0;
        }
        self.connected[usize::from(crate_) * 6 + usize::from(udr)]
    }

    /// The table index of a key (masked, so never out of bounds).
    #[inline(always)]
    pub fn at(key: u16) -> usize {
        usize::from(key) & LUT_MASK
    }

    /// The table index of a pending hit, `key << 16 | amplitude`.
    #[inline(always)]
    pub fn at_packed(hit: u32) -> usize {
        Self::at((hit >> 16) as u16)
    }
}

/// Calls `$m!(crate_, slot, ...)` with the names of the [`HitLut`] tables, which are also
/// the names of the `trd_hits()` columns they fill: the one list of them for the decoder.
macro_rules! lut_columns {
    ($m:ident) => {
        $m!(crate_, slot, udr, ufe, channel, module, layer, ams_layer, ams_ladder, ams_tube)
    };
}
pub(crate) use lut_columns;

/// Reorders 448 raw words from sequencer order (word `i` = UFE `i % 7`, channel `i / 7`)
/// into channel order (`ufe * 64 + ch`), keeping the 12-bit ADC value.
#[inline]
pub fn raw_to_channel_order(words: impl Iterator<Item = u16>, out: &mut [u16; UDR_CHANNELS]) {
    for (i, w) in words.take(UDR_CHANNELS).enumerate() {
        out[(i % UFES) * UFE_CHANNELS + i / UFES] = w & 0x0FFF;
    }
}

/// Decodes the content of one UDR2 (`n_words` at byte `data`, node status `status`) of
/// crate `crate_` and UDR index `udr`; returns the number of compressed hits.
#[allow(clippy::too_many_arguments)]
pub(crate) fn decode_udr<O: Order>(
    w: &Words<'_, O>,
    crate_: u8,
    udr: u8,
    status: u16,
    data: usize,
    n_words: usize,
    rep: &Reporter<'_>,
    lut: &HitLut,
    want: Want,
    out: &mut Tables,
) -> u32 {
    let ctx = rep.ctx;
    let flight = ctx.layout == Layout::Flight;
    let slot = SLOTS[usize::from(udr).min(5)];
    let raw = status & STATUS_RAW != 0;
    let compressed = status & STATUS_COMPRESSED != 0;
    if !raw && !compressed {
        rep.report(
            out,
            data,
            ProblemKind::UdrMode,
            format!("UDR U{crate_} slot {slot}: status 0x{status:04X} has neither RAW nor COMPRESSED set; not decoded"),
        );
        return 0;
    }
    let bytes = w.bytes();
    let Some(content) = bytes.get(data..data + 2 * n_words) else {
        return 0;
    };
    let mut pairs_start = 0usize;
    if raw {
        if n_words < UDR_CHANNELS || (!compressed && n_words != UDR_CHANNELS) {
            rep.report(
                out,
                data,
                ProblemKind::UdrRawLength,
                format!(
                    "UDR U{crate_} slot {slot}: {} data hold {n_words} words, raw data are 448{}",
                    if compressed { "mixed" } else { "raw" },
                    if n_words < UDR_CHANNELS {
                        "; the UDR yields nothing"
                    } else {
                        ""
                    }
                ),
            );
        }
        if n_words < UDR_CHANNELS {
            return 0;
        }
        if want.raw {
            let mut adc = [0u16; UDR_CHANNELS];
            raw_to_channel_order(
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
    let mut pairs = &content[pairs_start..];
    if pairs.len() % 4 != 0 {
        // The 2007 layout ignores the last word, the flight layout the first (FORMAT.md 5).
        let (dropped, what) = if flight {
            (data + pairs_start, "first")
        } else {
            (data + pairs_start + pairs.len() - 2, "last")
        };
        rep.report(
            out,
            dropped,
            ProblemKind::UdrOddCompressed,
            format!(
                "UDR U{crate_} slot {slot}: {} compressed words, an odd number; the {what} word is ignored",
                pairs.len() / 2
            ),
        );
        if flight {
            pairs_start += 2;
            pairs = &pairs[2..];
        }
    }
    // Whole pairs only. `chunks_exact` would ignore a tail anyway, but with the length a
    // known multiple of 4 the loops below compile to tighter code: about 10 % of a
    // one-thread `events()` or `trd_hits()` (measured).
    let pairs = &pairs[..pairs.len() / 4 * 4];
    let base = HitLut::key(crate_, udr, 0);
    let channel_of = |p: &[u8]| O::word([p[0], p[1]]) & 0x01FF;
    // 2007: the low 15 bits; flight: the whole word, read as signed (kept as its bits).
    let amp_mask: u16 = if flight { 0xFFFF } else { 0x7FFF };
    let amplitude_of = |p: &[u8]| O::word([p[2], p[3]]) & amp_mask;
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
            rep.report(
                out,
                data + pairs_start + 4 * k,
                ProblemKind::TrdChannelRange,
                format!("UDR U{crate_} slot {slot}: hit on channel {channel}, above 447; skipped"),
            );
            continue;
        }
        if !good(channel) {
            rep.report(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flight_map_invariants() {
        let m = TrdMap::flight();
        assert_eq!(m.modules.len(), 82);
        let nc: Vec<(u8, u8, u8)> = (0..2u8)
            .flat_map(|c| (0..6u8).flat_map(move |u| (0..7u8).map(move |l| (c, u, l))))
            .filter(|&(c, u, l)| m.link(c, u, l).module < 0)
            .map(|(c, u, l)| (c, SLOTS[u as usize], l))
            .collect();
        assert_eq!(nc, vec![(0, 7, 6), (1, 3, 6)]);
        let find = |label: &str| m.modules.iter().find(|x| x.label == label).cloned();
        let m24 = find("2-4").expect("2-4 present");
        assert_eq!(
            (m24.crate_, m24.slot, m24.ufe, m24.ams_ladder),
            (1, 6, 5, 4)
        );
        let p24 = find("2+4").expect("2+4 present");
        assert_eq!((p24.crate_, p24.slot, p24.ufe), (0, 4, 5));
        // Every layer has matching -n and +n modules.
        for layer in 1..=5u8 {
            let minus = m
                .modules
                .iter()
                .filter(|x| x.layer == layer && x.side < 0)
                .count();
            let plus = m
                .modules
                .iter()
                .filter(|x| x.layer == layer && x.side > 0)
                .count();
            assert_eq!(minus, plus, "layer {layer}");
        }
        let per_layer: Vec<usize> = (1..=5u8)
            .map(|l| m.modules.iter().filter(|x| x.layer == l).count())
            .collect();
        assert_eq!(per_layer, vec![14, 16, 16, 18, 18]);
    }

    #[test]
    fn ams_coordinates_follow_direction() {
        let m = TrdMap::flight();
        // 1-7: U1 slot 7 (udr 4) UFE 3, ladder 0, direction 0.
        let l = m.link(1, 4, 3);
        assert_eq!(m.modules[l.module as usize].label, "1-7");
        assert_eq!(ams_coordinates(&l, 3 * 64 + 17), (1, 0, 1));
        // 1-5: U1 slot 3 (udr 1) UFE 3, ladder 2, direction 1.
        let l = m.link(1, 1, 3);
        assert_eq!(ams_coordinates(&l, 3 * 64 + 63), (3, 2, 0));
        assert_eq!(ams_coordinates(&m.link(0, 4, 6), 6 * 64), (0, 0, 0));
    }

    #[test]
    fn raw_reorder() {
        let words: Vec<u16> = (0..448u16).map(|i| 0xF000 | i).collect();
        let mut out = [0u16; UDR_CHANNELS];
        raw_to_channel_order(words.iter().copied(), &mut out);
        // UFE 1 channel 0 is word 1; UFE 6 channel 63 is word 447; UFE 0 ch 1 is word 7.
        assert_eq!(out[64], 1);
        assert_eq!(out[447], 447);
        assert_eq!(out[1], 7);
    }

    #[test]
    fn bad_maps_are_rejected_with_the_line() {
        let mut lines: Vec<&str> = FLIGHT_MAP.lines().collect();
        let last = lines.pop().unwrap_or_default();
        let err = TrdMap::parse(&lines.join("\n"))
            .err()
            .map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("83 of the 84")), "{last}");
        let dup = format!("{FLIGHT_MAP}\nU0 1 0 5-5 1 1\n");
        assert!(TrdMap::parse(&dup)
            .err()
            .is_some_and(|e| e.to_string().contains("twice")));
        let junk = FLIGHT_MAP.replace("U1 9 0 5-7 2 0", "U1 9 0 7x7 2 0");
        assert!(TrdMap::parse(&junk).is_err());
    }
}

crate::columns::schema! {
    /// The `label` column that `ams02.trd.modules()` puts before [`ModuleColumns`].
    ModuleLabelColumn {
        /// module label <layer><side><position>, e.g. 5-7
        label: str,
    }
}

crate::columns::table! {
    /// `ams02.trd.modules()`: one row per connected straw module (one UFE board,
    /// FORMAT.md 5.1), in map order; the row number is the `module` of `trd_hits()`.
    ModuleColumns {
        /// module layer 1..5 (bottom to top)
        layer: u8,
        /// side of the module: +1 or -1
        side: i8,
        /// position on its side, 1..9 outwards
        position: u8,
        /// U-crate (0: U0 WAKE side, 1: U1 RAM side)
        crate_: u8,
        /// UDR2 slot in the crate (1, 3, 4, 6, 7, 9)
        slot: u8,
        /// UDR index in the crate (0..5, slot order)
        udr: u8,
        /// UFE board (link) on the UDR (0..6)
        ufe: u8,
        /// AMS offline TRD ladder of the module
        ams_ladder: u8,
        /// tube direction: ams_tube = ch % 16 with 0, 15 - ch % 16 with 1 (FORMAT.md 5.1)
        direction: u8,
    }
}

crate::columns::table! {
    /// `ams02.trd.channel_map()`: one row per connected channel, module by module in map
    /// order, channel by channel.
    ChannelMapColumns {
        /// U-crate (0: U0 WAKE side, 1: U1 RAM side)
        crate_: u8,
        /// UDR2 slot in the crate (1, 3, 4, 6, 7, 9)
        slot: u8,
        /// UDR index in the crate (0..5, slot order)
        udr: u8,
        /// UFE board on the UDR (0..6): channel // 64
        ufe: u8,
        /// channel in the UDR read-out: ufe * 64 + ch (the channel of trd_hits())
        channel: u16,
        /// row in ams02.trd.modules() of the channel's module
        module: i16,
        /// UTE on the UFE: (channel % 64) // 16 (0..3); ams_layer is 4 (layer - 1) + ute
        ute: u8,
        /// AMS offline TRD layer (0..19)
        ams_layer: u8,
        /// AMS offline TRD ladder
        ams_ladder: u8,
        /// AMS offline tube in the ladder (0..15)
        ams_tube: u8,
    }
}

crate::columns::schema! {
    /// `ams02.trd.module_geometry()`: where each module sits in a schematic front view of
    /// the TRD, one row per module (row = module number).
    ModuleGeometryColumns {
        /// module label <layer><side><position>, e.g. 5-7
        label: str,
        /// [module] centre across: side * (position - 0.5); side - left of 0, + right
        x: f64,
        /// [module] centre up: the module layer (1..5, bottom to top)
        y: f64,
        /// module layer 1..5
        layer: u8,
    }
}

impl TrdMap {
    /// The modules as columns, and their labels.
    pub fn module_columns(&self) -> (ModuleColumns, Vec<String>) {
        let mut t = ModuleColumns::default();
        for m in &self.modules {
            t.layer.push(m.layer);
            t.side.push(m.side);
            t.position.push(m.position);
            t.crate_.push(m.crate_);
            t.slot.push(m.slot);
            t.udr.push(m.udr);
            t.ufe.push(m.ufe);
            t.ams_ladder.push(m.ams_ladder);
            t.direction.push(m.direction);
        }
        (t, self.modules.iter().map(|m| m.label.clone()).collect())
    }

    /// Every connected channel, module by module in map order, channel by channel.
    pub fn channel_columns(&self) -> ChannelMapColumns {
        let mut t = ChannelMapColumns::default();
        for (k, m) in self.modules.iter().enumerate() {
            let link = self.link(m.crate_, m.udr, m.ufe);
            for ch in 0..UFE_CHANNELS as u16 {
                let channel = u16::from(m.ufe) * UFE_CHANNELS as u16 + ch;
                let (ams_layer, ams_ladder, ams_tube) = ams_coordinates(&link, channel);
                t.crate_.push(m.crate_);
                t.slot.push(m.slot);
                t.udr.push(m.udr);
                t.ufe.push(m.ufe);
                t.channel.push(channel);
                t.module.push(k as i16);
                t.ute.push((ch / 16) as u8);
                t.ams_layer.push(ams_layer);
                t.ams_ladder.push(ams_ladder);
                t.ams_tube.push(ams_tube);
            }
        }
        t
    }
}
