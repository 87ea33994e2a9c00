//! Lowering reads every attribute strictly: a missing, mistyped or misspelt attribute is an
//! error naming the node, never a default.

use super::*;
use crate::ir::Attr;
use crate::lower::kernel::{LayerKernel, PoolingKernel};

fn graph(spec: &str) -> Graph {
    let (_, checked) = crate::compile_str("lower.recspec", spec, &[]);
    checked.graph.expect("the spec compiles")
}

const SPEC: &str = "model m {\n dim T = 3;\n dim V = 5;\n dim D = 4;\n seq s: id[B, T] vocab V;\n \
                    let e = Embedding(vocab: V, dim: D)(s);\n let h = MLP(units: [D, 2], act: relu)(pool(e, mask: s.mask, mode: mean));\n \
                    output y = h;\n}\n";

fn node_mut(g: &mut Graph, op: Op) -> &mut crate::ir::Node {
    g.nodes.iter_mut().find(|n| n.op == op).expect("the spec has the op")
}

#[test]
fn the_spec_lowers_with_typed_kernels() {
    let g = graph(SPEC);
    let p = lower(&g, &Bindings::of(&g)).unwrap();
    let pool = p.steps.iter().find(|s| s.op == Op::Pool).unwrap();
    assert!(matches!(
        pool.kernel,
        Kernel::Pooling(PoolingKernel::Pool { mode: crate::ops::options::PoolMode::Mean, include_padding: false, .. })
    ));
    let mlp = p.steps.iter().find(|s| s.op == Op::Mlp).unwrap();
    let Kernel::Layer(LayerKernel::Mlp { layers, act, .. }) = &mlp.kernel else { panic!("MLP lowers to Kernel::Mlp") };
    assert_eq!(layers.len(), 2);
    assert_eq!(*act, crate::ops::options::Activation::Relu);
    assert_eq!(p.params[layers[1].weight.0].shape, vec![4, 2]);
    assert_eq!(p.value(p.output("y").unwrap()).shape, vec![Extent { per_batch: 1, fixed: 0 }, Extent::fixed(2)]);
}

#[test]
fn a_missing_attribute_is_an_error() {
    let mut g = graph(SPEC);
    node_mut(&mut g, Op::Pool).attrs.remove("mode");
    let err = lower(&g, &Bindings::of(&g)).unwrap_err();
    assert!(matches!(&err, LowerError::Attribute { attr, .. } if attr == "mode"), "{err}");
    assert!(err.to_string().contains("attribute `mode` is missing"), "{err}");
}

#[test]
fn a_misspelt_option_is_an_error() {
    let mut g = graph(SPEC);
    node_mut(&mut g, Op::Mlp).attrs.insert("act".into(), Attr::Sym("rleu".into()));
    let err = lower(&g, &Bindings::of(&g)).unwrap_err();
    assert!(err.to_string().contains("`rleu` is not one of relu, sigmoid, tanh, gelu, none"), "{err}");
}

#[test]
fn a_mistyped_attribute_is_an_error() {
    let mut g = graph(SPEC);
    node_mut(&mut g, Op::Mlp).attrs.insert("dropout".into(), Attr::Bool(true));
    let err = lower(&g, &Bindings::of(&g)).unwrap_err();
    assert!(matches!(&err, LowerError::Attribute { attr, .. } if attr == "dropout"), "{err}");
}

#[test]
fn a_missing_parameter_is_an_error() {
    let mut g = graph(SPEC);
    let mlp = g.instances.iter_mut().find(|i| i.op == Op::Mlp).unwrap();
    mlp.params.retain(|p| p.name != "layer1.bias");
    let err = lower(&g, &Bindings::of(&g)).unwrap_err();
    assert!(matches!(&err, LowerError::Param { param, .. } if param == "layer1.bias"), "{err}");
}

#[test]
fn init_rules_come_from_the_shape_rules() {
    let g = graph(SPEC);
    let p = lower(&g, &Bindings::of(&g)).unwrap();
    let rule = |name: &str| p.params.iter().find(|s| s.key().ends_with(name)).unwrap().init;
    assert_eq!(rule("table"), InitRule::Normal { std: 0.05 });
    assert_eq!(rule("layer0.weight"), InitRule::Uniform { bound: 0.5 });
    assert_eq!(rule("layer0.bias"), InitRule::Constant(0.0));
}

#[test]
fn extents_are_linear_in_the_batch() {
    let b = Bindings { dims: [("T".to_string(), 3)].into_iter().collect() };
    let d = Dim::batch().mul(&Dim::sym("T")).add(&Dim::constant(2));
    assert_eq!(b.extent(&d).unwrap(), Extent { per_batch: 3, fixed: 2 });
    assert!(b.extent(&Dim::batch().mul(&Dim::batch())).is_err());
    assert!(b.extent(&Dim::sym("Q")).is_err());
}

