//! `provider-sim`: see `switchyard_bench::provider` and `provider-sim --help`.

use clap::Parser;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let options = switchyard_bench::provider::Options::parse();
    switchyard_ops::logging::init("warn");
    // A handful of requests and webhooks at a time: one thread is plenty and leaves the
    // cores to the system under test.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(switchyard_bench::provider::run(options))
}
