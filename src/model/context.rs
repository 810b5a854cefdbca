//! What every unit of one forward shares: RoPE's sin/cos tables and the attention mask (documents and
//! causality), built once per forward. Both come from positions and document ids that the host computes
//! from the batch's document lengths, which the loader made on the host: the forward never reads a
//! device tensor back (on a GPU each read would wait for the queued kernels).
use crate::device::upload;
use tch::{Device, Kind, Tensor};

use super::rope::{Rope, RopeTables};

/// Each instance's document lengths (zero-padded rows are fine), as the loader made them on the host.
pub type DocLens = [Vec<i64>];

pub struct ForwardContext {
    pub rope: RopeTables,
    /// `[B, 1, T, T]` bool, true where attention is allowed (documents and causality), or `None`.
    pub doc_mask: Option<Tensor>,
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
        let Some(rows) = doc_lens else {
            let positions = Tensor::arange(t, (Kind::Float, device)).unsqueeze(0);
            return Self {
                rope: rope.tables_at(&positions),
                doc_mask: None,
            };
        };
        let (positions, ids) = positions_and_document_ids(rows);
        let positions = upload(&Tensor::from_slice(&positions).view([batch, t]), device);
        let ids = upload(&Tensor::from_slice(&ids).view([batch, t]), device);
        let same_doc = ids.unsqueeze(2).eq_tensor(&ids.unsqueeze(1));
        let causal = Tensor::ones([t, t], (Kind::Bool, device)).tril(0);
        Self {
            rope: rope.tables_at(&positions),
            doc_mask: Some(same_doc.logical_and(&causal).view([batch, 1, t, t])),
        }
    }

    /// Explicit positions (`[B, T]`) and mask (`[B, 1, T, T]`), for packed sequences.
    pub fn with_mask(positions: &Tensor, mask: Tensor, rope: &Rope) -> Self {
        Self {
            rope: rope.tables_at(&positions.to_kind(Kind::Float)),
            doc_mask: Some(mask),
        }
    }
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
}
