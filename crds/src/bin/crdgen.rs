//! Writes the generated CRD YAML into a directory (`crds/` by default).

use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("crds"));
    for (file, crd) in vedette_crds::generate::all() {
        let path = dir.join(file);
        std::fs::write(&path, vedette_crds::generate::to_yaml(&crd))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
