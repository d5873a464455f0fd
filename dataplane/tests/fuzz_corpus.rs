//! Replays the committed fuzz corpus (`dataplane/fuzz/corpus/<target>/`) through the
//! properties the fuzz targets check, so every input that ever mattered stays covered on
//! stable Rust.

use std::path::Path;

fn replay(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("corpus directory") {
        let path = entry.expect("entry").path();
        let data = std::fs::read(&path).expect("read");
        let result = std::panic::catch_unwind(|| check(&data));
        assert!(result.is_ok(), "{} fails its property", path.display());
        n += 1;
    }
    assert!(n >= 10, "the {target} corpus is missing ({n} inputs)");
}

#[test]
fn llm_body_corpus() {
    replay("llm_body", portcullis_dataplane::fuzz_checks::llm_body);
}

#[test]
fn jsonrpc_corpus() {
    replay("jsonrpc", portcullis_dataplane::fuzz_checks::jsonrpc);
}
