//! One sharded unit (the embeddings, a block, the LM head): its parameters are views of one flat
//! buffer in `param_dtype` that holds memory only while the unit is gathered; this rank keeps its
//! part of the flat layout as an fp32 shard (the optimizer's parameters are views of it) and an fp32
//! gradient shard. At world size 1 in fp32 the shard is the buffer itself and nothing is ever freed.
use tch::{Device, Kind, Tensor};

use super::layout::FlatLayout;
use crate::device::storage;
use crate::dist::{ProcessGroup, ReduceOp, Work};
use crate::error::{Error, Result};
use crate::model::Unit;

enum Gathered {
    No,
    InFlight(Work),
    Yes,
}

/// A reduce-scatter in flight: its input and output stay alive until it is waited on.
struct Reducing {
    work: Option<Work>,
    _input: Tensor,
    output: Tensor,
    last_microbatch: bool,
}

pub struct ShardedUnit {
    pub unit: Unit,
    pub names: Vec<String>,
    params: Vec<Tensor>,
    pub layout: FlatLayout,
    /// This rank's place in the shard group.
    rank: i64,
    flat: Tensor,
    master: Tensor,
    /// Per parameter, its local part of `master` (1-D, possibly empty): what the optimizer steps.
    pub master_views: Vec<Tensor>,
    grad: Option<Tensor>,
    /// `flat` is `master` (one rank, fp32): never freed, never copied.
    aliased: bool,
    gathered: Gathered,
    reducing: Option<Reducing>,
    reduce_kind: Kind,
}

fn internal(unit: Unit, what: &str, e: String) -> Error {
    Error::Internal(format!("{what} of {unit:?}: {e}"))
}

impl ShardedUnit {
    /// Shards `params` (the unit's, by name, in model order) over `world` ranks as `rank`; the
    /// parameters become views of the unit's buffer, which starts freed. The shard starts at zero.
    pub fn new(
        unit: Unit,
        params: Vec<(String, Tensor)>,
        world: i64,
        rank: i64,
        param_kind: Kind,
        reduce_kind: Kind,
        device: Device,
    ) -> Result<Self> {
        let numels: Vec<i64> = params.iter().map(|(_, p)| p.numel() as i64).collect();
        let layout = FlatLayout::new(&numels, world);
        let master = Tensor::zeros([layout.shard], (Kind::Float, device));
        let aliased = world == 1 && param_kind == Kind::Float;
        let flat = match aliased {
            true => master.shallow_clone(),
            false => Tensor::empty([layout.padded()], (param_kind, device)),
        };
        let master_views = (0..params.len())
            .map(|i| {
                let s = layout.local(i, rank);
                master.narrow(0, s.shard_offset, s.len)
            })
            .collect();
        let (names, params): (Vec<String>, Vec<Tensor>) = params.into_iter().unzip();
        let mut unit = Self {
            unit,
            names,
            params,
            layout,
            rank,
            flat,
            master,
            master_views,
            grad: None,
            aliased,
            gathered: Gathered::Yes,
            reducing: None,
            reduce_kind,
        };
        unit.point_params_at(&unit.flat);
        unit.free()?;
        Ok(unit)
    }

    /// Makes every parameter a view of `buffer` (a flat buffer of this unit's layout).
    fn point_params_at(&self, buffer: &Tensor) {
        for (i, p) in self.params.iter().enumerate() {
            let view = buffer
                .narrow(0, self.layout.offsets[i], self.layout.numels[i])
                .view(p.size().as_slice());
            p.shallow_clone().set_data(&view);
        }
    }

    fn free(&mut self) -> Result<()> {
        if !self.aliased {
            storage::free(&self.flat).map_err(|e| internal(self.unit, "freeing", e))?;
        }
        self.gathered = Gathered::No;
        Ok(())
    }

    /// Runs `fill` with the parameters pointing at a whole fp32 copy of the unit (zeros), then keeps
    /// this rank's part as the shard: initialization and loading without ever gathering.
    pub fn fill_full(&mut self, fill: impl FnOnce() -> Result<()>) -> Result<()> {
        if self.aliased {
            return fill();
        }
        let full = Tensor::zeros([self.layout.padded()], (Kind::Float, self.master.device()));
        self.point_params_at(&full);
        let result = fill();
        tch::no_grad(|| {
            self.master.shallow_clone().copy_(&full.narrow(
                0,
                self.rank * self.layout.shard,
                self.layout.shard,
            ))
        });
        // Views need the memory to exist while they are made; it is freed again right after.
        storage::allocate(&self.flat).map_err(|e| internal(self.unit, "allocating", e))?;
        self.point_params_at(&self.flat);
        self.free()?;
        result
    }

    /// Starts bringing the whole unit in (a no-op when it is in or on its way).
    pub fn gather(&mut self, group: Option<&ProcessGroup>) -> Result<()> {
        if !matches!(self.gathered, Gathered::No) {
            return Ok(());
        }
        storage::allocate(&self.flat).map_err(|e| internal(self.unit, "allocating", e))?;
        let own = self
            .flat
            .narrow(0, self.rank * self.layout.shard, self.layout.shard);
        // A copy into the buffer bumps the buffer's version counter, not the parameters' (set_data
        // gave them their own), so autograd's saved views stay valid.
        tch::no_grad(|| own.shallow_clone().copy_(&self.master));
        self.gathered = match group {
            Some(g) if self.layout.world > 1 => {
                Gathered::InFlight(g.all_gather_into(&self.flat, &own)?)
            }
            _ => Gathered::Yes,
        };
        Ok(())
    }

