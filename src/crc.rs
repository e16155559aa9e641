//! CRC-16/CCITT-FALSE over 16-bit words (FORMAT.md section 4.2).
//!
//! Polynomial 0x1021, initial value 0xFFFF, not reflected, no final XOR; each word is fed
//! most significant byte first whatever its byte order on disk.
//!
//! [`crc16_words`] is the decoder's: the catalogue's CRC-16/IBM-3740 (the same parameters)
//! from the `crc-fast` crate, which folds with carry-less multiplication (PCLMULQDQ, PMULL)
//! where the CPU has it, about 10 GB/s on one x86-64 core against 1.6 GB/s for the
//! slice-by-8 tables kept here as the reference ([`update_words`]). Little-endian words
//! are swapped into big-endian order through a small buffer that stays in L1.

use crc_fast::{CrcAlgorithm, Digest};

use crate::words::{ByteOrder, Order};

const POLY: u16 = 0x1021;

const fn byte_table() -> [u16; 256] {
    let mut t = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u16) << 8;
        let mut b = 0;
        while b < 8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ POLY
            } else {
                crc << 1
            };
            b += 1;
        }
        t[i] = crc;
        i += 1;
    }
    t
}

/// `TABLES[k][x]`: the CRC (from 0) of byte `x` followed by `k` zero bytes.
const fn tables() -> [[u16; 256]; 8] {
    let base = byte_table();
    let mut t = [[0u16; 256]; 8];
    t[0] = base;
    let mut k = 1;
    while k < 8 {
        let mut x = 0;
        while x < 256 {
            let prev = t[k - 1][x];
            t[k][x] = (prev << 8) ^ base[(prev >> 8) as usize];
            x += 1;
        }
        k += 1;
    }
    t
}

static TABLES: [[u16; 256]; 8] = tables();

/// Initial value of the register.
pub const INIT: u16 = 0xFFFF;

/// Feeds one byte.
#[inline(always)]
pub fn update_byte(crc: u16, byte: u8) -> u16 {
    (crc << 8) ^ TABLES[0][((crc >> 8) as u8 ^ byte) as usize]
}

/// Feeds a sequence of bytes in order.
pub fn update_bytes(mut crc: u16, bytes: &[u8]) -> u16 {
    for &b in bytes {
        crc = update_byte(crc, b);
    }
    crc
}

/// Feeds the words stored in `bytes` (an even number of bytes, in byte order `O`),
/// each most significant byte first.
#[inline]
pub fn update_words<O: Order>(mut crc: u16, bytes: &[u8]) -> u16 {
    let t = &TABLES;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        // The logical (MSB-first) bytes of four words.
        let w0 = O::word([c[0], c[1]]).to_be_bytes();
        let w1 = O::word([c[2], c[3]]).to_be_bytes();
        let w2 = O::word([c[4], c[5]]).to_be_bytes();
        let w3 = O::word([c[6], c[7]]).to_be_bytes();
        let b0 = w0[0] ^ (crc >> 8) as u8;
        let b1 = w0[1] ^ crc as u8;
        crc = t[7][b0 as usize]
            ^ t[6][b1 as usize]
            ^ t[5][w1[0] as usize]
            ^ t[4][w1[1] as usize]
            ^ t[3][w2[0] as usize]
            ^ t[2][w2[1] as usize]
            ^ t[1][w3[0] as usize]
            ^ t[0][w3[1] as usize];
    }
    for c in chunks.remainder().chunks_exact(2) {
        let w = O::word([c[0], c[1]]).to_be_bytes();
        crc = update_byte(update_byte(crc, w[0]), w[1]);
    }
    crc
}

/// The catalogue name of this CRC in `crc-fast`: poly 0x1021, init 0xFFFF, no reflection,
/// no final XOR (check value 0x29B1), i.e. CRC-16/CCITT-FALSE.
const ALGORITHM: CrcAlgorithm = CrcAlgorithm::Crc16Ibm3740;

/// Bytes swapped per step for little-endian data: small enough for L1, large enough for
/// the folding loop to run at full speed.
const SWAP_CHUNK: usize = 4096;

/// The CRC (from [`INIT`]) of the words stored in `bytes` (in byte order `O`), each fed
/// most significant byte first. An odd last byte is ignored, as in [`update_words`].
pub fn crc16_words<O: Order>(bytes: &[u8]) -> u16 {
    let bytes = &bytes[..bytes.len() & !1];
    // The CRC is 16 bits wide: the u64 result always fits.
    let narrow = |v: u64| (v & 0xFFFF) as u16;
    match O::ORDER {
        ByteOrder::Big => narrow(crc_fast::checksum(ALGORITHM, bytes)),
        ByteOrder::Little => SWAP_BUFFER.with(|cell| {
            let mut digest = Digest::new(ALGORITHM);
            // One buffer per thread, not zeroed again at every call.
            let mut buf = cell.borrow_mut();
            for chunk in bytes.chunks(SWAP_CHUNK) {
                let out = &mut buf[..chunk.len()];
                swap_pairs(chunk, out);
                digest.update(out);
            }
            narrow(digest.finalize())
        }),
    }
}

thread_local! {
    static SWAP_BUFFER: std::cell::RefCell<[u8; SWAP_CHUNK]> =
        const { std::cell::RefCell::new([0u8; SWAP_CHUNK]) };
}

