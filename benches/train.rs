//! Training and inference speed of specs/dfn.recspec at batch 256 on simulated data, per CPU
//! backend: samples/s of one training step (forward, backward, Adam) and inference latency.
//!
//! `cargo bench --bench train` measures burn-flex and burn-ndarray; add `--features tch` (with libtorch set up, see README) for libtorch on the CPU.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use recspec::lower::{lower, Bindings, Program};
use recspec::runtime::exec::{forward, DeviceBatch, Mode};
use recspec::runtime::weights::Weights;
use std::path::{Path, PathBuf};

const BATCH: usize = 256;

fn data_dir() -> PathBuf {
    let dir = std::env::temp_dir().join("recspec-bench-data");
    if !dir.join("train.jsonl").exists() {
        let cfg = recspec::simulate::SimConfig { users: 300, impressions_per_user: 30, ..Default::default() };
        recspec::simulate::simulate(&cfg, &dir).expect("simulate");
    }
    dir
}

fn dfn(data: &Path) -> Program {
    let spec = Path::new(env!("CARGO_MANIFEST_DIR")).join("specs/dfn.recspec");
    let (_, checked) = recspec::app::compile_for_data(&spec, Some(data), None, &[]).unwrap();
    let graph = checked.graph.unwrap();
    lower(&graph, &Bindings::of(&graph)).unwrap()
}

fn devices() -> Vec<&'static str> {
    let mut d = vec!["cpu", "ndarray"];
    if cfg!(feature = "tch") {
        d.push("tch-cpu");
    }
    d
}

fn bench(c: &mut Criterion) {
    let data = data_dir();
    let plan = dfn(&data);
    let schema = recspec::data::Schema::from_program(&plan).unwrap();
    let mut loader = recspec::data::Loader::open(&data.join("train.jsonl"), &schema, BATCH, false).unwrap();
    let host = loader.next_batch().unwrap().unwrap();
    let mut group = c.benchmark_group("dfn batch 256");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.sample_size(10);
    for name in devices() {
        let device = recspec::runtime::parse_device(name).unwrap();
        let ad = device.clone().autodiff();
        let mut weights = Weights::init(&plan, &ad, 1);
        let mut optim = burn::optim::AdamConfig::new().init();
        let batch = DeviceBatch::from_host(&host, &ad);
        group.bench_function(format!("train step {name}"), |b| {
            b.iter(|| {
                let fwd = forward(&plan, &weights, &batch, Mode::Train, 0);
                let grads = burn::optim::GradientsParams::from_grads(fwd.total.backward(), &weights);
                weights = optim.step(1e-3, weights.clone(), grads);
            })
        });
        let eval_weights = Weights::init(&plan, &device, 1);
        let eval_batch = DeviceBatch::from_host(&host, &device);
        group.bench_function(format!("inference {name}"), |b| {
            b.iter(|| {
                let fwd = forward(&plan, &eval_weights, &eval_batch, Mode::Eval, 0);
                if let Some(recspec::runtime::tensor::Value::Float(x)) = fwd.named(&plan, "p") {
                    x.flat.clone().into_data();
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
