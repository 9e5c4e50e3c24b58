//! Replays the rate-deck fuzz corpus (`fuzz/corpus/rate_deck/`) and every crash ever found
//! (`fuzz/regressions/rate_deck/`) through the property the fuzz target checks
//! (`switchyard_routing::invariants::rate_deck`), on stable, in every `cargo test`.

use std::path::{Path, PathBuf};

use switchyard_routing::invariants;

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    out
}

#[test]
fn rate_deck_corpus_and_regressions_replay_cleanly() {
    let fuzz = Path::new(
        &std::env::var("CARGO_MANIFEST_DIR")
            .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned()),
    )
    .join("../fuzz");
    let corpus = files(&fuzz.join("corpus/rate_deck"));
    assert!(corpus.len() >= 5, "the seed decks are missing");
    let regressions = files(&fuzz.join("regressions/rate_deck"));
    for path in corpus.iter().chain(&regressions) {
        let data = std::fs::read(path).unwrap();
        let result = std::panic::catch_unwind(|| invariants::rate_deck(&data));
        assert!(result.is_ok(), "rate_deck fails on {}", path.display());
    }
    eprintln!(
        "replayed {} corpus and {} regression inputs",
        corpus.len(),
        regressions.len()
    );
}
