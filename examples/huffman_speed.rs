//! Micro benchmark of the Huffman decoder (FORMAT.md 9.3) on one core, without Python:
//!
//!     cargo run --release --example huffman_speed [decoded MB] [groups|all] [B50A|B606]
//!     cargo run --release --example huffman_speed -- --file PATH
//!
//! Payloads: detector-like words (as `src/simulate.rs` draws them: half below 0x1000,
//! half below 0x8000, with TRD channel/amplitude pairs) and uniformly random words, each
//! coded with both tables, decoded as one stream and as ~2 KB groups (with `groups`: the
//! groups only), and the groups 32 at a time side by side ([`Batch`]). Prints decoded MB/s (best of 5, thread CPU time). `benchmarks/huffman_bench.py` gives the figures of record.
//!
//! With `--file PATH` the payload is the first 64 MB of that file's bytes, and each table's
//! line also gives the loop alone: the same stream decoded by four lanes of a plain
//! table lookup a code (2-byte entries, one byte stored a lookup, each lane started at a
//! code boundary the encoder knows), with none of the decoder's checks (END, invalid
//! patterns, bounds, lanes joined where they meet). That is the most a one-code-a-lookup
//! decoder of this machine can make of these bytes; `zstd -b1 PATH` is a peer on them.

use ams02::huffman::{decode, encode, stream_bytes, Batch, Table, B50A, B606};
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
    // The groups side by side, 32 a batch (as the event decoder batches them).
    let mut batch = Batch::default();
    let jobs: Vec<(&[u8], usize)> = streams.iter().map(|s| (s.as_slice(), 65534)).collect();
    let mut got = 0;
    let sb = time(|| {
        got = 0;
        for b in jobs.chunks(32) {
            batch.decode::<Le>(b, t);
            got += (0..batch.len())
                .map(|i| batch.get(i).and_then(|r| r.ok()).map_or(0, |r| r.0.len()))
                .sum::<usize>();
        }
    });
    assert_eq!(got, n, "the batches decode every group");
    println!(
        "{name:>9} {}: coded/decoded {:.3}, one stream {:7.0} MB/s, 2 KB groups {:7.0} MB/s, side by side {:7.0} MB/s",
        t.name(),
        whole.len() as f64 / n as f64,
        n as f64 / s / 1e6,
        n as f64 / sg / 1e6,
        n as f64 / sb / 1e6
    );
}

/// The codes' bytes of `words` (high byte first) MSB first, the bit offsets where
/// symbols `0, n/4, 2n/4, 3n/4` start, and the 2048-entry table `symbol << 8 | length`.
fn plain_stream(words: &[u16], t: &Table) -> (Vec<u8>, [usize; 4], Vec<u16>) {
    let codes = t.codes();
    let n = words.len() * 2;
    let mut starts = [0usize; 4];
    let mut bits = 0usize;
    for (i, b) in words.iter().flat_map(|w| w.to_be_bytes()).enumerate() {
        if i % (n / 4) == 0 && i / (n / 4) < 4 {
            starts[i / (n / 4)] = bits;
        }
        bits += usize::from(codes[usize::from(b)].1);
    }
    let mut bytes = stream_bytes::<ams02::words::Be>(&encode(words, t));
    bytes.extend_from_slice(&[0; 16]);
    let mut lut = vec![0u16; 2048];
    for (sym, &(code, len)) in codes.iter().enumerate() {
        let from = usize::from(code) << (11 - len);
        for e in &mut lut[from..from + (1 << (11 - len))] {
            *e = (sym as u16) << 8 | u16::from(len);
        }
    }
    (bytes, starts, lut)
}

/// Four lanes of one lookup a code over `bytes` from `starts`, `q` bytes each (less a
/// pass), into `out` (`4 * q` bytes).
fn plain_lanes(bytes: &[u8], starts: [usize; 4], q: usize, lut: &[u16], out: &mut [u8]) {
    let mut pos = starts;
    let (o0, rest) = out.split_at_mut(q);
    let (o1, rest) = rest.split_at_mut(q);
    let (o2, o3) = rest.split_at_mut(q);
    let outs = [o0, o1, o2, o3];
    for k in (0..q.saturating_sub(8)).step_by(5) {
        let mut w = [0u64; 4];
        for i in 0..4 {
            let at = pos[i] >> 3;
            let x = u64::from_be_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
            w[i] = x << (pos[i] & 7);
        }
        let mut used = [0usize; 4];
        for j in 0..5 {
            for i in 0..4 {
                let e = lut[(w[i] >> 53) as usize];
                outs[i][k + j] = (e >> 8) as u8;
                w[i] <<= e & 15;
                used[i] += usize::from(e & 15);
            }
        }
        for i in 0..4 {
            pos[i] += used[i];
        }
    }
}

fn file_bench(path: &str) {
    let data = std::fs::read(path).expect("readable file");
    let data = &data[..data.len().min(64 << 20) / 8 * 8];
    let words: Vec<u16> = data
        .chunks_exact(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect();
    for t in [&B50A, &B606] {
        bench("file", &words, t, false);
        let (bytes, starts, lut) = plain_stream(&words, t);
        let q = data.len() / 4;
        let mut out = vec![0u8; data.len()];
        let s = time(|| plain_lanes(&bytes, starts, q, &lut, &mut out));
        let right = (0..4).all(|i| out[i * q..i * q + q / 2] == data[i * q..i * q + q / 2]);
        assert!(right, "the plain lanes decode the stream");
        println!(
            "{:>9} {}: the loop alone (four plain lanes) {:7.0} MB/s",
            "file",
            t.name(),
            data.len() as f64 / s / 1e6
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--file") {
        file_bench(args.get(i + 1).expect("--file PATH"));
        return;
    }
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
