//! `http-load`: see `switchyard_bench::http_load` and `http-load --help`.

use clap::Parser;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let options = switchyard_bench::http_load::Options::parse();
    switchyard_ops::logging::init("warn");
    let runtime = if options.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(options.threads)
            .enable_all()
            .build()?
    };
    let report = runtime.block_on(switchyard_bench::http_load::run(options))?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}
