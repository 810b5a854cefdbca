//! TensorBoard event files (`../shared/LOGGING-FORMATS.md` §4): `events.out.tfevents.<secs>.<host>.<pid>.0`,
//! TFRecord framing (length, masked CRC-32C of the length, data, masked CRC-32C of the data) around
//! protobuf `Event`s: a file-version event, then one event a logged step with every metric as a scalar.
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use super::proto::Message;
use super::MetricSink;
use crate::error::{Error, Result};

/// TFRecord's masked CRC-32C.
pub fn masked_crc(data: &[u8]) -> u32 {
    let c = crc32c::crc32c(data);
    (c.rotate_right(15)).wrapping_add(0xa282_ead8)
}

/// One TFRecord frame around `data`.
pub fn frame(data: &[u8]) -> Vec<u8> {
    let len = (data.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(data.len() + 16);
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc(data).to_le_bytes());
    out
}

/// The records of a TFRecord stream, every length and data CRC checked; any input gives records or
/// a one-line error (how the tests read back what `frame` wrote).
pub fn read_frames(bytes: &[u8]) -> std::result::Result<Vec<Vec<u8>>, String> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let at = bytes.len() - rest.len();
        let (len_bytes, after) = split(rest, 8).ok_or(format!("truncated length at byte {at}"))?;
        let (len_crc, after) =
            split(after, 4).ok_or(format!("truncated length CRC at byte {at}"))?;
        if masked_crc(len_bytes) != u32_le(len_crc) {
            return Err(format!("length CRC mismatch at byte {at}"));
        }
        let len = u64::from_le_bytes(len_bytes.try_into().map_err(|_| "length")?);
        let len = usize::try_from(len)
            .ok()
            .filter(|&l| l <= after.len())
            .ok_or(format!(
                "record at byte {at} claims {len} bytes, more than the file holds"
            ))?;
        let (data, after) = after.split_at(len);
        let (data_crc, after) =
            split(after, 4).ok_or(format!("truncated data CRC at byte {at}"))?;
        if masked_crc(data) != u32_le(data_crc) {
            return Err(format!("data CRC mismatch in the record at byte {at}"));
        }
        out.push(data.to_vec());
        rest = after;
    }
    Ok(out)
}

fn split(b: &[u8], n: usize) -> Option<(&[u8], &[u8])> {
    (b.len() >= n).then(|| b.split_at(n))
}

fn u32_le(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

fn wall_time() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

pub struct TensorBoardWriter {
    out: BufWriter<File>,
    path: PathBuf,
}

impl TensorBoardWriter {
    pub fn create(log_dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(log_dir).map_err(|e| Error::io(log_dir, e))?;
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "localhost".into());
        let secs = wall_time() as u64;
        let path = log_dir.join(format!(
            "events.out.tfevents.{secs:010}.{host}.{}.0",
            std::process::id()
        ));
        let file = File::create(&path).map_err(|e| Error::io(&path, e))?;
        let mut w = Self {
            out: BufWriter::new(file),
            path,
        };
        w.write(
            &Message::new()
                .double(1, wall_time())
                .string(3, "brain.Event:2"),
        )?;
        Ok(w)
    }

    fn write(&mut self, event: &Message) -> Result<()> {
        self.out
            .write_all(&frame(&event.0))
            .and_then(|_| self.out.flush())
            .map_err(|e| Error::io(&self.path, e))
    }
}

impl MetricSink for TensorBoardWriter {
    fn log(&mut self, step: u64, _epoch: u64, metrics: &BTreeMap<String, f64>) -> Result<()> {
        let mut summary = Message::new();
        for (tag, v) in metrics {
            summary = summary.message(1, &Message::new().string(1, tag).float(2, *v as f32));
        }
        self.write(
            &Message::new()
                .double(1, wall_time())
                .int(2, step as i64)
                .message(5, &summary),
        )
    }

    fn finish(&mut self, _exit_code: i32) -> Result<()> {
        self.out.flush().map_err(|e| Error::io(&self.path, e))
    }

    fn describe(&self) -> String {
        let dir = self.path.parent().unwrap_or(&self.path);
        format!(
            "TensorBoard events in {}: view with `tensorboard --logdir {}`",
            dir.display(),
            dir.display()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_check_value_and_frame_layout() {
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
        let f = frame(b"abc");
        assert_eq!(f.len(), 8 + 4 + 3 + 4);
        assert_eq!(&f[..8], &3u64.to_le_bytes());
        assert_eq!(
            u32::from_le_bytes(f[8..12].try_into().unwrap()),
            masked_crc(&3u64.to_le_bytes())
        );
        assert_eq!(&f[12..15], b"abc");
        assert_eq!(
            u32::from_le_bytes(f[15..19].try_into().unwrap()),
            masked_crc(b"abc")
        );
    }
}
