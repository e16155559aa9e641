//! # ams02
//!
//! Decoding of AMS-02 raw data into columns: AMS blocks, science events, the JMDC
//! sub-block, detector data groups with their fragment trees and CRC, TRD UDR data mapped
//! to straw modules, and CCSDS packets. The format reading is `FORMAT.md` of the project
//! (`docs/format.md`); each section is implemented in one module:
//!
//! | FORMAT.md | module |
//! |---|---|
//! | 1 words and byte order | [`words`], [`index`] |
//! | 2 the AMS block | [`block`] |
//! | 3, 4, 4.1, 9.1 event and JMDC header shapes, time rule, both JMDC layouts | [`jmdc`] |
//! | 4, 6 the science event's sub-block walk, Level-3 | [`event`] |
//! | 4.2, 9.2 groups, fragments by node role, JINF masks, CRC | [`group`], [`crc`] |
//! | 5, 5.1 TRD | [`trd`] |
//! | 9.3 Huffman-coded groups | [`huffman`] |
//! | 7 CCSDS | [`ccsds`] |
//! | 10 blocks between events, envelopes | [`envelope`] |
//! | 11.1 the Layer-0 front-end (LEF) | [`detectors::lef`] |
//! | 11.2 the 2009 tracker PC-DAQ dialect | [`dialect`] |
//!
//! The core never touches Python; the bindings live in `python` behind the `python` feature.

pub mod alloc;
pub mod block;
pub mod ccsds;
pub mod columns;
pub mod crc;
pub mod decode;
pub mod detectors;
pub mod dialect;
pub mod envelope;
pub mod event;
pub mod file;
pub mod group;
pub mod huffman;
pub mod index;
pub mod jmdc;
pub mod problems;
pub mod simulate;
pub mod source;
pub mod tables;
pub mod trd;
pub mod words;

#[cfg(feature = "python")]
mod python;

pub use file::AmsFile;
pub use problems::{Error, Problem, ProblemKind, Result};
pub use words::ByteOrder;
