//! Speed of the block walk (`index::build`) on one core, on a clean simulated run:
//!
//!     cargo run --release --example walk_speed [path] [MB] [other_block_every]
//!
//! The run (the simulator's defaults: flight layout, coded groups, a slot of non-event
//! blocks every `other_block_every` events, default 20) is written to `path` once (default
//! `/tmp/ams02_walk_speed.dat`, about `MB` MB, default 1000) and read back; the walk is
//! timed 5 times (thread CPU time) and the best is printed (MB/s).

use ams02::index;
use ams02::simulate::{simulate_to_path, SimConfig};
use ams02::words::ByteOrder;

#[path = "common/cpu.rs"]
mod cpu;
use cpu::cpu_seconds;

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .unwrap_or_else(|| "/tmp/ams02_walk_speed.dat".into());
    let mb: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(1000);
    let every: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(20);
    let path = std::path::PathBuf::from(path);
    if !path.exists() {
        // About 2.3 KB an event with the defaults.
        let cfg = SimConfig {
            n_events: mb * 1_000_000 / 2_300,
            seed: 7,
            other_block_every: every,
            ..SimConfig::default()
        };
        simulate_to_path(&path, &cfg).expect("simulate");
    }
    let bytes = std::fs::read(&path).expect("read");
    let mut best = f64::INFINITY;
    let mut n = (0, 0, 0);
    for _ in 0..5 {
        let t = cpu_seconds();
        let ix = index::build(&bytes, ByteOrder::Little);
        best = best.min(cpu_seconds() - t);
        n = (ix.blocks.len(), ix.events.len(), ix.problems.len());
    }
    println!(
        "{} MB, {} blocks, {} events, {} problems: best of 5 {:.3} CPU s, {:.0} MB/s",
        bytes.len() / 1_000_000,
        n.0,
        n.1,
        n.2,
        best,
        bytes.len() as f64 / 1e6 / best
    );
}
