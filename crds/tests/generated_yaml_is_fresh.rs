//! The committed CRD YAML must equal what the Rust types generate.

use std::path::Path;

#[test]
fn committed_crds_match_the_rust_types() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut stale = Vec::new();
    for (file, crd) in vedette_crds::generate::all() {
        let committed = std::fs::read_to_string(dir.join(&file)).unwrap_or_default();
        if committed != vedette_crds::generate::to_yaml(&crd) {
            stale.push(file);
        }
    }
    assert!(
        stale.is_empty(),
        "stale CRD YAML (run `make generate`): {stale:?}"
    );
}
