//! `smsc-sim`: see `switchyard_bench::smsc` and `smsc-sim --help`.

use clap::Parser;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let options = switchyard_bench::smsc::Options::parse();
    switchyard_ops::logging::init("warn");
    // One bind is served by one task; two worker threads match the machines we run on and
    // leave the rest of the work (the gateway under test) its share.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(switchyard_bench::smsc::run(options))
}
