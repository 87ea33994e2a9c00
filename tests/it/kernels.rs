//! Runtime kernels on tiny hand-computed inputs, and gradients against finite differences.

use burn::prelude::*;
use recspec::data::{Column, HostBatch};
use recspec::lower::{lower, Bindings, Program};
use recspec::runtime::exec::{forward, DeviceBatch, Mode};
use recspec::runtime::tensor::Value;
use recspec::runtime::weights::Weights;

/// Compiles and lowers a spec that must be valid.
fn plan(spec: &str) -> Program {
    let (program, checked) = recspec::compile_str("kernel.recspec", spec, &[]);
    let errors: Vec<_> = checked.diagnostics.iter().filter(|d| d.is_error()).cloned().collect();
    assert!(errors.is_empty(), "{}", recspec::diag::render(&program.sources, &errors));
    let graph = checked.graph.unwrap();
    lower(&graph, &Bindings::of(&graph)).unwrap()
}

/// A batch of named float inputs `(name, data, shape)`, id inputs, masks and labels, put in the
/// program's slots by [`Batch::device`].
#[derive(Default)]
struct Batch {
    len: usize,
    inputs: Vec<(String, Column)>,
    labels: Vec<(String, Vec<f32>)>,
}

impl Batch {
    fn new(len: usize) -> Batch {
        Batch { len, ..Default::default() }
    }
    fn floats(mut self, name: &str, data: &[f32], shape: &[usize]) -> Batch {
        self.inputs.push((name.into(), Column::floats(data.to_vec(), shape.to_vec())));
        self
    }
    fn ids(mut self, name: &str, data: &[i64], shape: &[usize]) -> Batch {
        self.inputs.push((name.into(), Column::ids(data.to_vec(), shape.to_vec())));
        self
    }
    fn mask(mut self, name: &str, data: &[bool], shape: &[usize]) -> Batch {
        self.inputs.push((name.into(), Column::mask(data.to_vec(), shape.to_vec())));
        self
    }
    fn label(mut self, name: &str, data: &[f32]) -> Batch {
        self.labels.push((name.into(), data.to_vec()));
        self
    }
    fn device(&self, plan: &Program, device: &Device) -> DeviceBatch {
        let mut hb = HostBatch {
            len: self.len,
            users: (0..self.len as u64).collect(),
            inputs: vec![None; plan.input_count],
            labels: vec![vec![]; plan.labels.len()],
        };
        for (name, column) in &self.inputs {
            let slot =
                plan.find(name).filter(|v| v.0 < plan.input_count).unwrap_or_else(|| panic!("no input `{name}`"));
            hb.inputs[slot.0] = Some(column.clone());
        }
        for (name, data) in &self.labels {
            let l = plan.labels.iter().position(|l| l == name).unwrap_or_else(|| panic!("no label `{name}`"));
            hb.labels[l] = data.clone();
        }
        DeviceBatch::from_host(&hb, device)
    }
}

fn values(v: &Value) -> Vec<f32> {
    v.to_host()
}

fn run(plan: &Program, w: &Weights, b: &Batch, node: &str) -> Vec<f32> {
    let device = Device::flex();
    let fwd = forward(plan, w, &b.device(plan, &device), Mode::Eval, 0);
    values(fwd.named(plan, node).unwrap())
}

fn close(a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len(), "{a:?} vs {b:?}");
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() <= tol * (1.0 + y.abs()), "{a:?} vs {b:?}");
    }
}

/// Replaces the weights of one instance parameter.
fn set(plan: &Program, w: &mut Weights, instance: &str, param: &str, data: &[f32]) {
    let i = plan.param(instance, param).unwrap().0;
    let t = Tensor::<1>::from_data(TensorData::new(data.to_vec(), [data.len()]), &Device::flex());
    w.tensors[i] = burn::module::Param::from_tensor(t);
}

#[test]
fn orthogonal_projection_removes_the_component() {
    let p = plan("model m {\n dim D = 2;\n input a: float[B, D];\n input b: float[B, D];\n output o = orthogonal(a, to: b);\n output q = project(a, onto: b);\n}\n");
    let w = Weights::init(&p, &Device::flex(), 0);
    let b = Batch::new(1).floats("a", &[3.0, 4.0], &[1, 2]).floats("b", &[1.0, 0.0], &[1, 2]);
    close(&run(&p, &w, &b, "o"), &[0.0, 4.0], 1e-5);
    close(&run(&p, &w, &b, "q"), &[3.0, 0.0], 1e-5);
}

#[test]
fn fm_equals_the_explicit_pairwise_sum() {
    let p = plan("model m {\n dim F = 3;\n dim D = 2;\n input x: float[B, F, D];\n output bi = fm(x);\n output s = fm(x, reduce: true);\n}\n");
    let w = Weights::init(&p, &Device::flex(), 0);
    let x = [1.0, 2.0, 3.0, -1.0, 0.5, 4.0];
    let b = Batch::new(1).floats("x", &x, &[1, 3, 2]);
    let v = |i: usize| [x[2 * i], x[2 * i + 1]];
    let mut pair = [0.0f32; 2];
    for i in 0..3 {
        for j in i + 1..3 {
            for (k, slot) in pair.iter_mut().enumerate() {
                *slot += v(i)[k] * v(j)[k];
            }
        }
    }
    close(&run(&p, &w, &b, "bi"), &pair, 1e-5);
    close(&run(&p, &w, &b, "s"), &[pair[0] + pair[1]], 1e-5);
}

#[test]
fn masked_softmax_and_pooling_ignore_padding() {
    let spec = "model m {\n dim T = 3;\n dim D = 2;\n dim V = 10;\n seq s: id[B, T] vocab V;\n input x: float[B, T];\n input e: float[B, T, D];\n \
                output p = masked_softmax(x, mask: s.mask);\n output mean = pool(e, mask: s.mask, mode: mean);\n output sum_all = pool(e, mask: s.mask, mode: sum, padding: include);\n \
                output mx = pool(e, mask: s.mask, mode: max);\n output att = attention_pool(values: e, scores: x, mask: s.mask);\n}\n";
    let p = plan(spec);
    let w = Weights::init(&p, &Device::flex(), 0);
    let b = Batch::new(1)
        .ids("s", &[1, 2, 0], &[1, 3])
        .mask("s.mask", &[true, true, false], &[1, 3])
        .floats("x", &[0.0, 0.0, 100.0], &[1, 3])
        .floats("e", &[1.0, 2.0, 3.0, 4.0, 100.0, 100.0], &[1, 3, 2]);
    close(&run(&p, &w, &b, "p"), &[0.5, 0.5, 0.0], 1e-6);
    close(&run(&p, &w, &b, "mean"), &[2.0, 3.0], 1e-6);
    close(&run(&p, &w, &b, "sum_all"), &[104.0, 106.0], 1e-6);
    close(&run(&p, &w, &b, "mx"), &[3.0, 4.0], 1e-6);
    close(&run(&p, &w, &b, "att"), &[2.0, 3.0], 1e-6);
}

