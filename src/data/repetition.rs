//! OLMo-core's instance filter (`InstanceFilterConfig`): an instance is masked when some n-gram of
//! period `[min_period, max_period]` repeats `max_count` times or more in a row. This follows
//! `find_periodic_sequences` in `src/olmo_core/data/utils.py` step for step (rows of `period` tokens,
//! each compared with the previous row, runs of equal rows widened by the partial rows around them),
//! so the same instances are masked.
use crate::config::data::InstanceFilterConfig;

/// True when no periodic sequence repeats `repetition_max_count` times or more.
pub fn is_valid_instance(ids: &[i64], cfg: &InstanceFilterConfig) -> bool {
    let max_period = (cfg.repetition_max_period as usize).min(ids.len() / 3);
    (cfg.repetition_min_period.max(1) as usize..=max_period)
        .all(|period| max_repetitions(ids, period) < cfg.repetition_max_count)
}

/// The largest `times` among the periodic sequences of exactly this period (0 if none).
fn max_repetitions(ids: &[i64], period: usize) -> u64 {
    // The array padded with -1 (never a token id) to whole rows; there is always at least one pad.
    let rows = ids.len() / period + 1;
    let at = |r: usize, c: usize| ids.get(r * period + c).copied().unwrap_or(-1);
    // is_equal[r][c]: row r equals row r-1 at column c (row 0 compares with the last row, as np.roll).
    let equal = |r: usize, c: usize| at(r, c) == at((r + rows - 1) % rows, c);
    let row_equal = |r: usize| (0..period).all(|c| equal(r, c));
    let leading_true = |r: usize| (0..period).take_while(|&c| equal(r, c)).count();
    let trailing_true = |r: usize| (0..period).rev().take_while(|&c| equal(r, c)).count();

    let mut best = 0u64;
    let mut r = 0;
    while r < rows {
        if !row_equal(r) {
            r += 1;
            continue;
        }
        let start_row = r;
        while r + 1 < rows && row_equal(r + 1) {
            r += 1;
        }
        let end_row = r;
        r += 1;
        // Rows 0 and rows-1 can never be equal rows (the last row holds padding), so both neighbours exist.
        let t = trailing_true(start_row - 1);
        let start_offset = if t > 0 && t < period { t } else { 0 };
        let end_offset = leading_true(end_row + 1);
        let start_pos = (start_row - 1) * period - start_offset;
        let end_pos = (end_row + 1) * period + end_offset;
        let times = ((end_pos - start_pos) / period) as u64;
        if times > 2 {
            best = best.max(times);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(max_count: u64) -> InstanceFilterConfig {
        InstanceFilterConfig {
            repetition_max_period: 13,
            repetition_min_period: 1,
            repetition_max_count: max_count,
        }
    }

    #[test]
    fn long_repeats_are_masked_and_varied_text_is_not() {
        let varied: Vec<i64> = (0..200).map(|i| (i * 37 % 101) as i64).collect();
        assert!(is_valid_instance(&varied, &cfg(32)));
        let mut repeated = varied.clone();
        for i in 0..40 {
            repeated[50 + 3 * i] = 1;
            repeated[51 + 3 * i] = 2;
            repeated[52 + 3 * i] = 3;
        }
        assert!(!is_valid_instance(&repeated, &cfg(32)));
        assert!(is_valid_instance(&repeated, &cfg(41)));
    }
}
