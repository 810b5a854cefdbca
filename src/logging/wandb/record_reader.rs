//! Reads the LevelDB-log framing of a `.wandb` file back into records, checking the header, every
//! chunk's CRC and the FULL/FIRST/MIDDLE/LAST sequence: how the tests (and anyone inspecting a run
//! without wandb installed) check what `RecordLog` wrote. Any input gives records or one-line error.
use super::{Chunk, BLOCK, CHUNK_HEADER, FILE_HEADER};

pub fn read_records(bytes: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    if !bytes.starts_with(FILE_HEADER) {
        return Err("not a .wandb file: the 7-byte W&B header is missing".into());
    }
    let mut records = Vec::new();
    let mut partial: Option<Vec<u8>> = None;
    let mut pos = FILE_HEADER.len();
    while pos < bytes.len() {
        let left_in_block = BLOCK - pos % BLOCK;
        if left_in_block < CHUNK_HEADER {
            // The writer zero-pads a block tail too short for a header.
            pos += left_in_block;
            continue;
        }
        let header = bytes
            .get(pos..pos + CHUNK_HEADER)
            .ok_or_else(|| format!("truncated chunk header at byte {pos}"))?;
        let crc = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        let len = usize::from(u16::from_le_bytes([header[4], header[5]]));
        let kind = header[6];
        if CHUNK_HEADER + len > left_in_block {
            return Err(format!("chunk at byte {pos} runs past its block"));
        }
        let payload = bytes
            .get(pos + CHUNK_HEADER..pos + CHUNK_HEADER + len)
            .ok_or_else(|| format!("truncated chunk at byte {pos}"))?;
        let mut h = crc32fast::Hasher::new();
        h.update(&[kind]);
        h.update(payload);
        if h.finalize() != crc {
            return Err(format!("CRC mismatch in the chunk at byte {pos}"));
        }
        match (kind, partial.as_mut()) {
            (k, None) if k == Chunk::Full as u8 => records.push(payload.to_vec()),
            (k, None) if k == Chunk::First as u8 => partial = Some(payload.to_vec()),
            (k, Some(p)) if k == Chunk::Middle as u8 => p.extend_from_slice(payload),
            (k, Some(p)) if k == Chunk::Last as u8 => {
                p.extend_from_slice(payload);
                records.extend(partial.take());
            }
            (k, _) => return Err(format!("unexpected chunk type {k} at byte {pos}")),
        }
        pos += CHUNK_HEADER + len;
    }
    if partial.is_some() {
        return Err("the file ends inside a record".into());
    }
    Ok(records)
}