    /// Waits until the unit is in (gathering it first if nobody did).
    pub fn wait(&mut self, group: Option<&ProcessGroup>) -> Result<()> {
        self.gather(group)?;
        if let Gathered::InFlight(w) = std::mem::replace(&mut self.gathered, Gathered::Yes) {
            w.wait()?;
        }
        Ok(())
    }

    pub fn is_gathered(&self) -> bool {
        !matches!(self.gathered, Gathered::No)
    }

    /// Frees the gathered weights (waiting for an all-gather still in flight first).
    pub fn reshard(&mut self) -> Result<()> {
        match std::mem::replace(&mut self.gathered, Gathered::No) {
            Gathered::No => return Ok(()),
            Gathered::InFlight(w) => w.wait()?,
            Gathered::Yes => {}
        }
        self.free()
    }

    /// Moves the parameters' gradients (from this micro-batch's backward) into one flat buffer in
    /// `reduce_dtype` and starts summing it over the shard group; the parameters' gradients are
    /// dropped. `finish_reduce` adds the result into the gradient shard.
    pub fn start_reduce(
        &mut self,
        group: Option<&ProcessGroup>,
        last_microbatch: bool,
    ) -> Result<()> {
        let device = self.master.device();
        let input = Tensor::zeros([self.layout.padded()], (self.reduce_kind, device));
        tch::no_grad(|| {
            for (i, p) in self.params.iter().enumerate() {
                let g = p.grad();
                if g.defined() {
                    input
                        .narrow(0, self.layout.offsets[i], self.layout.numels[i])
                        .copy_(&g.reshape([-1]));
                }
                crate::optim::grads::drop_grad(p);
            }
        });
        let (work, output) = match group {
            Some(g) if self.layout.world > 1 => {
                let out = Tensor::empty([self.layout.shard], (self.reduce_kind, device));
                (Some(g.reduce_scatter(&out, &input, ReduceOp::Sum)?), out)
            }
            _ => (None, input.shallow_clone()),
        };
        self.reducing = Some(Reducing {
            work,
            _input: input,
            output,
            last_microbatch,
        });
        Ok(())
    }

    /// Waits for the reduction in flight and accumulates its mean into the gradient shard (on a rank
    /// batch's last micro-batch, averaged over the replicas too).
    pub fn finish_reduce(&mut self, replicas: Option<&ProcessGroup>) -> Result<()> {
        let Some(r) = self.reducing.take() else {
            return Ok(());
        };
        if let Some(w) = r.work {
            w.wait()?;
        }
        tch::no_grad(|| -> Result<()> {
            let mut out = r.output;
            if self.layout.world > 1 {
                out /= self.layout.world as f64;
            }
            let out = out.to_kind(Kind::Float);
            match &mut self.grad {
                Some(g) => *g += &out,
                None => {
                    for (i, v) in self.master_views.iter().enumerate() {
                        let s = self.layout.local(i, self.rank);
                        crate::optim::grads::set_grad(v, &out.narrow(0, s.shard_offset, s.len));
                    }
                    self.grad = Some(out);
                }
            }
            if let (Some(pg), true, Some(g)) = (replicas, r.last_microbatch, &mut self.grad) {
                pg.all_reduce(g, ReduceOp::Sum)?.wait()?;
                let _ = g.g_div_scalar_(pg.world_size as f64);
            }
            Ok(())
        })
    }

    /// Drops the gradient shard (the optimizer drops its views' gradients itself).
    pub fn zero_grad(&mut self) {
        self.grad = None;
    }

    /// Bytes this rank keeps for the unit whatever happens: the fp32 shard and its gradient.
    pub fn persistent_bytes(&self) -> i64 {
        let shard = self.layout.shard * 4;
        shard + self.grad.as_ref().map_or(0, |_| shard)
    }

    /// Bytes of the gathered buffer (0 when aliased to the shard).
    pub fn unsharded_bytes(&self) -> i64 {
        match self.aliased {
            true => 0,
            false => self.layout.padded() * self.flat.kind().elt_size_in_bytes() as i64,
        }
    }

    /// The whole unit's values of `local` (per parameter, this rank's part of some fp32 per-parameter
    /// state: the shard itself, or an optimizer moment), gathered over the shard group and cut into
    /// full-shape parameters.
    pub fn gather_full(
        &self,
        local: &[Tensor],
        group: Option<&ProcessGroup>,
    ) -> Result<Vec<Tensor>> {
        let device = self.master.device();
        let shard = Tensor::zeros([self.layout.shard], (Kind::Float, device));
        tch::no_grad(|| {
            for (i, t) in local.iter().enumerate() {
                let s = self.layout.local(i, self.rank);
                if s.len > 0 {
                    shard
                        .narrow(0, s.shard_offset, s.len)
                        .copy_(&t.reshape([-1]));
                }
            }
        });
        let full = match group {
            Some(g) if self.layout.world > 1 => {
                let full = Tensor::empty([self.layout.padded()], (Kind::Float, device));
                g.all_gather_into(&full, &shard)?.wait()?;
                full
            }
            _ => shard,
        };
        Ok((0..self.params.len())
            .map(|i| {
                full.narrow(0, self.layout.offsets[i], self.layout.numels[i])
                    .view(self.params[i].size().as_slice())
            })
            .collect())
    }

    /// This rank's part of parameter `i` out of its whole value.
    pub fn local_part(&self, i: usize, full: &Tensor) -> Tensor {
        let s = self.layout.local(i, self.rank);
        full.reshape([-1]).narrow(0, s.param_start, s.len)
    }

    pub fn params(&self) -> &[Tensor] {
        &self.params
    }
}
