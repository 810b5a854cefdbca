//! One pass over the resolved config that finds every inconsistency a run would otherwise meet later
//! (after the model is built, or steps into training): batch geometry against the world size, the
//! micro-batch against the sequence lengths, the model's vocabulary against every tokenizer in the tree,
//! the scheduler's fields, and the data-parallel geometry. `--dry-run` and a run both call it, and it
//! reports every problem at once, each with its dotted key. (Settings olmo-train does not build yet are
//! `config::support`'s business: notes in a dry run, errors in a run.)
use crate::config::activation_checkpointing::AcMode;
use crate::config::data::TokenizerConfig;
use crate::config::train_module::{DataParallelType, SchedulerUnits};
use crate::config::trainer::DurationUnit;
use crate::config::ExperimentConfig;
use crate::error::{Error, Result};
use crate::optim::scheduler;

/// One problem: the dotted key at fault and what is wrong with its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub path: String,
    pub reason: String,
}

/// `Ok` when `config` has no problem for `world_size` data-parallel ranks; otherwise an error that lists
/// every problem.
pub fn validate(config: &ExperimentConfig, world_size: u64) -> Result<()> {
    let mut found = problems(config, world_size);
    match found.len() {
        0 => Ok(()),
        1 => {
            let p = found.remove(0);
            Err(Error::InvalidValue {
                path: p.path,
                reason: p.reason,
            })
        }
        _ => Err(Error::InvalidConfig(
            found.into_iter().map(|p| (p.path, p.reason)).collect(),
        )),
    }
}

const MAX_DIST_TIMEOUT: u64 = i32::MAX as u64 / 1000;

/// Every problem, in config order.
pub fn problems(config: &ExperimentConfig, world_size: u64) -> Vec<Problem> {
    let mut out = Vec::new();
    let mut problem = |path: &str, reason: String| {
        out.push(Problem {
            path: path.into(),
            reason,
        })
    };
    let world = world_size.max(1);
    let seq = config.dataset.sequence_length;
    let tm = &config.train_module;
    let gbs = config.data_loader.global_batch_size;
    let micro = tm.rank_microbatch_size;

    if seq == 0 {
        problem("dataset.sequence_length", "must be positive".into());
    }
    // c10d takes the timeout in milliseconds as a C int.
    if !(1..=MAX_DIST_TIMEOUT).contains(&config.dist_timeout) {
        problem(
            "dist_timeout",
            format!(
                "{} seconds: expected 1 to {MAX_DIST_TIMEOUT}",
                config.dist_timeout
            ),
        );
    }
    let tokenizers = tokenizers(config);
    for (path, tok) in &tokenizers {
        let vocab = tok.vocab_size;
        if config.model.vocab_size < vocab {
            problem(
                "model.vocab_size",
                format!(
                    "{} is smaller than the vocabulary of {path} ({vocab}): token ids would index past the embedding",
                    config.model.vocab_size
                ),
            );
        }
    }
    let data = &config.dataset.tokenizer;
    for (path, tok) in tokenizers.iter().skip(1) {
        if !same_tokenizer(tok, data) {
            problem(
                path,
                format!(
                    "{} differs from dataset.tokenizer ({}): the evaluator would read another tokenizer's ids; --tokenizer NAME sets them all",
                    describe(tok),
                    describe(data)
                ),
            );
        }
    }
    if seq > 0 && (gbs == 0 || gbs % (world * seq) != 0) {
        problem(
            "data_loader.global_batch_size",
            format!("{gbs} tokens over {world} rank(s) must give each rank a whole number of {seq}-token instances"),
        );
    } else if micro > 0 && gbs % (micro * world) != 0 {
        problem(
            "data_loader.global_batch_size",
            format!(
                "{gbs} tokens must be divisible by train_module.rank_microbatch_size ({micro}) x the data-parallel world size ({world})"
            ),
        );
    }
    if tm.max_sequence_length < seq {
        problem(
            "train_module.max_sequence_length",
            format!(
                "{} is shorter than dataset.sequence_length ({seq})",
                tm.max_sequence_length
            ),
        );
    }
    if micro == 0 || (tm.max_sequence_length > 0 && micro % tm.max_sequence_length != 0) {
        problem(
            "train_module.rank_microbatch_size",
            format!(
                "{micro} tokens must be a positive multiple of train_module.max_sequence_length ({})",
                tm.max_sequence_length
            ),
        );
    }
    if let (Some(s), Some(t_max)) = (&tm.scheduler, scheduler_horizon(config)) {
        if let Err(Error::InvalidValue { path, reason }) = scheduler::validate(s, t_max) {
            problem(&path, reason);
        }
    }
    if let Some(dp) = tm
        .dp_config
        .as_ref()
        .filter(|d| d.name == DataParallelType::Hsdp)
    {
        // OLMo-core's `get_replicate_and_shard_degree`, plus the device mesh's own requirement.
        for (key, degree) in [
            ("num_replicas", dp.num_replicas),
            ("shard_degree", dp.shard_degree),
        ] {
            if let Some(d) = degree.filter(|&d| d == 0 || world % d != 0) {
                problem(
                    &format!("train_module.dp_config.{key}"),
                    format!("{d} does not divide the data-parallel world size ({world})"),
                );
            }
        }
        if let (Some(r), Some(s)) = (dp.num_replicas, dp.shard_degree) {
            if r * s != world {
                problem(
                    "train_module.dp_config",
                    format!("num_replicas ({r}) x shard_degree ({s}) must equal the world size ({world})"),
                );
            }
        }
    }
    match AcMode::from_config(tm.ac_config.as_ref()) {
        Err(Error::InvalidValue { path, reason }) => problem(&path, reason),
        Err(Error::NotSupported { path, value, hint }) => problem(
            &path,
            format!("{value}: not supported yet by olmo-train ({hint})"),
        ),
        _ => {}
    }
    out
}

