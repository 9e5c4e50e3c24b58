//! `smpp-load`: see `switchyard_bench::smpp_load` and `smpp-load --help`.

use clap::Parser;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let options = switchyard_bench::smpp_load::Options::parse();
    switchyard_ops::logging::init("warn");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(switchyard_bench::smpp_load::run(options))?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}
