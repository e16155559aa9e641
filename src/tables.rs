//! The output tables of a decode and the flags that say which to fill. They sit below
//! both the parallel driver ([`crate::decode`]) and the decoders ([`crate::event`],
//! [`crate::group`], the detectors), so that imports run one way.

use std::mem::MaybeUninit;

use crate::columns::{EventColumns, FragmentColumns, HitColumns, RawColumns};
use crate::problems::Problem;
use crate::trd::{lut_columns, HitLut};

/// Which tables to fill. Problems are always collected, and are the same whatever is asked
/// as long as `checks` is set (or both `events` and `fragments`: see [`Want::complete`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Want {
    /// `events()` rows.
    pub events: bool,
    /// `fragments()` rows.
    pub fragments: bool,
    /// `trd_hits()` rows.
    pub hits: bool,
    /// `trd_raw()` rows.
    pub raw: bool,
    /// Run every check even when no table needs it, so that the problems are complete
    /// ([`Want::complete`]). Without it, the CRC is computed only for `events`
    /// (`crc_ok`), and the fragment trees are walked whole only for `fragments`
    /// ([`Want::walk_all`]): a decode of the events, hits or raw read-outs then reports
    /// only the problems on the paths it reads.
    pub checks: bool,
}

impl Want {
    /// Every table.
    pub const ALL: Want = Want {
        events: true,
        fragments: true,
        hits: true,
        raw: true,
        checks: true,
    };
    /// No table: problems only (complete, CRCs included).
    pub const NONE: Want = Want {
        events: false,
        fragments: false,
        hits: false,
        raw: false,
        checks: true,
    };

    /// Whether the group CRCs are computed.
    pub fn crc(&self) -> bool {
        self.checks || self.events
    }

    /// Whether every fragment tree is walked whole. Otherwise only the JINJ -> JINF-U ->
    /// UDR2 paths are, which is all that the events (`n_trd_hits`), hits and raw
    /// read-outs need; the problems inside the other detectors' subtrees then go
    /// unreported.
    pub fn walk_all(&self) -> bool {
        self.checks || self.fragments
    }

    /// Whether the problems found are every problem of the events decoded.
    pub fn complete(&self) -> bool {
        self.crc() && self.walk_all()
    }
}

/// The decoded tables of a range of events.
#[derive(Clone, Debug, Default)]
pub struct Tables {
    /// One row per event.
    pub events: EventColumns,
    /// One row per fragment; `parent` refers to rows of this table.
    pub fragments: FragmentColumns,
    /// One row per compressed TRD hit.
    pub hits: HitColumns,
    /// One row per raw read-out (448 `adc` values a row).
    pub raw: RawColumns,
    /// Problems, in file order.
    pub problems: Vec<Problem>,
    /// Hits not yet in `hits`: `key << 16 | amplitude` each (key from [`HitLut::key`]).
    /// [`Tables::flush_hits`] moves a group's hits into `hits`, or, with `defer_hits`,
    /// keeps them all with their events in `hit_runs` for the parallel join to expand
    /// straight into the result (a copy of twelve columns saved).
    pub(crate) pending_hits: Vec<u32>,
    /// `(event_index, end)`: the pending hits before `end` and after the previous run's
    /// end belong to that event.
    pub(crate) hit_runs: Vec<(i64, usize)>,
    /// Keep the hits pending (staging tables of the parallel decode).
    pub(crate) defer_hits: bool,
    /// Reused buffer for the decoded words of Huffman-coded groups.
    pub(crate) scratch: Vec<u8>,
}

impl Tables {
    /// Removes every row, keeping the memory.
    pub(crate) fn clear(&mut self) {
        self.events.clear();
        self.fragments.clear();
        self.hits.clear();
        self.raw.clear();
        self.problems.clear();
        self.pending_hits.clear();
        self.hit_runs.clear();
    }

