//! Tensor types as the checker sees them: element type, symbolic shape, vocabulary and value range.

use crate::dim::Dim;
use serde::Serialize;
use std::fmt;

/// The element type of a tensor: ids (with a vocabulary), floats, or a validity mask.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    Id,
    Float,
    Mask,
}

impl DType {
    pub fn name(self) -> &'static str {
        match self {
            DType::Id => "id",
            DType::Float => "float",
            DType::Mask => "mask",
        }
    }
}

/// A closed interval of values a tensor's elements can take; unbounded by default.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Range {
    pub lo: f64,
    pub hi: f64,
}

impl Range {
    pub(crate) const ANY: Range = Range { lo: f64::NEG_INFINITY, hi: f64::INFINITY };
    pub(crate) const UNIT: Range = Range { lo: 0.0, hi: 1.0 };

    pub fn point(v: f64) -> Range {
        Range { lo: v, hi: v }
    }

    pub fn is_probability(self) -> bool {
        self.lo >= 0.0 && self.hi <= 1.0
    }

    pub(crate) fn is_bounded(self) -> bool {
        self.lo.is_finite() && self.hi.is_finite()
    }

    pub fn plus(self, o: Range) -> Range {
        Range { lo: self.lo + o.lo, hi: self.hi + o.hi }
    }

    pub(crate) fn negate(self) -> Range {
        Range { lo: -self.hi, hi: -self.lo }
    }

    pub(crate) fn minus(self, o: Range) -> Range {
        self.plus(o.negate())
    }

    pub fn times(self, o: Range) -> Range {
        if !(self.is_bounded() && o.is_bounded()) {
            // Sign-aware bounds for the common "non-negative times non-negative" case.
            if self.lo >= 0.0 && o.lo >= 0.0 {
                return Range { lo: self.lo * o.lo, hi: f64::INFINITY };
            }
            return Range::ANY;
        }
        let c = [self.lo * o.lo, self.lo * o.hi, self.hi * o.lo, self.hi * o.hi];
        Range {
            lo: c.iter().cloned().fold(f64::INFINITY, f64::min),
            hi: c.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
        }
    }

    pub(crate) fn hull(self, o: Range) -> Range {
        Range { lo: self.lo.min(o.lo), hi: self.hi.max(o.hi) }
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == Range::ANY {
            return write!(f, "unbounded");
        }
        let end = |v: f64| {
            if v.is_infinite() {
                if v > 0.0 {
                    "inf".to_string()
                } else {
                    "-inf".to_string()
                }
            } else {
                format_float(v)
            }
        };
        write!(f, "[{}, {}]", end(self.lo), end(self.hi))
    }
}

/// Fixed, locale-free float formatting used by every rendering: shortest round-trip form.
pub(crate) fn format_float(v: f64) -> String {
    if v.is_finite() && v == v.trunc() && v.abs() < 1e15 {
        format!("{v:.1}")
    } else {
        format!("{v}")
    }
}

/// The static type of a tensor value.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorType {
    pub dtype: DType,
    pub shape: Vec<Dim>,
    /// For id tensors: the size of the vocabulary the ids index.
    pub vocab: Option<Dim>,
    /// Known bounds of the element values.
    pub range: Range,
    /// True when the last axis is a probability distribution (softmax output).
    pub distribution: bool,
    /// True when column 0 of the last axis is each example's own target (sampled_logits).
    pub target_first: bool,
}

impl TensorType {
    pub fn float(shape: Vec<Dim>) -> TensorType {
        TensorType {
            dtype: DType::Float,
            shape,
            vocab: None,
            range: Range::ANY,
            distribution: false,
            target_first: false,
        }
    }

    pub fn mask(shape: Vec<Dim>) -> TensorType {
        TensorType { dtype: DType::Mask, range: Range::UNIT, ..TensorType::float(shape) }
    }

    pub(crate) fn with_range(mut self, range: Range) -> TensorType {
        self.range = range;
        self
    }

    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    pub(crate) fn shape_str(&self) -> String {
        shape_str(&self.shape)
    }
}

pub(crate) fn shape_str(shape: &[Dim]) -> String {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("[{}]", dims.join(", "))
}

impl fmt::Display for TensorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.dtype.name(), self.shape_str())
    }
}
