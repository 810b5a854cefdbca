//! Reading remote token files through Apache Arrow's `object_store`: one client per store (a web
//! server or a bucket), credentials from the usual environment variables, byte ranges fetched on the
//! caller's thread by blocking on a small shared async runtime. Transient failures (connection errors,
//! 5xx, 429, a body cut short) are retried by the crate with exponential backoff, as OLMo-core's
//! `retriable` does; what is left after the retries becomes one line naming the URL.
use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::http::HttpBuilder;
use object_store::path::Path as StorePath;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, RetryConfig};
use tokio::runtime::Runtime;

use super::location::{RemoteUrl, Scheme};
use crate::error::{Error, Result};

/// The variables an S3 client reads its credentials from (object_store's `from_env`).
const AWS_CREDENTIAL_VARS: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
];

/// One remote object, opened: its store client and location.
#[derive(Debug, Clone)]
pub struct RemoteObject {
    url: RemoteUrl,
    store: Arc<dyn ObjectStore>,
    location: StorePath,
}

impl RemoteObject {
    pub fn new(url: &RemoteUrl) -> Result<Self> {
        let location = StorePath::from_url_path(&url.key).map_err(|e| Error::Input {
            path: url.to_string().into(),
            reason: format!("not a valid object key: {e}"),
        })?;
        Ok(Self {
            url: url.clone(),
            store: store_for(url)?,
            location,
        })
    }

    /// The object's size in bytes (a HEAD request).
    pub fn size(&self) -> Result<u64> {
        let meta = block_on(self.store.head(&self.location))?
            .map_err(|e| describe(&self.url, "reading its size", e))?;
        Ok(meta.size)
    }

    /// Bytes `range` of the object (one ranged GET).
    pub fn read(&self, range: Range<u64>) -> Result<Vec<u8>> {
        if range.is_empty() {
            return Ok(Vec::new());
        }
        let want = range.end - range.start;
        let what = format!("reading bytes {}-{}", range.start, range.end - 1);
        let bytes = block_on(self.store.get_range(&self.location, range))?
            .map_err(|e| describe(&self.url, &what, e))?;
        if bytes.len() as u64 != want {
            return Err(Error::Input {
                path: self.url.to_string().into(),
                reason: format!(
                    "{what}: the server sent {} bytes instead of {want} (does it honour Range requests?)",
                    bytes.len()
                ),
            });
        }
        Ok(bytes.to_vec())
    }
}

/// Every object key in `url`'s bucket that starts with `prefix`, sorted.
pub fn list_keys(url: &RemoteUrl, prefix: &str) -> Result<Vec<String>> {
    let store = store_for(url)?;
    let prefix_path = (!prefix.is_empty()).then(|| StorePath::from(prefix.trim_end_matches('/')));
    let listing = block_on(
        store
            .list(prefix_path.as_ref())
            .map_ok(|meta| meta.location.to_string())
            .try_collect::<Vec<String>>(),
    )?;
    let mut keys = listing.map_err(|e| describe(url, "listing the bucket", e))?;
    keys.sort();
    Ok(keys)
}

/// The shared runtime the blocking reads wait on (created on first use; two workers are plenty for
/// I/O, the loader's own threads do the waiting).
fn block_on<F: std::future::Future>(future: F) -> Result<F::Output> {
    static RUNTIME: OnceLock<std::result::Result<Runtime, String>> = OnceLock::new();
    let runtime = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("olmo-train-remote")
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
    });
    match runtime {
        Ok(rt) => Ok(rt.block_on(future)),
        Err(e) => Err(Error::Internal(format!(
            "could not start the runtime for remote reads: {e}"
        ))),
    }
}

/// OLMo-core waits `min(0.5 * 2^attempt, 3)` seconds between attempts; the crate adds jitter.
fn retry_config() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(3),
            base: 2.0,
        },
        max_retries: 5,
        retry_timeout: Duration::from_secs(120),
    }
}

