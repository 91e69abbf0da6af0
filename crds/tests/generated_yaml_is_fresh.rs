//! The committed CRD YAML (in `crds/` and in the Helm chart) must equal what the Rust types
//! generate.

use std::path::Path;

#[test]
fn committed_crds_match_the_rust_types() {
    let repository = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("crds is in the repository");
    let mut stale = Vec::new();
    for dir in vedette_crds::generate::OUTPUT_DIRS {
        for (file, crd) in vedette_crds::generate::all() {
            let path = repository.join(dir).join(&file);
            let committed = std::fs::read_to_string(&path).unwrap_or_default();
            if committed != vedette_crds::generate::to_yaml(&crd) {
                stale.push(path.display().to_string());
            }
        }
    }
    assert!(
        stale.is_empty(),
        "stale CRD YAML (run `make generate`): {stale:?}"
    );
}
