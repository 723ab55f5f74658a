//! `cargo xtask imports`: the import graph between the files of each crate
//! in the workspace, and its circles.
//!
//! Files of one crate should import each other in one direction only: when
//! two files need each other, the shared piece belongs in a third. This task
//! checks that. For every library and binary target it follows the `mod`
//! declarations from the crate root to find each module's file, parses the
//! files with `syn`, and draws an edge from a file to every other file of
//! the crate whose items it names: in `use` declarations (re-exports
//! followed to the file that defines the item) and in paths that start at
//! `crate`, `self`, `super` or a child module. Test code (items under
//! `#[cfg(test)]`) and integration tests are left out. Every strongly
//! connected group of two or more files is a circle; the task lists them
//! and fails when there is one.
//!
//! It reads code as syntax, without name resolution: a path through a
//! renamed import or a macro is not seen, so the graph can miss an edge but
//! never invents one between files that do not name each other.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};
use clap::Args;
use syn::visit::Visit;

/// Arguments of `cargo xtask imports`.
#[derive(Debug, Args)]
pub struct ImportsArgs {
    /// Also print every edge of the graph, file by file.
    #[arg(long)]
    edges: bool,
}

/// A module's path inside its crate (`[]` is the crate root).
type ModulePath = Vec<String>;

/// One crate's modules: which file holds each module, and what each file
/// names.
#[derive(Debug, Default)]
struct CrateGraph {
    /// Module path → the file holding it.
    files: BTreeMap<ModulePath, PathBuf>,
    /// File → the module paths it names (after `crate`/`super` resolution).
    uses: BTreeMap<PathBuf, BTreeSet<ModulePath>>,
    /// File → name → full path of what a `pub use` in it re-exports.
    exports: BTreeMap<PathBuf, HashMap<String, ModulePath>>,
}

pub fn run(arguments: &ImportsArgs) -> anyhow::Result<()> {
    let (workspace, roots) = crate_roots()?;
    let shown = |file: &Path| {
        file.strip_prefix(&workspace)
            .unwrap_or(file)
            .display()
            .to_string()
    };
    let mut circles = 0;
    for (name, root) in &roots {
        let graph = CrateGraph::read(root).with_context(|| format!("reading crate {name}"))?;
        let edges = graph.edges();
        if arguments.edges {
            for (from, targets) in &edges {
                for target in targets {
                    println!("{name}: {} -> {}", shown(from), shown(target));
                }
            }
        }
        for circle in strongly_connected(&edges) {
            circles += 1;
            let files: Vec<String> = circle.iter().map(|file| shown(file)).collect();
            println!("{name}: circle: {}", files.join(" <-> "));
        }
    }
    if circles > 0 {
        bail!("{circles} import circle(s) between files of one crate");
    }
    println!(
        "no import circles in {} crate targets ({})",
        roots.len(),
        roots.keys().cloned().collect::<Vec<_>>().join(", ")
    );
    Ok(())
}

/// The workspace's root directory, and the root file of every library and
/// binary target of its packages by target name, from `cargo metadata`.
fn crate_roots() -> anyhow::Result<(PathBuf, BTreeMap<String, PathBuf>)> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .output()
        .context("running cargo metadata")?;
    if !output.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let metadata: serde_json::Value =
        serde_json::from_slice(&output.stdout).context("reading cargo metadata's output")?;
    let workspace = PathBuf::from(
        metadata["workspace_root"]
            .as_str()
            .context("cargo metadata names no workspace root")?,
    );
    let mut roots = BTreeMap::new();
    for package in metadata["packages"].as_array().into_iter().flatten() {
        for target in package["targets"].as_array().into_iter().flatten() {
            let kinds: Vec<&str> = target["kind"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|kind| kind.as_str())
                .collect();
            if !kinds.iter().any(|kind| matches!(*kind, "lib" | "bin")) {
                continue;
            }
            let (Some(name), Some(source)) = (target["name"].as_str(), target["src_path"].as_str())
            else {
                continue;
            };
            let kind = if kinds.contains(&"lib") { "lib" } else { "bin" };
            roots.insert(format!("{name} ({kind})"), PathBuf::from(source));
        }
    }
    Ok((workspace, roots))
}

