//! Writes the generated CRD YAML into `crds/` and the Helm chart's `charts/vedette/crds/`
//! (or into the directories given as arguments).

use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let mut dirs: Vec<PathBuf> = std::env::args().skip(1).map(PathBuf::from).collect();
    if dirs.is_empty() {
        dirs = vedette_crds::generate::OUTPUT_DIRS
            .iter()
            .map(PathBuf::from)
            .collect();
    }
    for dir in dirs {
        std::fs::create_dir_all(&dir)?;
        for (file, crd) in vedette_crds::generate::all() {
            let path = dir.join(file);
            std::fs::write(&path, vedette_crds::generate::to_yaml(&crd))?;
            println!("wrote {}", path.display());
        }
    }
    Ok(())
}