    /// Moves the pending hits of event `event_index` into `hits` (with `defer_hits`,
    /// records them as that event's instead).
    pub(crate) fn flush_hits(&mut self, event_index: i64, lut: &HitLut) {
        let end = self.pending_hits.len();
        if self.defer_hits {
            if end > self.hit_runs.last().map_or(0, |r| r.1) {
                self.hit_runs.push((event_index, end));
            }
            return;
        }
        if end == 0 {
            return;
        }
        let keys = &self.pending_hits[..];
        let room = HitRoom::split(&mut self.hits, &[end]).pop();
        if let Some(room) = room {
            room.fill(keys, &[(event_index, end)], lut);
        }
        // SAFETY: `split` reserved `end` slots after every column's length and the one room
        // it made, filled just above, wrote each of them.
        unsafe { HitRoom::commit(&mut self.hits, end) };
        self.pending_hits.clear();
    }

    /// Appends the deferred hits of `parts` in order, each part's rows of every column
    /// filled by one task on the current rayon pool.
    fn extend_deferred_hits(&mut self, parts: &[Tables], lut: &HitLut) {
        use rayon::prelude::*;
        let lens: Vec<usize> = parts.iter().map(|t| t.pending_hits.len()).collect();
        let total: usize = lens.iter().sum();
        let rooms = HitRoom::split(&mut self.hits, &lens);
        rooms
            .into_par_iter()
            .zip(parts.par_iter())
            .for_each(|(room, part)| room.fill(&part.pending_hits, &part.hit_runs, lut));
        // SAFETY: `split` reserved `total` slots after every column's length, in one room a
        // part (of its length), and each room was filled just above, every slot written.
        unsafe { HitRoom::commit(&mut self.hits, total) };
    }

    /// Appends `parts` in order, re-basing their fragment parents onto this table's rows,
    /// copying in parallel on the current rayon pool; the parts keep their memory.
    pub(crate) fn extend_parallel(&mut self, parts: &[Tables], lut: &HitLut) {
        let mut base = self.fragments.len() as i64;
        let mut parent_start = self.fragments.parent.len();
        let events: Vec<_> = parts.iter().map(|t| &t.events).collect();
        let fragments: Vec<_> = parts.iter().map(|t| &t.fragments).collect();
        let raw: Vec<_> = parts.iter().map(|t| &t.raw).collect();
        self.events.extend_parallel(&events);
        self.fragments.extend_parallel(&fragments);
        // Staging tables defer their hits (`defer_hits`): their hit columns stay empty.
        if parts.iter().any(|t| !t.pending_hits.is_empty()) {
            self.extend_deferred_hits(parts, lut);
        }
        self.raw.extend_parallel(&raw);
        // Fragment parents were rows of their part: re-base them onto this table.
        for part in parts {
            let n = part.fragments.len();
            if base > 0 {
                if let Some(parents) = self
                    .fragments
                    .parent
                    .get_mut(parent_start..parent_start + n)
                {
                    for p in parents.iter_mut().filter(|p| **p >= 0) {
                        *p += base;
                    }
                }
            }
            base += n as i64;
            parent_start += n;
        }
        for part in parts {
            self.problems.extend(part.problems.iter().cloned());
        }
    }
}

/// Calls `$m!(event_index, amplitude, crate_, ...)` with the names of every `trd_hits()`
/// column: the two that come from the hit itself, then the [`lut_columns`].
macro_rules! hit_columns {
    ($m:ident) => {
        $m!(
            event_index,
            amplitude,
            crate_,
            slot,
            udr,
            ufe,
            channel,
            module,
            layer,
            ams_layer,
            ams_ladder,
            ams_tube
        )
    };
}

