//! The `packets()` and `apids()` tables: one `Vec` per column, built in parallel from
//! the packet index.

use rayon::prelude::*;

use super::header::HeaderBytes;
use super::scan::PacketIndex;
pub use crate::columns::ColumnData;

/// A column of the `packets()` table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PacketColumn {
    /// Byte offset of the packet in the file (u64).
    Offset,
    /// Version number (u8).
    Version,
    /// Packet type bit (u8).
    Type,
    /// Secondary header flag (bool).
    SecHdr,
    /// APID (u16).
    Apid,
    /// Sequence flags (u8).
    SeqFlags,
    /// Sequence count (u16).
    SeqCount,
    /// The raw packet length field (u16).
    Length,
    /// Coarse time, seconds (u32).
    CoarseTime,
    /// Fine time, 1/256 s (u8).
    FineTime,
    /// Time ID (u8).
    TimeId,
    /// Check word flag (bool).
    CheckWord,
    /// ZOE flag (bool).
    Zoe,
    /// Secondary-header packet type (u8).
    PacketType,
    /// Packet ID word 1 (u16).
    PacketId1,
    /// Packet ID word 2 (u16).
    PacketId2,
    /// Byte offset of the user data in the file (u64).
    DataOffset,
    /// Bytes of user data (u32).
    DataLength,
    /// Packets missing before this one in its APID's sequence, modulo 16384 (u16).
    SeqGap,
    /// Coarse + fine / 256 (f64).
    TimeS,
}

impl PacketColumn {
    /// Every column, in table order.
    pub const ALL: [PacketColumn; 20] = [
        PacketColumn::Offset,
        PacketColumn::Version,
        PacketColumn::Type,
        PacketColumn::SecHdr,
        PacketColumn::Apid,
        PacketColumn::SeqFlags,
        PacketColumn::SeqCount,
        PacketColumn::Length,
        PacketColumn::CoarseTime,
        PacketColumn::FineTime,
        PacketColumn::TimeId,
        PacketColumn::CheckWord,
        PacketColumn::Zoe,
        PacketColumn::PacketType,
        PacketColumn::PacketId1,
        PacketColumn::PacketId2,
        PacketColumn::DataOffset,
        PacketColumn::DataLength,
        PacketColumn::SeqGap,
        PacketColumn::TimeS,
    ];

