//! Glob patterns on buckets, with OLMo-core's semantics (`olmo_core.io.glob_directory`): the listing
//! starts at the path components before the first wildcard; `*` matches within one path component,
//! `**` across components; other characters are literal. Matches come back sorted
//! (`deterministic_glob_directory`).
use regex::Regex;

use super::location::RemoteUrl;
use super::store::list_keys;
use crate::error::{Error, Result};

/// The URLs in `pattern`'s bucket whose keys match it, sorted. `key` names the config entry.
pub fn expand_remote_glob(key: &str, pattern: &RemoteUrl) -> Result<Vec<RemoteUrl>> {
    if !pattern.scheme.is_listable() {
        return Err(Error::InvalidValue {
            path: key.into(),
            reason: format!(
                "'{pattern}': a web server cannot be listed, so {}:// paths cannot be glob patterns; list the files",
                pattern.scheme.name()
            ),
        });
    }
    let matcher = key_matcher(&pattern.key).map_err(|e| Error::InvalidValue {
        path: key.into(),
        reason: format!("bad glob '{pattern}': {e}"),
    })?;
    let keys = list_keys(pattern, &listing_prefix(&pattern.key))?;
    let matched: Vec<RemoteUrl> = keys
        .iter()
        .filter(|k| matcher.is_match(k))
        .map(|k| pattern.with_key(k))
        .collect();
    if matched.is_empty() {
        return Err(Error::InvalidValue {
            path: key.into(),
            reason: format!("no object matches '{pattern}'"),
        });
    }
    Ok(matched)
}

/// The key components before the first one with a wildcard, as a listing prefix.
fn listing_prefix(pattern: &str) -> String {
    let parts: Vec<&str> = pattern
        .split('/')
        .take_while(|part| !part.contains('*'))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("{}/", parts.join("/"))
    }
}

fn key_matcher(pattern: &str) -> std::result::Result<Regex, regex::Error> {
    let translated = regex::escape(pattern)
        .replace(r"\*\*/", ".*")
        .replace(r"\*\*", ".*")
        .replace(r"\*", "[^/]*");
    Regex::new(&format!("^{translated}$"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn star_stays_in_one_component_and_double_star_crosses_them() {
        let m = key_matcher("data/*.npy").unwrap();
        assert!(m.is_match("data/a.npy"));
        assert!(!m.is_match("data/sub/a.npy"));
        assert!(!m.is_match("data/a.npy.csv"));
        let m = key_matcher("data/**/*.npy").unwrap();
        assert!(m.is_match("data/sub/deeper/a.npy"));
        assert!(m.is_match("data/a.npy"));
        let m = key_matcher("data/part-[0].npy").unwrap();
        assert!(
            m.is_match("data/part-[0].npy"),
            "brackets are literal, as in OLMo-core"
        );
    }

    #[test]
    fn listing_starts_before_the_first_wildcard() {
        assert_eq!(listing_prefix("a/b/*.npy"), "a/b/");
        assert_eq!(listing_prefix("a/**/x/*.npy"), "a/");
        assert_eq!(listing_prefix("*.npy"), "");
    }
}
