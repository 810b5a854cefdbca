//! A unit's flat layout: its parameters concatenated in model order, padded to a multiple of the
//! shard group's size, rank `r` owning elements `[r*S, (r+1)*S)`. A parameter's local part is the
//! intersection of its range with the rank's: one contiguous slice, so the optimizer, clipping and
//! checkpoints still work parameter by parameter (`shared/SHARDING.md` §5.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlatLayout {
    /// Each parameter's element count and offset in the flat buffer.
    pub numels: Vec<i64>,
    pub offsets: Vec<i64>,
    /// Ranks sharing the unit, and the elements each owns.
    pub world: i64,
    pub shard: i64,
}

/// Parameter `i`'s part on one rank: `len` elements from `param_start` within the parameter, at
/// `shard_offset` within the rank's shard (`len` may be 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalSlice {
    pub param_start: i64,
    pub shard_offset: i64,
    pub len: i64,
}

impl FlatLayout {
    pub fn new(numels: &[i64], world: i64) -> Self {
        let offsets = numels
            .iter()
            .scan(0, |at, &n| {
                let o = *at;
                *at += n;
                Some(o)
            })
            .collect();
        let total: i64 = numels.iter().sum();
        let world = world.max(1);
        Self {
            numels: numels.to_vec(),
            offsets,
            world,
            shard: ((total + world - 1) / world).max(1),
        }
    }

    /// Elements of the unsharded buffer, padding included.
    pub fn padded(&self) -> i64 {
        self.shard * self.world
    }

    pub fn total(&self) -> i64 {
        self.numels.iter().sum()
    }

    /// Parameter `i`'s part on `rank`.
    pub fn local(&self, i: usize, rank: i64) -> LocalSlice {
        let (lo, hi) = (rank * self.shard, (rank + 1) * self.shard);
        let (start, end) = (self.offsets[i], self.offsets[i] + self.numels[i]);
        let (a, b) = (start.max(lo), end.min(hi));
        if a >= b {
            return LocalSlice {
                param_start: 0,
                shard_offset: 0,
                len: 0,
            };
        }
        LocalSlice {
            param_start: a - start,
            shard_offset: a - lo,
            len: b - a,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// For many shapes and world sizes the local slices tile every parameter exactly once, each at
    /// its place in the flat buffer, and the padding is less than one element per rank.
    #[test]
    fn local_slices_tile_every_parameter_once() {
        let cases: [&[i64]; 5] = [
            &[12, 5, 7],
            &[1],
            &[3, 3, 3, 3],
            &[100, 1, 1, 64],
            &[2, 0, 9],
        ];
        for numels in cases {
            for world in [1, 2, 3, 4, 8] {
                let l = FlatLayout::new(numels, world);
                assert!(l.padded() >= l.total() && l.padded() - l.total() < world.max(1));
                let mut covered: Vec<Vec<u32>> =
                    numels.iter().map(|&n| vec![0; n as usize]).collect();
                for rank in 0..world {
                    for (i, c) in covered.iter_mut().enumerate() {
                        let s = l.local(i, rank);
                        assert!(s.shard_offset + s.len <= l.shard);
                        if s.len > 0 {
                            assert_eq!(
                                rank * l.shard + s.shard_offset,
                                l.offsets[i] + s.param_start
                            );
                        }
                        for e in s.param_start..s.param_start + s.len {
                            c[e as usize] += 1;
                        }
                    }
                }
                assert!(
                    covered.iter().flatten().all(|&n| n == 1),
                    "{numels:?} {world}"
                );
            }
        }
    }
}
