//! CRC-16/CCITT-FALSE over 16-bit words (FORMAT.md section 4.2).
//!
//! Polynomial 0x1021, initial value 0xFFFF, not reflected, no final XOR; each word is fed
//! most significant byte first whatever its byte order on disk. Slice-by-8 tables make it
//! fast enough not to dominate decoding.

use crate::words::Order;

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

/// The CRC of the words stored in `bytes`.
pub fn crc16_words<O: Order>(bytes: &[u8]) -> u16 {
    update_words::<O>(INIT, bytes)
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
    fn slice_by_8_matches_bytewise_for_all_lengths() {
        let bytes: Vec<u8> = (0..200u32).map(|i| (i * 31 + 7) as u8).collect();
        for n in (0..bytes.len()).step_by(2) {
            assert_eq!(
                crc16_words::<Be>(&bytes[..n]),
                update_bytes(INIT, &bytes[..n])
            );
        }
    }
}