/// The unwritten room of one part's hits in every hit column (equal lengths), filled in
/// one loop over the part's keys ([`HitRoom::fill`]): a key and its table row read once
/// for the twelve columns, rather than once a column.
struct HitRoom<'a> {
    event_index: &'a mut [MaybeUninit<i64>],
    amplitude: &'a mut [MaybeUninit<i16>],
    crate_: &'a mut [MaybeUninit<u8>],
    slot: &'a mut [MaybeUninit<u8>],
    udr: &'a mut [MaybeUninit<u8>],
    ufe: &'a mut [MaybeUninit<u8>],
    channel: &'a mut [MaybeUninit<u16>],
    module: &'a mut [MaybeUninit<i16>],
    layer: &'a mut [MaybeUninit<u8>],
    ams_layer: &'a mut [MaybeUninit<u8>],
    ams_ladder: &'a mut [MaybeUninit<u8>],
    ams_tube: &'a mut [MaybeUninit<u8>],
}

/// `lens` pieces, one after the other, of the room for `lens`' total after `v`'s length.
fn pieces<'a, T>(
    v: &'a mut Vec<T>,
    lens: &[usize],
) -> std::vec::IntoIter<&'a mut [MaybeUninit<T>]> {
    let total: usize = lens.iter().sum();
    v.reserve(total);
    let mut rest = &mut v.spare_capacity_mut()[..total];
    let mut out = Vec::with_capacity(lens.len());
    for &n in lens {
        let (piece, tail) = std::mem::take(&mut rest).split_at_mut(n);
        out.push(piece);
        rest = tail;
    }
    out.into_iter()
}

impl<'a> HitRoom<'a> {
    /// Reserves room for `lens`' total rows after every column of `h` and cuts it into one
    /// room a part, in order.
    fn split(h: &'a mut HitColumns, lens: &[usize]) -> Vec<HitRoom<'a>> {
        macro_rules! cut {
            ($($col:ident),*) => {{
                $(let mut $col = pieces(&mut h.$col, lens);)*
                lens.iter()
                    .filter_map(|_| Some(HitRoom { $($col: $col.next()?,)* }))
                    .collect()
            }};
        }
        hit_columns!(cut)
    }

    /// Writes every slot: the keys' amplitudes and table rows (`key << 16 | amplitude`
    /// each), and `event_index` from `runs` (`(event, end)`: the keys before `end` and
    /// after the previous run's end are that event's; slots after the last run, which the
    /// decoders never leave, get 0).
    fn fill(self, keys: &[u32], runs: &[(i64, usize)], lut: &HitLut) {
        let n = keys.len();
        let mut start = 0;
        let events = &mut self.event_index[..n];
        for &(event, end) in runs {
            let end = end.min(n);
            if let Some(run) = events.get_mut(start..end) {
                run.fill(MaybeUninit::new(event));
                start = end;
            }
        }
        if let Some(rest) = events.get_mut(start..) {
            rest.fill(MaybeUninit::new(0));
        }
        // Re-sliced to `n`, so that the loop's indexing needs no bounds checks.
        macro_rules! write_all {
            ($($col:ident),*) => {{
                $(let $col = &mut self.$col[..n];)*
                let amplitude = &mut self.amplitude[..n];
                for (i, &k) in keys.iter().enumerate() {
                    let at = HitLut::at_packed(k);
                    amplitude[i].write(k as u16 as i16);
                    $($col[i].write(lut.$col[at]);)*
                }
            }};
        }
        lut_columns!(write_all);
    }

    /// Makes the `n` rows after every column's length part of it.
    ///
    /// # Safety
    /// Each column must have room for `n` more rows, all of them written ([`HitRoom::split`]
    /// reserves them; [`HitRoom::fill`] of each of its rooms writes them).
    unsafe fn commit(h: &mut HitColumns, n: usize) {
        macro_rules! grow {
            ($($col:ident),*) => {
                // SAFETY: the caller's contract: room for `n` more rows, each written.
                $(unsafe { h.$col.set_len(h.$col.len() + n) };)*
            };
        }
        hit_columns!(grow);
    }
}
