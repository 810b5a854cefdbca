//! A native writer of W&B's offline run format (`../shared/LOGGING-FORMATS.md` §2), so `wandb sync` or
//! `wandb beta sync --live` uploads the run with no Python in the training process:
//! `<dir>/wandb/offline-run-<YYYYMMDD_HHMMSS>-<id>/run-<id>.wandb`, a LevelDB-style log (32 KiB blocks,
//! FULL/FIRST/MIDDLE/LAST chunks, CRC-32/IEEE over type and payload) of protobuf `Record`s: the run
//! (with config), one history record per logged step, summary updates, and the exit record.
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

mod record_reader;

pub use record_reader::read_records;

use super::proto::Message;
use super::MetricSink;
use crate::error::{Error, Result};

const BLOCK: usize = 32 * 1024;
const CHUNK_HEADER: usize = 7;
const FILE_HEADER: &[u8] = b":W&B\xe1\xbe\x00";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    Full = 1,
    First = 2,
    Middle = 3,
    Last = 4,
}

/// The LevelDB-log framing of a `.wandb` file.
pub struct RecordLog<W: Write> {
    out: W,
    block_offset: usize,
}

impl<W: Write> RecordLog<W> {
    /// Starts a file: the 7-byte W&B header counts against the first block.
    pub fn new(mut out: W) -> std::io::Result<Self> {
        out.write_all(FILE_HEADER)?;
        Ok(Self {
            out,
            block_offset: FILE_HEADER.len(),
        })
    }

    /// Appends one record, split across blocks as LevelDB does (a header never straddles a block;
    /// fewer than 7 bytes left are zero-padded; exactly 7 left gives a zero-length FIRST chunk).
    pub fn write_record(&mut self, data: &[u8]) -> std::io::Result<()> {
        let mut left = data;
        let mut begin = true;
        loop {
            let leftover = BLOCK - self.block_offset;
            if leftover < CHUNK_HEADER {
                self.out.write_all(&[0u8; CHUNK_HEADER][..leftover])?;
                self.block_offset = 0;
            }
            let avail = BLOCK - self.block_offset - CHUNK_HEADER;
            let len = left.len().min(avail);
            let end = len == left.len();
            let kind = match (begin, end) {
                (true, true) => Chunk::Full,
                (true, false) => Chunk::First,
                (false, true) => Chunk::Last,
                (false, false) => Chunk::Middle,
            };
            let (fragment, rest) = left.split_at(len);
            let mut crc = crc32fast::Hasher::new();
            crc.update(&[kind as u8]);
            crc.update(fragment);
            self.out.write_all(&crc.finalize().to_le_bytes())?;
            self.out.write_all(&(len as u16).to_le_bytes())?;
            self.out.write_all(&[kind as u8])?;
            self.out.write_all(fragment)?;
            self.block_offset += CHUNK_HEADER + len;
            left = rest;
            begin = false;
            if end {
                return Ok(());
            }
        }
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

/// A metric value as W&B's `value_json`, with the non-standard tokens wandb accepts for non-finite values.
pub fn value_json(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        }
    } else if v.fract() == 0.0 && v.abs() < 9e15 {
        format!("{}", v as i64)
    } else {
        format!("{v:?}")
    }
}

fn item(key: &str, value_json: &str) -> Message {
    Message::new().string(1, key).string(16, value_json)
}

/// Where and as whom the run is recorded (WandBCallback options and wandb's environment variables).
#[derive(Debug, Clone, Default)]
pub struct WandbOptions {
    /// The folder that gets `wandb/` (`WANDB_DIR` or the trainer's work dir).
    pub base_dir: PathBuf,
    pub run_id: String,
    pub display_name: Option<String>,
    pub project: Option<String>,
    pub entity: Option<String>,
    pub group: Option<String>,
    pub tags: Vec<String>,
    pub notes: Option<String>,
    /// The config tree to record (top-level keys become config items).
    pub config: serde_json::Value,
}

