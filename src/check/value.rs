//! Values the checker computes while elaborating a spec.

use crate::dim::Dim;
use crate::ir::Attr;
use crate::ops::Op;
use crate::types::TensorType;
use std::collections::BTreeMap;

/// A tensor flowing through the graph: its type and the input or node that produces it.
#[derive(Clone, Debug)]
pub struct Tensor {
    pub ty: TensorType,
    pub source: String,
}

/// What a callee is before configuration.
#[derive(Clone, Debug, PartialEq)]
pub enum Callee {
    Op(Op),
    Block(String),
}

/// A configured component: a constructor or block applied to its configuration.
#[derive(Clone, Debug)]
pub struct Instance {
    pub callee: Callee,
    /// The weight owner's name; `None` until the instance is bound by `let` or first applied.
    pub name: Option<String>,
    /// Configuration of a primitive, as attributes.
    pub attrs: BTreeMap<String, Attr>,
    /// Configuration of a block, as values.
    pub block_args: BTreeMap<String, Value>,
}

/// `count` copies of `proto`, each with its own weights; named like an instance once bound.
#[derive(Clone, Debug)]
pub struct Layers {
    pub count: usize,
    /// The configured component each copy starts from (unnamed).
    pub proto: Instance,
    /// The weight owners' prefix once bound by `let` (copies are `NAME/layerK`), so that every
    /// application of the bound value shares the copies' weights; `None` makes fresh copies.
    pub name: Option<String>,
}

#[derive(Clone, Debug)]
pub enum Value {
    Tensor(Tensor),
    Int(Dim),
    Float(f64),
    Bool(bool),
    Sym(String),
    Str(String),
    List(Vec<Value>),
    Callable(Callee),
    Instance(Box<Instance>),
    /// `layers(count, instance)`: copies of a configured component applied in sequence.
    Layers(Box<Layers>),
    /// A loss term (node name); only `loss` statements accept it.
    Loss(String),
    /// The result of an expression that already produced an error; silences follow-up errors.
    Poison,
}

impl Value {
    pub fn describe(&self) -> String {
        match self {
            Value::Tensor(t) => format!("a tensor {}", t.ty),
            Value::Int(d) => format!("the integer {d}"),
            Value::Float(v) => format!("the float {v}"),
            Value::Bool(b) => format!("the bool {b}"),
            Value::Sym(s) => format!("the option `{s}`"),
            Value::Str(_) => "a string".into(),
            Value::List(_) => "a list".into(),
            Value::Callable(Callee::Op(op)) => format!("the component `{}`", op.name()),
            Value::Callable(Callee::Block(b)) => format!("the block `{b}`"),
            Value::Instance(i) => match &i.callee {
                Callee::Op(op) => format!("a configured `{}`", op.name()),
                Callee::Block(b) => format!("a configured block `{b}`"),
            },
            Value::Layers(l) => {
                format!("{} layers of {}", l.count, Value::Instance(Box::new(l.proto.clone())).describe())
            }
            Value::Loss(_) => "a loss term".into(),
            Value::Poison => "an invalid value".into(),
        }
    }

    /// Converts a constant value to a node attribute.
    pub(crate) fn to_attr(&self) -> Option<Attr> {
        Some(match self {
            Value::Int(d) => Attr::Int(d.clone()),
            Value::Float(v) => Attr::Float(*v),
            Value::Bool(b) => Attr::Bool(*b),
            Value::Sym(s) => Attr::Sym(s.clone()),
            Value::Str(s) => Attr::Str(s.clone()),
            Value::List(items) => Attr::List(items.iter().map(Value::to_attr).collect::<Option<Vec<_>>>()?),
            _ => return None,
        })
    }
}
