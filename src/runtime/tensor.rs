//! Dynamic-rank tensor values for the interpreter.
//!
//! burn tensors carry their rank in the type; program values have ranks known only at run time.
//! Every runtime value is stored flat (rank 1) with its logical shape, and viewed at the rank an
//! operation needs (`rows_by_last`, `around`). Reshapes of contiguous tensors are free in burn.

use crate::data::{Column, ColumnData};
use burn::prelude::*;

/// A float tensor stored flat, with its logical shape.
#[derive(Clone, Debug)]
pub struct FloatTensor {
    pub flat: Tensor<1>,
    pub shape: Vec<usize>,
}

/// An id tensor stored flat, with its logical shape.
#[derive(Clone, Debug)]
pub struct IdTensor {
    pub flat: Tensor<1, Int>,
    pub shape: Vec<usize>,
}

/// A validity mask stored flat, with its logical shape.
#[derive(Clone, Debug)]
pub struct MaskTensor {
    pub flat: Tensor<1, Bool>,
    pub shape: Vec<usize>,
}

/// Any runtime value.
#[derive(Clone, Debug)]
pub enum Value {
    Float(FloatTensor),
    Ids(IdTensor),
    Mask(MaskTensor),
}

/// The number of elements of a shape.
pub(crate) fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// `[prod(axes before axis), shape[axis], prod(axes after axis)]`.
pub(crate) fn split3(shape: &[usize], axis: usize) -> [usize; 3] {
    [numel(&shape[..axis]), shape[axis], numel(&shape[axis + 1..])]
}

impl FloatTensor {
    pub fn new(flat: Tensor<1>, shape: Vec<usize>) -> FloatTensor {
        FloatTensor { flat, shape }
    }

    /// Flattens a tensor of any rank whose elements make up `shape`.
    pub fn from_tensor<const D: usize>(t: Tensor<D>, shape: Vec<usize>) -> FloatTensor {
        let n = numel(&shape);
        FloatTensor { flat: t.reshape([n]), shape }
    }

    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    /// The size of the last axis (1 for a scalar).
    pub fn last(&self) -> usize {
        self.shape.last().copied().unwrap_or(1)
    }

    /// `[rows, last]`: every axis but the last merged.
    pub(crate) fn rows_by_last(&self) -> Tensor<2> {
        let last = self.last();
        self.flat.clone().reshape([numel(&self.shape) / last.max(1), last])
    }

    /// `[before, shape[axis], after]`.
    pub(crate) fn around(&self, axis: usize) -> Tensor<3> {
        self.flat.clone().reshape(split3(&self.shape, axis))
    }

    /// The same shape with `f` applied to the elements.
    pub fn map(self, f: impl FnOnce(Tensor<1>) -> Tensor<1>) -> FloatTensor {
        FloatTensor { flat: f(self.flat), shape: self.shape }
    }

    /// Viewed as [B, N, D] (the caller knows the value has rank 3).
    pub(crate) fn rank3(&self) -> Tensor<3> {
        self.flat.clone().reshape([self.shape[0], self.shape[1], self.shape[2]])
    }
}

impl MaskTensor {
    /// The mask as 0/1 floats with the same shape.
    pub fn float(&self) -> FloatTensor {
        FloatTensor { flat: self.flat.clone().float(), shape: self.shape.clone() }
    }
}

impl Value {
    /// A host batch's column on `device`.
    pub(crate) fn from_column(c: &Column, device: &Device) -> Value {
        let shape = c.shape.clone();
        match &c.data {
            ColumnData::Ids(d) => {
                Value::Ids(IdTensor { flat: Tensor::from_data(TensorData::new(d.clone(), [d.len()]), device), shape })
            }
            ColumnData::Floats(d) => {
                Value::Float(FloatTensor::new(Tensor::from_data(TensorData::new(d.clone(), [d.len()]), device), shape))
            }
            ColumnData::Mask(d) => Value::Mask(MaskTensor {
                flat: Tensor::from_data(TensorData::new(d.clone(), [d.len()]), device),
                shape,
            }),
        }
    }

    pub fn shape(&self) -> &[usize] {
        match self {
            Value::Float(x) => &x.shape,
            Value::Ids(x) => &x.shape,
            Value::Mask(x) => &x.shape,
        }
    }

    /// The same elements with another logical shape of the same size.
    pub(crate) fn with_shape(self, shape: Vec<usize>) -> Value {
        match self {
            Value::Float(x) => Value::Float(FloatTensor { flat: x.flat, shape }),
            Value::Ids(x) => Value::Ids(IdTensor { flat: x.flat, shape }),
            Value::Mask(x) => Value::Mask(MaskTensor { flat: x.flat, shape }),
        }
    }

    /// The value as floats: masks become 0/1, ids their numbers.
    pub fn float(&self) -> FloatTensor {
        match self {
            Value::Float(x) => x.clone(),
            Value::Mask(m) => m.float(),
            Value::Ids(i) => FloatTensor::new(i.flat.clone().float(), i.shape.clone()),
        }
    }

    /// The value's elements on the host, as floats.
    pub fn to_host(&self) -> Vec<f32> {
        match self {
            Value::Float(x) => {
                x.flat.clone().into_data().convert::<f32>().as_slice::<f32>().map(|s| s.to_vec()).unwrap_or_default()
            }
            Value::Mask(m) => Value::Float(m.float()).to_host(),
            Value::Ids(i) => i
                .flat
                .clone()
                .into_data()
                .convert::<i64>()
                .as_slice::<i64>()
                .map(|s| s.iter().map(|x| *x as f32).collect())
                .unwrap_or_default(),
        }
    }
}
