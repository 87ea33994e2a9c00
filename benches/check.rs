//! Front-end speed: `recspec check specs/dfn.recspec` end to end (read, parse, resolve, shape
//! check, lower), and the canonical graph rendering. Target: well under 20 ms per check.

use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use std::path::Path;

fn check_dfn(c: &mut Criterion) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("specs/dfn.recspec");
    c.bench_function("check specs/dfn.recspec", |b| {
        b.iter(|| {
            let (_, checked) = recspec::compile_file(black_box(&path), &[]).unwrap();
            assert!(!checked.has_errors());
            checked
        })
    });
    let (_, checked) = recspec::compile_file(&path, &[]).unwrap();
    let graph = checked.graph.unwrap();
    c.bench_function("render graph dfn", |b| {
        b.iter(|| recspec::render::emit(black_box(&graph), recspec::render::Emit::Graph).unwrap())
    });
    let text = std::fs::read_to_string(&path).unwrap();
    c.bench_function("parse dfn", |b| b.iter(|| recspec::syntax::parse(Default::default(), black_box(&text)).unwrap()));
}

criterion_group!(benches, check_dfn);
criterion_main!(benches);
