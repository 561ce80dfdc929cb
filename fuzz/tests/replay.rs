//! Every committed input of every fuzz target (the corpus under `corpus/TARGET`, and the
//! inputs that once crashed it under `artifacts/TARGET`) runs through the target again:
//! a fixed crash stays fixed, without a nightly toolchain.

use std::path::Path;

#[test]
fn every_corpus_and_crash_input_runs_clean() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut total = 0;
    for (name, target) in ztgw_fuzz::TARGETS {
        let mut inputs = 0;
        for kind in ["corpus", "artifacts"] {
            let dir = root.join(kind).join(name);
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_file() {
                    let data = std::fs::read(&path).expect("input");
                    let outcome = std::panic::catch_unwind(|| target(&data));
                    assert!(outcome.is_ok(), "{name}: {} fails", path.display());
                    inputs += 1;
                }
            }
        }
        assert!(
            inputs > 0,
            "target {name} has no corpus in fuzz/corpus/{name}"
        );
        total += inputs;
    }
    eprintln!(
        "{total} inputs replayed over {} targets",
        ztgw_fuzz::TARGETS.len()
    );
}
