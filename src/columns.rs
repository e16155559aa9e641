//! One struct of `Vec`s per output table. Columns move to NumPy without a copy.

/// A column's data, typed.
#[derive(Debug)]
pub enum ColumnData {
    /// `bool`
    Bool(Vec<bool>),
    /// `uint8`
    U8(Vec<u8>),
    /// `uint16`
    U16(Vec<u16>),
    /// `uint32`
    U32(Vec<u32>),
    /// `uint64`
    U64(Vec<u64>),
    /// `int8`
    I8(Vec<i8>),
    /// `int16`
    I16(Vec<i16>),
    /// `int64`
    I64(Vec<i64>),
    /// `float64`
    F64(Vec<f64>),
}

macro_rules! column_from {
    ($($t:ty => $v:ident),*) => {
        $(impl From<Vec<$t>> for ColumnData {
            fn from(v: Vec<$t>) -> Self {
                ColumnData::$v(v)
            }
        })*
    };
}
column_from!(bool => Bool, u8 => U8, u16 => U16, u32 => U32, u64 => U64, i8 => I8, i16 => I16, i64 => I64, f64 => F64);

/// Declares a table: a struct with one `Vec` per column, plus helpers. A trailing `_` in a
/// field name (for Rust keywords) is dropped from the column name.
macro_rules! table {
    ($(#[$m:meta])* $name:ident { $($(#[$fm:meta])* $field:ident : $ty:ty),* $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Debug, Default, PartialEq)]
        pub struct $name {
            $($(#[$fm])* pub $field: Vec<$ty>,)*
        }

        impl $name {
            /// The column names, in table order.
            pub fn names() -> Vec<&'static str> {
                vec![$(stringify!($field).trim_end_matches('_')),*]
            }

            /// Moves every column of `other` to the end of this table.
            pub fn append(&mut self, other: &mut Self) {
                $(self.$field.append(&mut other.$field);)*
            }

            /// Reserves room for `n` more rows.
            pub fn reserve(&mut self, n: usize) {
                $(self.$field.reserve(n);)*
            }

            /// Removes every row, keeping the memory for the next use.
            pub fn clear(&mut self) {
                $(self.$field.clear();)*
            }

            /// Appends the rows of `parts` in order, every column and part copied in
            /// parallel on the current rayon pool (see [`extend_column`]).
            pub fn extend_parallel(&mut self, parts: &[&Self]) {
                rayon::scope(|s| {
                    $(
                        let dst = &mut self.$field;
                        let srcs: Vec<&[$ty]> = parts.iter().map(|p| &p.$field[..]).collect();
                        s.spawn(move |_| $crate::columns::extend_column(dst, &srcs));
                    )*
                });
            }

            /// The columns by name, moved out.
            pub fn into_columns(self) -> Vec<(&'static str, $crate::columns::ColumnData)> {
                vec![$((stringify!($field).trim_end_matches('_'), self.$field.into())),*]
            }
        }
    };
}
pub(crate) use table;

/// Appends the slices `parts` to `dst` in order. The room is reserved once and each part
/// copied into its own disjoint piece of it on a rayon task, so that the copying, and the
/// first touch of the new pages (most of the cost on a virtual machine), run in parallel.
pub fn extend_column<T: Copy + Default + Send + Sync>(dst: &mut Vec<T>, parts: &[&[T]]) {
    let lens: Vec<usize> = parts.iter().map(|p| p.len()).collect();
    extend_from_iters(dst, &lens, |i| parts[i].iter().copied());
}

/// Appends `lens[i]` values from `make(i)` for each `i` in order, as [`extend_column`]
/// does: one reservation, each part written into its own piece on a rayon task. A part
/// whose iterator ends early is padded with `T::default()` (so every slot is written).
pub fn extend_from_iters<T, I, F>(dst: &mut Vec<T>, lens: &[usize], make: F)
where
    T: Default + Send,
    I: Iterator<Item = T>,
    F: Fn(usize) -> I + Sync,
{
    use rayon::prelude::*;
    let total: usize = lens.iter().sum();
    dst.reserve(total);
    let mut pieces = Vec::with_capacity(lens.len());
    let mut rest = &mut dst.spare_capacity_mut()[..total];
    for &n in lens {
        let (piece, tail) = rest.split_at_mut(n);
        pieces.push(piece);
        rest = tail;
    }
    pieces.into_par_iter().enumerate().for_each(|(i, piece)| {
        let mut values = make(i);
        for slot in piece.iter_mut() {
            slot.write(values.next().unwrap_or_default());
        }
    });
    let len = dst.len() + total;
    // SAFETY: the `total` elements after the old length were all written just above (the
    // pieces split exactly `total` slots and every slot of every piece is written), and
    // `reserve` made room for them.
    unsafe { dst.set_len(len) };
}

table! {
    /// `File.blocks()`: one row per top-level block.
    BlockColumns {
        offset: u64, size: u32, long: bool, rr: bool, rw: bool, node: u16, type_: u8,
        type_ext: u16, data_type: u32, status: u8, tag: u16, time: u32,
    }
}

table! {
    /// `File.events()`: one row per science event.
    EventColumns {
        offset: u64, jmdc_node: u16, tag: u16, status: u8, block_time: u32,
        layout: u8, jmdc_type: u8,
        run: u32, run_tag: u32, run_type: u16, event: u32, time: u32, fine_time: u32,
        jmdc_status: u16, gps: bool, groups: u8, gps_week: u16, gps_second: u32, gps_fraction: u32,
        gps_offset: u64, gps_words: u32, gps_n: u8,
        /// Seven values a row: `gps_values` is (n, 7) in Python.
        gps_values: u32,
        n_groups: u16, crc_ok: bool, level3: bool, level3_offset: u64, level3_words: u32,
        jmdc_ok: bool, n_trd_hits: u32, unix_time: f64,
    }
}

table! {
    /// `File.fragments()`: one row per fragment of every group, depth first.
    FragmentColumns {
        event_index: i64, group: u8, depth: u8, parent: i64, slave_id: u8, node_status: u16,
        data_offset: u64, n_words: u32, role: u8, port: i8, cdp: bool, jinf_mask: u32,
        compressed: bool, coded_words: u32,
    }
}

table! {
    /// `File.trd_hits()`: one row per compressed-mode TRD hit.
    HitColumns {
        event_index: i64, crate_: u8, slot: u8, udr: u8, ufe: u8, channel: u16, amplitude: i16,
        module: i16, layer: u8, ams_layer: u8, ams_ladder: u8, ams_tube: u8,
    }
}

table! {
    /// `File.trd_raw()`: one row per raw or mixed UDR read-out; `adc` holds 448 values a row.
    RawColumns {
        event_index: i64, crate_: u8, slot: u8, udr: u8, adc: u16,
    }
}

impl BlockColumns {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.offset.len()
    }
    /// True without rows.
    pub fn is_empty(&self) -> bool {
        self.offset.is_empty()
    }
}

impl EventColumns {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.offset.len()
    }
    /// True without rows.
    pub fn is_empty(&self) -> bool {
        self.offset.is_empty()
    }
}

