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

impl ColumnData {
    /// The Rust name of the element type (`"u16"`, `"f64"`, ...), as in `table!`.
    pub fn rust_type(&self) -> &'static str {
        match self {
            ColumnData::Bool(_) => "bool",
            ColumnData::U8(_) => "u8",
            ColumnData::U16(_) => "u16",
            ColumnData::U32(_) => "u32",
            ColumnData::U64(_) => "u64",
            ColumnData::I8(_) => "i8",
            ColumnData::I16(_) => "i16",
            ColumnData::I64(_) => "i64",
            ColumnData::F64(_) => "f64",
        }
    }
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
/// field name (for Rust keywords) is dropped from the column name. The doc comments are
/// the schema (`ams02.schema`): the table's says what a row is, each column's reads
/// `[unit] meaning` (the unit in brackets, left out for none).
macro_rules! table {
    ($(#[doc = $doc:literal])* $name:ident { $($(#[doc = $fdoc:literal])* $field:ident : $ty:ty),* $(,)? }) => {
        $(#[doc = $doc])*
        #[derive(Clone, Debug, Default, PartialEq)]
        pub struct $name {
            $($(#[doc = $fdoc])* pub $field: Vec<$ty>,)*
        }

        impl $name {
            /// The table's description (its doc comment).
            pub const DOC: &'static str = concat!($($doc, "\n",)* "");

            /// Every column: name, Rust element type and doc comment (`[unit] meaning`).
            pub fn schema() -> Vec<(&'static str, &'static str, &'static str)> {
                vec![$((
                    stringify!($field).trim_end_matches('_'),
                    stringify!($ty),
                    concat!($($fdoc, "\n",)* ""),
                )),*]
            }

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

/// Declares the schema of a table built elsewhere (in Python, or from problem rows),
/// written as [`table!`] writes its doc comments: a unit struct with `DOC` and
/// `schema()`. A column type is a Rust element type, or `str` for text.
macro_rules! schema {
    ($(#[doc = $doc:literal])* $name:ident { $($(#[doc = $fdoc:literal])* $field:ident : $ty:ident),* $(,)? }) => {
        $(#[doc = $doc])*
        #[derive(Clone, Copy, Debug, Default)]
        pub struct $name;

        impl $name {
            /// The table's description (its doc comment).
            pub const DOC: &'static str = concat!($($doc, "\n",)* "");

            /// Every column: name, element type and doc comment (`[unit] meaning`).
            pub fn schema() -> Vec<(&'static str, &'static str, &'static str)> {
                vec![$((
                    stringify!($field).trim_end_matches('_'),
                    stringify!($ty),
                    concat!($($fdoc, "\n",)* ""),
                )),*]
            }
        }
    };
}
pub(crate) use schema;

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

/// The most bytes one task of [`copy_parts`] copies.
const COPY_PIECE: usize = 4 << 20;

/// Copies `parts` one after the other into `dst` (whose length must be their total), in
/// pieces of at most [`COPY_PIECE`] bytes spread over the current rayon pool, so that the
/// copying and the first touch of `dst`'s pages run on every thread. Returns `false`, and
/// copies nothing, when the lengths do not add up.
pub fn copy_parts(dst: &mut [u8], parts: &[&[u8]]) -> bool {
    use rayon::prelude::*;
    if parts.iter().map(|p| p.len()).sum::<usize>() != dst.len() {
        return false;
    }
    let mut pieces: Vec<(&mut [u8], &[u8])> = Vec::new();
    let mut rest = dst;
    for part in parts {
        let (mine, tail) = std::mem::take(&mut rest).split_at_mut(part.len());
        rest = tail;
        pieces.extend(mine.chunks_mut(COPY_PIECE).zip(part.chunks(COPY_PIECE)));
    }
    pieces
        .into_par_iter()
        .for_each(|(to, from)| to.copy_from_slice(from));
    true
}

table! {
    /// `File.blocks()`: one row per top-level block.
    BlockColumns {
        /// [B] byte offset of the block's first word in the file
        offset: u64,
        /// [B] SIZE: bytes that follow the size word(s)
        size: u32,
        /// L bit: the size takes two words
        long: bool,
        /// RR bit: 1 reply, 0 request
        rr: bool,
        /// RW bit: 1 write only, 0 write then read back
        rw: bool,
        /// NODE: 9-bit address of the sender or addressee (0..511)
        node: u16,
        /// TYPE field (5 bits; 0x1F: a TYPE_EXT word follows)
        type_: u8,
        /// TYPE_EXT word (0 without one)
        type_ext: u16,
        /// TYPE, or (0x1F << 16) | TYPE_EXT for extended types
        data_type: u32,
        /// top 4 bits of the secondary header: STATUS in replies, FBI in requests
        status: u8,
        /// TAG: low 12 bits of the secondary header
        tag: u16,
        /// [s] TIME of a reply as stored (AMS or Unix seconds, FORMAT.md 3); 0 for requests
        time: u32,
    }
}

table! {
    /// `File.events()`: one row per science event.
    EventColumns {
        /// [B] byte offset of the event block in the file
        offset: u64,
        /// NODE of the JMDC header sub-block (0..15; the active JMDC is node & 3)
        jmdc_node: u16,
        /// TAG of the event block's secondary header
        tag: u16,
        /// STATUS of the event block's secondary header (0 for an event)
        status: u8,
        /// [s] TIME of the event block's secondary header, as stored
        block_time: u32,
        /// event layout: 0 unknown, 1 the 2007 layout, 2 the flight layout (ams02.LAYOUTS)
        layout: u8,
        /// TYPE of the JMDC header sub-block (5, or 0x10..0x13 in the flight layout)
        jmdc_type: u8,
        /// run number (JMDC words 0-1 in the 2007 layout; the run ID in the flight layout)
        run: u32,
        /// run tag: the start time of data taking, the AMS run ID (JMDC words 2-3)
        run_tag: u32,
        /// run type (flight layout, JMDC word 1; 0 in the 2007 layout)
        run_type: u16,
        /// event number in the run (starts at 1)
        event: u32,
        /// [s] event time as stored: the JMDC event time (2007), the block TIME (flight); AMS or Unix seconds, FORMAT.md 3
        time: u32,
        /// [us] fine time of the event
        fine_time: u32,
        /// the whole JMDC status word
        jmdc_status: u16,
        /// G bit: the JMDC sub-block carries GPS data
        gps: bool,
        /// groups field of the JMDC status word (bits 4..0)
        groups: u8,
        /// GPS week number (0 without GPS)
        gps_week: u16,
        /// [s] GPS time (0 without GPS)
        gps_second: u32,
        /// GPS fraction of the second, as stored (0 without GPS)
        gps_fraction: u32,
        /// [B] byte offset of the flight GPS record (0 without)
        gps_offset: u64,
        /// [words] words of the flight GPS record (0 without)
        gps_words: u32,
        /// number of u32 values in the flight GPS record (at most 7)
        gps_n: u8,
        /// the flight GPS record's u32 values, 7 a row (unused ones 0). Seven values a row: `gps_values` is (n, 7) in Python.
        gps_values: u32,
        /// detector data groups in the event
        n_groups: u16,
        /// every group's CRC-16 checks
        crc_ok: bool,
        /// the event has a Level-3 sub-block (2007) or level-3 record (flight)
        level3: bool,
        /// [B] byte offset of the Level-3 words (0 without)
        level3_offset: u64,
        /// [words] number of Level-3 words (0 without)
        level3_words: u32,
        /// the JMDC sub-block is valid (its fields are meaningful)
        jmdc_ok: bool,
        /// compressed-mode TRD hits of the event (rows in trd_hits)
        n_trd_hits: u32,
        /// [s] Unix time of the event: time (by the rule of FORMAT.md 3) + fine_time; NaN without a valid JMDC
        unix_time: f64,
    }
}

table! {
    /// `File.fragments()`: one row per fragment of every group, depth first.
    FragmentColumns {
        /// row in events() of the event the fragment is in
        event_index: i64,
        /// the group's number within the event (0 first)
        group: u8,
        /// depth in the fragment tree (0: the group's top node)
        depth: u8,
        /// row in this table of the parent fragment (-1 for a top node)
        parent: i64,
        /// slave ID of the fragment (from its status word)
        slave_id: u8,
        /// the fragment's status word
        node_status: u16,
        /// [B] byte offset of the fragment's data words
        data_offset: u64,
        /// [words] number of data words
        n_words: u32,
        /// the fragment's role in the tree, by which it is walked (ams02.ROLES)
        role: u8,
        /// slave ID on its master (-1 for a top node)
        port: i8,
        /// CDP bit (status bit 5), reported, never followed
        cdp: bool,
        /// a flight-layout JINF's 32-bit slave mask (0 elsewhere)
        jinf_mask: u32,
        /// the group was Huffman-coded (data_offset counts from the decoded group's first word)
        compressed: bool,
        /// [words] on a compressed group's top row, its coded size (0 elsewhere)
        coded_words: u32,
    }
}

table! {
    /// `File.trd_hits()`: one row per compressed-mode TRD hit.
    HitColumns {
        /// row in events() of the hit's event
        event_index: i64,
        /// U-crate (0: U0 WAKE side, 1: U1 RAM side)
        crate_: u8,
        /// UDR2 slot in the crate (1, 3, 4, 6, 7, 9)
        slot: u8,
        /// UDR index in the crate (0..5, slot order)
        udr: u8,
        /// UFE board on the UDR (0..6): channel // 64
        ufe: u8,
        /// channel in the UDR read-out: ufe * 64 + ch
        channel: u16,
        /// [ADC/8] amplitude: ADC counts = amplitude / 8 (signed in the flight layout)
        amplitude: i16,
        /// row in ams02.trd.modules() (-1: a channel on no module)
        module: i16,
        /// module layer 1..5 (0 without a module)
        layer: u8,
        /// AMS offline TRD layer (0..19)
        ams_layer: u8,
        /// AMS offline TRD ladder
        ams_ladder: u8,
        /// AMS offline tube in the ladder (0..15)
        ams_tube: u8,
    }
}

table! {
    /// `File.trd_raw()`: one row per raw or mixed UDR read-out; `adc` holds 448 values a row.
    RawColumns {
        /// row in events() of the read-out's event
        event_index: i64,
        /// U-crate (0: U0 WAKE side, 1: U1 RAM side)
        crate_: u8,
        /// UDR2 slot in the crate
        slot: u8,
        /// UDR index in the crate (0..5)
        udr: u8,
        /// [ADC] the 448 raw ADC values, channel ufe * 64 + ch
        adc: u16,
    }
}

schema! {
    /// `File.errors()`, `PacketFile.errors()`: one row per problem found in the file,
    /// sorted by byte offset.
    ErrorColumns {
        /// [B] byte offset of the problem in the file
        offset: u64,
        /// row in events() of the event it is in (-1 outside events)
        event_index: i64,
        /// the kind of problem, an API name (e.g. crc_mismatch; ams02.FormatError.kind)
        kind: str,
        /// what was found and what was expected
        detail: str,
    }
}

schema! {
    /// `File.skipped()`: one row per byte range not covered by any block (damaged or junk
    /// data), in file order.
    SkippedColumns {
        /// [B] byte offset of the range's first byte
        start: u64,
        /// [B] byte offset just past the range's last byte
        end: u64,
    }
}

schema! {
    /// `File.coverage()`: the byte ranges of the file in order, blocks and skipped ranges;
    /// together they cover every byte exactly once.
    CoverageColumns {
        /// [B] byte offset of the range's first byte
        start: u64,
        /// [B] byte offset just past the range's last byte
        end: u64,
        /// "block" (a top-level block) or "skipped" (no block: a row of errors() says why)
        kind: str,
    }
}

/// A table's schema: its name in `ams02`, its description and its columns (name, Rust
/// element type or `str`, `[unit] meaning`).
pub type TableSchema = (
    &'static str,
    &'static str,
    Vec<(&'static str, &'static str, &'static str)>,
);

/// Every table that `ams02` returns, the one registry of their columns: those of
/// `ams02.File` in its order, then those of the CCSDS packet files, then the detector
/// maps. Each description starts with the calls that return the table.
pub fn registry() -> Vec<TableSchema> {
    use crate::ccsds::{ApidSummary, CommandTable, HealthTable, PacketColumn, StreamMap};
    use crate::detectors::lef::{LefChannelColumns, LefRawColumns};
    use crate::envelope::NestedBlockColumns;
    use crate::trd::{ChannelMapColumns, ModuleColumns, ModuleGeometryColumns, ModuleLabelColumn};
    vec![
        ("blocks", BlockColumns::DOC, BlockColumns::schema()),
        (
            "blocks_nested",
            NestedBlockColumns::DOC,
            [BlockColumns::schema(), NestedBlockColumns::schema()].concat(),
        ),
        ("events", EventColumns::DOC, EventColumns::schema()),
        ("fragments", FragmentColumns::DOC, FragmentColumns::schema()),
        ("trd_hits", HitColumns::DOC, HitColumns::schema()),
        ("trd_raw", RawColumns::DOC, RawColumns::schema()),
        ("errors", ErrorColumns::DOC, ErrorColumns::schema()),
        ("lef_raw", LefRawColumns::DOC, LefRawColumns::schema()),
        ("skipped", SkippedColumns::DOC, SkippedColumns::schema()),
        ("coverage", CoverageColumns::DOC, CoverageColumns::schema()),
        ("packets", PacketColumn::DOC, PacketColumn::schema()),
        ("apids", ApidSummary::DOC, ApidSummary::schema()),
        ("health_status", HealthTable::DOC, HealthTable::schema()),
        ("verify_commands", CommandTable::DOC, CommandTable::schema()),
        ("stream_map", StreamMap::DOC, StreamMap::schema()),
        (
            "trd_modules",
            ModuleColumns::DOC,
            [ModuleLabelColumn::schema(), ModuleColumns::schema()].concat(),
        ),
        (
            "trd_channel_map",
            ChannelMapColumns::DOC,
            ChannelMapColumns::schema(),
        ),
        (
            "trd_module_geometry",
            ModuleGeometryColumns::DOC,
            ModuleGeometryColumns::schema(),
        ),
        (
            "lef_channel_map",
            LefChannelColumns::DOC,
            LefChannelColumns::schema(),
        ),
    ]
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
        // the schema registry names every column of every table, each with a known type
        // and a meaning; each table's description starts with a call that returns it
        let types = [
            "bool", "u8", "u16", "u32", "u64", "i8", "i16", "i64", "f64", "str",
        ];
        let reg = registry();
        for (table, doc, cols) in &reg {
            assert!(doc.trim_start().starts_with('`'), "{table}: {doc}");
            assert!(!cols.is_empty(), "{table}");
            for (name, ty, meaning) in cols {
                assert!(types.contains(ty), "{table}.{name}: {ty}");
                assert!(meaning.trim().len() > 8, "{table}.{name}");
            }
            let mut names: Vec<&str> = cols.iter().map(|c| c.0).collect();
            names.sort_unstable();
            names.dedup();
            assert_eq!(names.len(), cols.len(), "{table}: a column twice");
        }
        let mut tables: Vec<&str> = reg.iter().map(|t| t.0).collect();
        tables.sort_unstable();
        tables.dedup();
        assert_eq!(tables.len(), reg.len(), "a table twice");
        let packets = crate::ccsds::PacketColumn::schema();
        assert_eq!(packets.len(), crate::ccsds::PacketColumn::ALL.len());
        assert!(packets.contains(&("time_s", "f64", "[s] coarse_time + fine_time / 256")));
        let names: Vec<&str> = EventColumns::schema().iter().map(|c| c.0).collect();
        assert_eq!(names, EventColumns::names());
        assert!(HitColumns::schema()
            .iter()
            .any(|c| c.0 == "amplitude" && c.2.trim_start().starts_with("[ADC/8]")));
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
    fn copy_parts_concatenates() {
        let a: Vec<u8> = (0..=255).cycle().take(COPY_PIECE * 2 + 17).collect();
        let b: Vec<u8> = Vec::new();
        let c: Vec<u8> = vec![7; 5];
        let expected: Vec<u8> = a.iter().chain(&b).chain(&c).copied().collect();
        let mut dst = vec![0u8; expected.len()];
        assert!(copy_parts(&mut dst, &[&a, &b, &c]));
        assert_eq!(dst, expected);
        let mut short = vec![0u8; 3];
        assert!(!copy_parts(&mut short, &[&c]));
        assert_eq!(short, [0, 0, 0]);
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
