//! The output tables of a decode and the flags that say which to fill. They sit below
//! both the parallel driver ([`crate::decode`]) and the decoders ([`crate::event`],
//! [`crate::group`], the detectors), so that imports run one way.

use crate::columns::{extend_from_iters, EventColumns, FragmentColumns, HitColumns, RawColumns};
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
    /// The coded groups of the next events, decoded ahead.
    pub(crate) ahead: crate::group::Ahead,
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

    /// Moves the pending hits of event `event_index` into `hits`, one tight loop a column
    /// (with `defer_hits`, records them as that event's instead).
    pub(crate) fn flush_hits(&mut self, event_index: i64, lut: &HitLut) {
        if self.defer_hits {
            let end = self.pending_hits.len();
            if end > self.hit_runs.last().map_or(0, |r| r.1) {
                self.hit_runs.push((event_index, end));
            }
            return;
        }
        let keys = &self.pending_hits;
        if keys.is_empty() {
            return;
        }
        let h = &mut self.hits;
        h.event_index
            .extend(std::iter::repeat_n(event_index, keys.len()));
        h.amplitude.extend(keys.iter().map(|&k| k as u16 as i16));
        macro_rules! fill {
            ($($col:ident),*) => {
                $(h.$col.extend(keys.iter().map(|&k| lut.$col[HitLut::at_packed(k)]));)*
            };
        }
        lut_columns!(fill);
        self.pending_hits.clear();
    }

    /// Appends the deferred hits of `parts` in order, each column filled from the keys in
    /// parallel on the current rayon pool.
    fn extend_deferred_hits(&mut self, parts: &[Tables], lut: &HitLut) {
        let lens: Vec<usize> = parts.iter().map(|t| t.pending_hits.len()).collect();
        let lens = &lens[..];
        let h = &mut self.hits;
        let keys = |i: usize| parts[i].pending_hits.iter();
        rayon::scope(|s| {
            s.spawn(|_| {
                extend_from_iters(&mut h.event_index, lens, |i| {
                    let mut start = 0;
                    parts[i].hit_runs.iter().flat_map(move |&(event, end)| {
                        let n = end.saturating_sub(start);
                        start = end;
                        std::iter::repeat_n(event, n)
                    })
                })
            });
            s.spawn(|_| {
                extend_from_iters(&mut h.amplitude, lens, |i| {
                    keys(i).map(|&k| k as u16 as i16)
                })
            });
            macro_rules! fill {
                ($($col:ident),*) => {
                    $(
                        let col = &mut h.$col;
                        s.spawn(move |_| {
                            extend_from_iters(col, lens, |i| {
                                keys(i).map(|&k| lut.$col[HitLut::at_packed(k)])
                            })
                        });
                    )*
                };
            }
            lut_columns!(fill);
        });
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