#[test]
fn self_attention_output_does_not_depend_on_padded_items() {
    let spec =
        "model m {\n dim T = 4;\n dim D = 4;\n dim V = 10;\n seq s: id[B, T] vocab V;\n input e: float[B, T, D];\n \
                output h = pool(SelfAttention(heads: 2)(e, s.mask), mask: s.mask, mode: mean);\n}\n";
    let p = plan(spec);
    let w = Weights::init(&p, &Device::flex(), 3);
    let valid = [0.1, 0.2, -0.3, 0.4, 0.5, -0.6, 0.7, 0.8];
    let mut a = valid.to_vec();
    a.extend([9.0; 8]);
    let mut c = valid.to_vec();
    c.extend([-5.0; 8]);
    let batch = |e: &[f32]| {
        Batch::new(1).ids("s", &[1, 2, 0, 0], &[1, 4]).mask("s.mask", &[true, true, false, false], &[1, 4]).floats(
            "e",
            e,
            &[1, 4, 4],
        )
    };
    close(&run(&p, &w, &batch(&a), "h"), &run(&p, &w, &batch(&c), "h"), 1e-6);
}

#[test]
fn gru_keeps_the_last_valid_state() {
    let spec = "model m {\n dim T = 3;\n dim D = 2;\n dim V = 10;\n seq s: id[B, T] vocab V;\n input e: float[B, T, D];\n output h = GRU(hidden: 3)(e, s.mask);\n}\n";
    let p = plan(spec);
    let w = Weights::init(&p, &Device::flex(), 1);
    let with_pad = Batch::new(1).ids("s", &[1, 2, 0], &[1, 3]).mask("s.mask", &[true, true, false], &[1, 3]).floats(
        "e",
        &[0.1, 0.2, 0.3, 0.4, 7.0, 7.0],
        &[1, 3, 2],
    );
    let other_pad = Batch::new(1).ids("s", &[1, 2, 0], &[1, 3]).mask("s.mask", &[true, true, false], &[1, 3]).floats(
        "e",
        &[0.1, 0.2, 0.3, 0.4, -3.0, 2.0],
        &[1, 3, 2],
    );
    let a = run(&p, &w, &with_pad, "h");
    close(&a, &run(&p, &w, &other_pad, "h"), 1e-6);
    assert!(a.iter().any(|x| x.abs() > 1e-4));
}

#[test]
fn losses_have_the_textbook_values() {
    let spec = "model m {\n dim V = 3;\n input z: float[B, 1];\n input logits: float[B, V];\n input y: id[B] vocab V;\n label click, neg;\n \
                let p = sigmoid(z);\n let dist = softmax(logits);\n loss a = bce(p, label: click);\n loss b = bce_logits(z, label: click);\n \
                loss c = nll(1 - p, on: neg);\n loss d = softmax_ce(dist, target: y);\n loss e = not_to_recommend(dist, target: y, on: neg);\n}\n";
    let p = plan(spec);
    let w = Weights::init(&p, &Device::flex(), 0);
    let b = Batch::new(2)
        .floats("z", &[0.0, 2.0], &[2, 1])
        .floats("logits", &[0.0, 0.0, 0.0, 1.0, 2.0, 3.0], &[2, 3])
        .ids("y", &[1, 2], &[2])
        .label("click", &[1.0, 0.0])
        .label("neg", &[0.0, 1.0]);
    let s2 = 1.0 / (1.0 + (-2.0f32).exp());
    close(&run(&p, &w, &b, "loss/a"), &[std::f32::consts::LN_2, -(1.0 - s2).ln()], 1e-5);
    close(&run(&p, &w, &b, "loss/b"), &[std::f32::consts::LN_2, -(1.0 - s2).ln()], 1e-5);
    close(&run(&p, &w, &b, "loss/c"), &[0.0, -(1.0 - s2).ln()], 1e-5);
    let soft2 = (3.0f32).exp() / (1.0f32.exp() + 2.0f32.exp() + 3.0f32.exp());
    close(&run(&p, &w, &b, "loss/d"), &[3.0f32.ln(), -soft2.ln()], 1e-5);
    close(&run(&p, &w, &b, "loss/e"), &[0.0, -(1.0 - soft2).ln()], 1e-5);
}

#[test]
fn not_to_recommend_gradient_stays_finite_as_p_goes_to_zero() {
    let spec = "model m {\n dim V = 4;\n dim D = 2;\n input s: float[B, D];\n input y: id[B] vocab V;\n label neg;\n \
                let items = Embedding(vocab: V, dim: D);\n let p = softmax(item_logits(s, table: items));\n loss ntr = not_to_recommend(p, target: y, on: neg);\n}\n";
    let p = plan(spec);
    let device = Device::flex().autodiff();
    let mut w = Weights::init(&p, &device, 0);
    // Item 0 is pushed far from the user state: p(0|s) underflows towards 0.
    let table: Vec<f32> = vec![-50.0, -50.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0];
    let i = p.param("items", "table").unwrap().0;
    w.tensors[i] = burn::module::Param::from_tensor(Tensor::<1>::from_data(TensorData::new(table, [8]), &device));
    let b = Batch::new(1).floats("s", &[1.0, 1.0], &[1, 2]).ids("y", &[0], &[1]).label("neg", &[1.0]);
    let fwd = forward(&p, &w, &b.device(&p, &device), Mode::Train, 0);
    let grads = fwd.total.backward();
    let g = w.tensors[i].val().grad(&grads).unwrap().into_data().convert::<f32>().as_slice::<f32>().unwrap().to_vec();
    assert!(g.iter().all(|x| x.is_finite()), "{g:?}");
    let loss: f32 = fwd.total.into_scalar();
    assert!(loss.is_finite() && loss < 1e-6, "-log(1 - p) with p -> 0 is 0, found {loss}");
}

