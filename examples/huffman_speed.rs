//! Micro benchmark of the Huffman decoder (FORMAT.md 9.3) on one core, without Python:
//!
//!     cargo run --release --example huffman_speed [decoded MB] [groups|all] [B50A|B606]
//!
//! Payloads: detector-like words (as `src/simulate.rs` draws them: half below 0x1000,
//! half below 0x8000, with TRD channel/amplitude pairs) and uniformly random words, each
//! coded with both tables, decoded as one stream and as ~2 KB groups (with `groups`: the
//! groups only). Prints decoded MB/s (best of 5, thread CPU time). `benchmarks/huffman_bench.py` gives the figures of record.

use ams02::huffman::{decode, encode, stream_bytes, Table, B50A, B606};
use ams02::words::Le;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn detector_words(n: usize, rng: &mut Rng) -> Vec<u16> {
    let mut v = Vec::with_capacity(n);
    while v.len() < n {
        let r = rng.next();
        if r % 4 == 0 {
            // a TRD hit: channel, Landau-like amplitude x 8
            v.push((r >> 8) as u16 % 448);
            v.push(200 + ((r >> 20) as u16 % 600));
        } else {
            let w = (r >> 16) as u16;
            v.push(if w & 0x8000 != 0 { w & 0x0FFF } else { w });
        }
    }
    v.truncate(n);
    v
}

#[path = "common/cpu.rs"]
mod cpu;
use cpu::cpu_seconds;

fn time(mut f: impl FnMut()) -> f64 {
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let t = cpu_seconds();
        f();
        best = best.min(cpu_seconds() - t);
    }
    best
}

fn bench(name: &str, words: &[u16], t: &Table, groups_only: bool) {
    let group = 1024; // words per group: ~2 KB
    let streams: Vec<Vec<u8>> = words
        .chunks(group)
        .map(|g| stream_bytes::<Le>(&encode(g, t)))
        .collect();
    let whole = stream_bytes::<Le>(&encode(words, t));
    let n = words.len() * 2;
    let mut out = Vec::with_capacity(n);
    let s = if groups_only {
        f64::NAN
    } else {
        time(|| {
            out.clear();
            decode::<Le>(&whole, t, n, &mut out).expect("valid stream");
        })
    };
    assert!(groups_only || out.len() == n);
    let mut g_out = Vec::with_capacity(2 * group);
    let sg = time(|| {
        for st in &streams {
            g_out.clear();
            decode::<Le>(st, t, 65534, &mut g_out).expect("valid stream");
        }
    });
    println!(
        "{name:>9} {}: coded/decoded {:.3}, one stream {:7.0} MB/s, 2 KB groups {:7.0} MB/s",
        t.name(),
        whole.len() as f64 / n as f64,
        n as f64 / s / 1e6,
        n as f64 / sg / 1e6
    );
}

fn main() {
    let mb: f64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(16.0);
    let groups_only = std::env::args().nth(2).as_deref() == Some("groups");
    let n = (mb * 1e6 / 2.0) as usize;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let det = detector_words(n, &mut rng);
    let random: Vec<u16> = (0..n).map(|_| (rng.next() >> 24) as u16).collect();
    // A third argument names one table (B50A or B606) to measure alone.
    let only = std::env::args().nth(3);
    for t in [&B50A, &B606] {
        if only.as_deref().is_some_and(|o| o != t.name()) {
            continue;
        }
        bench("detector", &det, t, groups_only);
        bench("random", &random, t, groups_only);
    }
}
