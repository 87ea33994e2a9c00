//! Dynamic-rank tensor values for the graph interpreter.
//!
//! burn tensors carry their rank in the type; graph values have ranks known only at run time.
//! Every runtime value is stored flat (rank 1) with its logical shape, and viewed at the rank an
//! operation needs (`r2`, `r3`). Reshapes of contiguous tensors are free in burn.

use burn::prelude::*;

/// A float tensor with a dynamic shape.
#[derive(Clone, Debug)]
pub struct Ft {
    pub t: Tensor<1>,
    pub shape: Vec<usize>,
}

/// An id tensor with a dynamic shape.
#[derive(Clone, Debug)]
pub struct It {
    pub t: Tensor<1, Int>,
    pub shape: Vec<usize>,
}

/// A mask with a dynamic shape.
#[derive(Clone, Debug)]
pub struct Mt {
    pub t: Tensor<1, Bool>,
    pub shape: Vec<usize>,
}

/// Any runtime value.
#[derive(Clone, Debug)]
pub enum Val {
    F(Ft),
    I(It),
    M(Mt),
}

pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// `[prod(before axis), shape[axis], prod(after axis)]`.
pub fn split3(shape: &[usize], axis: usize) -> [usize; 3] {
    [numel(&shape[..axis]), shape[axis], numel(&shape[axis + 1..])]
}

impl Ft {
    pub fn new(t: Tensor<1>, shape: Vec<usize>) -> Ft {
        Ft { t, shape }
    }

    pub fn from2(t: Tensor<2>, shape: Vec<usize>) -> Ft {
        let n = numel(&shape);
        Ft { t: t.reshape([n]), shape }
    }

    pub fn from3(t: Tensor<3>, shape: Vec<usize>) -> Ft {
        let n = numel(&shape);
        Ft { t: t.reshape([n]), shape }
    }

    pub fn from4(t: Tensor<4>, shape: Vec<usize>) -> Ft {
        let n = numel(&shape);
        Ft { t: t.reshape([n]), shape }
    }

    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    pub fn last(&self) -> usize {
        self.shape.last().copied().unwrap_or(1)
    }

    /// `[rows, last]`: every axis but the last merged.
    pub fn r2(&self) -> Tensor<2> {
        let last = self.last();
        self.t.clone().reshape([numel(&self.shape) / last.max(1), last])
    }

    /// `[before, shape[axis], after]`.
    pub fn r3(&self, axis: usize) -> Tensor<3> {
        self.t.clone().reshape(split3(&self.shape, axis))
    }

    pub fn reshape(self, shape: Vec<usize>) -> Ft {
        Ft { t: self.t, shape }
    }

    pub fn map(self, f: impl FnOnce(Tensor<1>) -> Tensor<1>) -> Ft {
        Ft { t: f(self.t), shape: self.shape }
    }
}

impl It {
    pub fn r2(&self) -> Tensor<2, Int> {
        let last = self.shape.last().copied().unwrap_or(1);
        self.t.clone().reshape([numel(&self.shape) / last.max(1), last])
    }
}

impl Mt {
    /// The mask as 0/1 floats with the same shape.
    pub fn float(&self) -> Ft {
        Ft { t: self.t.clone().float(), shape: self.shape.clone() }
    }
}

impl Val {
    pub fn shape(&self) -> &[usize] {
        match self {
            Val::F(x) => &x.shape,
            Val::I(x) => &x.shape,
            Val::M(x) => &x.shape,
        }
    }

    pub fn with_shape(self, shape: Vec<usize>) -> Val {
        match self {
            Val::F(x) => Val::F(Ft { t: x.t, shape }),
            Val::I(x) => Val::I(It { t: x.t, shape }),
            Val::M(x) => Val::M(Mt { t: x.t, shape }),
        }
    }
}
