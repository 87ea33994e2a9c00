//! The option values of op arguments (`mode: mean`, `act: relu`...) as enums.
//!
//! Each enum lists its spellings once; the catalogue in [`super`] takes its option lists from
//! `NAMES`, so a spelling the checker accepts always has a variant, and the lowering turns an
//! attribute into a variant with [`parse`](Activation::parse) or reports it. No back end compares
//! option strings.

macro_rules! options {
    ($( $(#[$doc:meta])* $name:ident { $( $variant:ident => $spelling:literal ),+ $(,)? } )*) => {
        $(
            $(#[$doc])*
            #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
            pub enum $name { $($variant),+ }

            impl $name {
                /// Every spelling, in catalogue order (the first is the default where the
                /// catalogue gives no other).
                pub const NAMES: &'static [&'static str] = &[$($spelling),+];

                /// The variant a spelling names.
                pub fn parse(s: &str) -> Option<$name> {
                    match s {
                        $($spelling => Some($name::$variant),)+
                        _ => None,
                    }
                }

                /// The spelling in spec files.
                pub fn name(self) -> &'static str {
                    match self { $($name::$variant => $spelling),+ }
                }
            }
        )*

        /// Every option enum's name and spellings: the table the Python op package's
        /// `OPTIONS` must equal (`tests/it/pytorch.rs`).
        pub const ALL: &[(&str, &[&str])] = &[$((stringify!($name), $name::NAMES)),*];
    };
}

options! {
    /// An element-wise activation of `MLP` and `MMoE` layers.
    Activation { Relu => "relu", Sigmoid => "sigmoid", Tanh => "tanh", Gelu => "gelu", Identity => "none" }
    /// How `pool` combines the positions of axis 1.
    PoolMode { Mean => "mean", Sum => "sum", Max => "max" }
    /// Whether `pool` also counts padded positions.
    Padding { Exclude => "exclude", Include => "include" }
    /// How `attention_pool` normalises its scores over valid positions.
    AttentionNorm { Softmax => "softmax", Sum => "sum", Raw => "none" }
    /// The divisor of `SelfAttention` scores: sqrt of the head dim, the model dim, or the length.
    AttentionScale { SqrtHead => "sqrt_head", SqrtModel => "sqrt_model", SqrtLen => "sqrt_len" }
    /// Whether `PositionEmbedding` adds its vectors or concatenates them.
    PositionMode { Add => "add", Concat => "concat" }
    /// What `GRU` returns: the last valid state, or every state.
    GruOutput { Last => "last", All => "all" }
    /// What `Memory` returns: the read vector, or the read and the write-addressed summary.
    MemoryOutput { Read => "read", Both => "both" }
    /// The distance of `triplet`.
    Distance { Cosine => "cosine", Euclidean => "euclidean" }
}

/// `out_act` of `MLP`: the activations, with `none` first (its default).
pub(crate) const OUTPUT_ACTIVATIONS: &[&str] = &["none", "relu", "sigmoid", "tanh", "gelu"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_activations_are_the_activations() {
        let mut a: Vec<&str> = Activation::NAMES.to_vec();
        let mut b: Vec<&str> = OUTPUT_ACTIVATIONS.to_vec();
        a.sort();
        b.sort();
        assert_eq!(a, b);
        assert!(OUTPUT_ACTIVATIONS.iter().all(|s| Activation::parse(s).is_some_and(|v| v.name() == *s)));
        assert_eq!(OUTPUT_ACTIVATIONS[0], "none");
    }

    #[test]
    fn misspelt_options_do_not_parse() {
        assert_eq!(PoolMode::parse("mean"), Some(PoolMode::Mean));
        assert_eq!(PoolMode::parse("avg"), None);
        assert_eq!(Activation::parse("Relu"), None);
        assert_eq!(AttentionScale::parse(""), None);
    }
}
