//! The documentation says what the tree holds: docs/architecture.md's
//! table names every source file, and every file it names exists.

use std::collections::BTreeSet;
use std::path::Path;

fn source_files(dir: &Path, root: &Path, found: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            source_files(&path, root, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let relative = path.strip_prefix(root).expect("under the root");
            found.insert(relative.display().to_string());
        }
    }
}

#[test]
fn the_architecture_table_matches_the_tree() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("docs/architecture.md")).expect("architecture");
    let listed: BTreeSet<String> = doc
        .lines()
        .filter_map(|line| line.strip_prefix("| `src/"))
        .filter_map(|rest| rest.split('`').next())
        .map(|file| format!("src/{file}"))
        .collect();
    let mut tree = BTreeSet::new();
    source_files(&root.join("src"), root, &mut tree);
    let unlisted: Vec<_> = tree.difference(&listed).collect();
    let missing: Vec<_> = listed.difference(&tree).collect();
    assert!(
        unlisted.is_empty() && missing.is_empty(),
        "docs/architecture.md does not list {unlisted:?}; it lists {missing:?}, which do not exist"
    );
}
