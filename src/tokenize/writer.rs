//! Dolma's output layout: `part-{P}-{NNNNN}.npy` (a raw little-endian array of `--dtype`, no header,
//! despite the name) and beside each a `part-{P}-{NNNNN}.csv.gz` with one row a document:
//! `start,end,id,src,loc` (0-based start, exclusive end, source file, 1-based line). A new pair starts
//! when the next document would push the `.npy` past `--max_size` bytes. Files are written in a
//! staging folder and moved into the destination only by `publish`, once the whole run succeeded.
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use flate2::write::GzEncoder;

use crate::error::{Error, Result};
use crate::token_dtype::TokenDType;

struct OpenPart {
    stem: String,
    npy: BufWriter<File>,
    csv: csv::Writer<GzEncoder<BufWriter<File>>>,
    tokens: u64,
}

/// Writes documents, in the order given, into size-capped part files in `staging`.
pub struct PartWriter {
    staging: PathBuf,
    prefix: String,
    width: TokenDType,
    max_bytes: u64,
    next_index: usize,
    open: Option<OpenPart>,
    finished: Vec<String>,
    scratch: Vec<u8>,
}

impl PartWriter {
    pub fn new(staging: &Path, prefix: &str, width: TokenDType, max_bytes: u64) -> Self {
        Self {
            staging: staging.to_path_buf(),
            prefix: prefix.to_string(),
            width,
            max_bytes,
            next_index: 0,
            open: None,
            finished: Vec::new(),
            scratch: Vec::new(),
        }
    }

    /// Appends one document's tokens (EOS/BOS already added) and its metadata row.
    pub fn write_document(&mut self, tokens: &[u32], id: &str, src: &str, line: u64) -> Result<()> {
        let bytes = (tokens.len() * self.width.bytes()) as u64;
        let full = self.open.as_ref().is_some_and(|p| {
            p.tokens > 0 && p.tokens * self.width.bytes() as u64 + bytes > self.max_bytes
        });
        if full {
            self.close_part()?;
        }
        if self.open.is_none() {
            self.open_part()?;
        }
        self.scratch.clear();
        for &t in tokens {
            self.width.push_le(u64::from(t), &mut self.scratch);
        }
        let staging = self.staging.clone();
        let part = self
            .open
            .as_mut()
            .ok_or_else(|| Error::Internal("no open part".into()))?;
        part.npy
            .write_all(&self.scratch)
            .map_err(|e| Error::io(staging.join(format!("{}.npy", part.stem)), e))?;
        let start = part.tokens;
        part.tokens += tokens.len() as u64;
        part.csv
            .write_record([
                start.to_string(),
                part.tokens.to_string(),
                id.to_string(),
                src.to_string(),
                line.to_string(),
            ])
            .map_err(|e| Error::Input {
                path: staging.join(format!("{}.csv.gz", part.stem)),
                reason: e.to_string(),
            })?;
        Ok(())
    }

    fn open_part(&mut self) -> Result<()> {
        let stem = format!("{}-{:05}", self.prefix, self.next_index);
        self.next_index += 1;
        let create = |name: String| -> Result<BufWriter<File>> {
            let path = self.staging.join(name);
            File::create(&path)
                .map(|f| BufWriter::with_capacity(1 << 20, f))
                .map_err(|e| Error::io(path, e))
        };
        let npy = create(format!("{stem}.npy"))?;
        let gz = GzEncoder::new(
            create(format!("{stem}.csv.gz"))?,
            flate2::Compression::default(),
        );
        let csv = csv::WriterBuilder::new().has_headers(false).from_writer(gz);
        self.open = Some(OpenPart {
            stem,
            npy,
            csv,
            tokens: 0,
        });
        Ok(())
    }

    fn close_part(&mut self) -> Result<()> {
        let Some(part) = self.open.take() else {
            return Ok(());
        };
        let npy_path = self.staging.join(format!("{}.npy", part.stem));
        let csv_path = self.staging.join(format!("{}.csv.gz", part.stem));
        let npy = part
            .npy
            .into_inner()
            .map_err(|e| Error::io(&npy_path, e.into_error()))?;
        npy.sync_all().map_err(|e| Error::io(&npy_path, e))?;
        let gz = part
            .csv
            .into_inner()
            .map_err(|e| Error::io(&csv_path, e.into_error()))?;
        let csv_file = gz.finish().map_err(|e| Error::io(&csv_path, e))?;
        let csv_file = csv_file
            .into_inner()
            .map_err(|e| Error::io(&csv_path, e.into_error()))?;
        csv_file.sync_all().map_err(|e| Error::io(&csv_path, e))?;
        self.finished.push(part.stem);
        Ok(())
    }

    /// Closes the last part and returns the stems of every part written, in order.
    pub fn finish(mut self) -> Result<Vec<String>> {
        self.close_part()?;
        Ok(self.finished)
    }
}

/// Moves each finished part from `staging` into `destination` (`.npy` last, so a reader that sees a
/// token file also sees its metadata), then removes the staging folder.
pub fn publish(staging: &Path, destination: &Path, stems: &[String]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for stem in stems {
        for ext in ["csv.gz", "npy"] {
            let from = staging.join(format!("{stem}.{ext}"));
            let to = destination.join(format!("{stem}.{ext}"));
            std::fs::rename(&from, &to).map_err(|e| Error::io(&to, e))?;
            if ext == "npy" {
                out.push(to);
            }
        }
    }
    std::fs::remove_dir_all(staging).map_err(|e| Error::io(staging, e))?;
    Ok(out)
}
