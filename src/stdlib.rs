//! The standard library of blocks, written in the spec language and embedded in the binary.

const FILES: &[(&str, &str)] = &[
    ("std/attention.recspec", include_str!("../std/attention.recspec")),
    ("std/interaction.recspec", include_str!("../std/interaction.recspec")),
];

/// The text of a standard library file, by its import path.
pub fn get(path: &str) -> Option<&'static str> {
    FILES.iter().find(|(name, _)| *name == path).map(|(_, text)| *text)
}

pub fn names() -> Vec<&'static str> {
    FILES.iter().map(|(name, _)| *name).collect()
}
