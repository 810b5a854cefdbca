//! What every unit of one forward shares: RoPE's sin/cos tables and how attention is confined
//! (documents and causality), built once per forward. Both come from positions and document lengths
//! that the host has (the loader made them there): the forward never reads a device tensor back (on a
//! GPU each read would wait for the queued kernels). The documents also come as cumulative lengths for
//! variable-length flash attention; those and the dense `[B, 1, T, T]` mask are built only if a layer
//! asks for them.
use std::cell::OnceCell;

use tch::{Device, Kind, Tensor};

use super::rope::{Rope, RopeTables};
use crate::device::upload;

/// Each instance's document lengths (zero-padded rows are fine), as the loader made them on the host.
pub type DocLens = [Vec<i64>];

/// The sequences of a batch as variable-length attention takes them: every document (or, without
/// documents, every instance) one after another, delimited by cumulative lengths.
pub struct Varlen {
    /// int32 `[sequences + 1]` on the device: 0, then each sequence's end.
    pub cu_seqlens: Tensor,
    /// The longest sequence.
    pub max_len: i64,
}

pub struct ForwardContext {
    pub rope: RopeTables,
    /// `[B, T]` document index of every token (with document masking).
    doc_ids: Option<Tensor>,
    /// `[B, 1, T, T]` bool, true where attention is allowed, made from `doc_ids` on first use.
    doc_mask: OnceCell<Tensor>,
    /// The lengths of the batch's sequences (documents, else instances), on the host; `None` for
    /// packed sequences with an explicit mask.
    seq_lens: Option<Vec<i64>>,
    device: Device,
    /// `seq_lens` for variable-length attention, made on first use.
    varlen: OnceCell<Varlen>,
}

impl ForwardContext {
    /// For `[batch, t]` token ids on `device`; with `doc_lens` (one row per instance, each summing to
    /// `t`) positions restart per document and attention stays within documents.
    pub fn new(
        batch: i64,
        t: i64,
        doc_lens: Option<&DocLens>,
        device: Device,
        rope: &Rope,
    ) -> Self {
        let seq_lens = Some(match doc_lens {
            Some(rows) => rows.iter().flatten().copied().filter(|&l| l > 0).collect(),
            None => vec![t; batch as usize],
        });
        let Some(rows) = doc_lens else {
            let positions = Tensor::arange(t, (Kind::Float, device)).unsqueeze(0);
            return Self {
                rope: rope.tables_at(&positions),
                doc_ids: None,
                doc_mask: OnceCell::new(),
                seq_lens,
                device,
                varlen: OnceCell::new(),
            };
        };
        let (positions, ids) = positions_and_document_ids(rows);
        let positions = upload(&Tensor::from_slice(&positions).view([batch, t]), device);
        let ids = upload(&Tensor::from_slice(&ids).view([batch, t]), device);
        Self {
            rope: rope.tables_at(&positions),
            doc_ids: Some(ids),
            doc_mask: OnceCell::new(),
            seq_lens,
            device,
            varlen: OnceCell::new(),
        }
    }

    /// Explicit positions (`[B, T]`) and mask (`[B, 1, T, T]`), for packed sequences.
    pub fn with_mask(positions: &Tensor, mask: Tensor, rope: &Rope) -> Self {
        Self {
            rope: rope.tables_at(&positions.to_kind(Kind::Float)),
            doc_ids: None,
            device: mask.device(),
            doc_mask: OnceCell::from(mask),
            seq_lens: None,
            varlen: OnceCell::new(),
        }
    }

    /// Whether attention is confined to documents (beyond causality).
    pub fn has_documents(&self) -> bool {
        self.doc_ids.is_some() || self.doc_mask.get().is_some()
    }

    /// The batch's sequences for variable-length attention (`None` for packed sequences with an
    /// explicit mask), uploaded on first use.
    pub fn varlen(&self) -> Option<&Varlen> {
        let lens = self.seq_lens.as_ref()?;
        Some(self.varlen.get_or_init(|| Varlen {
            cu_seqlens: upload(&Tensor::from_slice(&cumulative(lens)), self.device),
            max_len: lens.iter().copied().max().unwrap_or(0),
        }))
    }

    /// The `[B, 1, T, T]` document-and-causal mask, when there are documents.
    pub fn doc_mask(&self) -> Option<&Tensor> {
        if let Some(m) = self.doc_mask.get() {
            return Some(m);
        }
        let ids = self.doc_ids.as_ref()?;
        Some(self.doc_mask.get_or_init(|| {
            let (b, t) = (ids.size()[0], ids.size()[1]);
            let same_doc = ids.unsqueeze(2).eq_tensor(&ids.unsqueeze(1));
            let causal = Tensor::ones([t, t], (Kind::Bool, ids.device())).tril(0);
            same_doc.logical_and(&causal).view([b, 1, t, t])
        }))
    }
}

/// 0 and the running sum of `lens`, as int32 (flash attention's `cu_seqlens`).
fn cumulative(lens: &[i64]) -> Vec<i32> {
    std::iter::once(0)
        .chain(lens.iter().scan(0i64, |acc, &l| {
            *acc += l;
            Some(*acc as i32)
        }))
        .collect()
}

/// Every token's position in its document and its document's index, row after row, from zero-padded
/// document lengths.
fn positions_and_document_ids(rows: &[Vec<i64>]) -> (Vec<f32>, Vec<i64>) {
    let mut positions = Vec::new();
    let mut ids = Vec::new();
    for row in rows {
        for (d, &len) in row.iter().filter(|&&l| l > 0).enumerate() {
            positions.extend((0..len).map(|p| p as f32));
            ids.extend(std::iter::repeat_n(d as i64, len as usize));
        }
    }
    (positions, ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_restart_per_document_and_ids_count_documents() {
        let (pos, ids) = positions_and_document_ids(&[vec![2, 3, 0], vec![5, 0, 0]]);
        assert_eq!(pos, vec![0.0, 1.0, 0.0, 1.0, 2.0, 0.0, 1.0, 2.0, 3.0, 4.0]);
        assert_eq!(ids, vec![0, 0, 1, 1, 1, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn cumulative_lengths_delimit_every_document_of_every_row() {
        assert_eq!(cumulative(&[2, 3, 5]), vec![0, 2, 5, 10]);
        assert_eq!(cumulative(&[]), vec![0]);
    }

    /// Documents (zero padding dropped), else whole instances, as int32 `cu_seqlens` with the longest.
    #[test]
    fn varlen_sequences_are_the_documents_or_the_instances() {
        let rope = Rope::new(8, 10_000.0);
        let read = |ctx: &ForwardContext| {
            let v = ctx.varlen().unwrap();
            assert_eq!(v.cu_seqlens.kind(), Kind::Int);
            (Vec::<i32>::try_from(&v.cu_seqlens).unwrap(), v.max_len)
        };
        let docs = [vec![2, 3, 0], vec![5, 0, 0]];
        let ctx = ForwardContext::new(2, 5, Some(&docs), Device::Cpu, &rope);
        assert_eq!(read(&ctx), (vec![0, 2, 5, 10], 5));
        let ctx = ForwardContext::new(3, 4, None, Device::Cpu, &rope);
        assert_eq!(read(&ctx), (vec![0, 4, 8, 12], 4));
        let packed = ForwardContext::with_mask(
            &Tensor::zeros([1, 4], (Kind::Int64, Device::Cpu)),
            Tensor::ones([1, 1, 4, 4], (Kind::Bool, Device::Cpu)),
            &rope,
        );
        assert!(packed.varlen().is_none());
    }
}
