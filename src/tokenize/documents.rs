//! Raw Dolma documents: JSON lines (`id`, `text`, `source` required; `added`, `created`, `metadata`
//! optional) in `.jsonl`/`.json` files, plain or compressed with gzip or zstd.
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::Deserialize;

use crate::error::{Error, Result};

/// The input globs expanded, sorted and de-duplicated; an empty glob is an error naming it.
pub fn expand_document_globs(patterns: &[String]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for pattern in patterns {
        let paths = glob::glob(pattern)
            .map_err(|e| Error::Usage(format!("--documents '{pattern}': not a valid glob: {e}")))?;
        let mut matched: Vec<PathBuf> = paths
            .filter_map(|p| p.ok())
            .filter(|p| p.is_file())
            .collect();
        if matched.is_empty() {
            return Err(Error::Usage(format!(
                "--documents '{pattern}': no file matches this glob"
            )));
        }
        matched.sort();
        files.extend(matched);
    }
    files.dedup();
    Ok(files)
}

/// The compression of an input file, from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    pub fn of(path: &Path) -> Result<Self> {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let c = if name.ends_with(".gz") {
            Self::Gzip
        } else if name.ends_with(".zst") || name.ends_with(".zstd") {
            Self::Zstd
        } else {
            Self::None
        };
        let stem = name
            .trim_end_matches(".gz")
            .trim_end_matches(".zstd")
            .trim_end_matches(".zst");
        if !(stem.ends_with(".jsonl") || stem.ends_with(".json")) {
            return Err(Error::Input {
                path: path.to_path_buf(),
                reason: "expected a .jsonl or .json file, optionally .gz or .zst compressed".into(),
            });
        }
        Ok(c)
    }
}

/// Counts the compressed bytes read, for progress and ETA.
struct CountingReader<R> {
    inner: R,
    counter: Arc<AtomicU64>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.counter.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Line-by-line reader of one input file; `next_line` yields raw lines with their 1-based numbers.
pub struct LineReader {
    path: PathBuf,
    reader: Box<dyn BufRead + Send>,
    line_no: u64,
}

impl LineReader {
    pub fn open(path: &Path, bytes_read: Arc<AtomicU64>) -> Result<Self> {
        let compression = Compression::of(path)?;
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let counted = CountingReader {
            inner: file,
            counter: bytes_read,
        };
        let reader: Box<dyn BufRead + Send> = match compression {
            Compression::None => Box::new(BufReader::with_capacity(1 << 20, counted)),
            Compression::Gzip => Box::new(BufReader::with_capacity(
                1 << 20,
                flate2::read::MultiGzDecoder::new(counted),
            )),
            Compression::Zstd => {
                let decoder = zstd::Decoder::new(counted).map_err(|e| Error::io(path, e))?;
                Box::new(BufReader::with_capacity(1 << 20, decoder))
            }
        };
        Ok(Self {
            path: path.to_path_buf(),
            reader,
            line_no: 0,
        })
    }

    /// The next line (without its newline) and its number, or `None` at the end of the file. A read
    /// error (a truncated or corrupt gzip/zstd stream) is an error naming the file and line.
    pub fn next_line(&mut self) -> Result<Option<(u64, Vec<u8>)>> {
        let mut buf = Vec::new();
        let n = self
            .reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| Error::Input {
                path: self.path.clone(),
                reason: format!(
                    "cannot read past line {}: {e} (truncated or corrupt file?)",
                    self.line_no
                ),
            })?;
        if n == 0 {
            return Ok(None);
        }
        self.line_no += 1;
        if buf.last() == Some(&b'\n') {
            buf.pop();
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
        }
        Ok(Some((self.line_no, buf)))
    }
}

/// A parsed document: what tokenizing needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub id: String,
    pub text: String,
}

#[derive(Deserialize)]
struct RawDocument {
    id: Option<serde_json::Value>,
    text: Option<serde_json::Value>,
    source: Option<serde_json::Value>,
}

/// Parses one line; `Err` carries why the line is skipped.
pub fn parse_document(line: &[u8]) -> std::result::Result<Document, String> {
    let line = std::str::from_utf8(line).map_err(|e| format!("not UTF-8 ({e})"))?;
    if line.trim().is_empty() {
        return Err("empty line".into());
    }
    let raw: RawDocument =
        serde_json::from_str(line).map_err(|e| format!("not a JSON object ({e})"))?;
    let text = match raw.text {
        Some(serde_json::Value::String(s)) => s,
        Some(other) => return Err(format!("'text' is not a string (got {})", kind(&other))),
        None => return Err("missing 'text'".into()),
    };
    let id = match raw.id {
        Some(serde_json::Value::String(s)) => s,
        Some(other) => return Err(format!("'id' is not a string (got {})", kind(&other))),
        None => return Err("missing 'id'".into()),
    };
    match raw.source {
        Some(serde_json::Value::String(_)) => {}
        Some(other) => return Err(format!("'source' is not a string (got {})", kind(&other))),
        None => return Err("missing 'source'".into()),
    }
    Ok(Document { id, text })
}

fn kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "a list",
        serde_json::Value::Object(_) => "an object",
    }
}

/// Python's `str.strip()`, which dolma applies before tokenizing: it also strips the ASCII
/// separators U+001C..U+001F that Rust's `trim` keeps.
pub fn python_strip(text: &str) -> &str {
    text.trim_matches(|c: char| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_accepts_dolma_documents_and_explains_rejections() {
        let ok =
            parse_document(br#"{"id": "a", "text": "hi", "source": "s", "metadata": {"x": 1}}"#)
                .unwrap();
        assert_eq!(
            ok,
            Document {
                id: "a".into(),
                text: "hi".into()
            }
        );
        assert_eq!(
            parse_document(b"{not json").unwrap_err().split(' ').next(),
            Some("not")
        );
        assert_eq!(
            parse_document(br#"{"id": "a", "source": "s"}"#).unwrap_err(),
            "missing 'text'"
        );
        assert!(parse_document(br#"{"id": "a", "text": 5, "source": "s"}"#)
            .unwrap_err()
            .contains("not a string"));
        assert_eq!(
            parse_document(br#"{"text": "t", "source": "s"}"#).unwrap_err(),
            "missing 'id'"
        );
        assert_eq!(
            parse_document(br#"{"id": "a", "text": "t"}"#).unwrap_err(),
            "missing 'source'"
        );
        assert!(parse_document(b"\xff\xfe").unwrap_err().contains("UTF-8"));
    }

    #[test]
    fn python_strip_matches_str_strip() {
        assert_eq!(python_strip("\u{1c}\t hello \u{85}\u{a0}\n"), "hello");
        assert_eq!(python_strip("  "), "");
    }

    #[test]
    fn file_kinds_by_extension() {
        assert_eq!(
            Compression::of(Path::new("a.jsonl.gz")).unwrap(),
            Compression::Gzip
        );
        assert_eq!(
            Compression::of(Path::new("a.json.zst")).unwrap(),
            Compression::Zstd
        );
        assert_eq!(
            Compression::of(Path::new("a.jsonl")).unwrap(),
            Compression::None
        );
        assert!(Compression::of(Path::new("a.txt")).is_err());
    }
}