#[test]
fn memory_reads_before_writing_and_returns_the_write_summary() {
    let spec = "model m {\n dim K = 2;\n input key: float[B, K];\n input content: float[B, K];\n output r = Memory(slots: 2, dim: 2, output: both)(key: key, write: content);\n}\n";
    let p = plan(spec);
    let device = Device::flex();
    let mut w = Weights::init(&p, &device, 0);
    let inst = "r";
    set(&p, &mut w, inst, "slots", &[1.0, 0.0, 0.0, 1.0]);
    for key in ["read_key", "write_key"] {
        set(&p, &mut w, inst, &format!("{key}.weight"), &[1.0, 0.0, 0.0, 1.0]);
        set(&p, &mut w, inst, &format!("{key}.bias"), &[0.0, 0.0]);
    }
    // erase = sigmoid(30) ~ 1 on both dims; add = tanh(0) = 0: the addressed slots are wiped.
    set(&p, &mut w, inst, "erase.weight", &[0.0, 0.0, 0.0, 0.0]);
    set(&p, &mut w, inst, "erase.bias", &[30.0, 30.0]);
    set(&p, &mut w, inst, "add.weight", &[0.0, 0.0, 0.0, 0.0]);
    set(&p, &mut w, inst, "add.bias", &[0.0, 0.0]);
    // The read key points at slot 0, the write key at slot 1.
    let b = Batch::new(1).floats("key", &[100.0, 0.0], &[1, 2]).floats("content", &[0.0, 100.0], &[1, 2]);
    let fwd = forward(&p, &w, &b.device(&p, &device), Mode::Train, 0);
    assert_eq!(fwd.state.len(), 1, "training updates the memory state");
    let mem = fwd.state[0].1.clone().into_data().convert::<f32>().try_to_vec::<f32>().unwrap();
    // Cosine 1 vs 0 gives weights e/(e+1) and 1/(e+1); each slot keeps 1 - w_write of its value.
    let w0 = 1.0f32.exp() / (1.0f32.exp() + 1.0);
    close(&mem, &[w0, 0.0, 0.0, 1.0 - w0], 1e-4);
    // r (eq. 11) reads the memory before the write; q (eq. 18) is the write-weighted new memory.
    let out = values(fwd.named(&p, "r").unwrap());
    close(&out, &[w0, 1.0 - w0, (1.0 - w0) * w0, w0 * (1.0 - w0)], 1e-4);
    let eval = forward(&p, &w, &b.device(&p, &device), Mode::Eval, 0);
    assert!(eval.state.is_empty(), "evaluation leaves the memory alone");
}

#[test]
fn sample_valid_picks_valid_positions_and_nonempty_flags_rows() {
    let spec = "model m {\n dim T = 4;\n dim V = 9;\n seq s: id[B, T] vocab V;\n input e: float[B, T, 1];\n output y = sample_valid(e, mask: s.mask);\n output any = nonempty(s.mask);\n}\n";
    let p = plan(spec);
    let device = Device::flex();
    let w = Weights::init(&p, &device, 0);
    // Row 0 has valid positions 0 and 2 (values 1 and 3); row 1 has none.
    let b = Batch::new(2)
        .ids("s", &[1, 0, 3, 0, 0, 0, 0, 0], &[2, 4])
        .mask("s.mask", &[true, false, true, false, false, false, false, false], &[2, 4])
        .floats("e", &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0], &[2, 4, 1]);
    let eval = forward(&p, &w, &b.device(&p, &device), Mode::Eval, 0);
    close(&values(eval.named(&p, "y").unwrap()), &[3.0, 0.0], 1e-6);
    close(&values(eval.named(&p, "any").unwrap()), &[1.0, 0.0], 1e-6);
    let mut seen = std::collections::BTreeSet::new();
    for step in 0..40 {
        let v = values(forward(&p, &w, &b.device(&p, &device), Mode::Train, step).named(&p, "y").unwrap());
        assert!(v[0] == 1.0 || v[0] == 3.0, "padding was sampled: {v:?}");
        assert_eq!(v[1], 0.0);
        seen.insert(v[0] as i32);
    }
    assert_eq!(seen.len(), 2, "training samples every valid position");
}

/// Every op with learnable weights or a differentiable path: autodiff gradients of a random
/// projection of the output agree with central finite differences.
#[test]
fn gradients_match_finite_differences() {
    let specs = [
        ("Linear", "output y = tanh(Linear(out: 3)(x));"),
        ("MLP", "output y = MLP(units: [4, 2], act: tanh, out_act: sigmoid)(x);"),
        ("LayerNorm", "output y = LayerNorm()(Linear(out: 4)(x));"),
        ("SelfAttention", "output y = SelfAttention(heads: 2, residual: true, layer_norm: true)(Linear(out: 4)(e), s.mask);"),
        ("GRU", "output y = GRU(hidden: 3, output: all)(e, s.mask);"),
        ("PositionEmbedding", "output y = Linear(out: 2)(PositionEmbedding(len: T, dim: 3, mode: concat)(e));"),
        ("Embedding", "output y = tanh(Embedding(vocab: V, dim: 3)(s));"),
        ("Wide", "output y = Wide(vocab: V)(s);"),
        ("MMoE", "output y = MMoE(experts: 2, units: [3], tasks: 2, act: tanh)(x);"),
        ("Memory", "output y = Memory(slots: 3, dim: 2, output: both)(key: x, write: Linear(out: 2)(x));"),
        ("fm", "output y = fm(Linear(out: 3)(e));"),
        ("attention_pool", "let v = Linear(out: 2)(e);\n output y = attention_pool(values: v, scores: reduce_sum(v, axis: 2), mask: s.mask);"),
        ("pool", "output y = pool(Linear(out: 2)(e), mask: s.mask, mode: mean);"),
        ("cosine", "let a = Linear(out: 3)(x);\n output y = cosine(a, Linear(out: 3)(x));"),
        ("orthogonal", "let a = Linear(out: 3)(x);\n output y = orthogonal(a, to: Linear(out: 3)(x));"),
        ("masked_softmax", "output y = masked_softmax(reduce_sum(Linear(out: 2)(e), axis: 2), mask: s.mask);"),
        ("item_logits", "let items = Embedding(vocab: V, dim: K);\n output y = softmax(item_logits(Linear(out: K)(x), table: items));"),
        ("concat/stack/slice", "let a = Linear(out: 2)(x);\n output y = slice(stack(concat(a, a * a, axis: -1), concat(a * 2.0 - 1.0, a, axis: -1), axis: 1), axis: 2, start: 1, len: 2);"),
        ("triplet", "let a = Linear(out: 3)(x);\n loss t = triplet(a, Linear(out: 3)(x), Linear(out: 3)(x), margin: 1.0);\n output y = a;"),
        ("sample_valid", "output y = sample_valid(Linear(out: 2)(e), mask: s.mask);"),
    ];
    for (name, body) in specs {
        let spec = format!("model m {{\n dim K = 3;\n dim T = 3;\n dim V = 6;\n input x: float[B, K];\n input e: float[B, T, K];\n seq s: id[B, T] vocab V;\n {body}\n}}\n");
        let (program, checked) = recspec::compile_str("fd.recspec", &spec, &[]);
        let errors: Vec<_> = checked.diagnostics.iter().filter(|d| d.is_error()).cloned().collect();
        assert!(errors.is_empty(), "{name}: {}", recspec::diag::render(&program.sources, &errors));
        let graph = checked.graph.unwrap();
        let p = lower(&graph, &Bindings::of(&graph)).unwrap();
        check_gradients(name, &p);
    }
}

