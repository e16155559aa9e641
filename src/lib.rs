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
//! | 4, 4.1, 6 science events, JMDC, Level-3 | [`event`] |
//! | 4.2, 4.3 groups, fragments, CRC | [`group`], [`crc`] |
//! | 5, 5.1 TRD | [`trd`] |
//! | 7 CCSDS | [`ccsds`] |
//! | 9.3 Huffman-coded groups | [`huffman`] |
//!
//! The core never touches Python; the bindings live in `python` behind the `python` feature.

pub mod alloc;
pub mod block;
pub mod ccsds;
pub mod columns;
pub mod crc;
pub mod decode;
pub mod event;
pub mod file;
pub mod group;
pub mod huffman;
pub mod index;
pub mod problems;
pub mod simulate;
pub mod source;
pub mod trd;
pub mod words;

#[cfg(feature = "python")]
mod python;

pub use file::AmsFile;
pub use problems::{Error, Problem, ProblemKind, Result};
pub use words::ByteOrder;