/// Whether two tokenizer configs name the same tokenizer: the same identifier when both have one,
/// else the same vocabulary and end-of-text id.
fn same_tokenizer(a: &TokenizerConfig, b: &TokenizerConfig) -> bool {
    match (&a.identifier, &b.identifier) {
        (Some(x), Some(y)) => x == y && a.vocab_size == b.vocab_size,
        _ => a.vocab_size == b.vocab_size && a.eos_token_id == b.eos_token_id,
    }
}

fn describe(t: &TokenizerConfig) -> String {
    format!(
        "{}vocab {}, eos {}",
        t.identifier
            .as_deref()
            .map(|i| format!("{i}, "))
            .unwrap_or_default(),
        t.vocab_size,
        t.eos_token_id
    )
}

/// Every tokenizer the run uses, by its dotted path, the dataset's first.
fn tokenizers(config: &ExperimentConfig) -> Vec<(String, &TokenizerConfig)> {
    let mut out = vec![("dataset.tokenizer".to_string(), &config.dataset.tokenizer)];
    let callbacks = &config.trainer.callbacks;
    if config.trainer.no_evals {
        return out;
    }
    if let Some(ds) = callbacks
        .lm_evaluator
        .as_ref()
        .filter(|c| c.enabled)
        .and_then(|c| c.eval_dataset.as_ref())
    {
        out.push((
            "trainer.callbacks.lm_evaluator.eval_dataset.tokenizer".into(),
            &ds.tokenizer,
        ));
    }
    if let Some(d) = callbacks
        .downstream_evaluator
        .as_ref()
        .filter(|c| c.enabled)
    {
        out.push((
            "trainer.callbacks.downstream_evaluator.tokenizer".into(),
            &d.tokenizer,
        ));
    }
    out
}

/// The scheduler's total (steps, or tokens for `units: tokens`) when the config alone fixes it:
/// `max_duration` in steps or tokens (in epochs it depends on the dataset's size).
fn scheduler_horizon(config: &ExperimentConfig) -> Option<u64> {
    let d = &config.trainer.max_duration;
    let gbs = config.data_loader.global_batch_size.max(1);
    let steps = match d.unit {
        DurationUnit::Steps => d.value,
        DurationUnit::Tokens => d.value.div_ceil(gbs),
        DurationUnit::Epochs => return None,
    };
    let in_tokens = config
        .train_module
        .scheduler
        .as_ref()
        .is_some_and(|s| s.units() == SchedulerUnits::Tokens);
    Some(if in_tokens { steps * gbs } else { steps })
}