    /// The column name of the Python table.
    pub fn name(self) -> &'static str {
        match self {
            PacketColumn::Offset => "offset",
            PacketColumn::Version => "version",
            PacketColumn::Type => "type",
            PacketColumn::SecHdr => "sec_hdr",
            PacketColumn::Apid => "apid",
            PacketColumn::SeqFlags => "seq_flags",
            PacketColumn::SeqCount => "seq_count",
            PacketColumn::Length => "length",
            PacketColumn::CoarseTime => "coarse_time",
            PacketColumn::FineTime => "fine_time",
            PacketColumn::TimeId => "time_id",
            PacketColumn::CheckWord => "check_word",
            PacketColumn::Zoe => "zoe",
            PacketColumn::PacketType => "packet_type",
            PacketColumn::PacketId1 => "packet_id1",
            PacketColumn::PacketId2 => "packet_id2",
            PacketColumn::DataOffset => "data_offset",
            PacketColumn::DataLength => "data_length",
            PacketColumn::SeqGap => "seq_gap",
            PacketColumn::TimeS => "time_s",
        }
    }

    /// The column of a name, if any.
    pub fn from_name(name: &str) -> Option<PacketColumn> {
        PacketColumn::ALL.into_iter().find(|c| c.name() == name)
    }

    /// The description of the `packets()` table (as a `table!` doc comment).
    pub const DOC: &'static str = "`PacketFile.packets()`: one row per CCSDS packet (FORMAT.md 7), in file order; the secondary-header fields are 0 when its flag is clear.";

    /// The element type of the column (a Rust type name, as in `table!`).
    pub fn rust_type(self) -> &'static str {
        empty_column(self, 0).rust_type()
    }

    /// The column's doc (`[unit] meaning`, as in `table!`).
    pub fn doc(self) -> &'static str {
        use PacketColumn::*;
        match self {
            Offset => "[B] byte offset of the packet in the file",
            Version => "version number (3 bits; 0 in every packet kept)",
            Type => "packet type bit (1 for the AMS-02 downlink)",
            SecHdr => "the secondary header flag",
            Apid => "APID (11 bits: 976 science, 977 housekeeping, 124 commands, ...)",
            SeqFlags => "sequence flags (2 bits; 3: unsegmented)",
            SeqCount => "14-bit sequence count (wraps at 16384)",
            Length => "[B] the packet length field as stored: bytes after the primary header minus 1",
            CoarseTime => "[s] secondary-header coarse time",
            FineTime => "[1/256 s] secondary-header fine time",
            TimeId => "secondary-header time ID (2 bits)",
            CheckWord => "secondary-header check word flag: the packet ends with a checksum word",
            Zoe => "secondary-header ZOE flag",
            PacketType => "secondary-header packet type (4 bits)",
            PacketId1 => "packet ID word 1 (element- and usage-dependent, kept whole)",
            PacketId2 => "packet ID word 2 (element- and usage-dependent, kept whole)",
            DataOffset => "[B] byte offset of the user data in the file",
            DataLength => "[B] bytes of user data",
            SeqGap => "packets missing before this one in its APID's sequence, modulo 16384 (0 for an APID's first packet)",
            TimeS => "[s] coarse_time + fine_time / 256",
        }
    }

    /// Every column: name, element type and doc, in table order (the schema registry's
    /// form, `crate::columns::registry`).
    pub fn schema() -> Vec<(&'static str, &'static str, &'static str)> {
        PacketColumn::ALL
            .iter()
            .map(|c| (c.name(), c.rust_type(), c.doc()))
            .collect()
    }
}

/// One row of the index as the column builders see it.
#[derive(Clone, Copy)]
struct Row<'a> {
    offset: u64,
    header: &'a HeaderBytes,
    seq_gap: u16,
}

const EMPTY: HeaderBytes = HeaderBytes([0; 16]);

impl PacketIndex {
    /// The rows of packets with APID `apid`, in file order.
    pub fn rows_of_apid(&self, apid: u16) -> Vec<usize> {
        self.headers
            .iter()
            .enumerate()
            .filter(|(_, h)| h.apid() == apid)
            .map(|(i, _)| i)
            .collect()
    }

