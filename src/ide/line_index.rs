//! Byte offsets to editor positions and back: zero-based lines and UTF-16 code-unit columns,
//! as the Language Server Protocol counts them.

/// A zero-based line and UTF-16 column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct LineCol {
    pub line: u32,
    pub col: u32,
}

/// The line starts of one text.
#[derive(Clone, Debug)]
pub(crate) struct LineIndex<'t> {
    text: &'t str,
    /// Byte offset of the start of every line; the first is 0.
    starts: Vec<usize>,
}

impl<'t> LineIndex<'t> {
    pub fn new(text: &'t str) -> LineIndex<'t> {
        let starts = std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect();
        LineIndex { text, starts }
    }

    /// The position of a byte offset (clamped to the text, and back to a character boundary).
    pub fn line_col(&self, offset: usize) -> LineCol {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.starts.partition_point(|&s| s <= offset) - 1;
        let col: usize = self.text[self.starts[line]..offset].chars().map(char::len_utf16).sum();
        LineCol { line: line as u32, col: col as u32 }
    }

    /// The byte offset of a position; a line past the end is the end of the text, a column past
    /// the end of its line is the line's end, and a column inside a character is its start.
    pub fn offset(&self, pos: LineCol) -> usize {
        let Some(&start) = self.starts.get(pos.line as usize) else {
            return self.text.len();
        };
        let line = &self.text[start..];
        let line = &line[..line.find('\n').unwrap_or(line.len())];
        let mut units = 0;
        for (i, ch) in line.char_indices() {
            if units >= pos.col as usize {
                return start + i;
            }
            units += ch.len_utf16();
            if units > pos.col as usize {
                return start + i;
            }
        }
        start + line.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_utf16_units() {
        // `é` is 2 bytes and 1 UTF-16 unit; `𝔻` is 4 bytes and 2 units.
        let text = "ab\né x\n𝔻 y\n";
        let idx = LineIndex::new(text);
        assert_eq!(idx.line_col(0), LineCol { line: 0, col: 0 });
        assert_eq!(idx.line_col(3), LineCol { line: 1, col: 0 });
        let x = text.find('x').unwrap();
        assert_eq!(idx.line_col(x), LineCol { line: 1, col: 2 });
        let y = text.find('y').unwrap();
        assert_eq!(idx.line_col(y), LineCol { line: 2, col: 3 });
        for off in [0, 1, 3, x, y, text.len()] {
            assert_eq!(idx.offset(idx.line_col(off)), off);
        }
        // Inside `𝔻` (column 1) falls back to its start; past the line's end clamps.
        assert_eq!(idx.offset(LineCol { line: 2, col: 1 }), text.find('𝔻').unwrap());
        assert_eq!(idx.offset(LineCol { line: 0, col: 99 }), 2);
        assert_eq!(idx.offset(LineCol { line: 99, col: 0 }), text.len());
        assert_eq!(idx.line_col(999), LineCol { line: 3, col: 0 });
    }
}
