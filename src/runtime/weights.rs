//! The weights a program runs with: one flat burn parameter per parameter slot, initialised on
//! the host from a seeded generator so that every backend starts from the same values.

use super::RuntimeError;
use crate::lower::{InitRule, ParamRole, ParamSlot, Program};
use burn::module::Param;
use burn::prelude::*;

/// All trainable and state tensors of a model, flat, in the program's parameter order.
#[derive(Module, Debug)]
pub struct Weights {
    pub tensors: Vec<Param<Tensor<1>>>,
}

impl Weights {
    /// Fresh weights for `program`, deterministic for a seed on every backend.
    pub fn init(program: &Program, device: &Device, seed: u64) -> Weights {
        Weights::build(program, device, |i, p| fresh(i, p, seed))
    }

    /// Zero weights shaped for `program`: what a checkpoint or weight file is loaded into
    /// (drawing initial values there would be work thrown away, seconds for a 10^7-row table).
    pub fn zeros(program: &Program, device: &Device) -> Weights {
        Weights::build(program, device, |_, p| vec![0.0; p.numel()])
    }

    /// One parameter per slot with the values `values(slot index, slot)`, state slots without
    /// gradients.
    fn build(program: &Program, device: &Device, values: impl Fn(usize, &ParamSlot) -> Vec<f32>) -> Weights {
        let tensors = program
            .params
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let n = p.numel();
                let param = Param::from_tensor(Tensor::<1>::from_data(TensorData::new(values(i, p), [n]), device));
                match p.role {
                    ParamRole::State => param.set_require_grad(false),
                    ParamRole::Trained => param,
                }
            })
            .collect();
        Weights { tensors }
    }
}

pub use crate::rng::SplitMix;

/// Values per block drawn on one thread by [`initial_values`].
const INIT_BLOCK: usize = 1 << 20;

/// The `n` initial values of a parameter drawn by `rule` from `SplitMix(state)`: value k takes
/// the stream's draws k·d .. k·d + d (d = 2 for a normal, 1 for a uniform, 0 for a constant).
/// SplitMix is counter-based (the state after j draws is `state + j·γ`), so blocks of values
/// are drawn on rayon's threads from their own offsets, giving the values one sequential stream
/// gives (`recspec_torch.rng.init_values`) at every thread count.
pub fn initial_values(rule: InitRule, n: usize, state: u64) -> Vec<f32> {
    use rayon::prelude::*;
    let draws_per_value: u64 = match rule {
        InitRule::Constant(_) => 0,
        InitRule::Normal { .. } => 2,
        InitRule::Uniform { .. } => 1,
    };
    let mut values = vec![0f32; n];
    values.par_chunks_mut(INIT_BLOCK).enumerate().for_each(|(block, out)| {
        let skipped = (block * INIT_BLOCK) as u64 * draws_per_value;
        let mut rng = SplitMix(state.wrapping_add(skipped.wrapping_mul(crate::rng::GOLDEN_GAMMA)));
        for v in out.iter_mut() {
            *v = match rule {
                InitRule::Constant(c) => c,
                InitRule::Normal { std } => (rng.normal() * std) as f32,
                InitRule::Uniform { bound } => rng.uniform(-bound, bound) as f32,
            };
        }
    });
    values
}

/// Slot `i`'s initial values for `seed`: each slot draws from its own stream.
fn fresh(i: usize, p: &ParamSlot, seed: u64) -> Vec<f32> {
    initial_values(p.init, p.numel(), seed ^ crate::rng::GOLDEN_GAMMA.wrapping_mul(i as u64 + 1))
}