fn check_gradients(name: &str, p: &Program) {
    let device = Device::flex().autodiff();
    let w = Weights::init(p, &device, 11);
    let b = Batch::new(2)
        .floats("x", &[0.3, -0.7, 0.5, 0.9, 0.1, -0.4], &[2, 3])
        .floats("e", &(0..18).map(|i| ((i * 7 % 11) as f32 - 5.0) / 7.0).collect::<Vec<_>>(), &[2, 3, 3])
        .ids("s", &[1, 2, 3, 4, 5, 0], &[2, 3])
        .mask("s.mask", &[true, true, true, true, true, false], &[2, 3]);
    let db = b.device(p, &device);
    let y_slot = p.output("y").expect("output y");
    let objective = |w: &Weights| -> Tensor<1> {
        let fwd = forward(p, w, &db, Mode::Eval, 0);
        let y = match fwd.value(y_slot) {
            Some(Value::Float(x)) => x.flat.clone(),
            _ => unreachable!(),
        };
        let n = y.dims()[0];
        let proj: Vec<f32> = (0..n).map(|i| ((i * 5 % 7) as f32 - 3.0) / 3.0).collect();
        let mut total = (y * Tensor::<1>::from_data(TensorData::new(proj, [n]), &device)).sum();
        for (term, l) in p.losses.iter().zip(fwd.losses) {
            total = total + l.mul_scalar(term.weight);
        }
        total
    };
    let grads = objective(&w).backward();
    let mut checked = 0;
    for (i, info) in p.params.iter().enumerate() {
        if info.role == recspec::lower::ParamRole::State {
            continue;
        }
        let Some(g) = w.tensors[i].val().grad(&grads) else { continue };
        let g = g.into_data().convert::<f32>().as_slice::<f32>().unwrap().to_vec();
        let base = w.tensors[i].val().into_data().convert::<f32>().as_slice::<f32>().unwrap().to_vec();
        for k in [0, base.len() / 2, base.len() - 1] {
            let h = 1e-2f32;
            let at = |delta: f32| -> f32 {
                let mut v = base.clone();
                v[k] += delta;
                let mut w2 = w.clone();
                w2.tensors[i] =
                    burn::module::Param::from_tensor(Tensor::<1>::from_data(TensorData::new(v, [base.len()]), &device));
                objective(&w2).into_scalar()
            };
            let fd = (at(h) - at(-h)) / (2.0 * h);
            assert!(
                (fd - g[k]).abs() <= 2e-2 + 5e-2 * fd.abs(),
                "{name}: {} [{k}]: autodiff {} vs finite difference {fd}",
                info.key(),
                g[k]
            );
            checked += 1;
        }
    }
    assert!(checked > 0, "{name}: no parameter received a gradient");
}

#[test]
fn shape_functions_move_values_where_the_shape_rule_says() {
    let spec = "model m {\n dim K = 2;\n dim T = 3;\n dim V = 10;\n input x: float[B, K];\n input e: float[B, T, K];\n seq s: id[B, T] vocab V;\n \
                output rep = repeat(x, axis: 1, n: 2);\n output idx = index(e, axis: 1, index: 2);\n output sl = slice(e, axis: 1, start: 1, len: 2);\n \
                output fl = flatten(e, from: 1);\n output st = stack(x, x * 2.0, axis: 1);\n output cc = concat(x, x * 3.0, axis: -1);\n \
                output rs = reduce_sum(e, axis: 1);\n output rm = reduce_mean(e, axis: 2);\n output dt = dot(x, x);\n output cs = cosine(x, x * 2.0);\n \
                output tf = to_float(s.mask);\n output fm_ = to_float(full_mask(e));\n output sm = softmax(x);\n output dr = dropout(x, rate: 0.5);\n}\n";
    let p = plan(spec);
    let w = Weights::init(&p, &Device::flex(), 0);
    let e: Vec<f32> = (1..=6).map(|i| i as f32).collect();
    let b = Batch::new(1)
        .floats("x", &[1.0, 2.0], &[1, 2])
        .floats("e", &e, &[1, 3, 2])
        .ids("s", &[1, 2, 0], &[1, 3])
        .mask("s.mask", &[true, true, false], &[1, 3]);
    close(&run(&p, &w, &b, "rep"), &[1.0, 2.0, 1.0, 2.0], 0.0);
    close(&run(&p, &w, &b, "idx"), &[5.0, 6.0], 0.0);
    close(&run(&p, &w, &b, "sl"), &[3.0, 4.0, 5.0, 6.0], 0.0);
    close(&run(&p, &w, &b, "fl"), &e, 0.0);
    close(&run(&p, &w, &b, "st"), &[1.0, 2.0, 2.0, 4.0], 0.0);
    close(&run(&p, &w, &b, "cc"), &[1.0, 2.0, 3.0, 6.0], 0.0);
    close(&run(&p, &w, &b, "rs"), &[9.0, 12.0], 0.0);
    close(&run(&p, &w, &b, "rm"), &[1.5, 3.5, 5.5], 1e-6);
    close(&run(&p, &w, &b, "dt"), &[5.0], 1e-6);
    close(&run(&p, &w, &b, "cs"), &[1.0], 1e-5);
    close(&run(&p, &w, &b, "tf"), &[1.0, 1.0, 0.0], 0.0);
    close(&run(&p, &w, &b, "fm_"), &[1.0, 1.0, 1.0], 0.0);
    let e1 = 1.0f32.exp();
    close(&run(&p, &w, &b, "sm"), &[1.0 / (1.0 + e1), e1 / (1.0 + e1)], 1e-6);
    close(&run(&p, &w, &b, "dr"), &[1.0, 2.0], 0.0);
}