/// Copies `src` into `dst` (same even length) swapping the two bytes of every word: with
/// AVX2 byte shuffles (32 bytes a step) where the CPU has them, else eight bytes a step.
#[inline]
pub(crate) fn swap_pairs(src: &[u8], dst: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 is present, checked just above.
        unsafe { swap_pairs_avx2(src, dst) };
        return;
    }
    swap_pairs_portable(src, dst);
}

/// [`swap_pairs`] eight bytes at a time, on any CPU.
fn swap_pairs_portable(src: &[u8], dst: &mut [u8]) {
    const LOW: u64 = 0x00FF_00FF_00FF_00FF;
    let mut d = dst.chunks_exact_mut(8);
    let mut s = src.chunks_exact(8);
    for (o, i) in (&mut d).zip(&mut s) {
        let mut w = [0u8; 8];
        w.copy_from_slice(i);
        let x = u64::from_ne_bytes(w);
        let y = ((x & LOW) << 8) | ((x >> 8) & LOW);
        o.copy_from_slice(&y.to_ne_bytes());
    }
    for (o, i) in d
        .into_remainder()
        .chunks_exact_mut(2)
        .zip(s.remainder().chunks_exact(2))
    {
        o[0] = i[1];
        o[1] = i[0];
    }
}

/// [`swap_pairs`] 32 bytes at a time with `vpshufb`.
///
/// # Safety
/// The CPU has AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn swap_pairs_avx2(src: &[u8], dst: &mut [u8]) {
    use std::arch::x86_64::{
        __m256i, _mm256_loadu_si256, _mm256_setr_epi8, _mm256_shuffle_epi8, _mm256_storeu_si256,
    };
    let n = src.len().min(dst.len());
    let steps = n / 32;
    let mask = _mm256_setr_epi8(
        1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14, 1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10,
        13, 12, 15, 14,
    );
    for k in 0..steps {
        // SAFETY: `32 * k + 32 <= n`, within both slices; unaligned loads and stores.
        unsafe {
            let v = _mm256_loadu_si256(src.as_ptr().add(32 * k).cast::<__m256i>());
            let v = _mm256_shuffle_epi8(v, mask);
            _mm256_storeu_si256(dst.as_mut_ptr().add(32 * k).cast::<__m256i>(), v);
        }
    }
    swap_pairs_portable(&src[32 * steps..n], &mut dst[32 * steps..n]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::words::{Be, Le};

    #[test]
    fn check_value() {
        assert_eq!(update_bytes(INIT, b"123456789"), 0x29B1);
    }

    #[test]
    fn words_are_fed_msb_first_in_both_orders() {
        let words: Vec<u16> = (0..37u16)
            .map(|i| i.wrapping_mul(0x9E37) ^ 0x1234)
            .collect();
        let be: Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).collect();
        let le: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        let reference = update_bytes(INIT, &be);
        assert_eq!(crc16_words::<Be>(&be), reference);
        assert_eq!(crc16_words::<Le>(&le), reference);
    }

    #[test]
    fn appending_the_crc_gives_zero() {
        let words = [0x0001u16, 0x8025, 0xABCD];
        let mut be: Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).collect();
        let c = crc16_words::<Be>(&be);
        be.extend_from_slice(&c.to_be_bytes());
        assert_eq!(crc16_words::<Be>(&be), 0);
    }

    #[test]
    fn folding_matches_the_tables_for_all_lengths_and_orders() {
        let words: Vec<u16> = (0..5000u32)
            .map(|i| (i.wrapping_mul(0x9E37_79B9) >> 7) as u16)
            .collect();
        let be: Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).collect();
        let le: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        let lengths = (0..600).chain([4094, 4096, 4098, 8190, 8192, 8194, 9999, 10_000]);
        for n in lengths {
            let reference = update_bytes(INIT, &be[..n & !1]);
            assert_eq!(crc16_words::<Be>(&be[..n]), reference, "BE, {n} bytes");
            assert_eq!(crc16_words::<Le>(&le[..n]), reference, "LE, {n} bytes");
            assert_eq!(update_words::<Le>(INIT, &le[..n & !1]), reference);
        }
    }

    #[test]
    fn slice_by_8_matches_bytewise_for_all_lengths() {
        let bytes: Vec<u8> = (0..200u32).map(|i| (i * 31 + 7) as u8).collect();
        for n in (0..bytes.len()).step_by(2) {
            assert_eq!(
                update_words::<Be>(INIT, &bytes[..n]),
                update_bytes(INIT, &bytes[..n])
            );
        }
    }

    #[test]
    fn swap_paths_agree_for_all_lengths() {
        let src: Vec<u8> = (0..300u32).map(|i| (i * 37 + 11) as u8).collect();
        for n in (0..src.len()).step_by(2) {
            let expected: Vec<u8> = src[..n]
                .chunks_exact(2)
                .flat_map(|p| [p[1], p[0]])
                .collect();
            let mut a = vec![0u8; n];
            swap_pairs(&src[..n], &mut a);
            assert_eq!(a, expected, "{n} bytes");
            let mut b = vec![0u8; n];
            swap_pairs_portable(&src[..n], &mut b);
            assert_eq!(b, expected, "{n} bytes, portable");
        }
    }
}