    #[inline(always)]
    fn row(&self, i: usize) -> Row<'_> {
        Row {
            offset: self.offsets.get(i).copied().unwrap_or(0),
            header: self.headers.get(i).unwrap_or(&EMPTY),
            seq_gap: self.seq_gaps.get(i).copied().unwrap_or(0),
        }
    }

    /// Fills `dst` with `f` of rows `lo..lo + dst.len()` (of `rows` when given).
    #[inline]
    fn fill_with<T>(
        &self,
        dst: &mut [T],
        lo: usize,
        rows: Option<&[usize]>,
        f: impl Fn(Row<'_>) -> T,
    ) {
        let hi = lo + dst.len();
        match rows {
            None => {
                if let (Some(h), Some(o), Some(g)) = (
                    self.headers.get(lo..hi),
                    self.offsets.get(lo..hi),
                    self.seq_gaps.get(lo..hi),
                ) {
                    for (((d, header), &offset), &seq_gap) in dst.iter_mut().zip(h).zip(o).zip(g) {
                        *d = f(Row {
                            offset,
                            header,
                            seq_gap,
                        });
                    }
                }
            }
            Some(rows) => {
                if let Some(r) = rows.get(lo..hi) {
                    for (d, &i) in dst.iter_mut().zip(r) {
                        *d = f(self.row(i));
                    }
                }
            }
        }
    }

    /// Fills one chunk of one column.
    fn fill(&self, col: PacketColumn, out: OutSlice<'_>, lo: usize, rows: Option<&[usize]>) {
        use OutSlice as O;
        use PacketColumn as P;
        match (col, out) {
            (P::Offset, O::U64(d)) => self.fill_with(d, lo, rows, |r| r.offset),
            (P::Version, O::U8(d)) => self.fill_with(d, lo, rows, |r| r.header.0[0] >> 5),
            (P::Type, O::U8(d)) => self.fill_with(d, lo, rows, |r| (r.header.0[0] >> 4) & 1),
            (P::SecHdr, O::Bool(d)) => self.fill_with(d, lo, rows, |r| r.header.sec_hdr()),
            (P::Apid, O::U16(d)) => self.fill_with(d, lo, rows, |r| r.header.apid()),
            (P::SeqFlags, O::U8(d)) => self.fill_with(d, lo, rows, |r| r.header.0[2] >> 6),
            (P::SeqCount, O::U16(d)) => self.fill_with(d, lo, rows, |r| r.header.seq_count()),
            (P::Length, O::U16(d)) => self.fill_with(d, lo, rows, |r| r.header.length()),
            (P::CoarseTime, O::U32(d)) => {
                self.fill_with(d, lo, rows, |r| r.header.secondary().coarse_time)
            }
            (P::FineTime, O::U8(d)) => self.fill_with(d, lo, rows, |r| r.header.0[10]),
            (P::TimeId, O::U8(d)) => self.fill_with(d, lo, rows, |r| (r.header.0[11] >> 6) & 3),
            (P::CheckWord, O::Bool(d)) => {
                self.fill_with(d, lo, rows, |r| (r.header.0[11] >> 5) & 1 == 1)
            }
            (P::Zoe, O::Bool(d)) => self.fill_with(d, lo, rows, |r| (r.header.0[11] >> 4) & 1 == 1),
            (P::PacketType, O::U8(d)) => self.fill_with(d, lo, rows, |r| r.header.0[11] & 0xF),
            (P::PacketId1, O::U16(d)) => {
                self.fill_with(d, lo, rows, |r| r.header.secondary().packet_id1)
            }
            (P::PacketId2, O::U16(d)) => {
                self.fill_with(d, lo, rows, |r| r.header.secondary().packet_id2)
            }
            (P::DataOffset, O::U64(d)) => {
                self.fill_with(d, lo, rows, |r| r.offset + r.header.header_len() as u64)
            }
            (P::DataLength, O::U32(d)) => self.fill_with(d, lo, rows, |r| {
                (r.header.total_len() - r.header.header_len()) as u32
            }),
            (P::SeqGap, O::U16(d)) => self.fill_with(d, lo, rows, |r| r.seq_gap),
            (P::TimeS, O::F64(d)) => self.fill_with(d, lo, rows, |r| r.header.secondary().time_s()),
            // Each column is allocated with its own type (`empty_column`).
            _ => {}
        }
    }

    /// Builds the columns `cols` for the given rows (all rows when `None`): one pass per
    /// chunk of rows small enough to stay in cache, chunks in parallel.
    pub fn columns(&self, cols: &[PacketColumn], rows: Option<&[usize]>) -> Vec<ColumnData> {
        const CHUNK: usize = 1 << 14;
        let n = rows.map_or(self.len(), |r| r.len());
        let mut data: Vec<ColumnData> = cols.iter().map(|&c| empty_column(c, n)).collect();
        let n_chunks = n.div_ceil(CHUNK);
        let mut chunks: Vec<Vec<OutSlice<'_>>> = (0..n_chunks)
            .map(|_| Vec::with_capacity(cols.len()))
            .collect();
        for d in data.iter_mut() {
            for (k, s) in split_column(d, CHUNK).into_iter().enumerate() {
                if let Some(c) = chunks.get_mut(k) {
                    c.push(s);
                }
            }
        }
        chunks.into_par_iter().enumerate().for_each(|(k, outs)| {
            for (&col, out) in cols.iter().zip(outs) {
                self.fill(col, out, k * CHUNK, rows);
            }
        });
        data
    }

    /// Builds one column for the given rows (all rows when `None`).
    pub fn column(&self, col: PacketColumn, rows: Option<&[usize]>) -> ColumnData {
        self.columns(&[col], rows)
            .pop()
            .unwrap_or_else(|| empty_column(col, 0))
    }
}

