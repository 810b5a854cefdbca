//! OLMo-core's `RMSNorm` (`layer_norm.name: rms`): computed in fp32 whatever the input dtype, then the
//! weight applied in that dtype and the result cast back.
use tch::{Kind, Tensor};

pub struct RmsNorm {
    pub weight: Tensor,
    pub eps: f64,
}

impl RmsNorm {
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let dtype = x.kind();
        let xf = x.to_kind(Kind::Float);
        let variance = xf.square().mean_dim(-1, true, Kind::Float);
        let normed = &xf * (variance + self.eps).rsqrt();
        (self.weight.to_kind(Kind::Float) * normed).to_kind(dtype)
    }
}
