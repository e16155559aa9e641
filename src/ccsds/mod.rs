//! CCSDS packets from the ISS interface (FORMAT.md section 7; ICD, seed 001).
//!
//! - [`header`]: primary and secondary headers;
//! - [`apid`]: the AMS-02 APIDs and their packet-size bounds;
//! - [`scan`]: walking a file into packets, resynchronising after bad bytes, and
//!   sequence-count gaps;
//! - [`table`]: the `packets()` and `apids()` columns;
//! - [`health`]: LRDL health-and-status packets;
//! - [`command`]: command checksums;
//! - [`science`]: reassembling the AMS block stream from APID 976 packets;
//! - [`packetize`]: writing packet files (the simulator);
//! - [`stream`]: incremental decoding of a live packet stream (the monitor's ingest).
//!
//! Nothing here imports pyo3: the bindings are in `crate::python::ccsds`.

pub mod apid;
pub mod command;
pub mod header;
pub mod health;
pub mod packetize;
pub mod scan;
pub mod science;
pub mod stream;
pub mod table;

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::problems::{Error, Problem, Result};
use crate::source::Source;

pub use command::CommandTable;
pub use health::HealthTable;
pub use scan::{PacketIndex, ScanOptions};
pub use science::{Reassembled, StreamMap};
pub use table::{ApidSummary, ColumnData, PacketColumn};

/// How to open a packet file.
#[derive(Clone, Debug)]
pub struct OpenOptions {
    /// The walk's options (extra APIDs).
    pub scan: ScanOptions,
    /// Fail at the first problem (by offset) instead of reporting it.
    pub strict: bool,
    /// Memory-map the file (else read it).
    pub mmap: bool,
    /// The APID of health-and-status packets whose layout problems are reported by
    /// [`PacketFile::problems`] (**convention**: 977); `None` reports none.
    pub health_apid: Option<u16>,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            scan: ScanOptions::default(),
            strict: false,
            mmap: true,
            health_apid: Some(apid::HOUSEKEEPING),
        }
    }
}

/// A packet file: the bytes (memory-mapped) and the index of its packets.
pub struct PacketFile {
    source: Source,
    index: PacketIndex,
    name: String,
    health_apid: Option<u16>,
}

impl std::fmt::Debug for PacketFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PacketFile")
            .field("name", &self.name)
            .field("bytes", &self.source.len())
            .field("packets", &self.index.len())
            .finish()
    }
}

impl PacketFile {
    /// Opens (memory-maps) and indexes a packet file. With `strict`, the first problem
    /// (by offset) is a [`Error::Format`] at its byte offset.
    pub fn open(path: &Path, opts: &OpenOptions) -> Result<PacketFile> {
        let source = Source::open(path, opts.mmap)?;
        let file = PacketFile::from_source(source, path.display().to_string(), opts)?;
        file.check()?;
        Ok(file)
    }

    /// [`Error::FileChanged`] if the file shrank or changed since it was opened
    /// ([`Source::check`]); the bindings call it after every read of the data.
    pub fn check(&self) -> Result<()> {
        self.source.check()
    }

    /// Indexes bytes already in memory (or mapped).
    pub fn from_source(source: Source, name: String, opts: &OpenOptions) -> Result<PacketFile> {
        let index = scan::scan(&source, &opts.scan);
        let file = PacketFile {
            source,
            index,
            name,
            health_apid: opts.health_apid,
        };
        if opts.strict {
            if let Some(p) = file.problems().into_iter().next() {
                return Err(Error::Format {
                    offset: p.offset,
                    what: format!("{}: {}", p.kind, p.detail),
                });
            }
        }
        Ok(file)
    }

    /// The file name given at open.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The bytes of the file.
    pub fn data(&self) -> &[u8] {
        &self.source
    }

    /// The packet index.
    pub fn index(&self) -> &PacketIndex {
        &self.index
    }