impl FragmentColumns {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.event_index.len()
    }
    /// True without rows.
    pub fn is_empty(&self) -> bool {
        self.event_index.is_empty()
    }
}

impl HitColumns {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.event_index.len()
    }
    /// True without rows.
    pub fn is_empty(&self) -> bool {
        self.event_index.is_empty()
    }
}

impl RawColumns {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.event_index.len()
    }
    /// True without rows.
    pub fn is_empty(&self) -> bool {
        self.event_index.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_drop_keyword_underscores() {
        assert!(BlockColumns::names().contains(&"type"));
        assert_eq!(HitColumns::names()[1], "crate");
        let mut a = HitColumns::default();
        let mut b = HitColumns {
            channel: vec![5],
            ..Default::default()
        };
        a.append(&mut b);
        assert_eq!(a.channel, vec![5]);
        assert!(b.channel.is_empty());
    }

    #[test]
    fn extend_column_appends_parts_in_order() {
        let parts: Vec<Vec<u32>> = vec![vec![], vec![1, 2, 3], vec![4], vec![], vec![5, 6]];
        let slices: Vec<&[u32]> = parts.iter().map(|p| &p[..]).collect();
        let mut dst = vec![9u32, 8];
        extend_column(&mut dst, &slices);
        assert_eq!(dst, vec![9, 8, 1, 2, 3, 4, 5, 6]);
        extend_column(&mut dst, &[]);
        assert_eq!(dst.len(), 8);
        // Large parts, so that the copies run on several rayon tasks.
        let big: Vec<Vec<u64>> = (0..7u64)
            .map(|k| (0..100_000).map(|i| k * 1_000_000 + i).collect())
            .collect();
        let slices: Vec<&[u64]> = big.iter().map(|p| &p[..]).collect();
        let mut all = Vec::new();
        extend_column(&mut all, &slices);
        assert_eq!(all, big.concat());
    }

    #[test]
    fn extend_from_iters_writes_every_slot() {
        let mut dst = vec![7u16];
        // Part 1 yields fewer values than its length: padded with the default.
        extend_from_iters(&mut dst, &[2, 3, 0, 1], |i| {
            (0..(i as u16 + 1)).map(|v| v + 10)
        });
        assert_eq!(dst, vec![7, 10, 0, 10, 11, 0, 10]);
    }

    #[test]
    fn extend_parallel_matches_append() {
        let part = |k: u8| HitColumns {
            event_index: vec![i64::from(k); usize::from(k)],
            channel: (0..u16::from(k)).collect(),
            crate_: vec![k; usize::from(k)],
            ..Default::default()
        };
        let parts = [part(3), part(0), part(5)];
        let mut expected = HitColumns::default();
        for p in &parts {
            expected.append(&mut p.clone());
        }
        let mut got = HitColumns::default();
        let refs: Vec<&HitColumns> = parts.iter().collect();
        got.extend_parallel(&refs);
        assert_eq!(got, expected);
        got.clear();
        assert_eq!(got.len(), 0);
    }
}