impl CrateGraph {
    /// Reads the crate whose root file is `root`.
    fn read(root: &Path) -> anyhow::Result<Self> {
        let mut graph = Self::default();
        let directory = root.parent().context("a crate root has a directory")?;
        // Bounded: every module file is read once, and a crate has finitely
        // many `mod` declarations.
        let mut pending = vec![(Vec::new(), root.to_path_buf(), directory.to_path_buf())];
        while let Some((module, file, children_dir)) = pending.pop() {
            if graph.files.values().any(|known| known == &file) {
                continue;
            }
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let syntax =
                syn::parse_file(&text).with_context(|| format!("parsing {}", file.display()))?;
            let mut reader = FileReader::new(&module);
            reader.visit_file(&syntax);
            for child in &reader.child_files {
                let candidates = [
                    children_dir.join(format!("{child}.rs")),
                    children_dir.join(child).join("mod.rs"),
                ];
                let Some(found) = candidates.iter().find(|candidate| candidate.is_file()) else {
                    bail!("{}: no file for `mod {child};`", file.display());
                };
                let mut child_module = module.clone();
                child_module.push(child.clone());
                pending.push((child_module, found.clone(), children_dir.join(child)));
            }
            graph.uses.insert(file.clone(), reader.uses);
            graph.exports.insert(file.clone(), reader.exports);
            graph.files.insert(module, file);
        }
        Ok(graph)
    }

    /// The file that defines what `path` names: the file of its longest
    /// module prefix, with re-exports followed (a few steps at most).
    fn file_of(&self, path: &[String]) -> Option<&PathBuf> {
        let mut path = path.to_vec();
        for _ in 0..8 {
            let (length, file) = (0..=path.len())
                .rev()
                .find_map(|length| self.files.get(&path[..length]).map(|file| (length, file)))?;
            let Some(item) = path.get(length) else {
                return Some(file);
            };
            match self.exports.get(file).and_then(|exports| exports.get(item)) {
                Some(source) if source.as_slice() != &path[..=length] => {
                    let mut followed = source.clone();
                    followed.extend_from_slice(&path[length + 1..]);
                    path = followed;
                }
                _ => return Some(file),
            }
        }
        None
    }

    /// File → the other files of the crate it names.
    fn edges(&self) -> BTreeMap<PathBuf, BTreeSet<PathBuf>> {
        let mut edges = BTreeMap::new();
        for (file, uses) in &self.uses {
            let targets: BTreeSet<PathBuf> = uses
                .iter()
                .filter_map(|path| self.file_of(path))
                .filter(|target| *target != file)
                .cloned()
                .collect();
            edges.insert(file.clone(), targets);
        }
        edges
    }
}

/// Collects what one file declares and names.
struct FileReader {
    /// The module this file holds.
    module: ModulePath,
    /// Modules declared here whose bodies live in other files.
    child_files: Vec<String>,
    /// Every module declared here (with a file or inline).
    children: BTreeSet<String>,
    /// Inline modules entered so far, innermost last.
    inline: Vec<String>,
    uses: BTreeSet<ModulePath>,
    exports: HashMap<String, ModulePath>,
}

impl FileReader {
    fn new(module: &[String]) -> Self {
        Self {
            module: module.to_vec(),
            child_files: Vec::new(),
            children: BTreeSet::new(),
            inline: Vec::new(),
            uses: BTreeSet::new(),
            exports: HashMap::new(),
        }
    }

    /// The module the code being read is in.
    fn current(&self) -> ModulePath {
        let mut current = self.module.clone();
        current.extend(self.inline.iter().cloned());
        current
    }

    /// `segments` as a path from the crate root, if it starts at `crate`,
    /// `self`, `super` or a module declared in this file; `None` for paths
    /// into other crates or to local names.
    fn absolute(&self, segments: &[String]) -> Option<ModulePath> {
        let first = segments.first()?;
        match first.as_str() {
            "crate" => Some(segments[1..].to_vec()),
            "self" => {
                let mut path = self.current();
                path.extend_from_slice(&segments[1..]);
                Some(path)
            }
            "super" => {
                let mut path = self.current();
                let mut rest = segments;
                while rest.first().is_some_and(|segment| segment == "super") {
                    path.pop()?;
                    rest = &rest[1..];
                }
                path.extend_from_slice(rest);
                Some(path)
            }
            name if self.inline.is_empty() && self.children.contains(name) => {
                let mut path = self.module.clone();
                path.extend_from_slice(segments);
                Some(path)
            }
            _ => None,
        }
    }

    /// Every full path a `use` tree names, with the name it binds (`None`
    /// for globs).
    fn flatten(
        tree: &syn::UseTree,
        prefix: &mut Vec<String>,
        out: &mut Vec<(Vec<String>, Option<String>)>,
    ) {
        match tree {
            syn::UseTree::Path(path) => {
                prefix.push(path.ident.to_string());
                Self::flatten(&path.tree, prefix, out);
                prefix.pop();
            }
            syn::UseTree::Name(name) => {
                let name = name.ident.to_string();
                if name == "self" {
                    let bound = prefix.last().cloned();
                    out.push((prefix.clone(), bound));
                } else {
                    let mut full = prefix.clone();
                    full.push(name.clone());
                    out.push((full, Some(name)));
                }
            }
            syn::UseTree::Rename(rename) => {
                let mut full = prefix.clone();
                full.push(rename.ident.to_string());
                out.push((full, Some(rename.rename.to_string())));
            }
            syn::UseTree::Glob(_) => out.push((prefix.clone(), None)),
            syn::UseTree::Group(group) => {
                for item in &group.items {
                    Self::flatten(item, prefix, out);
                }
            }
        }
    }
}