/// wandb's run-id rules: no leading/trailing whitespace and none of `:;,#?/'`.
pub fn sanitize_run_id(name: &str) -> String {
    let id: String = name
        .trim()
        .chars()
        .filter(|c| !":;,#?/'".contains(*c))
        .collect();
    if id.is_empty() {
        "olmo-train-run".into()
    } else {
        id
    }
}

pub struct WandbWriter {
    log: RecordLog<BufWriter<File>>,
    path: PathBuf,
    started: SystemTime,
    num: i64,
}

impl WandbWriter {
    pub fn create(opts: &WandbOptions) -> Result<Self> {
        let started = SystemTime::now();
        let secs = started
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let dir = opts.base_dir.join("wandb").join(format!(
            "offline-run-{}-{}",
            utc_stamp(secs),
            opts.run_id
        ));
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let path = dir.join(format!("run-{}.wandb", opts.run_id));
        let file = File::create(&path).map_err(|e| Error::io(&path, e))?;
        let log = RecordLog::new(BufWriter::new(file)).map_err(|e| Error::io(&path, e))?;
        let mut w = Self {
            log,
            path,
            started,
            num: 0,
        };
        w.write(17, &run_record(opts, secs))?;
        Ok(w)
    }

    /// The run folder, for `wandb sync`.
    pub fn run_dir(&self) -> &Path {
        self.path.parent().unwrap_or(&self.path)
    }

    fn write(&mut self, field: u32, body: &Message) -> Result<()> {
        self.num += 1;
        let record = Message::new().int(1, self.num).message(field, body);
        self.log
            .write_record(&record.0)
            .and_then(|_| self.log.flush())
            .map_err(|e| Error::io(&self.path, e))
    }

    fn runtime(&self) -> f64 {
        self.started
            .elapsed()
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0)
    }
}

impl MetricSink for WandbWriter {
    fn log(&mut self, step: u64, _epoch: u64, metrics: &BTreeMap<String, f64>) -> Result<()> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        let mut history = Message::new();
        let mut summary = Message::new();
        for (k, v) in metrics {
            history = history.message(1, &item(k, &value_json(*v)));
            summary = summary.message(1, &item(k, &value_json(*v)));
        }
        for (k, v) in [
            ("_step", step.to_string()),
            ("_runtime", format!("{:?}", self.runtime())),
            ("_timestamp", format!("{now:?}")),
        ] {
            history = history.message(1, &item(k, &v));
        }
        summary = summary.message(1, &item("_step", &step.to_string()));
        let history = history.message(2, &Message::new().int(1, step as i64));
        self.write(2, &history)?;
        self.write(3, &summary)
    }

    fn finish(&mut self, exit_code: i32) -> Result<()> {
        let exit = Message::new()
            .int(1, i64::from(exit_code))
            .int(2, self.runtime() as i64);
        self.write(18, &exit)
    }

    fn describe(&self) -> String {
        format!(
            "W&B offline run in {}: upload it with `wandb sync {}`",
            self.run_dir().display(),
            self.run_dir().display()
        )
    }
}

fn run_record(o: &WandbOptions, secs: u64) -> Message {
    let mut config = Message::new();
    if let serde_json::Value::Object(map) = &o.config {
        for (k, v) in map {
            config = config.message(1, &item(k, &v.to_string()));
        }
    }
    let mut run = Message::new().string(1, &o.run_id);
    if let Some(e) = &o.entity {
        run = run.string(2, e);
    }
    run = run
        .string(3, o.project.as_deref().unwrap_or("uncategorized"))
        .message(4, &config);
    if let Some(g) = &o.group {
        run = run.string(6, g);
    }
    if let Some(n) = &o.display_name {
        run = run.string(8, n);
    }
    if let Some(n) = &o.notes {
        run = run.string(9, n);
    }
    for t in &o.tags {
        run = run.string(10, t);
    }
    if let Ok(h) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        run = run.string(13, h.trim());
    }
    run.message(17, &Message::new().int(1, secs as i64))
}

/// `YYYYMMDD_HHMMSS` in UTC (the days-to-civil algorithm, so no date crate is needed for one stamp).
fn utc_stamp(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}_{:02}{:02}{:02}",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests;
