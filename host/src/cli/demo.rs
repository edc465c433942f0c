//! `lockstep demo`: builds the first-party transforms and runs generated data through the
//! batch path and the online path, showing both give the same bytes, with timings.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use super::table;
use crate::datagen::{SplitMix64, generate};
use crate::runtime::batch;
use crate::runtime::{Runtime, RuntimeConfig};
use crate::toolchain::{self, BuildOptions};

/// The first-party transforms, relative to where `cargo run` builds this binary.
pub const DEFAULT_TRANSFORMS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../transforms");
/// Rows per call on the batch (backfill) path.
const BATCH_ROWS: usize = 8192;
/// One-row calls made on the online path.
const ONLINE_CALLS: usize = 2_000;

pub fn run(transforms: &Path, rows: u32) -> anyhow::Result<()> {
    let total = Instant::now();
    println!("Lockstep demo: one WebAssembly transform, batch and online, same bytes.\n");

    step("1. build the first-party transforms with cargo (wasm32, no WASI) + wit-component");
    let started = Instant::now();
    let built = toolchain::build(
        transforms,
        &BuildOptions {
            target_dir: None,
            quiet: true,
        },
    )
    .context("building the first-party transforms")?;
    println!(
        "   {} components in {}",
        built.len(),
        secs(started.elapsed())
    );

    let runtime = Runtime::new(RuntimeConfig::default())?;
    for (index, component) in built.iter().enumerate() {
        let started = Instant::now();
        let info = runtime
            .load(&component.bytes)
            .map_err(|e| anyhow::anyhow!("[{}] {e}", e.code()))?;
        runtime
            .smoke_test(&info.digest)
            .map_err(|e| anyhow::anyhow!("[{}] {e}", e.code()))?;
        let signature = &info.signature;
        step(&format!(
            "{}. {} {}  ({}, {:.0} KiB, loaded + smoke-tested in {})",
            index + 2,
            signature.name,
            signature.version,
            info.digest,
            component.bytes.len() as f64 / 1024.0,
            secs(started.elapsed())
        ));
        println!("   in:  {}", table::fields_line(&signature.inputs));
        println!("   out: {}", table::fields_line(&signature.outputs));

        let input = generate(&signature.inputs, rows as usize, index as u64 + 1);
        let started = Instant::now();
        let parts = (0..rows as usize)
            .step_by(BATCH_ROWS)
            .map(|start| {
                let end = (start + BATCH_ROWS).min(rows as usize);
                runtime.call(&info.digest, &batch::slice(&input, start..end))
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| anyhow::anyhow!("[{}] {e}", e.code()))?;
        let batch_output = batch::concat(&parts);
        let elapsed = started.elapsed();
        println!(
            "   batch path:  {rows} rows in {} batches of {BATCH_ROWS}: {} ({:.2} M rows/s)",
            parts.len(),
            secs(elapsed),
            f64::from(rows) / elapsed.as_secs_f64() / 1e6
        );

        let mut latencies = Vec::with_capacity(ONLINE_CALLS);
        let mut differences = 0;
        let mut rng = SplitMix64(index as u64 + 100);
        for _ in 0..ONLINE_CALLS.min(rows as usize) {
            let row = (rng.next_u64() % u64::from(rows)) as usize;
            let request = batch::slice(&input, row..row + 1);
            let started = Instant::now();
            let online = runtime
                .call(&info.digest, &request)
                .map_err(|e| anyhow::anyhow!("[{}] {e}", e.code()))?;
            latencies.push(started.elapsed());
            if batch::first_difference(&online, &batch::slice(&batch_output, row..row + 1))
                .is_some()
            {
                differences += 1;
            }
        }
        latencies.sort();
        let percentile = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize];
        println!(
            "   online path: {} one-row calls: median {:.1} µs, p99 {:.1} µs",
            latencies.len(),
            micros(percentile(0.5)),
            micros(percentile(0.99))
        );
        println!(
            "   skew check:  {} online rows compared with the batch output bit for bit: {} differ",
            latencies.len(),
            differences
        );
        anyhow::ensure!(differences == 0, "online and batch outputs differ");
        println!(
            "{}",
            table::batch_table(&batch::slice(&batch_output, 0..3), 3)
        );
    }
    println!("done in {}", secs(total.elapsed()));
    Ok(())
}

fn step(text: &str) {
    println!("\n{text}");
}

fn secs(duration: Duration) -> String {
    format!("{:.2}s", duration.as_secs_f64())
}

fn micros(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}
