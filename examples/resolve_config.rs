//! Using the library: resolve OLMo-core's example config with overrides and print the dry-run summary.
//!
//! `cargo run --example resolve_config -- olmo2_1M --train_module.optim.lr=3e-4`
use olmo_train::config::overrides::Override;
use olmo_train::config::resolve::resolve_config;
use olmo_train::config::ExampleOptions;
use olmo_train::dry_run;

fn main() -> Result<(), olmo_train::Error> {
    let mut args = std::env::args().skip(1);
    let mut opts = ExampleOptions::new("example-run");
    opts.model_factory = args.next().unwrap_or_else(|| "olmo2_1M".into());
    let overrides = args
        .map(|a| Override::parse(&a))
        .collect::<Result<Vec<_>, _>>()?;
    let config = resolve_config(&opts, None, &overrides)?;
    print!("{}", dry_run::summary(&config, &opts.model_factory));
    Ok(())
}
