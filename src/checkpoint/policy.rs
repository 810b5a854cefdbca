//! When to save and what to delete, as OLMo-core's `CheckpointerCallback` decides it: a permanent
//! checkpoint every `save_interval` steps (and at `fixed_steps`), an ephemeral one every
//! `ephemeral_save_interval` steps in between; the previous ephemeral one is removed when a new
//! ephemeral one is saved (`remove: ephemeral_only`), or after any save (`all_non_permanent`); and
//! permanent ones beyond `max_checkpoints` are removed, oldest first.
use crate::config::callbacks::{CheckpointRemoveStrategy, CheckpointerCallback};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveKind {
    Permanent,
    Ephemeral,
}

/// What to save after `step`, if anything.
pub fn save_after_step(step: u64, cfg: &CheckpointerCallback) -> Option<SaveKind> {
    if !cfg.enabled || step == 0 {
        return None;
    }
    if (cfg.save_interval > 0 && step % cfg.save_interval == 0)
        || cfg.fixed_steps.iter().flatten().any(|&s| s == step)
    {
        return Some(SaveKind::Permanent);
    }
    match cfg.ephemeral_save_interval {
        Some(e) if e > 0 && step % e == 0 => Some(SaveKind::Ephemeral),
        _ => None,
    }
}

/// The saved checkpoints (step, ephemeral) to delete now that `just_saved` was written.
pub fn to_remove(
    saved: &[(u64, bool)],
    just_saved: (u64, bool),
    cfg: &CheckpointerCallback,
) -> Vec<u64> {
    let (new_step, new_ephemeral) = just_saved;
    let mut out: Vec<u64> = match cfg.remove {
        CheckpointRemoveStrategy::Never => Vec::new(),
        CheckpointRemoveStrategy::EphemeralOnly if !new_ephemeral => Vec::new(),
        CheckpointRemoveStrategy::EphemeralOnly | CheckpointRemoveStrategy::AllNonPermanent => {
            saved
                .iter()
                .filter(|(s, e)| *e && *s != new_step)
                .map(|(s, _)| *s)
                .collect()
        }
    };
    if let (Some(max), false) = (cfg.max_checkpoints, new_ephemeral) {
        let mut permanent: Vec<u64> = saved.iter().filter(|(_, e)| !e).map(|(s, _)| *s).collect();
        permanent.sort_unstable();
        let excess = permanent.len().saturating_sub(max as usize);
        out.extend(permanent.into_iter().take(excess));
    }
    out.sort_unstable();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> CheckpointerCallback {
        CheckpointerCallback {
            save_interval: 10,
            ephemeral_save_interval: Some(4),
            ..Default::default()
        }
    }

    #[test]
    fn permanent_wins_over_ephemeral_and_fixed_steps_count() {
        let c = CheckpointerCallback {
            fixed_steps: Some(vec![7]),
            ..cfg()
        };
        assert_eq!(save_after_step(4, &c), Some(SaveKind::Ephemeral));
        assert_eq!(save_after_step(7, &c), Some(SaveKind::Permanent));
        assert_eq!(save_after_step(20, &c), Some(SaveKind::Permanent));
        assert_eq!(save_after_step(5, &c), None);
    }

    #[test]
    fn removal_keeps_one_ephemeral_and_max_permanent() {
        let c = CheckpointerCallback {
            max_checkpoints: Some(2),
            ..cfg()
        };
        let saved = [(0, false), (4, true), (8, true)];
        assert_eq!(to_remove(&saved, (8, true), &c), vec![4]);
        let saved = [(0, false), (8, true), (10, false), (20, false)];
        assert_eq!(
            to_remove(&saved, (20, false), &c),
            vec![0],
            "a permanent save keeps the ephemeral one"
        );
        let never = CheckpointerCallback {
            remove: CheckpointRemoveStrategy::Never,
            max_checkpoints: None,
            ..cfg()
        };
        assert!(to_remove(&saved, (8, true), &never).is_empty());
    }
}
