//! `batch-load`: see `switchyard_bench::batch_load` and `batch-load --help`.

use clap::Parser;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let options = switchyard_bench::batch_load::Options::parse();
    let report = switchyard_bench::batch_load::run(options)?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