#[test]
fn weighted_components_compute_their_formulas() {
    let spec = "model m {\n dim F = 2;\n dim V = 4;\n dim T = 2;\n dim K = 2;\n input f: id[B, F] vocab V;\n input e: float[B, T, K];\n input x: float[B, K];\n \
                output wide = Wide(vocab: V)(f);\n output pos = PositionEmbedding(len: T, dim: K)(e);\n output lin = Linear(out: 1)(x);\n \
                output moe = MMoE(experts: 2, units: [1], tasks: 1, act: none)(x);\n}\n";
    let p = plan(spec);
    let mut w = Weights::init(&p, &Device::flex(), 0);
    set(&p, &mut w, "wide", "weight", &[0.1, 0.2, 0.3, 0.4]);
    set(&p, &mut w, "wide", "bias", &[1.0, 2.0]);
    set(&p, &mut w, "pos", "table", &[10.0, 20.0, 30.0, 40.0]);
    set(&p, &mut w, "lin", "weight", &[2.0, -1.0]);
    set(&p, &mut w, "lin", "bias", &[0.5]);
    // Expert 0 computes x0, expert 1 computes x1; the gate is uniform (zero weights).
    set(&p, &mut w, "moe", "experts.layer0.weight", &[1.0, 0.0, 0.0, 1.0]);
    set(&p, &mut w, "moe", "experts.layer0.bias", &[0.0, 0.0]);
    set(&p, &mut w, "moe", "gates.weight", &[0.0; 4]);
    set(&p, &mut w, "moe", "gates.bias", &[0.0, 0.0]);
    let b = Batch::new(1).ids("f", &[3, 1], &[1, 2]).floats("e", &[1.0, 2.0, 3.0, 4.0], &[1, 2, 2]).floats(
        "x",
        &[3.0, 5.0],
        &[1, 2],
    );
    close(&run(&p, &w, &b, "wide"), &[1.4, 2.2], 1e-6);
    close(&run(&p, &w, &b, "pos"), &[11.0, 22.0, 33.0, 44.0], 1e-6);
    close(&run(&p, &w, &b, "lin"), &[1.5], 1e-6);
    close(&run(&p, &w, &b, "moe"), &[4.0], 1e-6);
}

#[test]
fn sampled_logits_put_the_target_first_and_mask_accidental_hits() {
    let spec = "model m {\n dim V = 3;\n dim D = 2;\n input s: float[B, D];\n input y: id[B] vocab V;\n \
                let items = Embedding(vocab: V, dim: D);\n output z = sampled_logits(s, table: items, target: y, samples: 64, logq: false);\n}\n";
    let p = plan(spec);
    let mut w = Weights::init(&p, &Device::flex(), 0);
    set(&p, &mut w, "items", "table", &[1.0, 0.0, 0.0, 1.0, 1.0, 1.0]);
    let b = Batch::new(1).floats("s", &[2.0, 3.0], &[1, 2]).ids("y", &[1], &[1]);
    let z = run(&p, &w, &b, "z");
    assert_eq!(z.len(), 65);
    assert_eq!(z[0], 3.0, "column 0 is s . v_target");
    // With 64 uniform draws over 3 items the target is drawn too; those columns are masked.
    assert!(z[1..].iter().any(|v| *v < -1e8), "{z:?}");
    assert!(z[1..].iter().all(|v| *v < -1e8 || *v == 2.0 || *v == 5.0), "{z:?}");
}

/// On a small corpus with many uniform samples, the logQ-corrected sampled softmax estimates the
/// full softmax: both losses agree within the sampling noise, and the sampled form reads the
/// target from column 0.
#[test]
fn sampled_softmax_agrees_with_the_full_softmax_on_a_small_corpus() {
    let spec = "model m {\n dim V = 5;\n dim D = 2;\n input s: float[B, D];\n input y: id[B] vocab V;\n label pos, neg;\n \
                let items = Embedding(vocab: V, dim: D);\n \
                let full = softmax(item_logits(s, table: items));\n \
                let sampled = softmax(sampled_logits(s, table: items, target: y, samples: 20000));\n \
                loss full_ce = softmax_ce(full, target: y, on: pos);\n loss sampled_ce = softmax_ce(sampled, on: pos);\n \
                loss full_ntr = not_to_recommend(full, target: y, on: neg);\n loss sampled_ntr = not_to_recommend(sampled, on: neg);\n}\n";
    let p = plan(spec);
    let device = Device::flex();
    let mut w = Weights::init(&p, &device, 0);
    set(&p, &mut w, "items", "table", &[1.0, 0.0, 0.0, 1.0, 1.0, 1.0, -1.0, 0.5, 0.3, -0.7]);
    let b = Batch::new(2)
        .floats("s", &[0.8, -0.4, 0.2, 1.1], &[2, 2])
        .ids("y", &[2, 3], &[2])
        .label("pos", &[1.0, 1.0])
        .label("neg", &[1.0, 1.0]);
    let fwd = forward(&p, &w, &b.device(&p, &device), Mode::Train, 7);
    let loss = |name: &str| -> f32 {
        let term = p.losses.iter().position(|l| l.name == name).unwrap();
        fwd.losses[term].clone().into_scalar()
    };
    // The exact full-softmax values, by hand.
    let table = [[1.0f32, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.5], [0.3, -0.7]];
    let exact = |s: [f32; 2], y: usize| {
        let z: Vec<f32> = table.iter().map(|v| v[0] * s[0] + v[1] * s[1]).collect();
        z[y].exp() / z.iter().map(|x| x.exp()).sum::<f32>()
    };
    let (p0, p1) = (exact([0.8, -0.4], 2), exact([0.2, 1.1], 3));
    close(&[loss("full_ce")], &[-(p0.ln() + p1.ln()) / 2.0], 1e-5);
    close(&[loss("full_ntr")], &[-((1.0 - p0).ln() + (1.0 - p1).ln()) / 2.0], 1e-5);
    for (full, sampled) in [("full_ce", "sampled_ce"), ("full_ntr", "sampled_ntr")] {
        let (a, b) = (loss(full), loss(sampled));
        assert!((a - b).abs() < 0.03 * a.abs().max(0.1), "{full} {a} vs {sampled} {b}");
    }
}

