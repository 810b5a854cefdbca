//! Token files that live behind a URL (`http(s)://`, `s3://`, `gs://`, `r2://`, `weka://`), read the
//! way OLMo-core reads them: sizes up front, instances fetched by byte range in the loader's threads.
mod glob;
mod location;
mod store;

pub use glob::expand_remote_glob;
pub use location::{RemoteUrl, Scheme};
pub use store::{list_keys, RemoteObject};
