//! What a sketch costs the worker: `record` of timer values into a sketch
//! whose buckets already span them (the common case on the hot path), at the
//! scale such values settle at and at the top scale (a series whose values
//! are all equal stays there, and finds its index with `log2`); `quantile`
//! on a sketch of a million samples; `merge` of two such sketches.
//!
//! `cargo bench -p zibrato-backend-api --bench sketch`

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::hint::black_box;
use zibrato_backend_api::sketch::{Sketch, MAX_SCALE};

/// Log-normal timer values (median 20 ms, σ = 0.5) from a seeded splitmix64.
fn timer_values(n: usize, seed: u64) -> Vec<f64> {
    let mut state = seed;
    let mut unit = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (((z ^ (z >> 31)) >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    (0..n)
        .map(|_| {
            let normal = (-2.0 * unit().ln()).sqrt() * (std::f64::consts::TAU * unit()).cos();
            0.020 * (0.5 * normal).exp()
        })
        .collect()
}

fn sketch_of(values: &[f64]) -> Sketch {
    let mut sketch = Sketch::new();
    for &v in values {
        let _ = sketch.record(v);
    }
    sketch
}

fn record(c: &mut Criterion) {
    let values = timer_values(4096, 1);
    let mut group = c.benchmark_group("sketch/record");
    group.throughput(Throughput::Elements(values.len() as u64));

    let mut settled = sketch_of(&values);
    group.bench_function(format!("timers at scale {}", settled.scale()), |b| {
        b.iter(|| {
            for &v in &values {
                let _ = settled.record(black_box(v));
            }
        })
    });

    let mut constant = sketch_of(&[0.020]);
    assert_eq!(constant.scale(), MAX_SCALE);
    let near: Vec<f64> = values.iter().map(|v| 0.020 + v * 1e-12).collect();
    group.bench_function(format!("near-constant at scale {MAX_SCALE}"), |b| {
        b.iter(|| {
            for &v in &near {
                let _ = constant.record(black_box(v));
            }
        })
    });
    group.finish();
}

fn read(c: &mut Criterion) {
    let sketch = sketch_of(&timer_values(1_000_000, 2));
    c.bench_function("sketch/quantile p99 of 1M samples", |b| {
        b.iter(|| black_box(&sketch).quantile(black_box(0.99)))
    });
    let other = sketch_of(&timer_values(1_000_000, 3));
    c.bench_function("sketch/merge of two 1M-sample sketches", |b| {
        b.iter_batched_ref(
            || sketch.clone(),
            |merged| merged.merge(black_box(&other)),
            BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, record, read);
criterion_main!(benches);
