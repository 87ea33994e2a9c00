//! `recspec convert`: a data set rewritten in another split format (JSON Lines <-> Parquet),
//! a folder of shards shard by shard into a folder of the same name, its other files
//! (`data.toml`, `items.jsonl`, ...) copied as they are.

use super::dataset::{split_file, SPLITS};
use super::AppError;
use crate::data::{jsonl_to_parquet, parquet_to_jsonl, DataFormat};
use crate::files::FileError;
use std::path::Path;

/// One split written: its name, the file (or folder of shards) written and its rows.
#[derive(Clone, Debug, PartialEq)]
pub struct Converted {
    pub split: String,
    pub file: std::path::PathBuf,
    pub rows: usize,
}

/// Writes the data set `data` to `out` (created if needed) with every split present in `to`'s
/// format. Splits already in that format are copied. `out` must not be `data`.
pub fn convert(data: &Path, to: DataFormat, out: &Path) -> Result<Vec<Converted>, AppError> {
    std::fs::create_dir_all(out).map_err(FileError::at("create", out))?;
    let same = |a: &Path, b: &Path| a.canonicalize().ok().zip(b.canonicalize().ok()).is_some_and(|(a, b)| a == b);
    if same(data, out) {
        return Err(AppError::Data(crate::data::DataError {
            file: out.to_path_buf(),
            row: 0,
            message: "the output directory is the data set itself; choose another --out".into(),
        }));
    }
    let mut done = vec![];
    let mut split_files = vec![];
    for split in SPLITS {
        let src = match split_file(data, split) {
            Err(AppError::MissingSplit { .. }) => continue,
            found => found?,
        };
        split_files.push(src.clone());
        let (dst, rows) = if src.is_dir() {
            let folder = out.join(split);
            std::fs::create_dir_all(&folder).map_err(FileError::at("create", &folder))?;
            let mut rows = 0;
            for shard in crate::data::shards(&src)? {
                let stem = shard.file_stem().unwrap_or_default().to_string_lossy().into_owned();
                rows += convert_file(&shard, to, &folder.join(format!("{stem}.{}", to.extension())))?;
            }
            (folder, rows)
        } else {
            let dst = out.join(format!("{split}.{}", to.extension()));
            let rows = convert_file(&src, to, &dst)?;
            (dst, rows)
        };
        done.push(Converted { split: split.to_string(), file: dst, rows });
    }
    for entry in std::fs::read_dir(data).map_err(FileError::at("read", data))? {
        let path = entry.map_err(FileError::at("read", data))?.path();
        if path.is_file() && !split_files.contains(&path) {
            if let Some(name) = path.file_name() {
                std::fs::copy(&path, out.join(name)).map_err(FileError::at("copy", &path))?;
            }
        }
    }
    Ok(done)
}

/// Writes one data file in `to`'s format (a copy when it is in that format already); its rows.
fn convert_file(src: &Path, to: DataFormat, dst: &Path) -> Result<usize, AppError> {
    Ok(match (DataFormat::of_path(src), to) {
        (DataFormat::JsonLines, DataFormat::Parquet) => jsonl_to_parquet(src, dst)?,
        (DataFormat::Parquet, DataFormat::JsonLines) => parquet_to_jsonl(src, dst)?,
        _ => {
            std::fs::copy(src, dst).map_err(FileError::at("copy", src))?;
            crate::data::count_rows(dst)?
        }
    })
}