/// The client of `url`'s store, built once per store and shared by every file and thread.
fn store_for(url: &RemoteUrl) -> Result<Arc<dyn ObjectStore>> {
    static STORES: OnceLock<Mutex<HashMap<String, Arc<dyn ObjectStore>>>> = OnceLock::new();
    let stores = STORES.get_or_init(Default::default);
    let key = url.store_root();
    if let Some(s) = stores.lock().ok().and_then(|m| m.get(&key).cloned()) {
        return Ok(s);
    }
    let store = build_store(url)?;
    if let Ok(mut m) = stores.lock() {
        m.insert(key, store.clone());
    }
    Ok(store)
}

fn build_store(url: &RemoteUrl) -> Result<Arc<dyn ObjectStore>> {
    let bad = |e: object_store::Error| Error::Input {
        path: url.to_string().into(),
        reason: one_line(&e.to_string()),
    };
    Ok(match url.scheme {
        Scheme::Http | Scheme::Https => Arc::new(
            HttpBuilder::new()
                .with_url(url.store_root())
                .with_client_options(
                    ClientOptions::new().with_allow_http(url.scheme == Scheme::Http),
                )
                .with_retry(retry_config())
                .build()
                .map_err(bad)?,
        ),
        Scheme::S3 | Scheme::R2 | Scheme::Weka => {
            let mut b = AmazonS3Builder::from_env()
                .with_bucket_name(&url.authority)
                .with_retry(retry_config());
            if let Some(endpoint) = s3_endpoint(url)? {
                b = b
                    .with_allow_http(endpoint.starts_with("http://"))
                    .with_endpoint(endpoint);
            }
            // As OLMo-core's boto3 client: without credentials, requests go unsigned (public buckets).
            if !has_aws_credentials() {
                b = b.with_skip_signature(true);
            }
            Arc::new(b.build().map_err(bad)?)
        }
        Scheme::Gcs => Arc::new(
            GoogleCloudStorageBuilder::from_env()
                .with_bucket_name(&url.authority)
                .with_retry(retry_config())
                .build()
                .map_err(bad)?,
        ),
    })
}

/// `s3://` uses AWS (or `AWS_ENDPOINT_URL`); `r2://` and `weka://` need their endpoint variable, as
/// in OLMo-core.
fn s3_endpoint(url: &RemoteUrl) -> Result<Option<String>> {
    let var = match url.scheme {
        Scheme::R2 => "R2_ENDPOINT_URL",
        Scheme::Weka => "WEKA_ENDPOINT_URL",
        _ => return Ok(std::env::var("AWS_ENDPOINT_URL").ok()),
    };
    std::env::var(var)
        .map(Some)
        .map_err(|_| Error::Environment {
            name: var.into(),
            reason: format!("not set; it gives the endpoint for {url}"),
        })
}

fn has_aws_credentials() -> bool {
    AWS_CREDENTIAL_VARS
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty()))
}

/// One line naming the URL, what was being read, and why it failed.
fn describe(url: &RemoteUrl, what: &str, e: object_store::Error) -> Error {
    let hint = credentials_hint(url.scheme);
    let reason = match &e {
        object_store::Error::NotFound { .. } => "not found (HTTP 404)".to_string(),
        object_store::Error::PermissionDenied { .. } => {
            format!("{what}: HTTP 403, access denied{hint}")
        }
        object_store::Error::Unauthenticated { .. } => {
            format!("{what}: HTTP 401, not authenticated{hint}")
        }
        _ => format!("{what}: {}", one_line(&e.to_string())),
    };
    Error::Input {
        path: url.to_string().into(),
        reason,
    }
}

fn credentials_hint(scheme: Scheme) -> String {
    match scheme {
        Scheme::S3 | Scheme::R2 | Scheme::Weka if !has_aws_credentials() => format!(
            "; no credentials were found, so the request was unsigned (credentials are read from {} with AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN)",
            AWS_CREDENTIAL_VARS.join(", ")
        ),
        Scheme::S3 | Scheme::R2 | Scheme::Weka => {
            "; check the credentials in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN".into()
        }
        Scheme::Gcs => "; credentials are read from GOOGLE_APPLICATION_CREDENTIALS, GOOGLE_SERVICE_ACCOUNT or GOOGLE_SERVICE_ACCOUNT_KEY".into(),
        Scheme::Http | Scheme::Https => String::new(),
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