/// Weight files in the safetensors format, keyed by recspec parameter keys
/// (`f_c/attended/query.weight`) with the program's shapes: how weights move to and from the
/// generated PyTorch module (`recspec_torch`).
impl Weights {
    /// Every parameter and state tensor as float32 safetensors bytes.
    pub fn to_safetensors(&self, program: &Program) -> Result<Vec<u8>, RuntimeError> {
        let mut tensors = vec![];
        for (slot, tensor) in program.params.iter().zip(&self.tensors) {
            let values = tensor
                .val()
                .into_data()
                .convert::<f32>()
                .try_into_vec::<f32>()
                .map_err(|_| RuntimeError::Checkpoint(format!("cannot read {} as float32", slot.key())))?;
            let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            tensors.push((slot.key(), slot.shape.clone(), bytes));
        }
        let views = tensors
            .iter()
            .map(|(key, shape, bytes)| {
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes)
                    .map(|v| (key.clone(), v))
                    .map_err(|e| RuntimeError::Checkpoint(format!("{key}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        safetensors::serialize(views, None).map_err(|e| RuntimeError::Checkpoint(format!("cannot write weights: {e}")))
    }

    /// Weights for `program` from safetensors bytes: every parameter key present with its shape
    /// as float32, nothing else.
    pub fn from_safetensors(program: &Program, bytes: &[u8], device: &Device) -> Result<Weights, RuntimeError> {
        let file = safetensors::SafeTensors::deserialize(bytes)
            .map_err(|e| RuntimeError::Checkpoint(format!("not a safetensors file: {e}")))?;
        let known: std::collections::HashSet<String> = program.params.iter().map(|p| p.key()).collect();
        if let Some(unknown) = file.names().into_iter().find(|n| !known.contains(*n)) {
            return Err(RuntimeError::Checkpoint(format!(
                "`{unknown}` is not a parameter of model `{}`",
                program.model
            )));
        }
        let mut weights = Weights::zeros(program, device);
        for (i, slot) in program.params.iter().enumerate() {
            let key = slot.key();
            let view = file.tensor(&key).map_err(|_| RuntimeError::Checkpoint(format!("`{key}` is missing")))?;
            if view.dtype() != safetensors::Dtype::F32 || view.shape() != slot.shape.as_slice() {
                return Err(RuntimeError::Checkpoint(format!(
                    "`{key}` is {} [{}]; the model needs F32 [{}]",
                    view.dtype(),
                    shape_list(view.shape()),
                    shape_list(&slot.shape)
                )));
            }
            let values: Vec<f32> = f32s(view.data()).collect();
            let tensor = Tensor::<1>::from_data(TensorData::new(values, [slot.numel()]), device);
            let param = Param::initialized(weights.tensors[i].id, tensor);
            weights.tensors[i] = match slot.role {
                ParamRole::State => param.set_require_grad(false),
                ParamRole::Trained => param,
            };
        }
        Ok(weights)
    }
}

/// `2, 3` for the shape [2, 3], in messages.
fn shape_list(s: &[usize]) -> String {
    s.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")
}

/// Little-endian float32 bytes as values.
fn f32s(bytes: &[u8]) -> impl Iterator<Item = f32> + '_ {
    bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
}

/// An earlier run's weights (safetensors bytes), read for a warm start.
fn earlier_file(earlier: &[u8]) -> Result<safetensors::SafeTensors<'_>, RuntimeError> {
    safetensors::SafeTensors::deserialize(earlier)
        .map_err(|e| RuntimeError::Checkpoint(format!("the earlier weights are not a safetensors file: {e}")))
}

/// What a warm start takes from an earlier run's weights ([`Weights::warm_start`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WarmStart {
    /// Parameters copied whole (same key, same shape).
    pub copied: Vec<String>,
    /// Tables that grew: (key, the earlier rows, the rows now); the earlier rows are copied into
    /// the first rows, the rest keep their fresh initial values.
    pub grown: Vec<(String, usize, usize)>,
    /// Parameters the earlier run did not have: freshly initialised.
    pub fresh: Vec<String>,
}

impl WarmStart {
    /// How each parameter of `program` is started from the earlier weights `earlier`
    /// (safetensors, keyed by parameter keys), or why it cannot be: a parameter of another shape
    /// (other than more rows) or a table with fewer rows than the earlier one had.
    pub fn plan(program: &Program, earlier: &[u8]) -> Result<WarmStart, RuntimeError> {
        WarmStart::of(program, &earlier_file(earlier)?)
    }

    fn of(program: &Program, file: &safetensors::SafeTensors<'_>) -> Result<WarmStart, RuntimeError> {
        let mut plan = WarmStart::default();
        for slot in &program.params {
            let key = slot.key();
            let Ok(view) = file.tensor(&key) else {
                plan.fresh.push(key);
                continue;
            };
            let (old, new) = (view.shape(), slot.shape.as_slice());
            if view.dtype() != safetensors::Dtype::F32 {
                return Err(RuntimeError::Checkpoint(format!(
                    "`{key}` is {} in the earlier run, not F32",
                    view.dtype()
                )));
            }
            if old == new {
                plan.copied.push(key);
            } else if old.len() == new.len() && !old.is_empty() && old[1..] == new[1..] && old[0] < new[0] {
                plan.grown.push((key, old[0], new[0]));
            } else if old.len() == new.len() && !old.is_empty() && old[1..] == new[1..] {
                return Err(RuntimeError::Checkpoint(format!(
                    "`{key}` has {} rows in the earlier run but {} now: ids the earlier run trained would fall outside \
                     the table; size its vocabulary to at least {} (a data set imported with --keep-ids-from does)",
                    old[0], new[0], old[0]
                )));
            } else {
                return Err(RuntimeError::Checkpoint(format!(
                    "`{key}` is [{}] in the earlier run but [{}] now: the model changed",
                    shape_list(old),
                    shape_list(new)
                )));
            }
        }
        Ok(plan)
    }
}

impl Weights {
    /// Weights for `program` that start from an earlier run's (`earlier`, safetensors): what
    /// [`WarmStart::plan`] copies, fresh initial values ([`Weights::init`]'s, for `seed`) for the
    /// rest and for the new rows of grown tables.
    pub fn warm_start(program: &Program, device: &Device, seed: u64, earlier: &[u8]) -> Result<Weights, RuntimeError> {
        let file = earlier_file(earlier)?;
        WarmStart::of(program, &file)?;
        // Each slot's fresh values, the earlier ones (a grown table's first rows) written over.
        Ok(Weights::build(program, device, |i, p| {
            let mut v = fresh(i, p, seed);
            if let Ok(view) = file.tensor(&p.key()) {
                v.iter_mut().zip(f32s(view.data())).for_each(|(x, y)| *x = y);
            }
            v
        }))
    }
}
