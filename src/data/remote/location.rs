//! Which dataset paths are remote, and how a URL splits into the store it lives in and the key inside
//! it. The schemes are OLMo-core's (`olmo_core.io.is_url`): `http(s)://host/path`, `s3://bucket/key`,
//! `gs://bucket/key`, and the S3-compatible `r2://` and `weka://`.
use std::path::Path;

use crate::error::{Error, Result};

/// The kind of service a remote path is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    Http,
    Https,
    S3,
    R2,
    Weka,
    Gcs,
}

impl Scheme {
    fn parse(prefix: &str) -> Option<Self> {
        Some(match prefix {
            "http" => Self::Http,
            "https" => Self::Https,
            "s3" => Self::S3,
            "r2" => Self::R2,
            "weka" => Self::Weka,
            "gs" => Self::Gcs,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Https => "https",
            Self::S3 => "s3",
            Self::R2 => "r2",
            Self::Weka => "weka",
            Self::Gcs => "gs",
        }
    }

    /// Buckets can be listed (for glob patterns); plain web servers cannot.
    pub fn is_listable(self) -> bool {
        !matches!(self, Self::Http | Self::Https)
    }
}

/// A remote token file: `scheme://authority/key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteUrl {
    pub scheme: Scheme,
    /// The host (with port) of a web server, or the bucket.
    pub authority: String,
    /// The object's key: the URL path without its leading `/`.
    pub key: String,
}

impl RemoteUrl {
    /// `Some` for a path written as a URL of a known scheme; `None` for a local path.
    pub fn parse(path: &str) -> Result<Option<Self>> {
        let Some((prefix, rest)) = path.split_once("://") else {
            return Ok(None);
        };
        let Some(scheme) = Scheme::parse(prefix) else {
            if prefix.chars().all(|c| c.is_ascii_alphanumeric()) {
                return Err(Error::Input {
                    path: path.into(),
                    reason: format!(
                        "unknown URL scheme '{prefix}://': token files are local paths or http(s)://, s3://, gs://, r2://, weka:// URLs"
                    ),
                });
            }
            return Ok(None);
        };
        let (authority, key) = rest.split_once('/').unwrap_or((rest, ""));
        if authority.is_empty() || key.is_empty() || key.contains(['?', '#']) {
            return Err(Error::Input {
                path: path.into(),
                reason: format!(
                    "expected {}://{}/PATH naming one object (no query string)",
                    scheme.name(),
                    if scheme.is_listable() {
                        "BUCKET"
                    } else {
                        "HOST"
                    }
                ),
            });
        }
        Ok(Some(Self {
            scheme,
            authority: authority.to_string(),
            key: key.to_string(),
        }))
    }

    /// [`RemoteUrl::parse`] of a dataset path (which the config layer keeps as a `PathBuf`).
    pub fn of_path(path: &Path) -> Result<Option<Self>> {
        match path.to_str() {
            Some(s) => Self::parse(s),
            None => Ok(None),
        }
    }

    /// The store this object lives in, as `scheme://authority`.
    pub fn store_root(&self) -> String {
        format!("{}://{}", self.scheme.name(), self.authority)
    }

    /// This URL with another key in the same store.
    pub fn with_key(&self, key: &str) -> Self {
        Self {
            key: key.to_string(),
            ..self.clone()
        }
    }
}

impl std::fmt::Display for RemoteUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.store_root(), self.key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_store_and_key_and_local_paths_stay_local() {
        let u = RemoteUrl::parse("s3://bucket/a/b/c.npy").unwrap().unwrap();
        assert_eq!(
            (u.scheme, u.authority.as_str(), u.key.as_str()),
            (Scheme::S3, "bucket", "a/b/c.npy")
        );
        assert_eq!(u.to_string(), "s3://bucket/a/b/c.npy");
        let h = RemoteUrl::parse("http://127.0.0.1:8080/x/y.npy")
            .unwrap()
            .unwrap();
        assert_eq!(
            (h.scheme, h.authority.as_str(), h.key.as_str()),
            (Scheme::Http, "127.0.0.1:8080", "x/y.npy")
        );
        assert!(!h.scheme.is_listable());
        assert_eq!(RemoteUrl::parse("/data/tokens.npy").unwrap(), None);
        assert_eq!(RemoteUrl::parse("relative/dir/a.npy").unwrap(), None);
    }

    #[test]
    fn unknown_schemes_and_urls_without_a_key_are_named() {
        let err = RemoteUrl::parse("ftp://host/a.npy")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("ftp://host/a.npy") && err.contains("unknown URL scheme"),
            "{err}"
        );
        let err = RemoteUrl::parse("s3://bucket").unwrap_err().to_string();
        assert!(err.contains("s3://BUCKET/PATH"), "{err}");
        let err = RemoteUrl::parse("https://host/a.npy?sig=1")
            .unwrap_err()
            .to_string();
        assert!(err.contains("no query string"), "{err}");
    }
}