/// Whether `attributes` include `#[cfg(test)]`.
fn is_test_only(attributes: &[syn::Attribute]) -> bool {
    attributes.iter().any(|attribute| {
        attribute.path().is_ident("cfg")
            && attribute
                .parse_args::<syn::Ident>()
                .is_ok_and(|ident| ident == "test")
    })
}

impl<'ast> Visit<'ast> for FileReader {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        let attributes = match item {
            syn::Item::Mod(item) => &item.attrs,
            syn::Item::Fn(item) => &item.attrs,
            syn::Item::Impl(item) => &item.attrs,
            syn::Item::Use(item) => &item.attrs,
            syn::Item::Struct(item) => &item.attrs,
            syn::Item::Enum(item) => &item.attrs,
            syn::Item::Const(item) => &item.attrs,
            syn::Item::Static(item) => &item.attrs,
            syn::Item::Trait(item) => &item.attrs,
            _ => return syn::visit::visit_item(self, item),
        };
        if is_test_only(attributes) {
            return;
        }
        syn::visit::visit_item(self, item);
    }

    fn visit_item_mod(&mut self, item: &'ast syn::ItemMod) {
        let name = item.ident.to_string();
        match &item.content {
            None => {
                if self.inline.is_empty() {
                    self.children.insert(name.clone());
                    self.child_files.push(name);
                }
            }
            Some(_) => {
                if self.inline.is_empty() {
                    self.children.insert(name.clone());
                }
                self.inline.push(name);
                syn::visit::visit_item_mod(self, item);
                self.inline.pop();
            }
        }
    }

    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        let mut flattened = Vec::new();
        Self::flatten(&item.tree, &mut Vec::new(), &mut flattened);
        let public = !matches!(item.vis, syn::Visibility::Inherited);
        for (segments, bound) in flattened {
            let Some(path) = self.absolute(&segments) else {
                continue;
            };
            if public
                && self.inline.is_empty()
                && let Some(bound) = bound
            {
                self.exports.insert(bound, path.clone());
            }
            self.uses.insert(path);
        }
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        let segments: Vec<String> = path
            .segments
            .iter()
            .map(|segment| segment.ident.to_string())
            .collect();
        if segments.len() > 1
            && let Some(path) = self.absolute(&segments)
        {
            self.uses.insert(path);
        }
        syn::visit::visit_path(self, path);
    }
}