#[test]
fn the_memory_estimate_counts_every_slot() {
    let g = graph(SPEC);
    let p = lower(&g, &Bindings::of(&g)).unwrap();
    let m = memory::estimate(&p, 10, memory::OptimizerSlots::dense(2));
    // Embedding 5x4, MLP 4x4 + 4 and 4x2 + 2: 20 + 20 + 10 = 50 f32.
    assert_eq!(m.params, 50 * 4);
    assert_eq!((m.gradients, m.optimizer, m.state), (200, 400, 0));
    // Inputs at B = 10: ids [10, 3] (i64) and their mask [10, 3] (bytes).
    assert_eq!(m.inputs, 30 * 8 + 30);
    // Every step's value is counted once forward (with its kernel's kept temporaries), twice
    // in training.
    let values: u128 = p.values[p.input_count..]
        .iter()
        .map(|v| {
            let n: usize = shape_at(&v.shape, 10).iter().product();
            n as u128
                * match v.dtype {
                    DType::Float => 4,
                    DType::Id => 8,
                    DType::Mask => 1,
                }
        })
        .sum();
    let mlp = p.steps.iter().find(|s| s.op == Op::Mlp).unwrap();
    // The MLP's hidden layer (4 wide) before and after its activation, for 10 rows.
    assert_eq!(memory::scratch(&p, mlp, 10), 2 * 10 * 4);
    let forward = values + 4 * 80;
    assert_eq!(m.forward, forward);
    assert_eq!(m.training_total(), 200 + 200 + 400 + m.inputs + 2 * forward);
    // An instance costs its weights, their gradients and Adam's two moments: 20 x 4 x 4 bytes.
    let table = m.components.iter().find(|c| {
        c.kind == memory::ComponentKind::Parameters
            && p.params.iter().any(|s| s.instance == c.name && s.shape == [5, 4])
    });
    assert_eq!(table.map(|c| c.bytes), Some(320));
    assert!(m.components.windows(2).all(|w| w[0].bytes >= w[1].bytes));
}

#[test]
fn an_absurd_model_has_an_absurd_estimate_not_an_overflow() {
    let g = graph(&SPEC.replace("dim D = 4;", "dim D = 1000000000000;"));
    let p = lower(&g, &Bindings::of(&g)).unwrap();
    let m = memory::estimate(&p, 256, memory::OptimizerSlots::dense(2));
    assert!(m.params > 5 * 1_000_000_000_000u128 * 4);
    assert!(m.training_total() > m.params * 4);
}

#[test]
fn a_size_beyond_128_bits_saturates_and_reads_more_than() {
    // Each dim fits, their product (256 x 10^36 x 4 bytes) does not fit in 128 bits.
    let g =
        graph("model m {\n dim D = 1000000000;\n input x: float[B, D, D, D, D];\n output y = Linear(out: 1)(x);\n}\n");
    let p = lower(&g, &Bindings::of(&g)).unwrap();
    let m = memory::estimate(&p, 256, memory::OptimizerSlots::dense(2));
    assert_eq!(m.inputs, u128::MAX, "saturated, not wrapped");
    assert_eq!(m.training_total(), u128::MAX);
    assert_eq!(m.inference_total(), u128::MAX);
    assert_eq!(memory::Bytes(m.training_total()).to_string(), "more than 3.4e38 bytes");
    assert!(m.params < u128::MAX && m.params > 0, "the parameters are still counted exactly");
}

#[test]
fn a_dimension_beyond_64_bits_is_a_too_large_model_not_a_compiler_bug() {
    let g = graph(
        "model m {\n dim D = 1000000000000;\n input x: float[B, D, D, D];\n label click;\n \
         output p = sigmoid(Linear(out: 1)(flatten(x, from: 1)));\n loss click = bce(p, label: click);\n}\n",
    );
    let e = lower(&g, &Bindings::of(&g)).unwrap_err();
    assert!(matches!(&e, LowerError::TooLarge { .. }), "{e:?}");
    assert!(e.to_string().contains("the model is too large to build"), "{e}");
    let app = crate::app::AppError::Lower(e).to_string();
    assert!(!app.contains("internal error"), "{app}");
}

#[test]
fn flops_count_products_twice_and_training_three_times_the_products() {
    let g = graph(SPEC);
    let p = lower(&g, &Bindings::of(&g)).unwrap();
    let (total, per_step) = flops::count(&p, 10);
    let of = |op: Op| per_step[p.steps.iter().position(|s| s.op == op).unwrap()];
    // The embedding gathers: no arithmetic.
    assert_eq!(of(Op::Embedding).forward, 0);
    // Mean pooling adds 10 x 3 x 4 elements; its backward pass is as long.
    assert_eq!((of(Op::Pool).forward, of(Op::Pool).training), (120, 240));
    // MLP on 10 rows: 4 -> 4 (2·10·4·4 products, 40 biases, 40 activations) and 4 -> 2 (160,
    // 20, 20); backward twice that.
    assert_eq!((of(Op::Mlp).forward, of(Op::Mlp).training), (600, 1800));
    assert_eq!(total.forward, per_step.iter().map(|f| f.forward).sum::<u128>());
    assert_eq!((total.forward, total.training), (720, 2040));
    assert_eq!((total.forward_per_example(), total.training_per_example()), (72, 204));
}