#[test]
fn mlp_layer_norm_item_logits_activations_and_triplet_values() {
    let spec = "model m {\n dim K = 2;\n dim V = 3;\n input x: float[B, K];\n input a: float[B, K];\n input pos: float[B, K];\n input neg: float[B, K];\n \
                let items = Embedding(vocab: V, dim: K);\n output mlp = MLP(units: [2, 1], act: relu, out_act: sigmoid)(x);\n \
                output ln = LayerNorm()(x);\n output logits = item_logits(x, table: items);\n output r = relu(x - 1.5);\n output t = tanh(x);\n \
                output sq = squeeze(unsqueeze(x, axis: 1), axis: 1);\n output pool_sum = attention_pool(values: unsqueeze(x, axis: 1), scores: reduce_sum(unsqueeze(x, axis: 1), axis: 2), mask: full_mask(unsqueeze(x, axis: 1)), norm: none);\n \
                loss trip = triplet(a, pos, neg, margin: 0.5);\n}\n";
    let p = plan(spec);
    let mut w = Weights::init(&p, &Device::flex(), 0);
    set(&p, &mut w, "mlp", "layer0.weight", &[1.0, -1.0, 1.0, 1.0]);
    set(&p, &mut w, "mlp", "layer0.bias", &[0.0, 0.0]);
    set(&p, &mut w, "mlp", "layer1.weight", &[1.0, 1.0]);
    set(&p, &mut w, "mlp", "layer1.bias", &[-4.0]);
    set(&p, &mut w, "items", "table", &[1.0, 0.0, 0.0, 1.0, 1.0, 1.0]);
    let b = Batch::new(1)
        .floats("x", &[1.0, 2.0], &[1, 2])
        .floats("a", &[1.0, 0.0], &[1, 2])
        .floats("pos", &[0.0, 1.0], &[1, 2])
        .floats("neg", &[1.0, 0.0], &[1, 2]);
    // hidden = relu([1 + 2, -1 + 2]) = [3, 1]; out = sigmoid(3 + 1 - 4) = 0.5.
    close(&run(&p, &w, &b, "mlp"), &[0.5], 1e-6);
    close(&run(&p, &w, &b, "ln"), &[-1.0, 1.0], 1e-4);
    close(&run(&p, &w, &b, "logits"), &[1.0, 2.0, 3.0], 1e-6);
    close(&run(&p, &w, &b, "r"), &[0.0, 0.5], 1e-6);
    close(&run(&p, &w, &b, "t"), &[1.0f32.tanh(), 2.0f32.tanh()], 1e-6);
    close(&run(&p, &w, &b, "sq"), &[1.0, 2.0], 0.0);
    close(&run(&p, &w, &b, "pool_sum"), &[3.0, 6.0], 1e-6);
    // d(a, pos) = 1 - cos 90° = 1, d(a, neg) = 0: max(1 - 0 + 0.5, 0) = 1.5.
    close(&run(&p, &w, &b, "loss/trip"), &[1.5], 1e-5);
}