/// A mutable chunk of one column.
enum OutSlice<'a> {
    Bool(&'a mut [bool]),
    U8(&'a mut [u8]),
    U16(&'a mut [u16]),
    U32(&'a mut [u32]),
    U64(&'a mut [u64]),
    F64(&'a mut [f64]),
}

/// A zeroed column of `n` rows of the column's type.
fn empty_column(col: PacketColumn, n: usize) -> ColumnData {
    use PacketColumn as P;
    match col {
        P::Offset | P::DataOffset => ColumnData::U64(vec![0; n]),
        P::Version | P::Type | P::SeqFlags | P::FineTime | P::TimeId | P::PacketType => {
            ColumnData::U8(vec![0; n])
        }
        P::SecHdr | P::CheckWord | P::Zoe => ColumnData::Bool(vec![false; n]),
        P::Apid | P::SeqCount | P::Length | P::PacketId1 | P::PacketId2 | P::SeqGap => {
            ColumnData::U16(vec![0; n])
        }
        P::CoarseTime | P::DataLength => ColumnData::U32(vec![0; n]),
        P::TimeS => ColumnData::F64(vec![0.0; n]),
    }
}

/// The column cut in chunks of `chunk` rows.
fn split_column(d: &mut ColumnData, chunk: usize) -> Vec<OutSlice<'_>> {
    match d {
        ColumnData::Bool(v) => v.chunks_mut(chunk).map(OutSlice::Bool).collect(),
        ColumnData::U8(v) => v.chunks_mut(chunk).map(OutSlice::U8).collect(),
        ColumnData::U16(v) => v.chunks_mut(chunk).map(OutSlice::U16).collect(),
        ColumnData::U32(v) => v.chunks_mut(chunk).map(OutSlice::U32).collect(),
        ColumnData::U64(v) => v.chunks_mut(chunk).map(OutSlice::U64).collect(),
        ColumnData::F64(v) => v.chunks_mut(chunk).map(OutSlice::F64).collect(),
        // Not used by packet columns.
        ColumnData::I8(_) | ColumnData::I16(_) | ColumnData::I64(_) => Vec::new(),
    }
}

crate::columns::table! {
    /// `PacketFile.apids()`: one row per APID found, ascending.
    ApidSummary {
        /// the APID (0..2047)
        apid: u16,
        /// packets of this APID
        count: u64,
        /// 14-bit sequence count of its first packet
        first_seq: u16,
        /// 14-bit sequence count of its last packet
        last_seq: u16,
        /// packets missing from its sequence (the sum of the gaps, counted across the 14-bit wrap)
        missing: u64,
        /// [B] bytes of all its packets, headers included
        bytes: u64,
    }
}

impl PacketIndex {
    /// Per-APID summary.
    pub fn apid_summary(&self) -> ApidSummary {
        #[derive(Clone, Copy, Default)]
        struct Acc {
            count: u64,
            first: u16,
            last: u16,
            missing: u64,
            bytes: u64,
        }
        let mut acc = vec![Acc::default(); 2048];
        for (h, &gap) in self.headers.iter().zip(&self.seq_gaps) {
            if let Some(a) = acc.get_mut(h.apid() as usize) {
                if a.count == 0 {
                    a.first = h.seq_count();
                }
                a.count += 1;
                a.last = h.seq_count();
                a.missing += gap as u64;
                a.bytes += h.total_len() as u64;
            }
        }
        let mut out = ApidSummary::default();
        for (apid, a) in acc.iter().enumerate().filter(|(_, a)| a.count > 0) {
            out.apid.push(apid as u16);
            out.count.push(a.count);
            out.first_seq.push(a.first);
            out.last_seq.push(a.last);
            out.missing.push(a.missing);
            out.bytes.push(a.bytes);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ccsds::scan::{scan, ScanOptions};

    fn pkt(apid: u16, seq: u16, data_len: usize, sec: bool) -> Vec<u8> {
        use crate::ccsds::header::{PrimaryHeader, SecondaryHeader};
        let hl = if sec { 16 } else { 6 };
        let total = hl + data_len;
        let mut v = PrimaryHeader {
            version: 0,
            type_flag: 1,
            sec_hdr: sec,
            apid,
            seq_flags: 3,
            seq_count: seq,
            length: (total - 7) as u16,
        }
        .to_bytes()
        .to_vec();
        if sec {
            v.extend_from_slice(
                &SecondaryHeader {
                    coarse_time: 7,
                    fine_time: 64,
                    time_id: 1,
                    check_word: false,
                    zoe: true,
                    packet_type: 4,
                    packet_id1: 0xABCD,
                    packet_id2: seq,
                }
                .to_bytes(),
            );
        }
        v.extend(std::iter::repeat_n(0x5Au8, data_len));
        v
    }

    fn col_len(c: &ColumnData) -> usize {
        match c {
            ColumnData::Bool(v) => v.len(),
            ColumnData::U8(v) => v.len(),
            ColumnData::U16(v) => v.len(),
            ColumnData::U32(v) => v.len(),
            ColumnData::U64(v) => v.len(),
            ColumnData::I8(v) => v.len(),
            ColumnData::I16(v) => v.len(),
            ColumnData::I64(v) => v.len(),
            ColumnData::F64(v) => v.len(),
        }
    }

    fn same(a: ColumnData, b: ColumnData) {
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
    }

    #[test]
    fn columns_and_selection() {
        let data = [
            pkt(976, 10, 100, true),
            pkt(977, 0, 200, true),
            pkt(976, 12, 100, true),
            pkt(980, 3, 200, false),
        ]
        .concat();
        let ix = scan(&data, &ScanOptions::default());
        assert_eq!(ix.len(), 4);
        same(
            ix.column(PacketColumn::Apid, None),
            ColumnData::U16(vec![976, 977, 976, 980]),
        );
        let rows = ix.rows_of_apid(976);
        assert_eq!(rows, vec![0, 2]);
        same(
            ix.column(PacketColumn::SeqGap, Some(&rows)),
            ColumnData::U16(vec![0, 1]),
        );
        same(
            ix.column(PacketColumn::DataOffset, None),
            ColumnData::U64(vec![16, 132, 348, 454]),
        );
        same(
            ix.column(PacketColumn::DataLength, None),
            ColumnData::U32(vec![100, 200, 100, 200]),
        );
        same(
            ix.column(PacketColumn::TimeS, None),
            ColumnData::F64(vec![7.25, 7.25, 7.25, 0.0]),
        );
        same(
            ix.column(PacketColumn::Zoe, None),
            ColumnData::Bool(vec![true, true, true, false]),
        );
        same(
            ix.column(PacketColumn::PacketId1, None),
            ColumnData::U16(vec![0xABCD, 0xABCD, 0xABCD, 0]),
        );
        same(
            ix.column(PacketColumn::Length, None),
            ColumnData::U16(vec![109, 209, 109, 199]),
        );
        let s = ix.apid_summary();
        assert_eq!(s.apid, vec![976, 977, 980]);
        assert_eq!(s.count, vec![2, 1, 1]);
        assert_eq!(s.first_seq, vec![10, 0, 3]);
        assert_eq!(s.last_seq, vec![12, 0, 3]);
        assert_eq!(s.missing, vec![1, 0, 0]);
        assert_eq!(s.bytes, vec![232, 216, 206]);
        for c in PacketColumn::ALL {
            assert_eq!(PacketColumn::from_name(c.name()), Some(c));
            assert_eq!(col_len(&ix.column(c, None)), 4);
        }
    }
}
