//! `sip-uas-sim`: see `switchyard_bench::sipsim` and `sip-uas-sim --help`.

use clap::Parser;

fn main() -> anyhow::Result<()> {
    let options = switchyard_bench::sipsim::Options::parse();
    switchyard_ops::logging::init("warn");
    // One task owns the UAS; a current-thread runtime is all it needs and leaves the cores
    // to the system under test.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(switchyard_bench::sipsim::run(options))
}