/// The default backend's `exp`, `sigmoid` and `tanh` (vendored burn-flex's vectorised kernels,
/// `vendor/README.md`) against the f64 functions rounded to f32: within 2 ulp from -100 to 100
/// (or a subnormal result flushed to zero), NaN kept, for a new output (the input's buffer
/// shared) and in place.
#[test]
fn exp_sigmoid_and_tanh_are_within_two_ulp() {
    let device = Device::flex();
    let mut xs: Vec<f32> = (0..400_000).map(|i| -100.0 + i as f32 * 5e-4).collect();
    xs.extend((0..2_000).map(|i| (i as f32 - 1_000.0) * 1e-6));
    xs.extend([f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 88.7, 88.72, 89.0, -87.5, -103.0, 0.0, -0.0, 1e-30]);
    type Case = (&'static str, fn(Tensor<1>) -> Tensor<1>, fn(f64) -> f64);
    let cases: [Case; 3] = [
        ("exp", |t| t.exp(), f64::exp),
        ("sigmoid", burn::tensor::activation::sigmoid, |x| 1.0 / (1.0 + (-x).exp())),
        ("tanh", |t| t.tanh(), f64::tanh),
    ];
    for (name, op, reference) in cases {
        let t = Tensor::<1>::from_data(TensorData::new(xs.clone(), [xs.len()]), &device);
        // First while `t` still holds the buffer (a new output), then in place.
        let copied = op(t.clone());
        for ys in [copied, op(t)] {
            let ys: Vec<f32> = ys.into_data().try_to_vec::<f32>().unwrap();
            for (x, y) in xs.iter().zip(&ys) {
                let want = reference(*x as f64) as f32;
                if want.is_nan() {
                    assert!(y.is_nan(), "{name}({x}) = {y}");
                } else if want != 0.0 && want.abs() < f32::MIN_POSITIVE && *y == 0.0 {
                    // A subnormal result flushed to zero: rayon's threads run with FTZ/DAZ
                    // once the runtime has run (`runtime::cpu`), and large tensors are split
                    // across them.
                } else {
                    let ulps = (y.to_bits() as i32).abs_diff(want.to_bits() as i32);
                    assert!(ulps <= 2, "{name}({x}) = {y}, want {want} ({ulps} ulp)");
                }
            }
        }
    }
}

/// Matrix products write every element of their output (vendored burn-flex no longer
/// zero-fills it first): a product over an empty inner dimension is all zeros, and batched
/// products equal their matrices' products one at a time.
#[test]
fn matmul_writes_every_output_element() {
    let device = Device::flex();
    let empty_inner = Tensor::<2>::zeros([3, 0], &device).matmul(Tensor::<2>::zeros([0, 4], &device));
    assert_eq!(empty_inner.into_data().try_to_vec::<f32>().unwrap(), vec![0.0; 12]);
    let a: Vec<f32> = (0..5 * 7 * 3).map(|i| (i as f32 * 0.37).sin()).collect();
    let b: Vec<f32> = (0..5 * 3 * 2).map(|i| (i as f32 * 0.11).cos()).collect();
    let ta = Tensor::<3>::from_data(TensorData::new(a.clone(), [5, 7, 3]), &device);
    let tb = Tensor::<3>::from_data(TensorData::new(b.clone(), [5, 3, 2]), &device);
    let got: Vec<f32> = ta.matmul(tb).into_data().try_to_vec::<f32>().unwrap();
    for (batch, rows) in got.chunks(7 * 2).enumerate() {
        for (i, row) in rows.chunks(2).enumerate() {
            for (j, v) in row.iter().enumerate() {
                let want: f32 = (0..3).map(|k| a[batch * 21 + i * 3 + k] * b[batch * 6 + k * 2 + j]).sum();
                assert!((v - want).abs() < 1e-5, "[{batch}, {i}, {j}] = {v}, want {want}");
            }
        }
    }
}

/// Element-wise ops, masks and concatenations split across threads once they have 256K elements
/// (vendored burn-flex, `vendor/README.md`) equal their formulas element by element, for shapes
/// that do not divide evenly into pieces, broadcast and permuted operands, new outputs and
/// in-place updates.
#[test]
fn large_elementwise_ops_equal_their_formulas() {
    let device = Device::flex();
    let (a0, a1, a2) = (521, 31, 17);
    let n = a0 * a1 * a2;
    let at = |i: usize, j: usize, k: usize| ((i * 131 + j * 17 + k * 7) % 1000) as f32 * 0.01 - 5.0;
    let xs: Vec<f32> = (0..n).map(|f| at(f / (a1 * a2), (f / a2) % a1, f % a2)).collect();
    let x = || Tensor::<3>::from_data(TensorData::new(xs.clone(), [a0, a1, a2]), &device);
    let row: Vec<f32> = (0..a1).map(|j| j as f32 * 0.5 - 3.0).collect();
    let r = Tensor::<3>::from_data(TensorData::new(row.clone(), [1, a1, 1]), &device);
    let get = |t: Tensor<3>| -> Vec<f32> { t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap() };
    let each = |f: &dyn Fn(usize, usize, usize) -> f32| -> Vec<f32> {
        (0..n).map(|e| f(e / (a1 * a2), (e / a2) % a1, e % a2)).collect()
    };
    let same = |name: &str, got: Vec<f32>, want: Vec<f32>| {
        assert_eq!(got.len(), want.len(), "{name}: length");
        for (e, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!((g - w).abs() <= 1e-5 * w.abs().max(1.0), "{name}[{e}] = {g}, want {w}");
        }
    };
    // Broadcast binary ops, in place (x unique) and into a new output (x shared).
    let shared = x();
    same("x * row, new", get(shared.clone() * r.clone()), each(&|i, j, k| at(i, j, k) * row[j]));
    same("x - row, in place", get(x() - r.clone()), each(&|i, j, k| at(i, j, k) - row[j]));
    same("row / x", get(r.clone() / (x().abs() + 1.0)), each(&|i, j, k| row[j] / (at(i, j, k).abs() + 1.0)));
    // Same-shape ops, one operand permuted (not contiguous).
    let y = Tensor::<3>::from_data(TensorData::new(xs.clone(), [a2, a1, a0]), &device).permute([2, 1, 0]);
    let yv = |i: usize, j: usize, k: usize| xs[k * a1 * a0 + j * a0 + i];
    same("x + yᵀ", get(shared.clone() + y.clone()), each(&|i, j, k| at(i, j, k) + yv(i, j, k)));
    same("yᵀ * 2 + 1", get(y.clone() * 2.0 + 1.0), each(&|i, j, k| yv(i, j, k) * 2.0 + 1.0));
    same("relu(yᵀ)", get(burn::tensor::activation::relu(y.clone())), each(&|i, j, k| yv(i, j, k).max(0.0)));
    same("exp(x) shared", get(shared.clone().exp()), each(&|i, j, k| at(i, j, k).exp()));
    // Comparisons and masks, the mask broadcast along the last axis.
    let m = r.clone().greater_elem(0.0);
    same(
        "mask_fill",
        get(shared.clone().mask_fill(m.clone(), -1.0)),
        each(&|i, j, k| if row[j] > 0.0 { -1.0 } else { at(i, j, k) }),
    );
    same(
        "mask_fill in place",
        get(x().mask_fill(x().lower_elem(0.0), 9.0)),
        each(&|i, j, k| if at(i, j, k) < 0.0 { 9.0 } else { at(i, j, k) }),
    );
    same(
        "x > yᵀ",
        get(shared.clone().greater(y.clone()).float()),
        each(&|i, j, k| f32::from(at(i, j, k) > yv(i, j, k))),
    );
    // Concatenation along every axis, with a permuted input.
    let len = |d: usize| [a0, a1, a2][d];
    for dim in 0..3 {
        let got = get(Tensor::cat(vec![shared.clone(), y.clone(), shared.clone()], dim));
        let (b0, b1, b2) =
            (a0 * if dim == 0 { 3 } else { 1 }, a1 * if dim == 1 { 3 } else { 1 }, a2 * if dim == 2 { 3 } else { 1 });
        let want: Vec<f32> = (0..b0 * b1 * b2)
            .map(|e| {
                let mut idx = [e / (b1 * b2), (e / b2) % b1, e % b2];
                let part = idx[dim] / len(dim);
                idx[dim] %= len(dim);
                let [i, j, k] = idx;
                if part == 1 {
                    yv(i, j, k)
                } else {
                    at(i, j, k)
                }
            })
            .collect();
        same(&format!("cat dim {dim}"), got, want);
    }
}

/// A column slice of a wider matrix, made contiguous by a reshape (as the gradients `cat`'s
/// backward cuts are): the rows copied whole (vendor patch 5), on one thread when small and
/// across threads from 256K elements, equal the slice written out element by element; so does
/// the gradient of a `cat` that flows through one.
#[test]
fn column_slices_copy_to_their_elements() {
    let device = Device::flex();
    for (rows, width, start, len) in [(7usize, 10usize, 3usize, 4usize), (7680, 256, 64, 64), (4099, 130, 1, 127)] {
        let at = |r: usize, c: usize| ((r * 31 + c * 7) % 997) as f32 - 498.0;
        let data: Vec<f32> = (0..rows * width).map(|e| at(e / width, e % width)).collect();
        let t = Tensor::<2>::from_data(TensorData::new(data, [rows, width]), &device);
        let got = t.narrow(1, start, len).reshape([rows * len]).into_data().try_to_vec::<f32>().unwrap();
        let want: Vec<f32> = (0..rows * len).map(|e| at(e / len, start + e % len)).collect();
        assert_eq!(got, want, "[{rows}, {width}] columns {start}..{}", start + len);
    }
    let device = device.autodiff();
    let (rows, d) = (4096, 64);
    let x = Tensor::<2>::from_data(TensorData::new(vec![1.0f32; rows * d], [rows, d]), &device).require_grad();
    let y = Tensor::<2>::from_data(TensorData::new(vec![2.0f32; rows * d], [rows, d]), &device).require_grad();
    let weights: Vec<f32> = (0..rows * 2 * d).map(|e| (e % 13) as f32).collect();
    let w = Tensor::<1>::from_data(TensorData::new(weights.clone(), [rows * 2 * d]), &device);
    let joined = Tensor::cat(vec![x.clone(), y.clone()], 1).reshape([rows * 2 * d]);
    let grads = (joined * w).sum().backward();
    for (name, t, first) in [("x", &x, 0), ("y", &y, d)] {
        let g = t.grad(&grads).unwrap().reshape([rows * d]).into_data().try_to_vec::<f32>().unwrap();
        let want: Vec<f32> = (0..rows * d).map(|e| weights[(e / d) * 2 * d + first + e % d]).collect();
        assert_eq!(g, want, "d{name}");
    }
}

/// The fused masked softmax (`runtime::fused`) against the formula written with burn's own
/// tensor ops: values, and the gradient of a weighted sum of them. burn-flex runs the fused
/// kernels; ndarray runs the trait's composed default bodies under the same custom backward.
/// One case is small, with a group whose positions are all padding; one is large enough for
/// the kernels' threaded path.
#[test]
fn fused_masked_softmax_matches_the_formula_on_every_cpu_backend() {
    // No keys, or no rows: nothing to weigh, an empty result of the same shape.
    for shape in [[2, 3, 0], [0, 3, 4]] {
        let device = Device::flex().autodiff();
        let x = Tensor::<3>::zeros(shape, &device).require_grad();
        let valid = Tensor::<2, Bool>::empty([shape[0], shape[2]], &device);
        let y = recspec::runtime::fused::masked_softmax(x.clone(), valid, 1.0, true);
        assert_eq!(y.dims(), shape);
        let grads = y.sum().backward();
        assert_eq!(x.grad(&grads).map(|g| g.dims()), Some(shape));
    }
    let devices = cpu_backends();
    for [groups, rows, keys] in [[3usize, 2, 5], [70, 124, 33]] {
        let n = groups * rows * keys;
        let x = noise(5, n, 4.0);
        let proj = noise(6, n, 1.0);
        // Group 0 is all padding; elsewhere every fifth position is.
        let valid: Vec<bool> = (0..groups * keys).map(|i| i >= keys && i % 5 != 0).collect();
        for zero_invalid in [false, true] {
            for (backend, device) in &devices {
                let device = device.clone().autodiff();
                let case = format!("{backend} [{groups}, {rows}, {keys}] zero_invalid {zero_invalid}");
                let tensor = |v: &[f32]| {
                    Tensor::<1>::from_data(TensorData::new(v.to_vec(), [n]), &device).reshape([groups, rows, keys])
                };
                let mask = Tensor::<1, Bool>::from_data(TensorData::new(valid.clone(), [groups * keys]), &device)
                    .reshape([groups, keys]);
                let gradient_of = |f: &dyn Fn(Tensor<3>) -> Tensor<3>| {
                    let xt = tensor(&x).require_grad();
                    let y = f(xt.clone());
                    let grads = (y.clone() * tensor(&proj)).sum().backward();
                    let g = xt.grad(&grads).expect("x gets a gradient");
                    let host = |t: Tensor<3>| t.into_data().convert::<f32>().as_slice::<f32>().unwrap().to_vec();
                    (host(y.detach()), g.into_data().convert::<f32>().as_slice::<f32>().unwrap().to_vec())
                };
                let (y, g) =
                    gradient_of(&|x| recspec::runtime::fused::masked_softmax(x, mask.clone(), 0.25, zero_invalid));
                let (y_ref, g_ref) = gradient_of(&|x| {
                    let m = mask.clone().float().reshape([groups, 1, keys]);
                    let z = x.mul_scalar(0.25) + m.clone().neg().add_scalar(1.0).mul_scalar(-1e9);
                    let e = (z.clone() - z.max_dim(2).detach()).clamp_min(-30.0).exp();
                    let y = e.clone() / e.sum_dim(2);
                    if zero_invalid {
                        y * m
                    } else {
                        y
                    }
                });
                assert_within(&format!("{case}: values"), &y, &y_ref, 1e-6);
                assert_within(&format!("{case}: gradients"), &g, &g_ref, 1e-6);
                // The padded group: uniform weights, or none.
                let first = if zero_invalid { 0.0 } else { 1.0 / keys as f32 };
                assert!(
                    y[..rows * keys].iter().all(|&w| (w - first).abs() < 1e-6),
                    "{case}: padded group {:?}",
                    &y[..keys]
                );
            }
        }
    }
}

/// The fused GRU step (`runtime::fused::gru_gates`) against its formulas written with burn's
/// tensor ops: the next state, and the gradients of `gi`, `gh` and `h` from a weighted sum of it,
/// with some rows padding (the state passes through) and some valid.
#[test]
fn fused_gru_gates_match_the_formulas_on_every_cpu_backend() {
    let devices = cpu_backends();
    let (rows, hidden) = (7, 5);
    let gi = noise(1, rows * 3 * hidden, 2.0);
    let gh = noise(2, rows * 3 * hidden, 2.0);
    let h = noise(3, rows * hidden, 1.0);
    let proj = noise(4, rows * hidden, 1.0);
    let valid: Vec<f32> = (0..rows).map(|i| if i % 3 == 1 { 0.0 } else { 1.0 }).collect();
    for (backend, device) in &devices {
        let device = device.clone().autodiff();
        let tensor = |v: &[f32], cols: usize| {
            Tensor::<1>::from_data(TensorData::new(v.to_vec(), [v.len()]), &device).reshape([rows, cols])
        };
        let host = |t: Tensor<2>| t.into_data().convert::<f32>().as_slice::<f32>().unwrap().to_vec();
        let run = |f: &dyn Fn(Tensor<2>, Tensor<2>, Tensor<2>) -> Tensor<2>| {
            let inputs =
                [tensor(&gi, 3 * hidden), tensor(&gh, 3 * hidden), tensor(&h, hidden)].map(|t| t.require_grad());
            let y = f(inputs[0].clone(), inputs[1].clone(), inputs[2].clone());
            let grads = (y.clone() * tensor(&proj, hidden)).sum().backward();
            let mut out = vec![host(y.detach())];
            out.extend(inputs.iter().map(|t| host(t.grad(&grads).expect("every input gets a gradient"))));
            out
        };
        let fused = run(&|gi, gh, h| recspec::runtime::fused::gru_gates(gi, gh, h, tensor(&valid, 1)));
        let formula = run(&|gi, gh, h| {
            let gate = |t: &Tensor<2>, i: usize| t.clone().narrow(1, i * hidden, hidden);
            let r = burn::tensor::activation::sigmoid(gate(&gi, 0) + gate(&gh, 0));
            let z = burn::tensor::activation::sigmoid(gate(&gi, 1) + gate(&gh, 1));
            let n = (gate(&gi, 2) + r * gate(&gh, 2)).tanh();
            let next = n.clone() + z * (h.clone() - n);
            h.clone() + tensor(&valid, 1) * (next - h)
        });
        for ((what, a), b) in ["next state", "d gi", "d gh", "d h"].iter().zip(&fused).zip(&formula) {
            assert_within(&format!("{backend}: {what}"), a, b, 1e-5);
        }
        // A padded row keeps its state, and passes the gradient to it unchanged.
        assert_eq!(&fused[0][hidden..2 * hidden], &h[hidden..2 * hidden], "{backend}");
        assert_eq!(&fused[3][hidden..2 * hidden], &proj[hidden..2 * hidden], "{backend}");
    }
}

/// The CPU backends the fused ops run on: burn-flex's kernels, ndarray's composed ops, and with
/// `--features tch` libtorch's own kernels (`scripts/tch_check.sh`).
#[allow(deprecated)]
fn cpu_backends() -> Vec<(&'static str, Device)> {
    let mut backends = vec![("flex", Device::flex()), ("ndarray", Device::ndarray())];
    if cfg!(feature = "tch") {
        backends.push(("tch-cpu", recspec::runtime::parse_device("tch-cpu").expect("built with libtorch")));
    }
    backends
}

/// Every element of `a` within `tol` of `b`'s, absolutely.
fn assert_within(what: &str, a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    let worst = crate::max_difference(a, b);
    assert!(worst <= tol, "{what} differ by up to {worst}");
}

/// `n` values, uniform in `[-scale, scale)`, from xorshift64 seeded by `seed`.
fn noise(seed: u64, n: usize, scale: f32) -> Vec<f32> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ seed.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}