    /// Every problem, sorted by offset: the walk's (bad bytes), sequence gaps, command
    /// checksum failures, and packets of the health APID without the H&S layout.
    pub fn problems(&self) -> Vec<Problem> {
        let mut all = self.index.problems.clone();
        let (_, cmd) = command::verify_commands(&self.source, &self.index);
        all.extend(cmd);
        if let Some(apid) = self.health_apid {
            let (_, hs) = health::health_status(&self.source, &self.index, apid);
            all.extend(hs);
        }
        all.sort_by_key(|p| p.offset);
        all
    }

    /// The columns of `packets()`, for packets of `apid` only when given.
    pub fn columns(&self, cols: &[PacketColumn], apid: Option<u16>) -> Vec<ColumnData> {
        let rows = apid.map(|a| self.index.rows_of_apid(a));
        self.index.columns(cols, rows.as_deref())
    }

    /// Per-APID summary.
    pub fn apid_summary(&self) -> ApidSummary {
        self.index.apid_summary()
    }

    /// Health-and-status packets of `apid`.
    pub fn health_status(&self, apid: u16) -> (HealthTable, Vec<Problem>) {
        health::health_status(&self.source, &self.index, apid)
    }

    /// Checks every command packet.
    pub fn verify_commands(&self) -> (CommandTable, Vec<Problem>) {
        command::verify_commands(&self.source, &self.index)
    }

    /// Reassembles the science stream of `apid`.
    pub fn reassemble(&self, apid: u16) -> Reassembled {
        science::reassemble(&self.source, &self.index, apid)
    }

    /// Writes the packets of each APID, in file order, to `out_dir/<stem>.apid<APID>.ccsds`.
    /// Returns the files written, by APID.
    pub fn split(&self, out_dir: &Path) -> Result<BTreeMap<u16, PathBuf>> {
        std::fs::create_dir_all(out_dir)?;
        let stem = Path::new(&self.name)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "packets".to_string());
        let mut writers: BTreeMap<u16, (PathBuf, BufWriter<std::fs::File>)> = BTreeMap::new();
        for (h, &off) in self.index.headers.iter().zip(&self.index.offsets) {
            let apid = h.apid();
            let start = off as usize;
            let bytes = self
                .source
                .get(start..start + h.total_len())
                .ok_or_else(|| Error::format(start, "indexed packet outside the file"))?;
            let (_, w) = match writers.entry(apid) {
                std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::btree_map::Entry::Vacant(e) => {
                    let path = out_dir.join(format!("{stem}.apid{apid:04}.ccsds"));
                    let f = std::fs::File::create(&path)?;
                    e.insert((path, BufWriter::with_capacity(1 << 20, f)))
                }
            };
            w.write_all(bytes)?;
        }
        let mut out = BTreeMap::new();
        for (apid, (path, mut w)) in writers {
            w.flush()?;
            out.insert(apid, path);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ccsds::packetize::{packetize, CcsdsSimConfig};

    #[test]
    fn split_and_strict() {
        let stream: Vec<u8> = (0..20_000u32).map(|i| (i % 253) as u8).collect();
        let mut bytes = Vec::new();
        let cfg = CcsdsSimConfig {
            housekeeping_every: 3,
            ..Default::default()
        };
        packetize(&mut bytes, &stream, &cfg).unwrap();
        let dir = std::env::temp_dir().join(format!("ams02-ccsds-split-{}", std::process::id()));
        let strict = OpenOptions {
            strict: true,
            ..Default::default()
        };
        let f =
            PacketFile::from_source(Source::from_vec(bytes.clone()), "run.ccsds".into(), &strict)
                .unwrap();
        let files = f.split(&dir).unwrap();
        assert_eq!(files.keys().copied().collect::<Vec<_>>(), vec![976, 977]);
        let total: u64 = files
            .values()
            .map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
            .sum();
        assert_eq!(total, bytes.len() as u64);
        let _ = std::fs::remove_dir_all(&dir);

        let n = bytes.len() as u64;
        bytes.extend_from_slice(&[1, 2, 3]);
        let err = PacketFile::from_source(Source::from_vec(bytes), "run.ccsds".into(), &strict)
            .unwrap_err();
        match err {
            Error::Format { offset, what } => {
                assert_eq!(offset, n);
                assert!(what.starts_with("packet_overrun"), "{what}");
            }
            other => panic!("{other}"),
        }
    }
}
