//! How big a `TransformerConfig` is: its parameter counts and training FLOPs per token, as OLMo-core
//! counts them (`num_params`, `num_non_embedding_params`, `num_flops_per_token`), and its layer windows.
use super::model::TransformerConfig;

impl TransformerConfig {
    /// Total parameters, as OLMo-core's `TransformerConfig.num_params`.
    pub fn num_params(&self) -> u64 {
        let d = self.d_model;
        let embeddings = d * self.vocab_size;
        let blocks = self.n_layers * self.block.num_params(d);
        let head_matrix = if self.tie_word_embeddings {
            0
        } else {
            d * self.vocab_size
        };
        let embedding_norm = self.embedding_norm.as_ref().map_or(0, |n| n.num_params(d));
        embeddings + embedding_norm + blocks + self.lm_head_norm_and_bias() + head_matrix
    }

    /// What one token uses, as OLMo-core's `num_active_params`: the total less every block's experts
    /// that the router does not pick (equal to `num_params` for dense models).
    pub fn num_active_params(&self) -> u64 {
        let d = self.d_model;
        self.num_params()
            - self.n_layers * (self.block.num_params(d) - self.block.num_active_params(d))
    }

    /// Whether any layer attends through a sliding window.
    pub fn has_sliding_window(&self) -> bool {
        (0..self.n_layers as usize).any(|i| self.layer_window(i).is_some())
    }

    /// Training FLOPs per token at `seq_len`, OLMo-core's `num_flops_per_token` (the MFU numerator): per
    /// block 6 x attention parameters (q/k norms included) + 12 x heads x head_dim x the attended
    /// (query, key) pairs under causal masking (capped by the layer's window) / seq_len + 6 x
    /// feed-forward parameters, plus 6 x the LM head's parameters (final norm included). Embeddings and
    /// block norms are not counted. (OLMo-core 3.0's code counts exact causal pairs; older versions and
    /// REFERENCE.md §8.1 used `min(window, seq_len)` per token.)
    pub fn flops_per_token(&self, seq_len: u64) -> u64 {
        let d = self.d_model;
        let att = &self.block.sequence_mixer;
        // OLMo-core's hybrid MoE blocks count attention and experts only, not their dense
        // feed-forward; the MFU numerator follows OLMo-core's.
        let dense_ff = match self.block.name.is_hybrid() {
            true => None,
            false => self.block.feed_forward.as_ref(),
        };
        let per_block_params = 6 * att.num_params(d)
            + 6 * dense_ff.map_or(0, |f| f.num_params(d))
            + self
                .block
                .feed_forward_moe
                .as_ref()
                .map_or(0, |m| m.flops_per_token(d));
        let attended: u64 = (0..self.n_layers as usize)
            .map(|i| {
                let pairs = match self.layer_window(i) {
                    Some(w) if w < seq_len => w * (w + 1) / 2 + (seq_len - w) * w,
                    _ => seq_len * (seq_len + 1) / 2,
                };
                12 * att.n_heads * att.head_dim(d) * pairs / seq_len.max(1)
            })
            .sum();
        self.n_layers * per_block_params
            + attended
            + 6 * (d * self.vocab_size + self.lm_head_norm_and_bias())
    }

    /// The LM head's final-norm and bias parameters (its matrix aside, which tying can share).
    fn lm_head_norm_and_bias(&self) -> u64 {
        let norm = self
            .lm_head
            .layer_norm
            .as_ref()
            .map_or(0, |n| n.num_params(self.d_model));
        let bias = if self.lm_head.bias.unwrap_or(true) {
            self.vocab_size
        } else {
            0
        };
        norm + bias
    }

    /// The attention window of layer `layer`; `None` for full attention.
    pub fn layer_window(&self, layer: usize) -> Option<u64> {
        self.block
            .sequence_mixer
            .sliding_window
            .as_ref()
            .and_then(|sw| sw.window_for_layer(layer, self.n_layers as usize))
    }

    /// OLMo-core's `num_non_embedding_params`: total minus the embedding matrix (the LM head counts).
    pub fn num_non_embedding_params(&self) -> u64 {
        self.num_params() - self.d_model * self.vocab_size
    }
}