/// The strongly connected groups of two or more files (Tarjan's algorithm,
/// iterative so that no recursion depth depends on the input).
fn strongly_connected(edges: &BTreeMap<PathBuf, BTreeSet<PathBuf>>) -> Vec<Vec<PathBuf>> {
    let nodes: Vec<&PathBuf> = edges.keys().collect();
    let index_of: HashMap<&PathBuf, usize> = nodes
        .iter()
        .enumerate()
        .map(|(index, node)| (*node, index))
        .collect();
    let successors: Vec<Vec<usize>> = nodes
        .iter()
        .map(|node| {
            edges[*node]
                .iter()
                .filter_map(|target| index_of.get(target).copied())
                .collect()
        })
        .collect();
    let count = nodes.len();
    let mut order = vec![usize::MAX; count];
    let mut low = vec![0; count];
    let mut on_stack = vec![false; count];
    let mut stack = Vec::new();
    let mut next = 0;
    let mut groups = Vec::new();
    for start in 0..count {
        if order[start] != usize::MAX {
            continue;
        }
        // Each frame: a node and how many of its successors were visited.
        let mut frames = vec![(start, 0usize)];
        order[start] = next;
        low[start] = next;
        next += 1;
        stack.push(start);
        on_stack[start] = true;
        while let Some(frame) = frames.last_mut() {
            let node = frame.0;
            if let Some(&successor) = successors[node].get(frame.1) {
                frame.1 += 1;
                if order[successor] == usize::MAX {
                    order[successor] = next;
                    low[successor] = next;
                    next += 1;
                    stack.push(successor);
                    on_stack[successor] = true;
                    frames.push((successor, 0));
                } else if on_stack[successor] {
                    low[node] = low[node].min(order[successor]);
                }
                continue;
            }
            frames.pop();
            if let Some(&(parent, _)) = frames.last() {
                low[parent] = low[parent].min(low[node]);
            }
            if low[node] == order[node] {
                let mut group = Vec::new();
                while let Some(member) = stack.pop() {
                    on_stack[member] = false;
                    group.push(nodes[member].clone());
                    if member == node {
                        break;
                    }
                }
                if group.len() > 1 {
                    group.sort();
                    groups.push(group);
                }
            }
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `files` (relative path, text) under a temporary directory and
    /// reads the crate rooted at its `lib.rs`.
    fn graph_of(files: &[(&str, &str)]) -> (tempfile::TempDir, CrateGraph) {
        let directory = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let path = directory.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        let graph = CrateGraph::read(&directory.path().join("lib.rs")).unwrap();
        (directory, graph)
    }

    fn circles(files: &[(&str, &str)]) -> Vec<Vec<String>> {
        let (directory, graph) = graph_of(files);
        strongly_connected(&graph.edges())
            .into_iter()
            .map(|group| {
                group
                    .iter()
                    .map(|file| {
                        file.strip_prefix(directory.path())
                            .unwrap()
                            .display()
                            .to_string()
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn two_files_naming_each_other_are_a_circle() {
        let found = circles(&[
            ("lib.rs", "mod a; mod b;"),
            ("a.rs", "use crate::b::B; pub struct A;"),
            (
                "b.rs",
                "pub struct B; fn f() -> crate::a::A { crate::a::A }",
            ),
        ]);
        assert_eq!(found, vec![vec!["a.rs".to_owned(), "b.rs".to_owned()]]);
    }

    #[test]
    fn one_way_imports_and_test_code_are_not() {
        let found = circles(&[
            ("lib.rs", "mod a; mod b; mod shared;"),
            ("a.rs", "use crate::shared::S; use crate::b::B;"),
            (
                "b.rs",
                "use super::shared::{S, T}; #[cfg(test)] mod tests { use crate::a::*; }",
            ),
            (
                "shared.rs",
                "pub struct S; pub struct T; /// [`crate::a`]\npub fn f() {}",
            ),
        ]);
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn re_exports_lead_to_the_defining_file() {
        // a names `crate::Thing`, which lib.rs re-exports from b: the edge
        // goes to b, and b naming a closes a circle.
        let found = circles(&[
            ("lib.rs", "mod a; mod b; pub use b::Thing;"),
            ("a.rs", "pub fn f(_: crate::Thing) {}"),
            ("b.rs", "pub struct Thing; use crate::a::f;"),
        ]);
        assert_eq!(found, vec![vec!["a.rs".to_owned(), "b.rs".to_owned()]]);
    }

    #[test]
    fn folders_with_mod_rs_and_nested_super_paths_are_followed() {
        let found = circles(&[
            ("lib.rs", "mod transfer; mod state;"),
            ("state.rs", "pub struct State;"),
            (
                "transfer/mod.rs",
                "mod upload; mod commit; pub use upload::Upload;",
            ),
            (
                "transfer/upload.rs",
                "use super::commit::commit; pub struct Upload;",
            ),
            (
                "transfer/commit.rs",
                "use crate::state::State; pub fn commit() {}",
            ),
        ]);
        assert!(found.is_empty(), "{found:?}");
        let found = circles(&[
            ("lib.rs", "mod transfer;"),
            (
                "transfer/mod.rs",
                "mod upload; pub use upload::Upload; pub struct Shared;",
            ),
            (
                "transfer/upload.rs",
                "use super::Shared; pub struct Upload;",
            ),
        ]);
        assert_eq!(
            found,
            vec![vec![
                "transfer/mod.rs".to_owned(),
                "transfer/upload.rs".to_owned()
            ]]
        );
    }

    #[test]
    fn a_missing_module_file_is_an_error() {
        let directory = tempfile::tempdir().unwrap();
        std::fs::write(directory.path().join("lib.rs"), "mod gone;").unwrap();
        let error = CrateGraph::read(&directory.path().join("lib.rs")).unwrap_err();
        assert!(
            error.to_string().contains("no file for `mod gone;`"),
            "{error}"
        );
    }

    #[test]
    fn a_long_chain_has_no_circle_and_a_ring_is_one() {
        let mut edges = BTreeMap::new();
        for index in 0..10_000u32 {
            let target: BTreeSet<PathBuf> = if index + 1 < 10_000 {
                [PathBuf::from((index + 1).to_string())].into()
            } else {
                BTreeSet::new()
            };
            edges.insert(PathBuf::from(index.to_string()), target);
        }
        assert!(strongly_connected(&edges).is_empty());
        edges.insert(PathBuf::from("9999"), [PathBuf::from("0")].into());
        let groups = strongly_connected(&edges);
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].len(), 10_000);
    }
}
