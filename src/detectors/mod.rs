//! Detector decoders, one module each.
//!
//! | FORMAT.md | module |
//! |---|---|
//! | 11.1 the Layer-0 upgrade front-end (LEF) raw events and calibration | [`lef`] |
//!
//! (The TRD decoder lives in [`crate::trd`] until the detector seam of issue 13 moves it
//! here.)

pub mod lef;
